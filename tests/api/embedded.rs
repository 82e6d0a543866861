//! `certflow serve` with its worker embedded (the default): one process opens its database once.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use entities::domain::reminders::NotificationStatus;
use entities::orm::{notification, prelude::*};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::helpers::{Backend, a_day_already_due_by_the_wall_clock, spawn_app, wait_at_most};
use crate::processes::{process_token, start_api_with};
use crate::smtp::SmtpSink;

/// How many SQLite connections process `pid` holds on the database file `path`: each opens the
/// file once (its write-ahead log and shared memory are files of their own).
fn connections_to(pid: u32, path: &Path) -> usize {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("read the process's descriptors");
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok()).filter(|target| target == path).count()
}

#[tokio::test]
async fn the_embedded_worker_sends_through_the_apis_own_pools_one_writer_and_the_readers() {
    // Arrange: five reminders due; `certflow serve` with its worker (as a new user runs it), at
    // most two read connections, sending to a real SMTP server.
    let app = spawn_app(Backend::Sqlite).await;
    let smtp = SmtpSink::start();
    let engagement = app.engagement_in_stage2().await;
    app.insert_due_deadlines(&engagement, 5, a_day_already_due_by_the_wall_clock()).await;
    let smtp_port = smtp.port.to_string();
    let api = start_api_with(
        &app,
        &[
            ("WORKER_EMBEDDED", "true"),
            ("DATABASE_MAX_CONNECTIONS", "2"),
            ("SMTP_HOST", "127.0.0.1"),
            ("SMTP_PORT", smtp_port.as_str()),
            ("SMTP_SECURITY", "none"),
        ],
    )
    .await;
    let admin = process_token(&app, "admin", "root@platform.test");
    let file: PathBuf = std::fs::canonicalize(engine::store::sqlite_file(&app.database_url).expect("a SQLite file"))
        .expect("the database file");

    // Act: readers at once (the read pool grows to its two), while the worker scans and sends.
    let url = format!("{}/api/v1/engagements/{engagement}", api.address());
    for _ in 0..5 {
        let reads: Vec<_> = (0..16).map(|_| tokio::spawn(app.client.get(&url).bearer_auth(&admin).send())).collect();
        for read in reads {
            assert_eq!(read.await.unwrap().expect("GET the engagement").status(), 200);
        }
    }
    let db = app.db().await;
    let sent = || Notification::find().filter(notification::Column::Status.eq(NotificationStatus::Sent)).count(&db);
    wait_at_most(60, "the embedded worker sends the five reminders", || async { sent().await.unwrap() >= 5 }).await;

    // Assert: the worker's scan, emails and records went through the API's pools: the process
    // holds the file through its two readers and its one writer, not through pools of its own too.
    let received: HashSet<_> = smtp.received().iter().map(|m| m.message_id()).collect();
    assert!(received.len() >= 5, "{} emails received", received.len());
    let connections = connections_to(api.child.id(), &file);
    assert!((2..=3).contains(&connections), "{connections} SQLite connections: two readers and the writer at most");
}
