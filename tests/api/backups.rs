//! Backups of the embedded SQLite default: `certflow backup` while the server writes, `certflow
//! restore` of a checked copy, and a server that runs on what was restored.

use std::process::Output;

use serde_json::json;

use crate::helpers::{Backend, read_reply, spawn_app};
use crate::processes::{certflow, process_token, start_api_with};

fn said(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn scratch_folder() -> std::path::PathBuf {
    let folder = std::env::temp_dir().join(format!("certflow-backup-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&folder).unwrap();
    folder
}

#[tokio::test]
async fn a_backup_taken_while_certflow_writes_restores_to_a_database_a_server_runs_on() {
    // Arrange: an engagement, and a client that keeps writing while the backup is taken.
    let app = spawn_app(Backend::Sqlite).await;
    let engagement = app.engagement_with_selected_proposal().await;
    let mut acknowledged = Vec::new();
    for _ in 0..10 {
        acknowledged.push(app.create_organization(10).await);
    }
    let folder = scratch_folder();
    let copy = folder.join("certflow-backup.db");
    let (http, address, token) = (app.client.clone(), app.address.clone(), app.token.clone());
    let writing = tokio::spawn(async move {
        let mut written = 0;
        for i in 0..40 {
            let body = json!({
                "legal_name": format!("Writer {i}"), "isms_scope": "scope", "persons": 10,
                "isms_manager_email": "isms@writer.test", "executive_email": "ceo@writer.test"
            });
            let request = http.post(format!("{address}/api/v1/organizations")).bearer_auth(&token).json(&body);
            written += usize::from(read_reply(request).await.status == 201);
        }
        written
    });

    // Act: back up while the writes go on.
    let backup = certflow(&app).arg("backup").arg(&copy).output().expect("certflow backup");
    let written = writing.await.unwrap();

    // Assert: a checked copy; the writes were not refused meanwhile; a second backup never
    // overwrites the first.
    assert!(backup.status.success(), "{}", said(&backup));
    assert!(said(&backup).contains("integrity check passed"), "{}", said(&backup));
    assert_eq!(written, 40, "every write during the backup succeeded");
    let again = certflow(&app).arg("backup").arg(&copy).output().unwrap();
    assert!(!again.status.success() && said(&again).contains("exists already"), "{}", said(&again));

    // Act: restore it as another database, and serve that.
    let restored = format!("sqlite://{}?mode=rwc", folder.join("restored.db").display());
    let restore = certflow(&app).env("DATABASE_URL", &restored).arg("restore").arg(&copy).output().unwrap();
    assert!(restore.status.success(), "{}", said(&restore));
    let twice = certflow(&app).env("DATABASE_URL", &restored).arg("restore").arg(&copy).output().unwrap();
    assert!(!twice.status.success() && said(&twice).contains("--replace"), "{}", said(&twice));
    let api = start_api_with(&app, &[("DATABASE_URL", restored.as_str())]).await;

    // Assert: the restored server has the engagement as it was.
    let admin = process_token(&app, "admin", "ops@certflow.test");
    let request = app.client.get(format!("{}/api/v1/engagements/{engagement}", api.address())).bearer_auth(&admin);
    let read = app.reply(request).await.expect(200);
    let original = app.engagement(&engagement).await.expect(200);
    assert_eq!(
        (read.body["state"].clone(), read.body["version"].clone()),
        (original.body["state"].clone(), original.body["version"].clone())
    );
    let request = app.client.get(format!("{}/api/v1/organizations?limit=200", api.address())).bearer_auth(&admin);
    let listed = app.reply(request).await.expect(200);
    let restored: Vec<&str> =
        listed.body["items"].as_array().unwrap().iter().map(|o| o["id"].as_str().unwrap()).collect();
    for id in &acknowledged {
        assert!(restored.contains(&id.as_str()), "every write acknowledged before the backup began is in it");
    }
    std::fs::remove_dir_all(&folder).ok();
}

#[tokio::test]
async fn a_restore_refuses_what_is_not_a_whole_certflow_database_and_postgres_is_sent_to_its_tools() {
    // Arrange: a text file, a truncated backup, a SQLite database that is not certflow's.
    let app = spawn_app(Backend::Sqlite).await;
    app.engagement_with_selected_proposal().await;
    let folder = scratch_folder();
    let text = folder.join("notes.db");
    std::fs::write(&text, "not a database at all, just some text that is long enough to look like one").unwrap();
    let whole = folder.join("whole.db");
    assert!(certflow(&app).arg("backup").arg(&whole).output().unwrap().status.success());
    let truncated = folder.join("truncated.db");
    let bytes = std::fs::read(&whole).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let foreign = folder.join("foreign.db");
    let other = sea_orm::Database::connect(format!("sqlite://{}?mode=rwc", foreign.display())).await.unwrap();
    sea_orm::ConnectionTrait::execute_unprepared(&other, "CREATE TABLE t (x INTEGER)").await.unwrap();
    other.close().await.unwrap();
    let target = folder.join("target.db");
    let target_url = format!("sqlite://{}?mode=rwc", target.display());

    // Act / Assert: each is refused, saying why, and no database appears.
    for (copy, why) in [(&text, "not a"), (&truncated, ""), (&foreign, "not a certflow database")] {
        let restore = certflow(&app).env("DATABASE_URL", &target_url).arg("restore").arg(copy).output().unwrap();
        assert!(!restore.status.success(), "{} was restored: {}", copy.display(), said(&restore));
        assert!(said(&restore).contains(why), "{}", said(&restore));
        assert!(!target.exists(), "nothing is put in place of the database");
    }
    let postgres = "postgres://postgres@127.0.0.1:5432/test";
    let refused =
        certflow(&app).env("DATABASE_URL", postgres).arg("backup").arg(folder.join("pg.db")).output().unwrap();
    assert!(!refused.status.success() && said(&refused).contains("pg_dump"), "{}", said(&refused));
    std::fs::remove_dir_all(&folder).ok();
}
