//! The edges of the three-year cycle that the clock decides: a surveillance audit missed past the
//! body's grace suspends the certificate, a suspension neither resolved nor reduced by its limit
//! and grace is withdrawn, and a suspension for a missed audit is restored only by that audit.

use chrono::{Datelike, Days, NaiveDate};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, TestWorker, day, spawn_app};
use crate::on_both_databases;
use crate::smtp::SmtpSink;

fn date(value: &Value) -> NaiveDate {
    value.as_str().unwrap().parse().unwrap()
}

/// The due day of `engagement`'s open deadline of `kind`.
async fn due_on(app: &TestApp, engagement: &str, kind: &str) -> NaiveDate {
    let view = app.engagement(engagement).await.expect(200);
    let deadline = view.body["open_deadlines"].as_array().unwrap().iter().find(|d| d["kind"] == kind).cloned();
    date(&deadline.unwrap_or_else(|| panic!("no open {kind} deadline in {}", view.body))["due_on"])
}

/// Ticks on `today` until the emails the ticks claim are sent: returns the (suspended, withdrawn)
/// counts of every tick (the clock waits for a deadline's escalations before it moves).
async fn ticks_on(app: &TestApp, worker: &TestWorker, engagement: &str, today: NaiveDate) -> (usize, usize) {
    app.set_today(today);
    let first = worker.tick().await;
    app.wait_for_deliveries(engagement).await;
    let second = worker.tick().await;
    (first.suspended + second.suspended, first.withdrawn + second.withdrawn)
}

async fn a_missed_surveillance_suspends_the_certificate_until_the_audit_is_held(backend: Backend) {
    // Arrange: certified; its first surveillance audit is due within 12 months of the decision.
    let app = spawn_app(backend).await;
    let smtp = SmtpSink::start();
    let engagement = app.certified_engagement().await;
    let worker = app.spawn_worker(smtp.port).await;
    let due = due_on(&app, &engagement, "surveillance_due").await;

    // Act 1: the last day of the 30-day grace passes; then the day after it.
    let on_last_day_of_grace = ticks_on(&app, &worker, &engagement, due + Days::new(30)).await;
    let day_after = ticks_on(&app, &worker, &engagement, due + Days::new(31)).await;

    // Assert 1: suspended by the clock once, with its cause, and the public sees it.
    assert_eq!((on_last_day_of_grace.0, day_after.0), (0, 1));
    let suspended = app.engagement(&engagement).await.expect(200);
    assert_eq!(
        (suspended.str("state"), suspended.str("suspension_cause")),
        ("suspended".into(), "missed_audit".into())
    );
    let certificate = app.get(&format!("/api/v1/engagements/{engagement}/certificate")).await.expect(200);
    let number = certificate.str("number");
    let public = app
        .reply(app.client.get(format!("{}/api/v1/certificates/{number}/verification", app.address)))
        .await
        .expect(200);
    assert_eq!((public.str("status"), public.body["valid"].as_bool()), ("suspended".into(), Some(false)));
    let history = app.get(&format!("/api/v1/engagements/{engagement}/history")).await.expect(200).items();
    let suspension = history.body.as_array().unwrap().iter().find(|h| h["action"] == "suspend").cloned().unwrap();
    assert_eq!(suspension["actor"], "certflow-clock");
    assert!(suspension["reason"].as_str().unwrap().contains("cause: missed_audit"), "{suspension}");
    // The coordinator and the client were told at once, with the day to resolve it by.
    app.wait_for_deliveries(&engagement).await;
    let notices: Vec<_> = smtp.received().into_iter().filter(|m| m.subject().contains("NOTICE")).collect();
    assert_eq!(notices.len(), 3, "one notice, one message per recipient");
    assert!(notices[0].subject().contains("the certificate is suspended (a surveillance audit was not held in time)"));
    notices.iter().for_each(crate::smtp::ReceivedEmail::assert_to_one_recipient);
    let mut to: Vec<String> = notices.iter().map(|m| m.to[0].clone()).collect();
    to.sort();
    assert_eq!(to, ["ceo@acme.test", "coordinator@cb.test", "isms@acme.test"]);
    let limit = due_on(&app, &engagement, "suspension_limit").await;
    assert!(notices[0].data.contains(&limit.to_string()), "the notice names the day to resolve it by");

    // Act 2: restoring needs the missed audit; the body holds it after the suspension.
    let restore = json!({ "event": "restore", "reason": "surveillance audit held" });
    let refused = app.fire(&engagement, restore.clone()).await.expect(422);
    assert_eq!(refused.body["violations"][0]["code"], "audit_required");
    let held_from = due + Days::new(40);
    let audit = app.create_audit(&engagement, "surveillance", held_from, held_from + Days::new(1)).await;
    app.set_today(held_from + Days::new(2));
    let mut named = restore;
    named["audit_id"] = json!(audit);
    let restored = app.fire(&engagement, named).await.expect(200);

    // Assert 2: certified again; the audit counts; the next is due by the end of the next year at
    // the latest (and within the cycle's year 2).
    assert_eq!(restored.str("state"), "certified");
    assert!(restored.body["suspension_cause"].is_null());
    let certificate = app.get(&format!("/api/v1/engagements/{engagement}/certificate")).await.expect(200);
    assert_eq!(
        (certificate.str("status"), certificate.body["surveillances_completed"].as_i64()),
        ("active".into(), Some(1))
    );
    assert_eq!(date(&certificate.body["last_surveillance_on"]), held_from + Days::new(1));
    let decided = date(&certificate.body["issued_on"]);
    let next = due_on(&app, &engagement, "surveillance_due").await;
    let end_of_next_year = NaiveDate::from_ymd_opt(held_from.year() + 1, 12, 31).unwrap();
    assert_eq!(next, end_of_next_year.min(decided.checked_add_months(chrono::Months::new(24)).unwrap()));
}
on_both_databases!(a_missed_surveillance_suspends_the_certificate_until_the_audit_is_held);

