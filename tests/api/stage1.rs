//! Stage 1: readiness needs the documents and a complete SoA; "not ready" repeats stage 1.

use serde_json::json;

use crate::helpers::{Backend, day, spawn_app};
use crate::on_both_databases;

async fn stage1_is_repeated_after_not_ready_and_ready_needs_documents_and_a_complete_soa(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let engagement = app.engagement_with_selected_proposal().await;
    app.fire(&engagement, json!({ "event": "sign_engagement_letter", "signed_on": day(0) })).await.expect(200);
    let first = app.create_audit(&engagement, "stage1", day(10), day(11)).await;
    app.set_today(day(12));

    // "ready" without documents is refused and lists what is missing; nothing changes.
    let refused = app
        .fire(&engagement, json!({ "event": "record_stage1_outcome", "audit_id": first, "outcome": "ready" }))
        .await
        .expect(422);
    assert_eq!(refused.problem_type(), "transition-guard-failed");
    assert_eq!(refused.body["violations"][0]["code"], "stage1_not_ready");
    assert!(
        refused.body["violations"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("required document missing: scope_statement")
    );
    let readiness = app.get(&format!("/api/v1/engagements/{engagement}/stage1-readiness")).await.expect(200);
    assert_eq!(readiness.body["missing_documents"].as_array().unwrap().len(), 7);
    assert_eq!(readiness.body["statement_of_applicability"]["missing_controls"].as_array().unwrap().len(), 93);
    assert_eq!(app.engagement(&engagement).await.str("state"), "stage1");

    // Act: "not ready" keeps the engagement in stage 1 and records the gaps on the audit.
    let not_ready = app
        .fire(&engagement, json!({ "event": "record_stage1_outcome", "audit_id": first, "outcome": "not_ready", "gaps": ["no management review yet"] }))
        .await
        .expect(200);
    assert_eq!(not_ready.str("state"), "stage1");
    let audit = app.get(&format!("/api/v1/engagements/{engagement}/audits/{first}")).await.expect(200);
    assert_eq!(
        (audit.body["stage1_outcome"].as_str(), audit.body["gaps"][0].as_str()),
        (Some("not_ready"), Some("no management review yet"))
    );

    // An incomplete SoA (an exclusion without justification, a control missing) is saved and reported.
    let mut entries: Vec<serde_json::Value> = entities::domain::soa::annex_a_controls()
        .iter()
        .filter(|c| c.control != "8.34")
        .map(|c| json!({ "control": c.control, "applicable": c.control != "7.4" }))
        .collect();
    entries.push(json!({ "control": "9.1", "applicable": true }));
    let soa = app
        .put(&format!("/api/v1/engagements/{engagement}/statement-of-applicability"), &json!({ "entries": entries }))
        .await
        .expect(200);
    assert_eq!(soa.body["report"]["complete"], false);
    assert_eq!(soa.body["report"]["missing_controls"], json!(["8.34"]));
    assert_eq!(soa.body["report"]["unjustified_exclusions"], json!(["7.4"]));
    assert_eq!(soa.body["report"]["unknown_controls"], json!(["9.1"]));

    // A second stage 1, with everything in place, is ready; the first, completed, cannot be named again.
    app.prepare_stage1_documents(&engagement).await;
    let reused = app
        .fire(&engagement, json!({ "event": "record_stage1_outcome", "audit_id": first, "outcome": "ready" }))
        .await
        .expect(422);
    assert_eq!(reused.body["violations"][0]["code"], "audit_already_completed");
    let second = app.create_audit(&engagement, "stage1", day(30), day(30)).await;
    app.set_today(day(31));
    let ready = app
        .fire(&engagement, json!({ "event": "record_stage1_outcome", "audit_id": second, "outcome": "ready" }))
        .await
        .expect(200);
    assert_eq!(ready.str("state"), "stage2");
    assert_eq!(ready.body["stage1_ready_on"], json!(day(30)));
    assert_eq!(ready.body["open_deadlines"][0]["kind"], "stage1_validity");
    assert_eq!(ready.body["open_deadlines"][0]["due_on"], "2026-08-04");
    let actions = app.history_actions(&engagement).await;
    assert_eq!(actions.iter().filter(|a| *a == "record_stage1_outcome").count(), 2, "{actions:?}");
}
on_both_databases!(stage1_is_repeated_after_not_ready_and_ready_needs_documents_and_a_complete_soa);

async fn stage2_long_after_stage1_needs_a_recorded_confirmation(backend: Backend) {
    let app = spawn_app(backend).await;
    let engagement = app.engagement_in_stage2().await;
    // Stage 1 ended on day 11: valid until 2026-07-16. Stage 2 begins on 2026-08-03.
    let stage2 = app.create_audit(&engagement, "stage2", day(210), day(212)).await;
    app.set_today(day(213));
    let refused = app.fire(&engagement, json!({ "event": "complete_stage2", "audit_id": stage2 })).await.expect(422);
    assert_eq!(refused.body["violations"][0]["code"], "stage1_validity_lapsed");
    let confirmed = app
        .fire(&engagement, json!({ "event": "complete_stage2", "audit_id": stage2, "stage1_still_valid": "no change to scope, documents re-checked on day 205" }))
        .await
        .expect(200);
    assert_eq!(confirmed.str("state"), "certification_decision");
    let history = app.get(&format!("/api/v1/engagements/{engagement}/history")).await.expect(200).items();
    let completed = history.body.as_array().unwrap().iter().find(|h| h["action"] == "complete_stage2").unwrap();
    assert_eq!(
        completed["reason"], "stage 1 result still valid: no change to scope, documents re-checked on day 205",
        "the confirmation the decision relies on is kept"
    );
}
on_both_databases!(stage2_long_after_stage1_needs_a_recorded_confirmation);
