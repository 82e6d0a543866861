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
    let listed = app.get(&format!("/api/v1/engagements/{engagement}/findings")).await.expect(200).items();
    assert_eq!(listed.body.as_array().unwrap().len(), 1);
}
on_both_databases!(a_stage1_audit_records_gaps_not_nonconformities);

async fn stage1_evidence_and_audit_replans_are_never_changed_silently(backend: Backend) {
    // Arrange: an engagement in stage 1 with its documents, SoA and stage 1 audit.
    let app = spawn_app(backend).await;
    let engagement = app.engagement_with_selected_proposal().await;
    app.fire(&engagement, json!({ "event": "sign_engagement_letter", "signed_on": day(0) })).await.expect(200);
    let stage1 = app.create_audit(&engagement, "stage1", day(10), day(11)).await;
    app.prepare_stage1_documents(&engagement).await;

    // Act: the policy is replaced, control 7.5 becomes applicable, the audit moves a day.
    let policy = format!("/api/v1/engagements/{engagement}/documents/information_security_policy");
    app.put(&policy, &json!({ "reference": "dms://policy-v2" })).await.expect(200);
    let soa = format!("/api/v1/engagements/{engagement}/statement-of-applicability");
    let mut entries = app.get(&soa).await.expect(200).body["entries"].as_array().unwrap().clone();
    for entry in &mut entries {
        if entry["control"] == "7.5" {
            entry["applicable"] = json!(true);
        }
    }
    app.put(&soa, &json!({ "entries": entries })).await.expect(200);
    let replanned =
        json!({ "kind": "stage1", "first_day": day(11), "last_day": day(12), "lead_auditor": "lead@cb.test" });
    app.put(&format!("/api/v1/engagements/{engagement}/audits/{stage1}"), &replanned).await.expect(200);

    // Assert: each change is in the history with what it replaced.
    let history = app.get(&format!("/api/v1/engagements/{engagement}/history")).await.expect(200).items();
    let reason_of = |action: &str| -> Vec<String> {
        history
            .body
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h["action"] == action)
            .map(|h| h["reason"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert!(
        reason_of("document_registered:information_security_policy")
            .contains(&"was dms://information_security_policy".to_owned())
    );
    let soa_changes = reason_of("statement_of_applicability_changed");
    assert_eq!(soa_changes.len(), 2, "the first SoA and its change: {soa_changes:?}");
    assert!(
        soa_changes[1].starts_with("7.5: excluded (decided in the risk treatment plan) -> applicable"),
        "{soa_changes:?}"
    );
    let replans = reason_of("audit_replanned");
    assert_eq!(replans.len(), 1);
    assert!(replans[0].contains(&format!("was: stage1 audit {} to {}", day(10), day(11))), "{replans:?}");
}
on_both_databases!(stage1_evidence_and_audit_replans_are_never_changed_silently);
