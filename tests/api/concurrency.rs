//! Concurrent transitions on one engagement are serialized: exactly one wins.

use serde_json::json;

use crate::helpers::{Backend, day, day0, spawn_app};
use crate::on_both_databases;

async fn of_concurrent_identical_transitions_exactly_one_succeeds(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let engagement = app.engagement_with_selected_proposal().await;

    // Act: 50 clients sign the same engagement letter at once.
    let attempts =
        (0..50).map(|_| app.fire(&engagement, json!({ "event": "sign_engagement_letter", "signed_on": day(0) })));
    let replies = futures::future::join_all(attempts).await;

    // Assert: one 200, the rest see the new state and get 409; one history entry.
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 49, "{statuses:?}");
    assert!(replies.iter().filter(|r| r.status == 409).all(|r| r.body["state"] == "stage1"));
    let actions = app.history_actions(&engagement).await;
    assert_eq!(actions.iter().filter(|a| *a == "sign_engagement_letter").count(), 1);
    assert_eq!(app.engagement(&engagement).await.body["version"], 3);
}
on_both_databases!(of_concurrent_identical_transitions_exactly_one_succeeds);

async fn of_concurrent_writes_from_the_same_version_exactly_one_wins_and_the_others_get_412(backend: Backend) {
    // Arrange: an engagement in stage 1, where a "not ready" outcome may be recorded again and again.
    let app = spawn_app(backend).await;
    let engagement = app.engagement_with_selected_proposal().await;
    app.fire(&engagement, json!({ "event": "sign_engagement_letter", "signed_on": day0() })).await.expect(200);
    let stage1 = app.create_audit(&engagement, "stage1", day(10), day(11)).await;
    app.set_today(day(12));
    let version = app.engagement(&engagement).await.body["version"].as_i64().unwrap();
    let not_ready = json!({
        "event": "record_stage1_outcome", "audit_id": stage1, "outcome": "not_ready",
        "gaps": ["no internal audit yet"], "version": version
    });

    // Act: 50 coordinators record it at once, each from the version it read.
    let replies = futures::future::join_all((0..50).map(|_| app.fire(&engagement, not_ready.clone()))).await;

    // Assert: one wins; the others are told the engagement changed; one history entry.
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 412).count(), 49, "{statuses:?}");
    assert!(replies.iter().filter(|r| r.status == 412).all(|r| r.problem_type() == "version-mismatch"));
    let actions = app.history_actions(&engagement).await;
    assert_eq!(actions.iter().filter(|a| *a == "record_stage1_outcome").count(), 1, "{actions:?}");
    let view = app.engagement(&engagement).await;
    assert_eq!((view.str("state"), view.body["version"].as_i64()), ("stage1".to_owned(), Some(version + 1)));
}
on_both_databases!(of_concurrent_writes_from_the_same_version_exactly_one_wins_and_the_others_get_412);

async fn of_two_concurrent_updates_of_an_organization_from_one_version_one_gets_412(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let organization = app.create_organization(120).await;
    let path = format!("/api/v1/organizations/{organization}");
    let read = app.get(&path).await.expect(200);
    let update = |name: &str| {
        let mut body = read.body.clone();
        let object = body.as_object_mut().unwrap();
        for generated in ["id", "created_at", "updated_at"] {
            object.remove(generated);
        }
        object.insert("legal_name".into(), json!(name));
        body
    };
    let (first, second) = (update("Acme Data Ltd (renamed)"), update("Acme Data Group"));

    // Act: both carry the version they read, in the body.
    let (a, b) = futures::join!(app.put(&path, &first), app.put(&path, &second));

    // Assert
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 412], "{} / {}", a.body, b.body);
    let winner = if a.status == 200 { &a } else { &b };
    let now = app.get(&path).await.expect(200);
    assert_eq!(now.body["legal_name"], winner.body["legal_name"], "the loser changed nothing");
    assert_eq!(now.body["version"], read.body["version"].as_i64().unwrap() + 1);
}
on_both_databases!(of_two_concurrent_updates_of_an_organization_from_one_version_one_gets_412);

async fn two_api_instances_on_one_database_serialize_concurrent_transitions(backend: Backend) {
    // Arrange: a second API server (its own pool, as another process would have) on the same database.
    let app = spawn_app(backend).await;
    let other = crate::helpers::spawn_app_at(&app.database_url).await;
    let engagement = app.engagement_with_selected_proposal().await;
    let sign = json!({ "event": "sign_engagement_letter", "signed_on": day(0) });

    // Act: 25 clients on each server sign the same engagement letter at once.
    let attempts = (0..50).map(|i| {
        let server = if i % 2 == 0 { &app } else { &other };
        server.fire(&engagement, sign.clone())
    });
    let replies = futures::future::join_all(attempts).await;

    // Assert: one wins across both servers; the others see the new state; one history entry.
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 49, "{statuses:?}");
    let actions = app.history_actions(&engagement).await;
    assert_eq!(actions.iter().filter(|a| *a == "sign_engagement_letter").count(), 1);
    assert_eq!(other.engagement(&engagement).await.str("state"), "stage1");
}
on_both_databases!(two_api_instances_on_one_database_serialize_concurrent_transitions);
