//! `Idempotency-Key` on POST: a retry returns the stored response and writes nothing twice.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, Reply, TestApp, day0, spawn_app};
use crate::on_both_databases;

async fn post_with_key(app: &TestApp, token: &str, path: &str, key: &str, body: &Value) -> (Reply, Option<String>) {
    let request = app
        .client
        .request(Method::POST, format!("{}{path}", app.address))
        .bearer_auth(token)
        .header("Idempotency-Key", key)
        .json(body);
    let reply = app.reply(request).await;
    let replayed = reply.header("Idempotency-Replayed");
    (reply, replayed)
}

async fn a_retried_post_with_the_same_key_returns_the_stored_response_and_creates_nothing_more(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let organization = app.create_organization(120).await;
    let body = json!({ "organization_id": organization, "manager_email": "isms@acme.test" });

    // Act: the integration sends the same request three times (its network dropped the answers).
    let (first, first_replayed) = post_with_key(&app, &app.token, "/api/v1/engagements", "grc-4711", &body).await;
    let (second, second_replayed) = post_with_key(&app, &app.token, "/api/v1/engagements", "grc-4711", &body).await;
    let (third, _) = post_with_key(&app, &app.token, "/api/v1/engagements", "grc-4711", &body).await;

    // Assert: one engagement, the same answer each time, the retries marked as replays.
    assert_eq!((first.status, first_replayed), (201, None));
    assert_eq!((second.status, second_replayed.as_deref()), (201, Some("true")));
    assert_eq!(second.body, first.body);
    assert_eq!(third.body["id"], first.body["id"]);
    assert_eq!(second.content_type(), "application/json");
    let listed = app.get(&format!("/api/v1/engagements?organization_id={organization}")).await.expect(200);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1, "one engagement was created");
}
on_both_databases!(a_retried_post_with_the_same_key_returns_the_stored_response_and_creates_nothing_more);

async fn a_retried_event_is_fired_once_and_a_refused_one_is_judged_again(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let engagement = app.engagement_with_selected_proposal().await;
    let path = format!("/api/v1/engagements/{engagement}/events");
    let sign = json!({ "event": "sign_engagement_letter", "signed_on": day0() });

    // Act
    let (first, _) = post_with_key(&app, &app.token, &path, "sign-1", &sign).await;
    let (retry, replayed) = post_with_key(&app, &app.token, &path, "sign-1", &sign).await;
    let (fresh, _) = post_with_key(&app, &app.token, &path, "sign-2", &sign).await;
    let (fresh_retry, _) = post_with_key(&app, &app.token, &path, "sign-2", &sign).await;

    // Assert: the retry does not fire it again; a new key is a new request (409 now): it wrote
    // nothing, so its retry is judged again (409 again).
    assert_eq!((first.status, retry.status, replayed.as_deref()), (200, 200, Some("true")));
    assert_eq!(app.history_actions(&engagement).await.iter().filter(|a| *a == "sign_engagement_letter").count(), 1);
    assert_eq!((fresh.status, fresh.problem_type()), (409, "illegal-transition".to_owned()));
    assert_eq!(fresh_retry.status, 409);
    assert!(fresh_retry.content_type().starts_with("application/problem+json"), "{}", fresh_retry.content_type());
}
on_both_databases!(a_retried_event_is_fired_once_and_a_refused_one_is_judged_again);

async fn a_key_reused_for_another_request_is_refused_with_422_and_keys_are_per_caller(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let organization = app.create_organization(120).await;
    let body = json!({ "organization_id": organization, "manager_email": "isms@acme.test" });
    let other_body = json!({ "organization_id": organization, "manager_email": "cto@acme.test" });
    post_with_key(&app, &app.token, "/api/v1/engagements", "k-1", &body).await.0.expect(201);

    // Act
    let (reused, _) = post_with_key(&app, &app.token, "/api/v1/engagements", "k-1", &other_body).await;
    let client = app.token_for(api::auth::Role::ClientManager, Some(&organization), None);
    let (someone_else, replayed) = post_with_key(&app, &client, "/api/v1/engagements", "k-1", &body).await;
    let too_long = "k".repeat(256);
    let (invalid_key, _) = post_with_key(&app, &app.token, "/api/v1/engagements", &too_long, &body).await;

    // Assert
    assert_eq!((reused.status, reused.problem_type()), (422, "idempotency-key-reused".to_owned()), "{}", reused.body);
    assert_eq!((someone_else.status, replayed), (201, None), "another caller's key is its own");
    assert_eq!(invalid_key.status, 422, "{}", invalid_key.body);
    let listed = app.get(&format!("/api/v1/engagements?organization_id={organization}")).await.expect(200);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 2);
}
on_both_databases!(a_key_reused_for_another_request_is_refused_with_422_and_keys_are_per_caller);

