//! A nonconformity's deadline opens the moment its audit completes (its plan is due whether or
//! not the client answers); once the plan is in, its own due date follows; once the client
//! reports it done, the certification body's verification is the pending step, reminded to the
//! body. Surveillance findings open their plans the same way.

use chrono::{Days, NaiveDate};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, day, spawn_app};
use crate::on_both_databases;
use crate::smtp::SmtpSink;

/// `engagement`'s deadlines of `kind`, every status.
async fn deadlines(app: &TestApp, engagement: &str, kind: &str) -> Vec<Value> {
    let all = app.get(&format!("/api/v1/engagements/{engagement}/deadlines")).await.expect(200).items();
    all.body.as_array().unwrap().iter().filter(|d| d["kind"] == kind).cloned().collect()
}

fn date(value: &Value) -> NaiveDate {
    value.as_str().unwrap().parse().unwrap()
}

async fn each_nc_is_due_from_its_audit_then_by_its_plan_then_by_the_body_s_verification(backend: Backend) {
    // Arrange: a stage 2 on days 40–43 finds a major and a minor NC.
    let app = spawn_app(backend).await;
    let smtp = SmtpSink::start();
    let (engagement, audit, major) = app.stage2_with_finding("major_nc", "A.8.13").await;
    let minor = app.record_finding(&engagement, &audit, "minor_nc", "A.5.15").await;
    let last_day = day(43);

    // Act 1: the audit completes; nobody answers yet.
    app.set_today(day(44));
    let completed = json!({ "event": "complete_stage2", "audit_id": audit });
    app.fire(&engagement, completed).await.expect(200);

    // Assert 1: each NC has its plan deadline, dated by the body's policy for its grade, owned by
    // the client's manager.
    let plans = deadlines(&app, &engagement, "corrective_action_plan_due").await;
    let plan_of = |finding: &str| plans.iter().find(|d| d["subject_id"] == finding).cloned().unwrap();
    assert_eq!(plans.len(), 2);
    assert_eq!(date(&plan_of(&major)["due_on"]), last_day + Days::new(90));
    assert_eq!(date(&plan_of(&minor)["due_on"]), last_day + Days::new(30));
    assert_eq!(
        (plan_of(&major)["owner_email"].as_str(), plan_of(&major)["status"].as_str()),
        (Some("isms@acme.test"), Some("open"))
    );

    // Act 2: the plan for the major comes in.
    let action = app.submit_corrective_action(&engagement, &major, Some(last_day + Days::new(60))).await.expect(201);
    let action_id = action.str("id");

    // Assert 2: its plan deadline is met; the action's own due date is the open step.
    let plans = deadlines(&app, &engagement, "corrective_action_plan_due").await;
    let status_of = |finding: &str| plans.iter().find(|d| d["subject_id"] == finding).unwrap()["status"].clone();
    assert_eq!((status_of(&major), status_of(&minor)), (json!("met"), json!("open")));
    let due = deadlines(&app, &engagement, "corrective_action_due").await;
    assert_eq!(
        (due.len(), due[0]["subject_id"].as_str(), due[0]["status"].as_str()),
        (1, Some(action_id.as_str()), Some("open"))
    );

    // Act 3: the client reports it done on day 80.
    app.set_today(day(80));
    let completion = format!("/api/v1/engagements/{engagement}/corrective-actions/{action_id}/completion");
    let reported = app.post(&completion, &json!({ "evidence": ["dms://evidence/fixed.pdf"] })).await.expect(200);

    // Assert 3: its due date is met; the body's verification is pending, owned by its coordinator,
    // due 14 days later (the default); reporting twice is refused.
    assert!(reported.body["reported_done_at"].is_string());
    assert!(reported.body["evidence"].as_array().unwrap().contains(&json!("dms://evidence/fixed.pdf")));
    assert_eq!(deadlines(&app, &engagement, "corrective_action_due").await[0]["status"], "met");
    let verification = deadlines(&app, &engagement, "corrective_action_verification").await;
    assert_eq!(
        (verification[0]["owner_email"].as_str(), verification[0]["status"].as_str()),
        (Some("coordinator@cb.test"), Some("open"))
    );
    assert_eq!(date(&verification[0]["due_on"]), day(80) + Days::new(14));
    let twice = app.post(&completion, &json!({})).await.expect(409);
    assert_eq!(twice.problem_type(), "corrective-action-reported");

    // Assert 4: the verification's reminder goes to the body, not to the action's owner.
    let worker = app.spawn_worker(smtp.port).await;
    app.set_today(day(80) + Days::new(7));
    worker.tick().await;
    app.wait_for_deliveries(&engagement).await;
    let verification_id = verification[0]["id"].clone();
    let reminders: Vec<Value> =
        app.notifications(&engagement).await.into_iter().filter(|n| n["deadline_id"] == verification_id).collect();
    assert_eq!(reminders.len(), 1, "{reminders:?}");
    assert_eq!(reminders[0]["recipients"], json!(["coordinator@cb.test"]));

    // Act 5: the body rejects it.
    app.verify_corrective_action(&engagement, &action_id, "rejected").await.expect(200);

    // Assert 5: the body's step is done; the client's due date is pending again.
    assert_eq!(deadlines(&app, &engagement, "corrective_action_verification").await[0]["status"], "met");
    let due = deadlines(&app, &engagement, "corrective_action_due").await;
    let open: Vec<&Value> = due.iter().filter(|d| d["status"] == "open").collect();
    assert_eq!((open.len(), open[0]["owner_email"].as_str()), (1, Some("sre@acme.test")));
    let action = app.get(&format!("/api/v1/engagements/{engagement}/corrective-actions")).await.expect(200).items();
    assert!(action.body.as_array().unwrap()[0]["reported_done_at"].is_null());
}
on_both_databases!(each_nc_is_due_from_its_audit_then_by_its_plan_then_by_the_body_s_verification);

