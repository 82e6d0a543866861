//! A worker process killed with SIGKILL in the middle of a batch, then restarted: every due email
//! arrives, none is lost, and none is sent twice except the few the killed process had in flight
//! (those repeat with the same Message-ID, which mail clients use to drop duplicates).

use std::collections::HashSet;

use entities::domain::reminders::NotificationStatus;
use entities::orm::{notification, prelude::*};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::helpers::{Backend, a_day_already_due_by_the_wall_clock, spawn_app, wait_at_most};
use crate::on_both_databases;
use crate::processes::start_worker;
use crate::smtp::SmtpSink;

const DUE: usize = 300;
/// A short lease (a killed worker's claims come back soon) and 16 deliveries at a time.
const SETTINGS: &[(&str, &str)] = &[("DELIVERY_LEASE_SECONDS", "2"), ("DELIVERY_CONCURRENCY", "16")];

async fn a_worker_killed_mid_batch_and_restarted_delivers_every_email(backend: Backend) {
    // Arrange: 300 due steps and a mail server that takes 30 ms per message.
    let app = spawn_app(backend).await;
    let smtp = SmtpSink::start();
    smtp.slow_down(30);
    let engagement = app.engagement_in_stage2().await;
    app.insert_due_deadlines(&engagement, DUE, a_day_already_due_by_the_wall_clock()).await;

    // Act: the worker starts, and is killed (SIGKILL) once some emails are out.
    let mut first = start_worker(&app, smtp.port, SETTINGS);
    wait_at_most(60, "the first emails arrive", || async { smtp.received().len() >= 40 }).await;
    first.kill();
    let before_restart = smtp.received().len();
    assert!(before_restart < DUE, "the kill landed mid-batch ({before_restart} of {DUE} sent)");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let _second = start_worker(&app, smtp.port, SETTINGS);

    // Assert: every email arrives; repeats are limited to the killed process's in-flight ones.
    let db = app.db().await;
    // (The engagement's own stage 1 validity deadline is long past by the system clock: its
    // escalation is sent too. Only the 300 inserted deadlines are counted.)
    let ours = || notification::Column::StepKey.eq("reminder-14");
    wait_at_most(120, "every notification is sent", || async {
        let sent =
            Notification::find().filter(ours()).filter(notification::Column::Status.eq(NotificationStatus::Sent));
        sent.count(&db).await.unwrap() == DUE as u64
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let received: Vec<_> =
        smtp.received().into_iter().filter(|m| m.to.iter().all(|to| to.starts_with("owner"))).collect();
    let message_ids: HashSet<String> = received.iter().map(|m| m.message_id()).collect();
    assert_eq!(message_ids.len(), DUE, "every email arrived");
    let repeats = received.len() - DUE;
    assert!(repeats <= 16, "{repeats} repeats: more than the deliveries in flight (DELIVERY_CONCURRENCY)");
    assert_eq!(Notification::find().filter(ours()).count(&db).await.unwrap(), DUE as u64, "each step claimed once");
}
on_both_databases!(a_worker_killed_mid_batch_and_restarted_delivers_every_email);