async fn every_post_operation_replays_its_stored_response_to_a_retry_with_the_same_key(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let own = crate::access::tenant(&app).await;
    let mut checked = 0;
    for operation in crate::access::secured_operations() {
        let (method, path, body) = crate::access::request_for(&app, &operation, &own).await;
        if method != Method::POST {
            continue;
        }
        let body = body.unwrap_or(json!({}));
        let key = format!("every-post-{operation}");

        // Act
        let (first, _) = post_with_key(&app, &app.token, &path, &key, &body).await;
        let (retry, replayed) = post_with_key(&app, &app.token, &path, &key, &body).await;

        // Assert
        assert!((200..300).contains(&first.status), "{operation}: {} {}", first.status, first.body);
        assert_eq!((retry.status, replayed.as_deref()), (first.status, Some("true")), "{operation}: {}", retry.body);
        assert_eq!(retry.body, first.body, "{operation}");
        checked += 1;
    }
    assert!(checked >= 11, "only {checked} POST operations");
}
on_both_databases!(every_post_operation_replays_its_stored_response_to_a_retry_with_the_same_key);

async fn a_key_is_the_whole_caller_s_a_token_sharing_a_subject_in_another_tenant_gets_its_own_judgement(
    backend: Backend,
) {
    // Arrange: two integration tokens that share a subject, for two organizations.
    let app = spawn_app(backend).await;
    let (acme, other) = (app.create_organization(120).await, app.create_organization(20).await);
    let subject = "grc-sync@integrations.test";
    let of = |organization: &str| app.token_of(subject, api::auth::Role::Integration, Some(organization), None);
    let body = json!({ "organization_id": acme, "manager_email": "isms@acme.test" });
    let (first, _) = post_with_key(&app, &of(&acme), "/api/v1/engagements", "sync-1", &body).await;
    first.expect(201);

    // Act: the other organization's token sends the same request with the same key.
    let (second, replayed) = post_with_key(&app, &of(&other), "/api/v1/engagements", "sync-1", &body).await;

    // Assert: judged on its own (it does not see Acme: 404), never Acme's stored 201.
    assert_eq!((second.status, replayed), (404, None), "{}", second.body);
    assert!(!second.body.to_string().contains("isms@acme.test"), "nothing of the first caller's answer");
}
on_both_databases!(a_key_is_the_whole_caller_s_a_token_sharing_a_subject_in_another_tenant_gets_its_own_judgement);

async fn the_worker_forgets_keys_past_their_retention(backend: Backend) {
    // Arrange: a key stored now.
    let app = spawn_app(backend).await;
    let smtp = crate::smtp::SmtpSink::start();
    let organization = app.create_organization(120).await;
    let body = json!({ "organization_id": organization, "manager_email": "isms@acme.test" });
    post_with_key(&app, &app.token, "/api/v1/engagements", "old-1", &body).await.0.expect(201);
    let worker = app.spawn_worker(smtp.port).await;

    // Act / Assert: kept within its 24 hours, forgotten after.
    let now = app.clock.now();
    app.set_now(now + chrono::Duration::hours(23));
    assert_eq!(worker.tick().await.keys_purged, 0);
    app.set_now(now + chrono::Duration::hours(25));
    assert_eq!(worker.tick().await.keys_purged, 1);
    // The same key now runs as a new request.
    let (again, replayed) = post_with_key(&app, &app.token, "/api/v1/engagements", "old-1", &body).await;
    assert_eq!((again.status, replayed), (201, None));
}
on_both_databases!(the_worker_forgets_keys_past_their_retention);
