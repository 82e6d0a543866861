//! Rate limits: a caller over its rate gets a 429 problem with `Retry-After`, before anything is
//! read or written; other callers, and anonymous addresses, keep their own allowance.

use api::auth::Role;
use serde_json::json;

use crate::helpers::{Backend, Reply, TestApp, spawn_app_with};
use crate::on_both_databases;

const LIMITS: [(&str, &str); 4] = [
    ("RATE_LIMIT_CALLER_PER_SECOND", "1"),
    ("RATE_LIMIT_CALLER_BURST", "3"),
    ("RATE_LIMIT_ANONYMOUS_PER_SECOND", "1"),
    ("RATE_LIMIT_ANONYMOUS_BURST", "2"),
];

async fn list_as(app: &TestApp, token: &str) -> Reply {
    app.reply(app.client.get(format!("{}/api/v1/organizations", app.address)).bearer_auth(token)).await
}

fn retry_after(reply: &Reply) -> u64 {
    reply.header("Retry-After").expect("a 429 says when to retry").parse().expect("whole seconds")
}

async fn a_caller_over_its_rate_gets_429_with_retry_after_and_others_are_unaffected(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, &LIMITS).await;
    let client = app.create_organization(50).await;
    let manager = app.token_of("isms@acme.test", Role::ClientManager, Some(&client), None);
    let other = app.token_of("cfo@acme.test", Role::ClientManager, Some(&client), None);

    // Act: the burst, then one more (a write: it must not happen).
    for _ in 0..3 {
        list_as(&app, &manager).await.expect(200);
    }
    let body = json!({ "organization_id": client, "manager_email": "isms@acme.test" });
    let refused = app.send_as(&manager, reqwest::Method::POST, "/api/v1/engagements", Some(&body)).await;

    // Assert: a 429 problem with Retry-After, and nothing written.
    assert_eq!((refused.status, refused.problem_type().as_str()), (429, "rate-limited"), "{}", refused.body);
    assert!(refused.content_type().starts_with("application/problem+json"));
    assert!((1..=2).contains(&retry_after(&refused)), "{:?}", refused.header("Retry-After"));
    let engagements = app.get(&format!("/api/v1/engagements?organization_id={client}")).await.expect(200);
    assert_eq!(engagements.body["items"], json!([]), "a refused request wrote nothing");

    // Assert: another caller of the same organization, and the admin, keep their own allowance.
    list_as(&app, &other).await.expect(200);
    list_as(&app, &app.token).await.expect(200);

    // Assert: after the time it was told, the caller is served again.
    tokio::time::sleep(std::time::Duration::from_secs(retry_after(&refused))).await;
    list_as(&app, &manager).await.expect(200);
}
on_both_databases!(a_caller_over_its_rate_gets_429_with_retry_after_and_others_are_unaffected);

async fn an_address_without_a_token_is_limited_and_callers_with_one_are_not(backend: Backend) {
    // Arrange
    let app = spawn_app_with(backend, &LIMITS).await;
    let readyz = format!("{}/readyz", app.address);

    // Act: the anonymous burst, then one more; a forged token counts as no token.
    for _ in 0..2 {
        assert_eq!(app.reply(app.client.get(&readyz)).await.status, 200);
    }
    let refused = app.reply(app.client.get(&readyz)).await;
    let forged =
        app.reply(app.client.get(format!("{}/api/v1/organizations", app.address)).bearer_auth("not.a.token")).await;

    // Assert
    assert_eq!((refused.status, refused.problem_type().as_str()), (429, "rate-limited"));
    assert!(retry_after(&refused) >= 1);
    assert_eq!(forged.status, 429, "a bad token is limited with its address: {}", forged.body);
    list_as(&app, &app.token).await.expect(200);
}
on_both_databases!(an_address_without_a_token_is_limited_and_callers_with_one_are_not);