async fn a_surveillance_audit_s_nonconformities_open_their_plans_when_it_completes(backend: Backend) {
    // Arrange: certified on day 44; a surveillance audit finds a minor NC.
    let app = spawn_app(backend).await;
    let engagement = app.certified_engagement().await;
    app.set_today(day(300));
    app.fire(&engagement, json!({ "event": "start_surveillance" })).await.expect(200);
    let audit = app.create_audit(&engagement, "surveillance", day(301), day(302)).await;
    let minor = app.record_finding(&engagement, &audit, "minor_nc", "A.5.15").await;

    // Act
    app.set_today(day(303));
    app.fire(&engagement, json!({ "event": "complete_surveillance", "audit_id": audit })).await.expect(200);
    // A finding recorded on the completed audit afterwards is due from then too.
    let late = app.record_finding(&engagement, &audit, "major_nc", "A.8.13").await;

    // Assert
    let plans = deadlines(&app, &engagement, "corrective_action_plan_due").await;
    let due_of = |finding: &str| date(&plans.iter().find(|d| d["subject_id"] == finding).unwrap()["due_on"]);
    assert_eq!(plans.len(), 2);
    assert_eq!(due_of(&minor), day(302) + Days::new(30));
    assert_eq!(due_of(&late), day(302) + Days::new(90));
}
on_both_databases!(a_surveillance_audit_s_nonconformities_open_their_plans_when_it_completes);

async fn an_accepted_minor_is_followed_up_at_the_next_audit_and_not_effective_opens_a_new_nc(backend: Backend) {
    // Arrange: a minor NC of stage 2 (days 40–43) whose plan the body accepts; then certified.
    let app = spawn_app(backend).await;
    let (engagement, stage2, minor) = app.stage2_with_finding("minor_nc", "A.8.13").await;
    app.set_today(day(44));
    app.fire(&engagement, json!({ "event": "complete_stage2", "audit_id": stage2 })).await.expect(200);
    let action = app.submit_corrective_action(&engagement, &minor, None).await.expect(201).str("id");
    app.verify_corrective_action(&engagement, &action, "accepted").await.expect(200);
    let finding = |id: String| {
        let app = &app;
        let engagement = engagement.clone();
        async move { app.get(&format!("/api/v1/engagements/{engagement}/findings/{id}")).await.expect(200) }
    };
    assert_eq!(finding(minor.clone()).await.str("status"), "follow_up", "to be verified at the next audit");
    app.fire(&engagement, json!({ "event": "request_decision" })).await.expect(200);
    app.grant(&engagement).await.expect(200);

    // Act 1: the first surveillance audit lists the minor to follow up.
    app.set_today(day(300));
    app.fire(&engagement, json!({ "event": "start_surveillance" })).await.expect(200);
    let surveillance = app.create_audit(&engagement, "surveillance", day(301), day(302)).await;
    let follow_ups = format!("/api/v1/engagements/{engagement}/audits/{surveillance}/follow-ups");
    let listed = app.get(&follow_ups).await.expect(200).items();
    assert_eq!(listed.body.as_array().unwrap().iter().map(|f| f["id"].clone()).collect::<Vec<_>>(), [json!(minor)]);

    // Act 2: not at the audit that found it; at the surveillance audit, not effective.
    let path = format!("/api/v1/engagements/{engagement}/findings/{minor}/follow-up");
    let same = app.post(&path, &json!({ "audit_id": stage2, "outcome": "effective" })).await.expect(422);
    assert_eq!(same.problem_type(), "validation-failed");
    let without_note = app.post(&path, &json!({ "audit_id": surveillance, "outcome": "not_effective" })).await;
    assert_eq!(without_note.expect(422).problem_type(), "validation-failed");
    let note = "Restore tests were scheduled but none was run this quarter.";
    let followed = app
        .post(&path, &json!({ "audit_id": surveillance, "outcome": "not_effective", "note": note }))
        .await
        .expect(200);

    // Assert: the minor closed as not effective; a new minor NC on the surveillance audit, open.
    assert_eq!(
        (followed.body["finding"]["status"].as_str(), followed.body["finding"]["follow_up_outcome"].as_str()),
        (Some("closed"), Some("not_effective"))
    );
    let recurred = followed.body["new_nonconformity"].clone();
    assert_eq!((recurred["grade"].as_str(), recurred["status"].as_str()), (Some("minor_nc"), Some("open")));
    assert_eq!(
        (recurred["audit_id"].as_str(), recurred["reference"].as_str()),
        (Some(surveillance.as_str()), Some("A.8.13"))
    );
    let twice = app.post(&path, &json!({ "audit_id": surveillance, "outcome": "effective" })).await.expect(409);
    assert_eq!(twice.problem_type(), "finding-not-awaiting-follow-up");

    // When the surveillance completes, the new NC's plan is due like any of its findings'.
    app.set_today(day(303));
    app.fire(&engagement, json!({ "event": "complete_surveillance", "audit_id": surveillance })).await.expect(200);
    let plans = deadlines(&app, &engagement, "corrective_action_plan_due").await;
    let plan = plans.iter().find(|d| d["subject_id"] == recurred["id"]).cloned().unwrap();
    assert_eq!((date(&plan["due_on"]), plan["status"].as_str()), (day(302) + Days::new(30), Some("open")));
    let listed = app.get(&follow_ups).await.expect(200).items();
    assert_eq!(listed.body.as_array().unwrap().len(), 1, "the completed audit lists what it followed up");
}
on_both_databases!(an_accepted_minor_is_followed_up_at_the_next_audit_and_not_effective_opens_a_new_nc);
