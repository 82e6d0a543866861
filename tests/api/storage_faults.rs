//! Faults of the SQLite file's storage: the disk fills up under the API, or the file is read-only.
//! Writes get a clear 503 problem (never a 500), reads go on, nothing acknowledged is lost,
//! nothing refused is half there, the file stays sound, and writes resume by themselves once
//! space (or write access) is back. The file lives on a small tmpfs the test mounts for itself.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

use crate::helpers::{Backend, Reply, TestApp, spawn_app, spawn_app_at};

/// A tmpfs of `megabytes` mounted on a fresh folder; unmounted and removed on drop.
struct SmallDisk {
    folder: PathBuf,
}

impl SmallDisk {
    fn mount(megabytes: u32) -> Self {
        let folder = std::env::temp_dir().join(format!("certflow-disk-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&folder).unwrap();
        let size = format!("size={megabytes}m");
        let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", &size, "tmpfs"]).arg(&folder).output();
        let mounted = mounted.expect("run mount");
        assert!(
            mounted.status.success(),
            "mounting a tmpfs needs root (CI runs as root): {}",
            String::from_utf8_lossy(&mounted.stderr)
        );
        Self { folder }
    }

    fn database_url(&self) -> String {
        format!("sqlite://{}/certflow.db?mode=rwc", self.folder.display())
    }

    /// Writes a filler file until the disk refuses another byte.
    fn fill(&self) -> PathBuf {
        let path = self.folder.join("filler");
        let mut filler = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        loop {
            match filler.write_all(&chunk).and_then(|()| filler.sync_all()) {
                Ok(()) => continue,
                Err(error) if error.kind() == std::io::ErrorKind::StorageFull => break,
                Err(error) => panic!("filling the disk failed otherwise: {error}"),
            }
        }
        let mut byte = 1;
        while byte > 0 {
            // Fill the last partial chunk too, down to the byte.
            byte = filler.write(&chunk[..1]).unwrap_or(0);
        }
        path
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.folder).status();
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

async fn create_engagement(app: &TestApp, organization: &str, index: usize) -> Reply {
    let body = json!({ "organization_id": organization, "manager_email": format!("manager{index}@acme.test") });
    app.post("/api/v1/engagements", &body).await
}

async fn engagement_count(app: &TestApp, organization: &str) -> usize {
    let listed = app.get(&format!("/api/v1/engagements?organization_id={organization}&limit=200")).await.expect(200);
    assert!(listed.body["next_cursor"].is_null(), "fewer than 200 engagements");
    listed.body["items"].as_array().unwrap().len()
}

async fn integrity(app: &TestApp) -> String {
    let db = app.db().await;
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), "PRAGMA integrity_check"))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<String>(0).unwrap()
}

fn assert_storage_problem(reply: &Reply, cause: &str) {
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.problem_type(), "service-unavailable");
    assert!(reply.content_type().starts_with("application/problem+json"));
    let detail = reply.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(cause), "the detail names the cause ({cause}): {detail}");
}

#[tokio::test]
async fn when_the_sqlite_disk_is_full_writes_get_503_reads_go_on_and_nothing_is_lost() {
    // Arrange: the API on a SQLite file on a 16 MB disk, with an organization and 5 engagements.
    let disk = SmallDisk::mount(16);
    let app = spawn_app_at(&disk.database_url()).await;
    let organization = app.create_organization(120).await;
    let mut acknowledged = 0;
    for index in 0..5 {
        create_engagement(&app, &organization, index).await.expect(201);
        acknowledged += 1;
    }

    // Act: the disk fills up; the integration goes on creating engagements.
    let filler = disk.fill();
    let mut refused = None;
    for index in 5..105 {
        let reply = create_engagement(&app, &organization, index).await;
        match reply.status {
            201 => acknowledged += 1,
            503 => {
                refused = Some(reply);
                break;
            }
            other => panic!("a write on a full disk answered {other}: {}", reply.body),
        }
    }

    // Assert: the write is refused with a clear 503; reads still work.
    let refused = refused.expect("a write is refused once the disk is full");
    assert_storage_problem(&refused, "disk is full");
    assert_eq!(refused.header("retry-after").as_deref(), Some("1"));
    app.get(&format!("/api/v1/organizations/{organization}")).await.expect(200);
    assert_eq!(
        engagement_count(&app, &organization).await,
        acknowledged,
        "reads go on; the refused write is not there"
    );

    // Act: space comes back.
    std::fs::remove_file(filler).unwrap();

    // Assert: writes resume without a restart; every acknowledged write is there once; the file is sound.
    create_engagement(&app, &organization, 200).await.expect(201);
    assert_eq!(engagement_count(&app, &organization).await, acknowledged + 1);
    assert_eq!(integrity(&app).await, "ok");
}

#[tokio::test]
async fn on_a_read_only_sqlite_file_writes_get_503_naming_it_and_reads_go_on() {
    // Arrange: a database with an organization and an engagement, then a second API that opens
    // the same file read-only (`mode=ro`: a file or disk it may not write). A running kernel
    // refuses to remount a filesystem read-only while files on it are open for writing, so the
    // read-only file is made by the open mode; SQLite refuses the writes (SQLITE_READONLY) as it
    // would on a read-only disk.
    let writer = spawn_app(Backend::Sqlite).await;
    let organization = writer.create_organization(120).await;
    let engagement = create_engagement(&writer, &organization, 0).await.expect(201).str("id");
    let app = spawn_app_at(&writer.database_url.replace("mode=rwc", "mode=ro")).await;

    // Act + Assert: each kind of write is refused with a clear 503; reads go on.
    let created = create_engagement(&app, &organization, 1).await;
    assert_storage_problem(&created, "read-only");
    let renamed = json!({
        "legal_name": "Acme Renamed Ltd",
        "isms_scope": "SaaS platform operations, London",
        "persons": 120,
        "sites": ["London"],
        "isms_manager_email": "isms@acme.test",
        "executive_email": "ceo@acme.test"
    });
    let updated = app.put(&format!("/api/v1/organizations/{organization}"), &renamed).await;
    assert_storage_problem(&updated, "read-only");
    let event = app.fire(&engagement, json!({ "event": "cancel", "reason": "read-only disk" })).await;
    assert_storage_problem(&event, "read-only");
    assert_eq!(app.engagement(&engagement).await.expect(200).str("state"), "cb_selection");
    assert_eq!(
        app.get(&format!("/api/v1/organizations/{organization}")).await.expect(200).str("legal_name"),
        "Acme Data Ltd"
    );
    assert_eq!(engagement_count(&app, &organization).await, 1, "the refused creation left nothing");

    // Assert: the writable API goes on writing the same file, and the file is sound.
    create_engagement(&writer, &organization, 2).await.expect(201);
    assert_eq!(engagement_count(&app, &organization).await, 2);
    assert_eq!(integrity(&writer).await, "ok");
}