async fn a_suspension_past_its_limit_and_grace_is_withdrawn_by_the_clock(backend: Backend) {
    // Arrange: certified, then suspended at the client's request.
    let app = spawn_app(backend).await;
    let smtp = SmtpSink::start();
    let engagement = app.certified_engagement().await;
    let suspend = json!({ "event": "suspend", "cause": "client_request", "reason": "the client asked for a pause" });
    app.fire(&engagement, suspend).await.expect(200);
    let limit = due_on(&app, &engagement, "suspension_limit").await;
    let worker = app.spawn_worker(smtp.port).await;

    // Act: the last day of the 30-day withdrawal grace, then the day after it.
    let on_last_day_of_grace = ticks_on(&app, &worker, &engagement, limit + Days::new(30)).await;
    let day_after = ticks_on(&app, &worker, &engagement, limit + Days::new(31)).await;

    // Assert: withdrawn once, by the clock, after the limit's escalation went out.
    assert_eq!((on_last_day_of_grace.1, day_after.1), (0, 1));
    assert_eq!(app.engagement(&engagement).await.expect(200).str("state"), "withdrawn");
    let certificate = app.get(&format!("/api/v1/engagements/{engagement}/certificate")).await.expect(200);
    assert_eq!(certificate.str("status"), "withdrawn");
    let history = app.get(&format!("/api/v1/engagements/{engagement}/history")).await.expect(200).items();
    let withdrawal = history.body.as_array().unwrap().iter().find(|h| h["action"] == "withdraw").cloned().unwrap();
    assert_eq!(
        (withdrawal["actor"].as_str(), withdrawal["from_state"].as_str()),
        (Some("certflow-clock"), Some("suspended"))
    );
    let limit_escalated = app
        .notifications(&engagement)
        .await
        .iter()
        .any(|n| n["step_key"].as_str().unwrap().starts_with("escalation") && n["status"] == "sent");
    assert!(limit_escalated, "the suspension limit was escalated before the withdrawal");
}
on_both_databases!(a_suspension_past_its_limit_and_grace_is_withdrawn_by_the_clock);

async fn a_certificate_suspended_when_its_expiry_passes_expires_by_the_clock(backend: Backend) {
    // Arrange: certified, suspended for a failure in the last weeks of its term.
    let app = spawn_app(backend).await;
    let smtp = SmtpSink::start();
    let engagement = app.certified_engagement().await;
    let expiry = due_on(&app, &engagement, "certificate_expiry").await;
    app.set_today(expiry - Days::new(20));
    let suspend = json!({ "event": "suspend", "cause": "failure", "reason": "a major NC left unresolved" });
    app.fire(&engagement, suspend).await.expect(200);
    let worker = app.spawn_worker(smtp.port).await;

    // Act: the day after the expiry.
    app.set_today(expiry + Days::new(1));
    let mut expired = worker.tick().await.expired;
    app.wait_for_deliveries(&engagement).await;
    expired += worker.tick().await.expired;

    // Assert: expired, not suspended for ever.
    assert_eq!(expired, 1);
    assert_eq!(app.engagement(&engagement).await.expect(200).str("state"), "expired");
    let certificate = app.get(&format!("/api/v1/engagements/{engagement}/certificate")).await.expect(200);
    assert_eq!(certificate.str("status"), "expired");
}
on_both_databases!(a_certificate_suspended_when_its_expiry_passes_expires_by_the_clock);

