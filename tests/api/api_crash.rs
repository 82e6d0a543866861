//! The API process killed with SIGKILL while it is writing, then restarted on the same database:
//! every write it acknowledged is there, none is there twice, and the client's retries (same
//! `Idempotency-Key`) get the stored answers.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};

use futures::StreamExt;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, spawn_app, wait_at_most};
use crate::on_both_databases;

const REQUESTS: usize = 300;
const SECRET: &str = "a-test-secret-of-at-least-32-characters";

/// The API as a process of its own; killed when dropped.
struct ApiProcess {
    child: Child,
    address: String,
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(app: &TestApp) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_certflow-under-test"));
    command
        .env("DATABASE_URL", &app.database_url)
        .env("JWT_SECRET", SECRET)
        .env("WORKER_EMBEDDED", "false")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    command
}

async fn start_api(app: &TestApp) -> ApiProcess {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let output = || if std::env::var("TEST_LOG").is_ok() { Stdio::inherit() } else { Stdio::null() };
    let child = command(app)
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .stdout(output())
        .stderr(output())
        .spawn()
        .expect("start the API process");
    let process = ApiProcess { child, address: format!("http://127.0.0.1:{port}") };
    let ready = format!("{}/readyz", process.address);
    wait_at_most(30, "the API process is ready", || async {
        app.client.get(&ready).send().await.is_ok_and(|r| r.status().is_success())
    })
    .await;
    process
}

/// POSTs engagement `index` with its own idempotency key; `None` when the connection broke.
async fn create(app: &TestApp, api: &str, token: &str, organization: &str, index: usize) -> Option<(u16, Value)> {
    let response = app
        .client
        .post(format!("{api}/api/v1/engagements"))
        .bearer_auth(token)
        .header("Idempotency-Key", format!("grc-sync-{index}"))
        .json(&json!({ "organization_id": organization, "manager_email": format!("manager{index}@acme.test") }))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.unwrap_or(Value::Null)))
}

async fn an_api_killed_while_writing_keeps_every_acknowledged_write_once(backend: Backend) {
    // Arrange: the API as a process, and an organization.
    let app = spawn_app(backend).await;
    let organization = app.create_organization(120).await;
    let mint = command(&app).args(["token", "--role", "admin", "--sub", "sync@grc.test"]).output().unwrap();
    let token = String::from_utf8(mint.stdout).unwrap().trim().to_owned();
    let first = start_api(&app).await;

    // Act: an integration sends 300 creations, 16 at a time; the process is killed mid-way.
    let mut acknowledged: HashMap<usize, String> = HashMap::new();
    let address = first.address.clone();
    let mut first = first;
    {
        let mut sends = futures::stream::iter(0..REQUESTS)
            .map(|i| {
                let (app, api, token, organization) = (&app, address.clone(), &token, &organization);
                async move { (i, create(app, &api, token, organization, i).await) }
            })
            .buffer_unordered(16);
        while let Some((i, reply)) = sends.next().await {
            if let Some((201, body)) = reply {
                acknowledged.insert(i, body["id"].as_str().unwrap().to_owned());
            }
            if acknowledged.len() == 60 {
                first.child.kill().expect("SIGKILL the API");
                first.child.wait().expect("the API is gone");
            }
        }
    }
    assert!((60..REQUESTS).contains(&acknowledged.len()), "the kill landed mid-way ({})", acknowledged.len());

    // Act: the process restarts; the integration retries every request with its key.
    let second = start_api(&app).await;
    let mut retried = Vec::new();
    for i in 0..REQUESTS {
        retried.push((i, create(&app, &second.address, &token, &organization, i).await.expect("an answer")));
    }

    // Assert: acknowledged writes come back as they were; nothing is doubled; no 5xx.
    let mut in_progress = 0;
    for (i, (status, body)) in &retried {
        match (*status, acknowledged.get(i)) {
            (201, Some(id)) => assert_eq!(body["id"].as_str(), Some(id.as_str()), "request {i} is replayed"),
            (201, None) => {}
            (409, _) => {
                assert_eq!(body["type"], "https://certflow.dev/problems/idempotency-key-in-progress", "{i}");
                in_progress += 1;
            }
            (other, _) => panic!("request {i} answered {other} after the restart: {body}"),
        }
    }
    assert!(in_progress <= 16, "only requests in flight at the kill can be left in progress ({in_progress})");
    let listed = app.get(&format!("/api/v1/engagements?organization_id={organization}&limit=200")).await.expect(200);
    let mut ids: Vec<String> =
        listed.body["items"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    let mut cursor = listed.body["next_cursor"].as_str().map(str::to_owned);
    while let Some(next) = cursor {
        let page = app
            .get(&format!("/api/v1/engagements?organization_id={organization}&limit=200&cursor={next}"))
            .await
            .expect(200);
        ids.extend(page.body["items"].as_array().unwrap().iter().map(|e| e["id"].as_str().unwrap().to_owned()));
        cursor = page.body["next_cursor"].as_str().map(str::to_owned);
    }
    let answered = retried.iter().filter(|(_, (status, _))| *status == 201).count();
    // A key is recorded in the transaction of its write: the requests left "in progress" are the
    // ones that committed just before the kill, so each of them made one engagement, and every
    // other request made exactly one when it was answered 201.
    assert_eq!(ids.len(), answered + in_progress, "one engagement per committed request: none doubled or lost");
    eprintln!(
        "API kill: {} acknowledged before the kill, {answered} answered after, {in_progress} left in progress, {} engagements",
        acknowledged.len(),
        ids.len()
    );
    for id in acknowledged.values() {
        assert!(ids.contains(id), "acknowledged engagement {id} is there");
    }
}
on_both_databases!(an_api_killed_while_writing_keeps_every_acknowledged_write_once);
