//! Webhook workers as processes of their own: one killed (SIGKILL) in the middle of its
//! deliveries and restarted, and two sharing the same deliveries. Nothing is lost, and only what
//! the killed process had in flight is sent again (with the same `webhook-id`, which receivers
//! use to drop a repeat).

use std::collections::{HashMap, HashSet};

use entities::domain::webhooks::WebhookMessageStatus;
use entities::orm::{prelude::*, webhook_attempt, webhook_event, webhook_message, webhook_outbox};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use crate::helpers::{Backend, TestApp, day, spawn_app_with, wait_at_most};
use crate::on_both_databases;
use crate::processes::start_worker;
use crate::smtp::SmtpSink;
use crate::webhooks::{Receiver, register};

const EVENTS: usize = 300;
const CONCURRENCY: usize = 16;
/// A short lease (a killed worker's messages come back soon), 16 attempts at a time.
const SETTINGS: &[(&str, &str)] =
    &[("WEBHOOK_ALLOW_LOOPBACK", "true"), ("WEBHOOK_LEASE_SECONDS", "2"), ("WEBHOOK_CONCURRENCY", "16")];

/// An endpoint for findings and `EVENTS` undispatched events in the outbox: one finding recorded
/// through the API, and copies of its event as if as many more had been (the worker's part is
/// under test here; the API's is in `webhooks.rs`). Returns the receiver and the endpoint's secret.
async fn an_outbox_of_findings(app: &TestApp, slow_ms: u64) -> (Receiver, String) {
    let engagement = app.engagement_in_stage2().await;
    let organization = app.engagement(&engagement).await.expect(200).str("organization_id");
    let (receiver, port) = Receiver::start_on(0);
    receiver.slow_down(slow_ms);
    let (_, secret) = register(app, &organization, port, &["finding.recorded"]).await;
    let audit = app.create_audit(&engagement, "stage2", day(40), day(43)).await;
    app.record_finding(&engagement, &audit, "ofi", "A.5.1").await;
    let db = app.db().await;
    let recorded = WebhookEventRecord::find()
        .filter(webhook_event::Column::EngagementId.eq(Uuid::parse_str(&engagement).unwrap()))
        .order_by_desc(webhook_event::Column::Sequence)
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    let copies: Vec<webhook_event::ActiveModel> = (1..EVENTS as i64)
        .map(|n| webhook_event::ActiveModel {
            id: Set(Uuid::now_v7()),
            engagement_id: Set(recorded.engagement_id),
            organization_id: Set(recorded.organization_id),
            certification_body_id: Set(recorded.certification_body_id),
            sequence: Set(recorded.sequence + n),
            event_type: Set(recorded.event_type),
            data: Set(recorded.data.clone()),
            occurred_at: Set(recorded.occurred_at),
        })
        .collect();
    for chunk in copies.chunks(50) {
        WebhookEventRecord::insert_many(chunk.to_vec()).exec_without_returning(&db).await.unwrap();
        let queued = chunk.iter().map(|event| webhook_outbox::ActiveModel { event_id: event.id.clone() });
        WebhookOutbox::insert_many(queued).exec_without_returning(&db).await.unwrap();
    }
    (receiver, secret)
}

async fn delivered(app: &TestApp) -> u64 {
    let db = app.db().await;
    let delivered = webhook_message::Column::Status.eq(WebhookMessageStatus::Delivered);
    WebhookMessage::find().filter(delivered).count(&db).await.unwrap()
}

async fn a_webhook_worker_killed_mid_delivery_and_restarted_delivers_every_message(backend: Backend) {
    // Arrange: 300 events for an endpoint that takes 100 ms to answer.
    let app = spawn_app_with(backend, &[("WEBHOOK_ALLOW_LOOPBACK", "true")]).await;
    let smtp = SmtpSink::start();
    let (receiver, secret) = an_outbox_of_findings(&app, 100).await;

    // Act: a worker starts, and is killed (SIGKILL) once some messages are out.
    let mut first = start_worker(&app, smtp.port, SETTINGS);
    wait_at_most(60, "the first messages arrive", || async { receiver.received().len() >= 40 }).await;
    first.kill();
    let before_restart = delivered(&app).await;
    assert!(before_restart < EVENTS as u64, "the kill landed mid-delivery ({before_restart} of {EVENTS})");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let _second = start_worker(&app, smtp.port, SETTINGS);

    // Assert: every message arrives; repeats are only the killed process's in-flight ones.
    wait_at_most(120, "every message is delivered", || async { delivered(&app).await == EVENTS as u64 }).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let received = receiver.received();
    let ids: HashSet<String> = received.iter().map(|r| r.id()).collect();
    assert_eq!(ids.len(), EVENTS, "every message arrived");
    let repeats = received.len() - EVENTS;
    assert!(repeats <= CONCURRENCY, "{repeats} repeats: more than the attempts in flight (WEBHOOK_CONCURRENCY)");
    let mut sequences: Vec<i64> = received.iter().map(|r| r.json()["data"]["sequence"].as_i64().unwrap()).collect();
    sequences.sort_unstable();
    sequences.dedup();
    assert_eq!(sequences.len(), EVENTS, "each event's own payload");
    assert!(received.iter().all(|r| r.verifies_with(&secret)), "every signature verifies");
}
on_both_databases!(a_webhook_worker_killed_mid_delivery_and_restarted_delivers_every_message);

async fn two_webhook_workers_share_the_deliveries_without_sending_one_twice(backend: Backend) {
    // Arrange: 300 events for an endpoint that takes 20 ms to answer.
    let app = spawn_app_with(backend, &[("WEBHOOK_ALLOW_LOOPBACK", "true")]).await;
    let smtp = SmtpSink::start();
    let (receiver, secret) = an_outbox_of_findings(&app, 20).await;

    // Act: two worker processes, started together, with leases long enough for every attempt.
    let settings = &[("WEBHOOK_ALLOW_LOOPBACK", "true"), ("WEBHOOK_CONCURRENCY", "16")];
    let _one = start_worker(&app, smtp.port, settings);
    let _two = start_worker(&app, smtp.port, settings);
    wait_at_most(120, "every message is delivered", || async { delivered(&app).await == EVENTS as u64 }).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    // Assert: each message was sent once, by one of them, in one attempt.
    let received = receiver.received();
    let mut per_id: HashMap<String, usize> = HashMap::new();
    for r in &received {
        *per_id.entry(r.id()).or_default() += 1;
    }
    assert_eq!(per_id.len(), EVENTS, "every message arrived");
    assert!(per_id.values().all(|n| *n == 1), "none twice: {:?}", per_id.values().filter(|n| **n > 1).count());
    let db = app.db().await;
    // An attempt that delivered its message as a dispatch made it is kept in the message's row.
    let kept = webhook_message::Column::FirstAttemptLatencyMs.is_not_null();
    let kept = WebhookMessage::find().filter(kept).count(&db).await.unwrap();
    let logged = WebhookAttempt::find().count(&db).await.unwrap();
    assert_eq!(kept + logged, EVENTS as u64, "one attempt per message ({kept} kept in their messages)");
    let retried = WebhookAttempt::find().filter(webhook_attempt::Column::Attempt.ne(1)).count(&db).await.unwrap();
    assert_eq!(retried, 0, "no message needed a second attempt");
    assert!(received.iter().all(|r| r.verifies_with(&secret)));
}
on_both_databases!(two_webhook_workers_share_the_deliveries_without_sending_one_twice);