async fn the_certificate_states_what_was_certified_at_the_decision(backend: Backend) {
    // Arrange: the letter states the scope to certify; stage 1, stage 2, the grant.
    let app = spawn_app(backend).await;
    let engagement = app.engagement_with_selected_proposal().await;
    let letter_scope = "Hosting of the billing platform from the London data centre";
    let letter = json!({ "event": "sign_engagement_letter", "signed_on": day(0), "scope": letter_scope });
    app.fire(&engagement, letter).await.expect(200);
    let stage1 = app.create_audit(&engagement, "stage1", day(10), day(11)).await;
    app.prepare_stage1_documents(&engagement).await;
    app.set_today(day(12));
    let ready = json!({ "event": "record_stage1_outcome", "audit_id": stage1, "outcome": "ready" });
    assert_eq!(app.fire(&engagement, ready).await.expect(200).str("scope"), letter_scope);
    app.certify_from_stage2(&engagement).await;
    let view = app.engagement(&engagement).await.expect(200);
    let (organization, cb) = (view.str("organization_id"), view.str("certification_body_id"));

    // Act: the client renames itself and widens its ISMS scope; the body renames itself.
    let renamed = json!({
        "legal_name": "Acme Renamed Holdings plc", "isms_scope": "Everything the group does",
        "persons": 120, "sites": ["London"],
        "isms_manager_email": "isms@acme.test", "executive_email": "ceo@acme.test"
    });
    app.put(&format!("/api/v1/organizations/{organization}"), &renamed).await.expect(200);
    let body = json!({
        "name": "Renamed Certification Ltd", "accredited": true, "accreditation_body": "UKAS",
        "coordinator_email": "coordinator@cb.test"
    });
    app.put(&format!("/api/v1/certification-bodies/{cb}"), &body).await.expect(200);

    // Assert: the public record states what was certified at the decision.
    let certificate = app.get(&format!("/api/v1/engagements/{engagement}/certificate")).await.expect(200);
    let number = certificate.str("number");
    let public = app
        .reply(app.client.get(format!("{}/api/v1/certificates/{number}/verification", app.address)))
        .await
        .expect(200);
    assert_eq!(public.str("organization"), "Acme Data Ltd");
    assert_eq!(public.str("scope"), letter_scope);
    assert_eq!(public.str("certification_body"), "Trusted Certification Ltd");
    assert_eq!(public.str("accreditation_body"), "UKAS");
    assert_eq!(public.body["first_issued_on"], public.body["issued_on"], "a first certification");

    // Act 2: the body records the rename as an amendment.
    let amend =
        json!({ "event": "amend_certificate", "reason": "the client's new legal name, per its registry filing" });
    assert_eq!(app.fire(&engagement, amend).await.expect(200).str("state"), "certified");

    // Assert 2: the certificate now states the new names; the history keeps the old ones.
    let public = app
        .reply(app.client.get(format!("{}/api/v1/certificates/{number}/verification", app.address)))
        .await
        .expect(200);
    assert_eq!(public.str("organization"), "Acme Renamed Holdings plc");
    assert_eq!(public.str("certification_body"), "Renamed Certification Ltd");
    assert_eq!(public.str("scope"), letter_scope, "an amendment of names leaves the scope");
    let history = app.get(&format!("/api/v1/engagements/{engagement}/history")).await.expect(200).items();
    let amendment =
        history.body.as_array().unwrap().iter().find(|h| h["action"] == "amend_certificate").cloned().unwrap();
    assert!(amendment["reason"].as_str().unwrap().contains("stated before: Acme Data Ltd"), "{amendment}");
}
on_both_databases!(the_certificate_states_what_was_certified_at_the_decision);

async fn a_scope_reduction_ends_a_suspension_and_the_certificate_keeps_its_number(backend: Backend) {
    // Arrange: certified, then suspended for a failure at one site.
    let app = spawn_app(backend).await;
    let engagement = app.certified_engagement().await;
    let before = app.get(&format!("/api/v1/engagements/{engagement}/certificate")).await.expect(200);
    let suspend = json!({ "event": "suspend", "cause": "failure", "reason": "the Leeds site failed its controls" });
    app.fire(&engagement, suspend).await.expect(200);

    // Act: the body narrows the scope to what still conforms.
    let narrower = "SaaS platform operations, London site only";
    let reduce = json!({ "event": "reduce_scope", "scope": narrower, "reason": "Leeds removed from the scope" });
    let reduced = app.fire(&engagement, reduce).await.expect(200);

    // Assert: active again under the same number on the narrower scope; the history keeps the old one.
    assert_eq!((reduced.str("state"), reduced.str("scope")), ("certified".into(), narrower.into()));
    assert!(reduced.body["open_deadlines"].as_array().unwrap().iter().all(|d| d["kind"] != "suspension_limit"));
    let after = app.get(&format!("/api/v1/engagements/{engagement}/certificate")).await.expect(200);
    assert_eq!((after.str("number"), after.str("scope")), (before.str("number"), narrower.to_owned()));
    assert_eq!(after.str("status"), "active");
    let history = app.get(&format!("/api/v1/engagements/{engagement}/history")).await.expect(200).items();
    let entry = history.body.as_array().unwrap().iter().find(|h| h["action"] == "reduce_scope").cloned().unwrap();
    let reason = entry["reason"].as_str().unwrap();
    assert!(reason.contains(&format!("scope was: {}", before.str("scope"))) && reason.contains(narrower), "{reason}");
}
on_both_databases!(a_scope_reduction_ends_a_suspension_and_the_certificate_keeps_its_number);

