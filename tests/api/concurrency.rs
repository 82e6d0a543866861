//! Concurrent transitions on one engagement are serialized: exactly one wins.

use serde_json::json;

use crate::helpers::{Backend, day, spawn_app};
use crate::on_both_databases;

async fn of_concurrent_identical_transitions_exactly_one_succeeds(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let engagement = app.engagement_with_selected_proposal().await;

    // Act: 20 clients sign the same engagement letter at once.
    let attempts =
        (0..20).map(|_| app.fire(&engagement, json!({ "event": "sign_engagement_letter", "signed_on": day(0) })));
    let replies = futures::future::join_all(attempts).await;

    // Assert: one 200, the rest see the new state and get 409; one history entry.
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 19, "{statuses:?}");
    assert!(replies.iter().filter(|r| r.status == 409).all(|r| r.body["state"] == "stage1"));
    let actions = app.history_actions(&engagement).await;
    assert_eq!(actions.iter().filter(|a| *a == "sign_engagement_letter").count(), 1);
    assert_eq!(app.engagement(&engagement).await.body["version"], 3);
}
on_both_databases!(of_concurrent_identical_transitions_exactly_one_succeeds);
