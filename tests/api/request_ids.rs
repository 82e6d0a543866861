//! Every answer carries its request's id (`X-Request-Id`: the caller's when usable, else a new
//! one), and every problem body names it, so a refusal reported by a user leads to its log lines.

use crate::helpers::{Backend, spawn_app};
use crate::on_both_databases;

async fn each_answer_and_problem_carries_the_request_s_id(backend: Backend) {
    let app = spawn_app(backend).await;
    let missing = format!("{}/api/v1/engagements/{}", app.address, uuid::Uuid::now_v7());

    // A caller's id is echoed, in the header and in the problem.
    let request = app.client.get(&missing).bearer_auth(&app.token).header("X-Request-Id", "grc-sync-7f3a");
    let refused = app.reply(request).await.expect(404);
    assert_eq!(refused.header("x-request-id").as_deref(), Some("grc-sync-7f3a"));
    assert_eq!(refused.body["request_id"], "grc-sync-7f3a");
    assert_eq!(refused.problem_type(), "not-found", "the problem is otherwise unchanged");

    // Without one (or with an unusable one), one is made, and the problem names the same.
    for header in [None, Some("x".repeat(200))] {
        let mut request = app.client.get(&missing).bearer_auth(&app.token);
        if let Some(value) = &header {
            request = request.header("X-Request-Id", value);
        }
        let refused = app.reply(request).await.expect(404);
        let made = refused.header("x-request-id").expect("an id is always sent back");
        assert!(uuid::Uuid::parse_str(&made).is_ok(), "{made}");
        assert_eq!(refused.body["request_id"], made.as_str());
    }

    // A success carries an id too, and its body is left alone.
    let listed = app.get("/api/v1/organizations").await.expect(200);
    assert!(listed.header("x-request-id").is_some());
    assert!(listed.body.get("request_id").is_none());
}
on_both_databases!(each_answer_and_problem_carries_the_request_s_id);

#[tokio::test]
async fn with_log_format_json_each_request_s_line_is_json_naming_its_id_and_caller() {
    use std::io::Read;
    // Arrange: the API as a process of its own, logging JSON to a pipe.
    let app = crate::helpers::spawn_app(Backend::Sqlite).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = crate::processes::certflow(&app)
        .arg("serve")
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info,sqlx=warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the API process");
    let address = format!("http://127.0.0.1:{port}");
    crate::helpers::wait_at_most(30, "the API process is ready", || async {
        app.client.get(format!("{address}/readyz")).send().await.is_ok_and(|r| r.status().is_success())
    })
    .await;
    let token = crate::processes::process_token(&app, "admin", "ops@certflow.test");

    // Act
    let request =
        app.client.get(format!("{address}/api/v1/organizations")).bearer_auth(&token).header("X-Request-Id", "json-7");
    app.reply(request).await.expect(200);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    child.kill().unwrap();
    let mut out = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).unwrap();
    child.wait().unwrap();

    // Assert: every line is JSON; the request's line names its id, path, caller and status.
    let lines: Vec<serde_json::Value> =
        out.lines().map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"))).collect();
    let line = lines
        .iter()
        .find(|l| l["span"]["request_id"] == "json-7" && l["fields"]["message"] == "request")
        .unwrap_or_else(|| panic!("no line for the request in {out}"));
    assert_eq!(line["span"]["path"], "/api/v1/organizations");
    assert_eq!(line["span"]["subject"], "ops@certflow.test");
    assert_eq!(line["fields"]["status"], 200);
}
