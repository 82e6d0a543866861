//! Faults: the database server stops under the API and comes back. Meanwhile every request is a
//! 503 problem with `Retry-After` (never a 500, never a hang), nothing half-written remains, and
//! the API recovers by itself. The server is a private PostgreSQL instance of the test's own
//! (initdb in a temporary folder), so stopping it disturbs no other test.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use entities::orm::{engagement, history_entry, prelude::*};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

use crate::helpers::{Reply, read_reply, spawn_app_at, wait_at_most};

/// A PostgreSQL server of the test's own, on a free port, removed on drop.
struct PrivatePostgres {
    folder: PathBuf,
    port: u16,
}

fn as_postgres(program: &str, args: &[&str]) -> std::process::Output {
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's programs under /usr/lib/postgresql")
        .filter_map(Result::ok)
        .map(|version| version.path().join("bin"))
        .find(|bin| bin.join(program).exists())
        .expect("the PostgreSQL server programs");
    let mut command = if running_as_root() {
        // initdb and postgres refuse to run as root.
        let mut runuser = Command::new("runuser");
        runuser.args(["-u", "postgres", "--"]).arg(bin.join(program));
        runuser
    } else {
        Command::new(bin.join(program))
    };
    command.args(args).output().expect("run a PostgreSQL program")
}

fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

