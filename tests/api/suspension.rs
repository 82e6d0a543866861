//! Suspension, restoration, withdrawal, cancellation and expiry.

use serde_json::json;

use crate::helpers::{Backend, day, spawn_app};
use crate::on_both_databases;

async fn a_suspended_certificate_is_restored_then_withdrawn_for_good(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let engagement = app.certified_engagement().await;
    let number = app.get(&format!("/api/v1/engagements/{engagement}/certificate")).await.expect(200).str("number");
    let verify = || async {
        let url = format!("{}/api/v1/certificates/{number}/verification", app.address);
        app.reply(app.client.get(url)).await.expect(200)
    };

    // Suspension needs a reason; with one, the certificate is suspended and publicly invalid.
    app.set_today(day(100));
    let no_reason = app.fire(&engagement, json!({ "event": "suspend", "cause": "client_request" })).await.expect(422);
    assert_eq!(no_reason.body["violations"][0]["code"], "reason_required");
    let suspended = app
        .fire(&engagement, json!({ "event": "suspend", "cause": "client_request", "reason": "site relocation" }))
        .await
        .expect(200);
    assert_eq!(suspended.str("state"), "suspended");
    assert_eq!(suspended.body["suspended_on"], json!(day(100)));
    assert!(
        suspended.body["open_deadlines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["kind"] == "suspension_limit" && d["due_on"] == "2026-10-15")
    );
    let public = verify().await;
    assert_eq!((public.body["status"].as_str(), public.body["valid"].as_bool()), (Some("suspended"), Some(false)));

    // Restored within the policy time.
    app.set_today(day(150));
    app.fire(&engagement, json!({ "event": "restore", "reason": "relocation audited" })).await.expect(200);
    assert_eq!(verify().await.body["status"], "active");

    // Suspended again, and not restored within 6 months: restoring is refused, withdrawal ends it.
    app.set_today(day(200));
    app.fire(&engagement, json!({ "event": "suspend", "cause": "failure", "reason": "major NC unresolved" }))
        .await
        .expect(200);
    app.set_today(day(400));
    let late = app.fire(&engagement, json!({ "event": "restore", "reason": "fixed now" })).await.expect(422);
    assert_eq!(late.body["violations"][0]["code"], "suspension_limit_passed");
    let withdrawn = app
        .fire(&engagement, json!({ "event": "withdraw", "reason": "suspension not resolved within 6 months" }))
        .await
        .expect(200);
    assert_eq!(withdrawn.str("state"), "withdrawn");
    assert_eq!(withdrawn.body["allowed_events"], json!([]));
    assert_eq!(withdrawn.body["open_deadlines"], json!([]), "withdrawal cancels every deadline");
    assert_eq!(verify().await.body["status"], "withdrawn");

    // Terminal: every further event is an illegal transition that names the state.
    let after = app.fire(&engagement, json!({ "event": "restore", "reason": "please" })).await.expect(409);
    assert_eq!(after.problem_type(), "illegal-transition");
    assert_eq!((after.body["state"].as_str(), after.body["allowed_events"].clone()), (Some("withdrawn"), json!([])));
    let history = app.history_actions(&engagement).await;
    assert_eq!(history.iter().filter(|a| *a == "suspend").count(), 2);
}
on_both_databases!(a_suspended_certificate_is_restored_then_withdrawn_for_good);

async fn an_expired_certificate_can_be_restored_within_six_months_after_recertification(backend: Backend) {
    let app = spawn_app(backend).await;
    let engagement = app.certified_engagement().await;
    // Expiry is 2029-02-18: expiring earlier is refused.
    let early = app.fire(&engagement, json!({ "event": "expire" })).await.expect(422);
    assert_eq!(early.body["violations"][0]["code"], "certificate_not_expired");
    app.set_today(chrono::NaiveDate::from_ymd_opt(2029, 2, 19).unwrap());
    let expired = app.fire(&engagement, json!({ "event": "expire" })).await.expect(200);
    assert_eq!(expired.str("state"), "expired");
    assert_eq!(expired.body["open_deadlines"][0]["kind"], "restore_after_expiry_limit");
    let outstanding =
        app.fire(&engagement, json!({ "event": "restore_after_expiry", "reason": "recertified" })).await.expect(422);
    assert_eq!(outstanding.body["violations"][0]["code"], "recertification_outstanding");
    let audit = app
        .create_audit(
            &engagement,
            "recertification",
            chrono::NaiveDate::from_ymd_opt(2029, 3, 1).unwrap(),
            chrono::NaiveDate::from_ymd_opt(2029, 3, 2).unwrap(),
        )
        .await;
    app.set_today(chrono::NaiveDate::from_ymd_opt(2029, 3, 10).unwrap());
    app.fire(
        &engagement,
        json!({ "event": "restore_after_expiry", "audit_id": audit, "reason": "recertification audit done" }),
    )
    .await
    .expect(200);
    app.grant(&engagement).await.expect(200);
    let certificate = app.get(&format!("/api/v1/engagements/{engagement}/certificate")).await.expect(200);
    assert_eq!(certificate.body["expires_on"], "2032-02-18", "a late recertification does not extend the term");
    assert_eq!(certificate.body["issued_on"], "2029-03-10");
}
on_both_databases!(an_expired_certificate_can_be_restored_within_six_months_after_recertification);

async fn a_client_can_cancel_before_certification_and_the_record_is_kept(backend: Backend) {
    let app = spawn_app(backend).await;
    let engagement = app.engagement_in_stage2().await;
    let cancelled = app.fire(&engagement, json!({ "event": "cancel", "reason": "budget withdrawn" })).await.expect(200);
    assert_eq!(cancelled.str("state"), "cancelled");
    assert_eq!(cancelled.body["open_deadlines"], json!([]));
    let deadlines = app.get(&format!("/api/v1/engagements/{engagement}/deadlines")).await.expect(200).items();
    assert_eq!(deadlines.body[0]["status"], "cancelled", "the stage 1 validity deadline is kept, cancelled");
    let audits = app.get(&format!("/api/v1/engagements/{engagement}/audits")).await.expect(200).items();
    assert_eq!(audits.body.as_array().unwrap().len(), 1);
    let refused = app.fire(&engagement, json!({ "event": "cancel", "reason": "again" })).await.expect(409);
    assert_eq!(refused.body["state"], "cancelled");
}
on_both_databases!(a_client_can_cancel_before_certification_and_the_record_is_kept);