async fn past_the_restoration_window_an_expired_engagement_is_certified_anew_from_stage2(backend: Backend) {
    // Arrange: certified until 2029-02-18, expired, and the 6 months to restore it have passed.
    let app = spawn_app(backend).await;
    let engagement = app.certified_engagement().await;
    let number = app.get(&format!("/api/v1/engagements/{engagement}/certificate")).await.expect(200).str("number");
    let on = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
    app.set_today(on(2029, 2, 19));
    app.fire(&engagement, json!({ "event": "expire" })).await.expect(200);
    app.set_today(on(2029, 8, 18));
    let restart = json!({ "event": "restart_at_stage2", "reason": "the client wants its certification back" });
    let too_early = app.fire(&engagement, restart.clone()).await.expect(422);
    assert_eq!(too_early.body["violations"][0]["code"], "restore_window_open");

    // Act: the day after the window, a new stage 2, its decision.
    app.set_today(on(2029, 8, 19));
    let restarted = app.fire(&engagement, restart).await.expect(200);
    let stage2 = app.create_audit(&engagement, "stage2", on(2029, 9, 1), on(2029, 9, 3)).await;
    app.set_today(on(2029, 9, 4));
    let complete =
        json!({ "event": "complete_stage2", "audit_id": stage2, "stage1_still_valid": "scope and ISMS unchanged" });
    app.fire(&engagement, complete).await.expect(200);
    app.grant(&engagement).await.expect(200);

    // Assert: a new three-year term from the decision, under the same number, with the history kept.
    assert_eq!(restarted.str("state"), "stage2");
    let certificate = app.get(&format!("/api/v1/engagements/{engagement}/certificate")).await.expect(200);
    assert_eq!((certificate.str("status"), certificate.str("number")), ("active".to_owned(), number));
    assert_eq!(
        (certificate.str("issued_on"), certificate.str("expires_on")),
        ("2029-09-04".into(), "2032-09-04".into())
    );
    let actions = app.history_actions(&engagement).await;
    assert!(
        ["expire", "restart_at_stage2", "complete_stage2"].iter().all(|a| actions.contains(&a.to_string())),
        "{actions:?}"
    );
}
on_both_databases!(past_the_restoration_window_an_expired_engagement_is_certified_anew_from_stage2);

async fn before_the_decision_the_scope_changes_only_by_a_recorded_event(backend: Backend) {
    // Arrange: in stage 2, the letter's scope (the organization's ISMS scope at signing).
    let app = spawn_app(backend).await;
    let engagement = app.engagement_in_stage2().await;
    let before = app.engagement(&engagement).await.expect(200).str("scope");

    // Act: the body and the client agree a wider scope before the decision; then it is granted.
    let wider = "Hosting of the billing platform from the London and Leeds data centres";
    let change = json!({ "event": "change_scope", "scope": wider, "reason": "Leeds site added at stage 2 planning" });
    let changed = app.fire(&engagement, change.clone()).await.expect(200);
    app.certify_from_stage2(&engagement).await;

    // Assert: the state stayed; the history keeps both scopes; the certificate states the new one.
    assert_eq!((changed.str("state"), changed.str("scope")), ("stage2".into(), wider.into()));
    let history = app.get(&format!("/api/v1/engagements/{engagement}/history")).await.expect(200).items();
    let entry = history.body.as_array().unwrap().iter().find(|h| h["action"] == "change_scope").cloned().unwrap();
    let reason = entry["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("scope was: {before}")) && reason.contains(&format!("scope now: {wider}")),
        "{reason}"
    );
    let certificate = app.get(&format!("/api/v1/engagements/{engagement}/certificate")).await.expect(200);
    assert_eq!(certificate.str("scope"), wider);
    // After certification only a reduction moves the certified scope.
    let refused = app.fire(&engagement, change).await.expect(409);
    assert_eq!(refused.problem_type(), "illegal-transition");
}
on_both_databases!(before_the_decision_the_scope_changes_only_by_a_recorded_event);
