//! Graceful shutdown of real processes signalled with SIGTERM: the API answers every request it
//! took (none is cut by a reset) and writes every one it acknowledged; the worker finishes the
//! emails it is sending and hands back the jobs it held, which another worker sends at once,
//! none lost and none twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use entities::domain::reminders::NotificationStatus;
use entities::orm::{notification, prelude::*};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

use crate::helpers::{Backend, TestApp, a_day_already_due_by_the_wall_clock, spawn_app, wait_at_most};
use crate::on_both_databases;
use crate::processes::{process_token, start_api_with, start_worker};
use crate::smtp::SmtpSink;

fn organization_body(n: usize) -> serde_json::Value {
    json!({
        "legal_name": format!("Shutdown Test {n} Ltd"),
        "isms_scope": "Operations",
        "persons": 20,
        "sites": ["Leeds"],
        "isms_manager_email": "isms@acme.test",
        "executive_email": "ceo@acme.test"
    })
}

/// A client that opens a connection per request: a reused idle connection that the server closes
/// as it stops is a race of HTTP keep-alive, not a request the server cut.
fn fresh_connections() -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(0).build().unwrap()
}

async fn organizations(app: &TestApp) -> u64 {
    Organization::find().count(&app.db().await).await.unwrap()
}

async fn under_load_sigterm_drains_then_stops_answering_every_request_it_took(backend: Backend) {
    // Arrange: an API process that drains for 2 s; 8 clients creating organizations in a loop,
    // each stopping once the API says it is not ready (as a load balancer would stop sending).
    let app = spawn_app(backend).await;
    let mut api = start_api_with(&app, &[("SHUTDOWN_DRAIN_SECONDS", "2"), ("SHUTDOWN_GRACE_SECONDS", "10")]).await;
    let address = api.address().to_owned();
    let token = process_token(&app, "admin", "root@platform.test");
    let before = organizations(&app).await;
    let not_ready = Arc::new(AtomicBool::new(false));
    let client = fresh_connections();
    let mut clients = Vec::new();
    for worker in 0..8 {
        let (client, address, token, not_ready) = (client.clone(), address.clone(), token.clone(), not_ready.clone());
        clients.push(tokio::spawn(async move {
            let mut answers: HashMap<String, usize> = HashMap::new();
            let mut n = 0;
            while !not_ready.load(Ordering::Relaxed) {
                n += 1;
                let request = client
                    .post(format!("{address}/api/v1/organizations"))
                    .bearer_auth(&token)
                    .json(&organization_body(worker * 100_000 + n));
                let answer = match request.send().await {
                    Ok(response) => response.status().as_u16().to_string(),
                    Err(error) => format!("error: {error:?}"),
                };
                *answers.entry(answer).or_default() += 1;
            }
            answers
        }));
    }
    let watcher = {
        let (client, address, not_ready) = (client.clone(), address.clone(), not_ready.clone());
        tokio::spawn(async move {
            loop {
                let ready = client.get(format!("{address}/readyz")).send().await;
                if !ready.is_ok_and(|r| r.status() == 200) {
                    not_ready.store(true, Ordering::Relaxed);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };

    // Act: SIGTERM once the load is on.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let signalled = Instant::now();
    api.terminate();
    watcher.await.unwrap();
    let noticed = signalled.elapsed();
    // While it drains, a client keeping its connections alive is told to close them.
    let kept_alive =
        reqwest::Client::new().get(format!("{address}/healthz")).send().await.expect("served while draining");
    let connection = kept_alive.headers().get("connection").map(|v| v.to_str().unwrap().to_owned());
    assert_eq!((kept_alive.status().as_u16(), connection.as_deref()), (200, Some("close")));
    let mut answers: HashMap<String, usize> = HashMap::new();
    for client in clients {
        for (answer, count) in client.await.unwrap() {
            *answers.entry(answer).or_default() += count;
        }
    }
    let exit = api.exit_within(15).await.expect("the API exits after its drain");

    // Assert: every request was answered 201 (no reset, no refusal), each is written, and the
    // process stopped cleanly after its drain.
    let created = answers.get("201").copied().unwrap_or(0);
    assert_eq!(answers.len(), 1, "every answer a 201: {answers:?}");
    assert!(created > 20, "the load was on: {created} created");
    assert_eq!(organizations(&app).await, before + created as u64, "every acknowledged write is there");
    assert!(noticed < Duration::from_secs(2), "/readyz said 503 at once ({noticed:?})");
    assert!(exit.success(), "exit status {exit}");
    assert!(signalled.elapsed() >= Duration::from_secs(2), "it served through its drain");
}
on_both_databases!(under_load_sigterm_drains_then_stops_answering_every_request_it_took);

/// Holds the organizations' table against writers until the transaction ends: on SQLite the
/// database's write lock, on PostgreSQL a table lock that INSERT waits for.
pub async fn hold_writes(db: &sea_orm::DatabaseConnection) -> engine::store::WriteTransaction {
    let txn = engine::store::begin_write(&engine::store::Writer::over(db.clone(), 1)).await.unwrap();
    let hold = match db.get_database_backend() {
        DbBackend::Sqlite => "UPDATE organizations SET legal_name = legal_name WHERE 1 = 0",
        _ => "LOCK TABLE organizations IN EXCLUSIVE MODE",
    };
    txn.execute_unprepared(hold).await.unwrap();
    txn
}

async fn requests_in_flight_at_sigterm_are_answered_before_the_process_exits(backend: Backend) {
    // Arrange: an API process with no drain; the test holds the writes, so four creations wait.
    let app = spawn_app(backend).await;
    let mut api = start_api_with(&app, &[("SHUTDOWN_GRACE_SECONDS", "20")]).await;
    let address = api.address().to_owned();
    let token = process_token(&app, "admin", "root@platform.test");
    let before = organizations(&app).await;
    let db = app.db().await;
    let held = hold_writes(&db).await;
    let client = fresh_connections();
    let in_flight: Vec<_> = (0..4)
        .map(|n| {
            let request =
                client.post(format!("{address}/api/v1/organizations")).bearer_auth(&token).json(&organization_body(n));
            tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Act: SIGTERM while they wait; then the writes are let go (within the 3 s a request waits for
    // a connection: on SQLite three of them queue for the one writer).
    api.terminate();
    wait_at_most(10, "the listener closes", || async {
        client.get(format!("{address}/healthz")).send().await.is_err_and(|e| e.is_connect())
    })
    .await;
    assert!(api.child.try_wait().unwrap().is_none(), "the process waits for the requests in flight");
    held.rollback().await.unwrap();

    // Assert: the four were answered 201 and written; the process then exits cleanly.
    for request in in_flight {
        assert_eq!(request.await.unwrap().expect("an answer, not a reset"), 201);
    }
    let exit = api.exit_within(15).await.expect("the API exits once its requests are answered");
    assert!(exit.success(), "exit status {exit}");
    assert_eq!(organizations(&app).await, before + 4);
}
on_both_databases!(requests_in_flight_at_sigterm_are_answered_before_the_process_exits);

const DUE: usize = 200;

async fn a_worker_stopped_by_sigterm_hands_back_its_jobs_and_another_sends_them_at_once(backend: Backend) {
    // Arrange: 200 due steps, a mail server taking 30 ms a message, and leases of 10 minutes: a
    // job left to its lease would not be sent again within this test.
    let app = spawn_app(backend).await;
    let smtp = SmtpSink::start();
    smtp.slow_down(30);
    let engagement = app.engagement_in_stage2().await;
    app.insert_due_deadlines(&engagement, DUE, a_day_already_due_by_the_wall_clock()).await;
    let settings = [("DELIVERY_LEASE_SECONDS", "600"), ("DELIVERY_CONCURRENCY", "8"), ("SHUTDOWN_GRACE_SECONDS", "20")];
    let mut first = start_worker(&app, smtp.port, &settings);
    wait_at_most(60, "the first emails arrive", || async { smtp.received().len() >= 30 }).await;

    // Act: SIGTERM the worker mid-batch; once it has exited, a second worker starts.
    first.terminate();
    let exit = first.exit_within(25).await.expect("the worker exits within its grace");
    assert!(exit.success(), "exit status {exit}");
    let sent_by_first = smtp.received().len();
    assert!(sent_by_first < DUE, "the stop landed mid-batch ({sent_by_first} of {DUE} sent)");
    let db = app.db().await;
    let ours = || notification::Column::StepKey.eq("reminder-14");
    let sending = Notification::find()
        .filter(ours())
        .filter(notification::Column::Status.eq(NotificationStatus::Sending))
        .count(&db)
        .await
        .unwrap();
    assert_eq!(sending, 0, "the stopped worker holds no email");
    let second = Instant::now();
    let _second = start_worker(&app, smtp.port, &settings);

    // Assert: every email arrives exactly once, well before any lease would have ended.
    wait_at_most(120, "every notification is sent", || async {
        let sent =
            Notification::find().filter(ours()).filter(notification::Column::Status.eq(NotificationStatus::Sent));
        sent.count(&db).await.unwrap() == DUE as u64
    })
    .await;
    assert!(second.elapsed() < Duration::from_secs(300), "sent again without waiting for a lease");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received: Vec<_> =
        smtp.received().into_iter().filter(|m| m.to.iter().all(|to| to.starts_with("owner"))).collect();
    let mut per_message: HashMap<String, usize> = HashMap::new();
    for message in &received {
        *per_message.entry(message.message_id()).or_default() += 1;
    }
    assert_eq!(per_message.len(), DUE, "every email arrived");
    let doubled: Vec<_> = per_message.iter().filter(|(_, n)| **n > 1).collect();
    assert!(doubled.is_empty(), "sent twice: {doubled:?}");
}
on_both_databases!(a_worker_stopped_by_sigterm_hands_back_its_jobs_and_another_sends_them_at_once);
