//! Trust between tenants that see the same engagement: a certification body that has only bid
//! sees the engagement and its own proposal, and writes nothing; no audit or finding exists
//! before a body is selected.

use api::auth::Role;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, day, spawn_app};
use crate::on_both_databases;

async fn a_body_that_has_only_bid_reads_its_own_proposal_and_writes_nothing(backend: Backend) {
    // Arrange: an engagement with proposals from two bodies, neither selected yet.
    let app = spawn_app(backend).await;
    let organization = app.create_organization(120).await;
    let (winner, loser) = (app.create_certification_body(true).await, app.create_certification_body(true).await);
    let (engagement, chosen) = app.engagement_with_proposal(&organization, &winner).await;
    let theirs = app.propose(&engagement, &loser).await;
    let coordinator = |cb: &str| app.token_for(Role::Coordinator, None, Some(cb));
    let audits = format!("/api/v1/engagements/{engagement}/audits");
    let audit = json!({
        "kind": "stage2", "first_day": day(40), "last_day": day(43),
        "lead_auditor": "lead@cb.test", "audit_team": ["panel@cb.test"]
    });

    // Act / Assert 1: a bidder sees the engagement and its own proposal only.
    let proposals_path = format!("/api/v1/engagements/{engagement}/proposals");
    let seen = app.send_as(&coordinator(&loser), Method::GET, &proposals_path, None).await.expect(200);
    let ids: Vec<&Value> = seen.body["proposals"].as_array().unwrap().iter().map(|p| &p["id"]).collect();
    assert_eq!(ids, [&json!(theirs)]);

    // Act / Assert 2: no body's people write to it before a body is selected, and no audit
    // exists before then (not even an admin's).
    for cb in [&winner, &loser] {
        let refused = app.send_as(&coordinator(cb), Method::POST, &audits, Some(&audit)).await.expect(403);
        assert!(refused.str("detail").contains("selected certification body"), "{}", refused.body);
        let event = json!({ "event": "sign_engagement_letter", "signed_on": day(0) });
        let events = format!("/api/v1/engagements/{engagement}/events");
        app.send_as(&coordinator(cb), Method::POST, &events, Some(&event)).await.expect(403);
    }
    assert_eq!(app.post(&audits, &audit).await.expect(409).problem_type(), "engagement-state-conflict");
    assert_eq!(app.get(&audits).await.expect(200).body["items"], json!([]), "nothing was written");

    // Act 3: the client selects the winner.
    app.select_proposal(&engagement, &chosen).await;

    // Assert 3: the winner plans; the loser no longer sees the engagement at all.
    app.send_as(&coordinator(&winner), Method::POST, &audits, Some(&audit)).await.expect(201);
    app.send_as(&coordinator(&loser), Method::POST, &audits, Some(&audit)).await.expect(404);
    let path = format!("/api/v1/engagements/{engagement}");
    app.send_as(&coordinator(&loser), Method::GET, &path, None).await.expect(404);
    assert_eq!(app.get(&audits).await.expect(200).body["items"].as_array().unwrap().len(), 1);
}
on_both_databases!(a_body_that_has_only_bid_reads_its_own_proposal_and_writes_nothing);
