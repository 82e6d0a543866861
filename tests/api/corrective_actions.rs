//! Stage 2 findings and the corrective action plan: majors block the decision until verified;
//! six months without verification force a new stage 2.

use api::auth::Role;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{Backend, day, spawn_app};
use crate::on_both_databases;

async fn a_major_nc_blocks_the_decision_until_its_corrective_action_is_verified(backend: Backend) {
    // Arrange: stage 2 on days 40–43 finds a major NC, a minor NC and an OFI.
    let app = spawn_app(backend).await;
    let (engagement, stage2, major) = app.stage2_with_finding("major_nc", "A.8.13").await;
    let minor = app.record_finding(&engagement, &stage2, "minor_nc", "9.2").await;
    let ofi = app.record_finding(&engagement, &stage2, "ofi", "A.5.1").await;
    app.set_today(day(44));

    // Act / Assert: stage 2 goes to the CAP and opens the 6-month limit (43 + 6 months = 2026-08-17).
    let cap = app.fire(&engagement, json!({ "event": "complete_stage2", "audit_id": stage2 })).await.expect(200);
    assert_eq!(cap.str("state"), "corrective_actions");
    let open = cap.body["open_deadlines"].as_array().unwrap();
    let limit = open.iter().find(|d| d["kind"] == "major_nc_limit").unwrap();
    assert_eq!(limit["due_on"], "2026-08-17");
    // And each NC's plan is due from now (the OFI needs none).
    assert_eq!(open.iter().filter(|d| d["kind"] == "corrective_action_plan_due").count(), 2);

    let blocked = app.fire(&engagement, json!({ "event": "request_decision" })).await.expect(422);
    let codes: Vec<&str> =
        blocked.body["violations"].as_array().unwrap().iter().map(|v| v["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["major_nc_unverified", "minor_nc_plan_pending"]);

    // An OFI needs no corrective action.
    let refused = app.submit_corrective_action(&engagement, &ofi, None).await.expect(422);
    assert_eq!(refused.problem_type(), "corrective-action-not-applicable");

    // Due dates default by grade: major 90 days, minor 30 days after the audit's last day (day 43).
    let major_action = app.submit_corrective_action(&engagement, &major, None).await.expect(201);
    assert_eq!(major_action.body["due_on"], json!(day(133)));
    let minor_action = app.submit_corrective_action(&engagement, &minor, Some(day(80))).await.expect(201);
    assert_eq!(minor_action.body["due_on"], json!(day(80)));
    let twice = app.submit_corrective_action(&engagement, &minor, None).await.expect(409);
    assert_eq!(twice.problem_type(), "corrective-action-exists");
    let deadlines = app.get(&format!("/api/v1/engagements/{engagement}/deadlines")).await.expect(200).items();
    let cap_deadlines: Vec<&serde_json::Value> =
        deadlines.body.as_array().unwrap().iter().filter(|d| d["kind"] == "corrective_action_due").collect();
    assert_eq!(cap_deadlines.len(), 2);
    assert!(cap_deadlines.iter().any(|d| d["owner_email"] == "sre@acme.test" && d["due_on"] == json!(day(133))));

    // A rejection keeps the finding open; the decision is still blocked.
    let rejected = app
        .post(
            &format!("/api/v1/engagements/{engagement}/corrective-actions/{}/verification", major_action.str("id")),
            &json!({ "outcome": "rejected", "note": "no evidence of the restore test" }),
        )
        .await
        .expect(200);
    assert_eq!(rejected.body["verification"], "rejected");
    app.verify_corrective_action(&engagement, &minor_action.str("id"), "accepted").await.expect(200);
    let still_blocked = app.fire(&engagement, json!({ "event": "request_decision" })).await.expect(422);
    assert_eq!(still_blocked.body["violations"][0]["code"], "major_nc_unverified");

    // Verified: the finding closes, its deadline and the 6-month limit are met, the decision can be asked.
    app.set_today(day(60));
    app.verify_corrective_action(&engagement, &major_action.str("id"), "accepted").await.expect(200);
    let finding = app.get(&format!("/api/v1/engagements/{engagement}/findings/{major}")).await.expect(200);
    assert_eq!(finding.body["status"], "closed");
    let view = app.engagement(&engagement).await;
    assert_eq!(view.body["open_deadlines"], json!([]), "every CAP deadline and the major limit are met");
    app.fire(&engagement, json!({ "event": "request_decision" })).await.expect(200);

    // The decision panel must not include the engagement's auditors. The decision maker is the
    // caller: the lead auditor holding a decision maker's token is refused, and cannot decide
    // under a colleague's name either.
    let cb = app.engagement(&engagement).await.body["certification_body_id"].as_str().map(str::to_owned);
    let lead = app.token_of("Lead@cb.test", Role::DecisionMaker, None, cb.as_deref());
    let events = format!("/api/v1/engagements/{engagement}/events");
    let grant = json!({ "event": "grant_certification" });
    let partial = app.send_as(&lead, Method::POST, &events, Some(&grant)).await.expect(422);
    assert_eq!(partial.body["violations"][0]["code"], "decision_maker_not_impartial");
    let as_colleague = json!({ "event": "grant_certification", "decision_maker": "panel@cb.test" });
    let as_colleague = app.send_as(&lead, Method::POST, &events, Some(&as_colleague)).await.expect(422);
    assert_eq!(as_colleague.body["errors"][0]["field"], "decision_maker");
    assert_eq!(app.engagement(&engagement).await.str("state"), "certification_decision");
    let certified = app.grant(&engagement).await.expect(200);
    assert_eq!(certified.str("state"), "certified");
    let actions = app.history_actions(&engagement).await;
    for expected in [
        "finding_recorded:major_nc",
        "corrective_action_submitted",
        "corrective_action_rejected",
        "corrective_action_accepted",
    ] {
        assert!(actions.iter().any(|a| a == expected), "{expected} missing from {actions:?}");
    }
}
on_both_databases!(a_major_nc_blocks_the_decision_until_its_corrective_action_is_verified);

async fn six_months_without_verifying_a_major_nc_require_a_new_stage2(backend: Backend) {
    // Arrange: a major NC from a stage 2 that ended on day 43 (2026-02-17).
    let app = spawn_app(backend).await;
    let (engagement, stage2, major) = app.stage2_with_finding("major_nc", "6.1.2").await;
    app.set_today(day(44));
    app.fire(&engagement, json!({ "event": "complete_stage2", "audit_id": stage2 })).await.expect(200);
    let action = app.submit_corrective_action(&engagement, &major, None).await.expect(201).str("id");

    // Before the limit, a new stage 2 is not required yet.
    app.set_today(chrono::NaiveDate::from_ymd_opt(2026, 8, 17).unwrap());
    let early =
        app.fire(&engagement, json!({ "event": "require_new_stage2", "reason": "limit passed" })).await.expect(422);
    assert_eq!(early.body["violations"][0]["code"], "major_nc_limit_not_passed");

    // Act: one day past the 6-month limit.
    app.set_today(chrono::NaiveDate::from_ymd_opt(2026, 8, 18).unwrap());
    let late = app.verify_corrective_action(&engagement, &action, "accepted").await.expect(409);
    assert_eq!(late.problem_type(), "major-nc-limit-passed");
    let blocked = app.fire(&engagement, json!({ "event": "request_decision" })).await.expect(422);
    assert_eq!(blocked.body["violations"][0]["code"], "major_nc_unverified");
    let no_reason = app.fire(&engagement, json!({ "event": "require_new_stage2" })).await.expect(422);
    assert_eq!(no_reason.body["violations"][0]["code"], "reason_required");
    let view = app
        .fire(
            &engagement,
            json!({ "event": "require_new_stage2", "reason": "major NC on 6.1.2 not verified within 6 months" }),
        )
        .await
        .expect(200);

    // Assert: back in stage 2, the limit cancelled.
    assert_eq!(view.str("state"), "stage2");
    assert!(view.body["open_deadlines"].as_array().unwrap().iter().all(|d| d["kind"] != "major_nc_limit"));
    let deadlines = app.get(&format!("/api/v1/engagements/{engagement}/deadlines")).await.expect(200).items();
    let limit = deadlines.body.as_array().unwrap().iter().find(|d| d["kind"] == "major_nc_limit").unwrap().clone();
    assert_eq!(limit["status"], "cancelled");
}
on_both_databases!(six_months_without_verifying_a_major_nc_require_a_new_stage2);

async fn cap_due_dates_outside_30_to_90_days_are_refused_and_nothing_is_written(backend: Backend) {
    let app = spawn_app(backend).await;
    let (engagement, _, minor) = app.stage2_with_finding("minor_nc", "A.5.15").await;
    for (due, case) in [(day(72), "29 days"), (day(134), "91 days")] {
        let refused = app.submit_corrective_action(&engagement, &minor, Some(due)).await.expect(422);
        assert_eq!(refused.problem_type(), "cap-due-date-out-of-window", "{case}");
    }
    let listed = app.get(&format!("/api/v1/engagements/{engagement}/corrective-actions")).await.expect(200).items();
    assert_eq!(listed.body, json!([]));
    let deadlines = app.get(&format!("/api/v1/engagements/{engagement}/deadlines")).await.expect(200).items();
    assert!(deadlines.body.as_array().unwrap().iter().all(|d| d["kind"] != "corrective_action_due"));
    for (due, case) in [(day(73), "30 days"), (day(133), "90 days")] {
        let (engagement, _, minor) = app.stage2_with_finding("minor_nc", "A.5.15").await;
        let accepted = app.submit_corrective_action(&engagement, &minor, Some(due)).await;
        assert_eq!(accepted.status, 201, "{case}: {}", accepted.body);
    }
}
on_both_databases!(cap_due_dates_outside_30_to_90_days_are_refused_and_nothing_is_written);
