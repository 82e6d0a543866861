//! Who may decide and what an audit may find: the decision maker took no part in the audit work
//! (no audit's team, no finding recorded, no corrective action verified), and only a certifying
//! audit finds nonconformities (a pre-audit or stage 1 lists gaps, which never block a decision).

use api::auth::Role;
use reqwest::Method;
use serde_json::json;

use crate::helpers::{Backend, day, spawn_app};
use crate::on_both_databases;

async fn whoever_recorded_a_finding_or_verified_its_corrective_action_cannot_decide(backend: Backend) {
    // Arrange: one auditor records a minor NC, another verifies its corrective action.
    let app = spawn_app(backend).await;
    let engagement = app.engagement_in_stage2().await;
    let cb = app.engagement(&engagement).await.str("certification_body_id");
    let stage2 = app.create_audit(&engagement, "stage2", day(40), day(43)).await;
    let (recorder, verifier) = ("recorder@cb.test", "verifier@cb.test");
    let auditor = |who: &str| app.token_of(who, Role::Auditor, None, Some(&cb));
    let nc = json!({ "grade": "minor_nc", "reference": "A.8.13", "description": "restore test overdue" });
    let findings = format!("/api/v1/engagements/{engagement}/audits/{stage2}/findings");
    let finding = app.send_as(&auditor(recorder), Method::POST, &findings, Some(&nc)).await.expect(201).str("id");
    app.set_today(day(44));
    app.fire(&engagement, json!({ "event": "complete_stage2", "audit_id": stage2 })).await.expect(200);
    let action = app.submit_corrective_action(&engagement, &finding, None).await.expect(201).str("id");
    let verification = format!("/api/v1/engagements/{engagement}/corrective-actions/{action}/verification");
    let accepted = json!({ "outcome": "accepted" });
    app.send_as(&auditor(verifier), Method::POST, &verification, Some(&accepted)).await.expect(200);
    app.fire(&engagement, json!({ "event": "request_decision" })).await.expect(200);

    // Act: each of them, then a panel member who took no part, decides.
    let events = format!("/api/v1/engagements/{engagement}/events");
    let grant = json!({ "event": "grant_certification" });
    let mut replies = Vec::new();
    for who in [recorder, verifier, "panel@cb.test"] {
        let token = app.token_of(who, Role::DecisionMaker, None, Some(&cb));
        replies.push(app.send_as(&token, Method::POST, &events, Some(&grant)).await);
    }

    // Assert
    for refused in &replies[..2] {
        assert_eq!(refused.status, 422, "{}", refused.body);
        assert_eq!(refused.body["violations"][0]["code"], "decision_maker_not_impartial");
    }
    assert_eq!((replies[2].status, replies[2].str("state")), (200, "certified".to_owned()));
}
on_both_databases!(whoever_recorded_a_finding_or_verified_its_corrective_action_cannot_decide);

async fn a_stage1_audit_records_gaps_not_nonconformities(backend: Backend) {
    // Arrange: an engagement in stage 1 with its stage 1 audit.
    let app = spawn_app(backend).await;
    let engagement = app.engagement_with_selected_proposal().await;
    app.fire(&engagement, json!({ "event": "sign_engagement_letter", "signed_on": day(0) })).await.expect(200);
    let stage1 = app.create_audit(&engagement, "stage1", day(10), day(11)).await;
    let findings = format!("/api/v1/engagements/{engagement}/audits/{stage1}/findings");

    // Act
    let major = app
        .post(&findings, &json!({ "grade": "major_nc", "reference": "9.2", "description": "no internal audit" }))
        .await;
    let ofi = app
        .post(&findings, &json!({ "grade": "ofi", "reference": "9.2", "description": "plan the internal audit" }))
        .await;

    // Assert: the nonconformity is refused and nothing blocks the engagement; an OFI is listed.
    assert_eq!((major.status, major.problem_type().as_str()), (422, "validation-failed"));
    assert_eq!(major.body["errors"][0]["field"], "grade");
    assert_eq!(ofi.status, 201);
    let listed = app.get(&format!("/api/v1/engagements/{engagement}/findings")).await.expect(200);
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
}
on_both_databases!(a_stage1_audit_records_gaps_not_nonconformities);
