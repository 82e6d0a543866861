//! Moving from the embedded SQLite database to PostgreSQL (and back) with `certflow export` and
//! `certflow import`, as real processes: every record arrives, the API answers the same on both,
//! and a cut-off file or a target that holds records is refused with nothing written.

use std::path::PathBuf;

use serde_json::json;

use crate::helpers::{Backend, TestApp, spawn_app};
use crate::processes::certflow;

fn export_file() -> PathBuf {
    std::env::temp_dir().join(format!("certflow-export-{}.jsonl", uuid::Uuid::now_v7()))
}

/// `certflow <command> <file>` on `app`'s database: its output, or its error.
fn run(app: &TestApp, command: &str, file: &std::path::Path) -> Result<String, String> {
    let output = certflow(app).args([command, file.to_str().unwrap()]).output().expect("run certflow");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    if output.status.success() { Ok(text(&output.stdout)) } else { Err(text(&output.stderr)) }
}

/// What the admin reads of every engagement (each view and its records) and of the lists.
async fn everything(app: &TestApp, engagements: &[&str]) -> Vec<(String, serde_json::Value)> {
    let mut paths: Vec<String> =
        ["/api/v1/engagements?limit=200", "/api/v1/organizations?limit=200", "/api/v1/certification-bodies?limit=200"]
            .map(str::to_owned)
            .into();
    paths.push("/api/v1/notifications?limit=200".to_owned());
    for engagement in engagements {
        for records in [
            "",
            "/audits",
            "/findings",
            "/corrective-actions",
            "/deadlines",
            "/decisions",
            "/documents",
            "/history?limit=200",
            "/proposals",
            "/statement-of-applicability",
        ] {
            paths.push(format!("/api/v1/engagements/{engagement}{records}"));
        }
    }
    let mut read = Vec::new();
    for path in paths {
        let reply = app.get(&path).await.expect(200);
        read.push((path, reply.body));
    }
    read
}

/// `value` with every instant cut to microseconds: PostgreSQL keeps no finer time, SQLite keeps
/// the nanoseconds of the system clock (the test inserts one such email).
fn to_microseconds(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(text) if text.ends_with('Z') && text.contains('T') => {
            let cut = match text.split_once('.') {
                Some((whole, fraction)) if fraction.len() > 7 => format!("{whole}.{}Z", &fraction[..6]),
                _ => text,
            };
            Value::String(cut)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(to_microseconds).collect()),
        Value::Object(fields) => Value::Object(fields.into_iter().map(|(k, v)| (k, to_microseconds(v))).collect()),
        other => other,
    }
}

async fn a_database_moves_with_every_record_and_answers_the_same(from: Backend, to: Backend) {
    // Arrange: a certified engagement (audits, findings, corrective actions, decision, certificate,
    // history, deadlines), one in stage 2 with a finding, and a failed email.
    let source = spawn_app(from).await;
    let certified = source.certified_engagement().await;
    let (in_stage2, _, _) = source.stage2_with_finding("minor_nc", "A.5.1").await;
    source.insert_failed_notification(&in_stage2).await;
    // And a webhook endpoint with a failed message (its event, the outbox's queue).
    let organization = source.engagement(&in_stage2).await.expect(200).str("organization_id");
    let endpoint = json!({ "url": "https://hooks.example.com/certflow", "organization_id": organization });
    let endpoint = source.post("/api/v1/webhook-endpoints", &endpoint).await.expect(201).str("id");
    crate::webhooks::insert_failed_message(&source, &endpoint, &in_stage2).await;
    let target = spawn_app(to).await;
    target.set_now(source.clock.now());
    let file = export_file();

    // Act: export from one, import into the other.
    let exported = run(&source, "export", &file).expect("certflow export");
    let imported = run(&target, "import", &file).expect("certflow import");

    // Assert: the same records, read the same through the API.
    let records = |said: &str| said.split(": ").nth(1).unwrap().trim().to_owned();
    assert_eq!(records(&exported), records(&imported), "{exported} / {imported}");
    for table in ["webhook_endpoints", "webhook_events", "webhook_messages"] {
        assert!(imported.contains(&format!(" {table}")), "{table} moved: {imported}");
    }
    let engagements = [certified.as_str(), in_stage2.as_str()];
    let (before, after) = (everything(&source, &engagements).await, everything(&target, &engagements).await);
    for path in [
        "/api/v1/webhook-endpoints?limit=200".to_owned(),
        format!("/api/v1/webhook-endpoints/{endpoint}/messages"),
        format!("/api/v1/webhook-endpoints/{endpoint}/attempts"),
    ] {
        let read_before = to_microseconds(source.get(&path).await.expect(200).body);
        assert_eq!(read_before, target.get(&path).await.expect(200).body, "GET {path} answers the same after the move");
    }
    for ((path, read_before), (_, read_after)) in before.iter().zip(&after) {
        let read_before = to_microseconds(read_before.clone());
        assert_eq!(&read_before, read_after, "GET {path} answers the same after the move");
    }
    let certificate = source.get(&format!("/api/v1/engagements/{certified}/certificate")).await.expect(200);
    let number = certificate.str("number");
    let verification = format!("/api/v1/certificates/{number}/verification");
    assert_eq!(source.get(&verification).await.expect(200).body, target.get(&verification).await.expect(200).body);

    // A second import into the target, which now holds records, is refused and changes nothing.
    let refused = run(&target, "import", &file).expect_err("an import into a database with records");
    assert!(refused.contains("holds records already"), "{refused}");
    assert_eq!(everything(&target, &engagements).await, after);
    std::fs::remove_file(&file).ok();
}

#[tokio::test]
async fn sqlite_moves_to_postgres_with_every_record_and_answers_the_same() {
    a_database_moves_with_every_record_and_answers_the_same(Backend::Sqlite, Backend::Postgres).await;
}

#[tokio::test]
async fn postgres_moves_to_sqlite_with_every_record_and_answers_the_same() {
    a_database_moves_with_every_record_and_answers_the_same(Backend::Postgres, Backend::Sqlite).await;
}

#[tokio::test]
async fn a_cut_off_export_is_refused_and_writes_nothing() {
    // Arrange: an export whose last lines are lost.
    let source = spawn_app(Backend::Sqlite).await;
    source.certified_engagement().await;
    let file = export_file();
    run(&source, "export", &file).expect("certflow export");
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let cut = lines[..lines.len() - 3].join("\n") + "\n";
    std::fs::write(&file, cut).unwrap();
    let target = spawn_app(Backend::Postgres).await;

    // Act
    let refused = run(&target, "import", &file).expect_err("a cut-off export");

    // Assert: named, and nothing was written.
    assert!(refused.contains("cut off"), "{refused}");
    let listed = target.get("/api/v1/engagements").await.expect(200);
    assert_eq!(listed.body["items"], serde_json::json!([]));
    assert_eq!(target.get("/api/v1/organizations").await.expect(200).body["items"], serde_json::json!([]));
    std::fs::remove_file(&file).ok();
}
