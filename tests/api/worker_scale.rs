//! Failure and scale: a refused email ends `failed` and can be re-queued; two workers on
//! PostgreSQL share one batch without sending anything twice.

use std::collections::HashSet;

use api::auth::Role;
use entities::domain::reminders::NotificationStatus;
use entities::orm::{notification, prelude::*};
use reqwest::Method;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

use crate::helpers::{Backend, TestApp, day, spawn_app, wait_at_most, wait_until};
use crate::on_both_databases;
use crate::smtp::SmtpSink;

async fn count_notifications(app: &TestApp, status: NotificationStatus) -> u64 {
    Notification::find().filter(notification::Column::Status.eq(status)).count(&app.db().await).await.unwrap()
}

async fn an_email_refused_until_its_last_try_is_failed_listed_and_sent_after_its_coordinator_requeues_it(
    backend: Backend,
) {
    // Arrange: the server rejects the recipient (550); each email has three tries.
    let app = spawn_app(backend).await;
    let smtp = SmtpSink::start();
    smtp.reject(true);
    let engagement = app.engagement_in_stage2().await;
    app.insert_due_deadlines(&engagement, 1, app.clock.today()).await;
    let worker = app.spawn_worker_with(smtp.port, &[("DELIVERY_MAX_ATTEMPTS", "3")]).await;

    // Act: three tries, an hour apart (past each backoff).
    for _ in 0..3 {
        worker.tick().await;
        app.wait_for_deliveries(&engagement).await;
        app.clock.set(app.clock.now() + chrono::Duration::hours(1));
    }

    // Assert: failed after the third try, and listed.
    let failed = app.get("/api/v1/notifications?status=failed").await.expect(200);
    let items = failed.body["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["attempts"], 3);
    assert!(items[0]["last_error"].as_str().unwrap().contains("550"), "{}", items[0]);
    let id = items[0]["id"].as_str().unwrap().to_owned();

    // Its certification body's coordinators re-queue it; its auditors may not; other bodies do not see it.
    let path = format!("/api/v1/notifications/{id}/requeue");
    let cb = app.engagement(&engagement).await.str("certification_body_id");
    let auditor = app.token_for(Role::Auditor, None, Some(&cb));
    let refused = app.send_as(&auditor, Method::POST, &path, Some(&json!({}))).await.expect(403);
    assert_eq!(refused.problem_type(), "forbidden");
    let stranger = app.token_for(Role::Coordinator, None, Some(&uuid::Uuid::now_v7().to_string()));
    app.send_as(&stranger, Method::POST, &path, Some(&json!({}))).await.expect(404);
    smtp.reject(false);
    let coordinator = app.token_for(Role::Coordinator, None, Some(&cb));
    let requeued = app.send_as(&coordinator, Method::POST, &path, Some(&json!({}))).await.expect(200);
    assert_eq!((requeued.body["status"].as_str(), requeued.body["attempts"].as_i64()), (Some("pending"), Some(0)));
    worker.tick().await;
    app.wait_for_deliveries(&engagement).await;
    assert_eq!(smtp.received().len(), 1);
    assert_eq!(count_notifications(&app, NotificationStatus::Sent).await, 1);
}
on_both_databases!(an_email_refused_until_its_last_try_is_failed_listed_and_sent_after_its_coordinator_requeues_it);

#[tokio::test]
async fn two_workers_on_postgres_share_1000_due_steps_and_send_each_once() {
    // Arrange: 1,000 deadlines, each with one step due today.
    let app = spawn_app(Backend::Postgres).await;
    let smtp = SmtpSink::start();
    let engagement = app.engagement_in_stage2().await;
    app.set_today(day(20));
    app.insert_due_deadlines(&engagement, 1000, app.clock.today()).await;
    let first = app.spawn_worker(smtp.port).await;
    let second = app.spawn_worker(smtp.port).await;

    // Act: both scan at once (besides the scan each ran at start), then both deliver.
    let (a, b) = tokio::join!(first.tick(), second.tick());

    // Assert: every step claimed once; 1,000 emails, none twice.
    let claimed = Notification::find().count(&app.db().await).await.unwrap();
    assert_eq!(claimed, 1000, "first {a:?}, second {b:?}");
    // Generous: a debug build on two shared cores; the speed is measured by the benchmark.
    wait_at_most(120, "1,000 emails are sent", || async {
        count_notifications(&app, NotificationStatus::Sent).await == 1000
    })
    .await;
    wait_until("the sink has 1,000 emails", || async { smtp.received().len() >= 1000 }).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let received = smtp.received();
    let message_ids: HashSet<String> = received.iter().map(|m| m.message_id()).collect();
    let recipients: HashSet<String> = received.iter().flat_map(|m| m.to.clone()).collect();
    assert_eq!((received.len(), message_ids.len(), recipients.len()), (1000, 1000, 1000));
}