impl PrivatePostgres {
    fn start() -> Self {
        let folder = std::env::temp_dir().join(format!("certflow-pg-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&folder).unwrap();
        if running_as_root() {
            let chown = Command::new("chown").args(["-R", "postgres:postgres"]).arg(&folder).status().unwrap();
            assert!(chown.success());
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let data = folder.join("data").display().to_string();
        let init = as_postgres("initdb", &["-D", &data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
        assert!(init.status.success(), "initdb: {}", String::from_utf8_lossy(&init.stderr));
        let server = Self { folder, port };
        server.run();
        server
    }

    fn data(&self) -> String {
        self.folder.join("data").display().to_string()
    }

    fn run(&self) {
        let options =
            format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.folder.display());
        let log = self.folder.join("server.log").display().to_string();
        let started = as_postgres("pg_ctl", &["-D", &self.data(), "-o", &options, "-l", &log, "-w", "start"]);
        assert!(started.status.success(), "pg_ctl start: {}", String::from_utf8_lossy(&started.stderr));
    }

    /// Stops at once, as a crash or a failover would (no clean shutdown of sessions).
    fn stop(&self) {
        let stopped = as_postgres("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
        assert!(stopped.status.success(), "pg_ctl stop: {}", String::from_utf8_lossy(&stopped.stderr));
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = as_postgres("pg_ctl", &["-D", &self.data(), "-m", "immediate", "stop"]);
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

#[tokio::test]
async fn while_postgres_is_down_requests_get_503_and_the_api_recovers_when_it_returns() {
    // Arrange: the API on a private server, with an organization in it.
    let postgres = PrivatePostgres::start();
    let app = spawn_app_at(&postgres.url()).await;
    let organization = app.create_organization(120).await;
    let readiness = || async {
        let response = app.client.get(format!("{}/readyz", app.address)).send().await.expect("an answer");
        response.status().as_u16()
    };
    assert_eq!(readiness().await, 200);

    // Act: the server stops.
    postgres.stop();

    // Assert: every kind of request is a prompt 503 problem telling the client to retry.
    let started = std::time::Instant::now();
    assert_eq!(readiness().await, 503, "/readyz says the database is gone");
    let read = app.get(&format!("/api/v1/organizations/{organization}")).await;
    let list = app.get("/api/v1/engagements").await;
    let write = app
        .post("/api/v1/engagements", &json!({ "organization_id": organization, "manager_email": "isms@acme.test" }))
        .await;
    for (what, reply) in [("a read", &read), ("a list", &list), ("a write", &write)] {
        assert_eq!(reply.status, 503, "{what}: {}", reply.body);
        assert_eq!(reply.problem_type(), "service-unavailable", "{what}");
        assert!(reply.content_type().starts_with("application/problem+json"), "{what}");
        assert_eq!(reply.header("retry-after").as_deref(), Some("1"), "{what}");
    }
    assert!(started.elapsed() < Duration::from_secs(30), "the 503s came in {:?}", started.elapsed());

    // Act: the server returns.
    postgres.run();

    // Assert: the API serves again without a restart, and the refused write left nothing behind.
    wait_at_most(30, "the API is ready again", || async { readiness().await == 200 }).await;
    let after = app.get(&format!("/api/v1/organizations/{organization}")).await.expect(200);
    assert_eq!(after.body["legal_name"], "Acme Data Ltd");
    let engagements = app.get(&format!("/api/v1/engagements?organization_id={organization}")).await.expect(200);
    assert_eq!(engagements.body["items"], json!([]), "the write refused with 503 was not half-done");
    app.post("/api/v1/engagements", &json!({ "organization_id": organization, "manager_email": "isms@acme.test" }))
        .await
        .expect(201);
}

/// Clients that keep creating engagements until told to stop; each request names its own manager.
const CLIENTS: usize = 8;

#[tokio::test]
async fn postgres_restarted_under_load_fails_requests_only_with_503_and_keeps_every_acknowledged_write() {
    // Arrange: the API on a private server, and 8 clients creating engagements without pause.
    let postgres = PrivatePostgres::start();
    let app = spawn_app_at(&postgres.url()).await;
    let organization = app.create_organization(120).await;
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (http, address, token) = (app.client.clone(), app.address.clone(), app.token.clone());
            let (organization, stop) = (organization.clone(), stop.clone());
            tokio::spawn(async move {
                let mut replies: Vec<(String, Reply)> = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let manager = format!("manager{client}-{}@acme.test", replies.len());
                    let request = http
                        .post(format!("{address}/api/v1/engagements"))
                        .bearer_auth(&token)
                        .timeout(Duration::from_secs(30))
                        .json(&json!({ "organization_id": organization, "manager_email": manager }));
                    // An answer, not a hang or a dropped connection.
                    replies.push((manager, read_reply(request).await));
                }
                replies
            })
        })
        .collect();
    wait_at_most(30, "the clients are writing", || async {
        Engagement::find().all(&app.db().await).await.is_ok_and(|rows| rows.len() >= 20)
    })
    .await;

    // Act: the server stops at once under the load, and starts again after 4 s (longer than the
    // 3 s a request waits for a connection, so waiting requests are refused too, not only the
    // ones whose connection broke).
    postgres.stop();
    tokio::time::sleep(Duration::from_secs(4)).await;
    postgres.run();
    let readiness = || async {
        let response = app.client.get(format!("{}/readyz", app.address)).send().await.expect("an answer");
        response.status().as_u16()
    };
    wait_at_most(30, "the API is ready again", || async { readiness().await == 200 }).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut replies = Vec::new();
    for client in clients {
        replies.extend(client.await.unwrap());
    }

    // Assert: every reply was a 201 or a 503 problem, and writes resumed after the restart.
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for (manager, reply) in &replies {
        *statuses.entry(reply.status).or_default() += 1;
        assert!(matches!(reply.status, 201 | 503), "{manager}: {} {}", reply.status, reply.body);
        if reply.status == 503 {
            assert!(
                reply.content_type().starts_with("application/problem+json"),
                "{manager}: {}",
                reply.content_type()
            );
        }
    }
    eprintln!("PostgreSQL restart under load: {statuses:?}");
    assert!(statuses.get(&503).is_some_and(|n| *n > 0), "the restart hit requests: {statuses:?}");
    let last_of_each_client: Vec<u16> = (0..CLIENTS)
        .map(|client| {
            let prefix = format!("manager{client}-");
            replies.iter().rev().find(|(m, _)| m.starts_with(&prefix)).map_or(0, |(_, reply)| reply.status)
        })
        .collect();
    assert!(last_of_each_client.iter().all(|s| *s == 201), "every client writes again: {last_of_each_client:?}");

    // Assert: every acknowledged engagement is there with its history; a refused one is there only
    // if its commit reached the server before the connection broke (at most one per client), and
    // then whole.
    let db = app.db().await;
    let stored =
        Engagement::find().filter(engagement::Column::OrganizationId.eq(organization.parse::<uuid::Uuid>().unwrap()));
    let stored = stored.all(&db).await.unwrap();
    let stored_managers: HashSet<String> = stored.iter().map(|e| e.manager_email.clone()).collect();
    assert_eq!(stored_managers.len(), stored.len(), "no engagement doubled");
    let acknowledged: HashSet<String> =
        replies.iter().filter(|(_, reply)| reply.status == 201).map(|(manager, _)| manager.clone()).collect();
    assert!(acknowledged.is_subset(&stored_managers), "every acknowledged engagement is there");
    let committed_but_refused = stored_managers.difference(&acknowledged).count();
    assert!(committed_but_refused <= CLIENTS, "{committed_but_refused} refused writes are there");
    let histories = HistoryEntry::find()
        .filter(history_entry::Column::EngagementId.is_in(stored.iter().map(|e| e.id)))
        .all(&db)
        .await
        .unwrap();
    assert_eq!(histories.len(), stored.len(), "each stored engagement has its one history entry: nothing half-written");
}
