//! Token revocation: an admin revokes one token (by its `jti`) or a subject's tokens issued up to
//! an instant; the process that records it refuses them at once, every other API process within
//! its refresh interval.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde_json::{Value, json};

use api::auth::Role;

use crate::helpers::{Backend, TestApp, spawn_app, wait_at_most};
use crate::on_both_databases;
use crate::processes::{process_token, start_api_with};

/// The claims of a token, read without checking it (the test minted it).
fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("JSON claims")
}

async fn status_with(app: &TestApp, address: &str, token: &str) -> u16 {
    let request = app.client.get(format!("{address}/api/v1/engagements")).bearer_auth(token);
    app.reply(request).await.status
}

async fn a_revoked_token_or_subject_is_refused_at_once_and_its_siblings_are_not(backend: Backend) {
    // Arrange: two tokens of one coordinator, one of another.
    let app = spawn_app(backend).await;
    let cb = app.create_certification_body(true).await;
    let ana = app.token_of("ana@cb.test", Role::Coordinator, None, Some(&cb));
    let ana_laptop = app.token_of("ana@cb.test", Role::Coordinator, None, Some(&cb));
    let bo = app.token_of("bo@cb.test", Role::Coordinator, None, Some(&cb));
    for token in [&ana, &ana_laptop, &bo] {
        assert_eq!(status_with(&app, &app.address, token).await, 200);
    }

    // Act: revoke one of Ana's tokens by its id.
    let jti = claims_of(&ana_laptop)["jti"].as_str().expect("a minted token has a jti").to_owned();
    let revoked =
        app.post("/api/v1/token-revocations", &json!({ "token_id": jti, "reason": "laptop stolen" })).await.expect(201);

    // Assert: that token is refused at once; her other token and Bo's still work.
    assert_eq!(revoked.body["token_id"], jti.as_str());
    assert_eq!(revoked.body["revoked_by"], crate::helpers::ADMIN);
    assert_eq!(status_with(&app, &app.address, &ana_laptop).await, 401);
    assert_eq!(status_with(&app, &app.address, &ana).await, 200);

    // Act: revoke every token of Ana issued until now.
    app.post("/api/v1/token-revocations", &json!({ "subject": "ana@cb.test" })).await.expect(201);

    // Assert: all her tokens are refused, Bo's is not, and one she gets afterwards works.
    assert_eq!(status_with(&app, &app.address, &ana).await, 401);
    assert_eq!(status_with(&app, &app.address, &bo).await, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let fresh = app.token_of("ana@cb.test", Role::Coordinator, None, Some(&cb));
    assert_eq!(status_with(&app, &app.address, &fresh).await, 200, "a token issued after the revocation works");

    // Assert: the list holds both; only an admin revokes or lists.
    let listed = app.get("/api/v1/token-revocations").await.expect(200);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 2);
    for (method, body) in [(Method::POST, Some(json!({ "subject": "bo@cb.test" }))), (Method::GET, None)] {
        let refused = app.send_as(&bo, method, "/api/v1/token-revocations", body.as_ref()).await;
        assert_eq!((refused.status, refused.problem_type().as_str()), (403, "forbidden"));
    }
    assert_eq!(status_with(&app, &app.address, &bo).await, 200, "a refused revocation revoked nothing");
}
on_both_databases!(a_revoked_token_or_subject_is_refused_at_once_and_its_siblings_are_not);

async fn a_revocation_that_names_nothing_or_the_future_is_refused_and_records_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let cases = [
        (json!({}), 422, "validation-failed"),
        (json!({ "token_id": "t-1", "subject": "ana@cb.test" }), 422, "validation-failed"),
        (json!({ "token_id": "t-1", "issued_before": tomorrow }), 422, "validation-failed"),
        (json!({ "token_id": "" }), 422, "validation-failed"),
        (json!({ "subject": "ana@cb.test", "issued_before": tomorrow }), 422, "revocation-in-future"),
        (json!({ "subject": "ana@cb.test", "valid_until": tomorrow }), 422, "invalid-body"),
    ];
    for (body, status, problem) in cases {
        let refused = app.post("/api/v1/token-revocations", &body).await;
        assert_eq!((refused.status, refused.problem_type().as_str()), (status, problem), "{body}");
    }
    let listed = app.get("/api/v1/token-revocations").await.expect(200);
    assert_eq!(listed.body["items"], json!([]));
}
on_both_databases!(a_revocation_that_names_nothing_or_the_future_is_refused_and_records_nothing);

async fn a_revocation_made_on_one_api_process_is_refused_by_the_other_within_seconds(backend: Backend) {
    // Arrange: two API processes on one database, each rereading revocations every second.
    let app = spawn_app(backend).await;
    let settings = [("TOKEN_REVOCATION_REFRESH_SECONDS", "1")];
    let apis = [start_api_with(&app, &settings).await, start_api_with(&app, &settings).await];
    let admin = process_token(&app, "admin", "root@platform.test");
    let leaked = process_token(&app, "admin", "grc-sync@platform.test");
    for api in &apis {
        assert_eq!(status_with(&app, api.address(), &leaked).await, 200);
    }

    // Act: revoke the leaked token through the first process.
    let jti = claims_of(&leaked)["jti"].as_str().expect("certflow token sets a jti").to_owned();
    let request = app
        .client
        .post(format!("{}/api/v1/token-revocations", apis[0].address()))
        .bearer_auth(&admin)
        .json(&json!({ "token_id": jti }));
    app.reply(request).await.expect(201);

    // Assert: the first refuses it at once, the second within seconds; the admin's still works.
    assert_eq!(status_with(&app, apis[0].address(), &leaked).await, 401);
    let started = std::time::Instant::now();
    wait_at_most(10, "the other process refuses the revoked token", || async {
        status_with(&app, apis[1].address(), &leaked).await == 401
    })
    .await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    for api in &apis {
        assert_eq!(status_with(&app, api.address(), &admin).await, 200);
    }
}
on_both_databases!(a_revocation_made_on_one_api_process_is_refused_by_the_other_within_seconds);
