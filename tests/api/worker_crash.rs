//! A worker process killed with SIGKILL in the middle of a batch, then restarted: every due email
//! arrives, none is lost, and none is sent twice except the few the killed process had in flight
//! (those repeat with the same Message-ID, which mail clients use to drop duplicates).

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};

use chrono::{Days, Utc};
use entities::domain::deadline::{DeadlineKind, DeadlineOwner, DeadlineStatus};
use entities::domain::reminders::NotificationStatus;
use entities::orm::{deadline, notification, prelude::*};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use uuid::Uuid;

use crate::helpers::{Backend, TestApp, spawn_app, wait_at_most};
use crate::on_both_databases;
use crate::smtp::SmtpSink;

const DUE: usize = 300;

/// Kills the process when dropped, so a failing test leaves nothing running.
struct WorkerProcess(Child);

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_worker_process(app: &TestApp, smtp_port: u16) -> WorkerProcess {
    let output = || if std::env::var("TEST_LOG").is_ok() { Stdio::inherit() } else { Stdio::null() };
    let child = Command::new(env!("CARGO_BIN_EXE_certflow-under-test"))
        .arg("worker")
        .env("DATABASE_URL", &app.database_url)
        .env("SMTP_HOST", "127.0.0.1")
        .env("SMTP_PORT", smtp_port.to_string())
        .env("SMTP_SECURITY", "none")
        .env("DELIVERY_LEASE_SECONDS", "2")
        .env("RUST_LOG", "warn")
        .stdout(output())
        .stderr(output())
        .spawn()
        .expect("start the worker process");
    WorkerProcess(child)
}

/// Deadlines whose 14-day reminder is due today by the system clock (the process's clock).
async fn insert_deadlines_due_today(app: &TestApp, engagement: &str) {
    let db = app.db().await;
    let today = Utc::now().date_naive();
    let engagement_id: Uuid = engagement.parse().unwrap();
    let rows: Vec<deadline::ActiveModel> = (0..DUE)
        .map(|i| deadline::ActiveModel {
            id: Set(Uuid::now_v7()),
            engagement_id: Set(engagement_id),
            kind: Set(DeadlineKind::CorrectiveActionDue),
            subject_id: Set(None),
            due_on: Set(today.checked_add_days(Days::new(14)).unwrap()),
            owner: Set(DeadlineOwner::CorrectiveActionOwner),
            owner_email: Set(format!("owner{i}@acme.test")),
            status: Set(DeadlineStatus::Open),
            created_at: Set(Utc::now()),
            closed_at: Set(None),
            next_step_on: Set(Some(today)),
        })
        .collect();
    for chunk in rows.chunks(100) {
        Deadline::insert_many(chunk.to_vec()).exec_without_returning(&db).await.unwrap();
    }
}

async fn a_worker_killed_mid_batch_and_restarted_delivers_every_email(backend: Backend) {
    // Arrange: 300 due steps and a mail server that takes 30 ms per message.
    let app = spawn_app(backend).await;
    let smtp = SmtpSink::start();
    smtp.slow_down(30);
    let engagement = app.engagement_in_stage2().await;
    insert_deadlines_due_today(&app, &engagement).await;

    // Act: the worker starts, and is killed (SIGKILL) once some emails are out.
    let mut first = start_worker_process(&app, smtp.port);
    wait_at_most(60, "the first emails arrive", || async { smtp.received().len() >= 40 }).await;
    first.0.kill().expect("SIGKILL the worker");
    first.0.wait().expect("the worker is gone");
    let before_restart = smtp.received().len();
    assert!(before_restart < DUE, "the kill landed mid-batch ({before_restart} of {DUE} sent)");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let _second = start_worker_process(&app, smtp.port);

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
    assert!(repeats <= worker::startup::DELIVERY_CONCURRENCY, "{repeats} repeats: more than the deliveries in flight");
    assert_eq!(Notification::find().filter(ours()).count(&db).await.unwrap(), DUE as u64, "each step claimed once");
}
on_both_databases!(a_worker_killed_mid_batch_and_restarted_delivers_every_email);
