//! What every answer carries, whoever asks (security headers), and what production leaves out
//! unless asked (the docs page and the served spec).

use entities::clock::Clock;
use entities::settings::Settings;
use migration::{Migrator, MigratorTrait};

use crate::helpers::{Backend, spawn_app};
use crate::on_both_databases;

const HEADERS: [(&str, &str); 4] = [
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
];

async fn every_answer_carries_the_security_headers(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let organization = app.create_organization(20).await;

    // Act: a read, a problem, an unknown route, an unauthenticated one, a public one.
    let answers = [
        app.get(&format!("/api/v1/organizations/{organization}")).await,
        app.get("/api/v1/organizations/not-a-uuid").await,
        app.get("/api/v1/no-such-thing").await,
        app.reply(app.client.get(format!("{}/api/v1/engagements", app.address))).await,
        app.reply(app.client.get(format!("{}/readyz", app.address))).await,
    ];

    // Assert
    for answer in &answers {
        for (name, value) in HEADERS {
            assert_eq!(answer.header(name).as_deref(), Some(value), "{name} on a {} answer", answer.status);
        }
    }
    assert_eq!(answers.iter().map(|a| a.status).collect::<Vec<_>>(), [200, 400, 404, 401, 200]);
}
on_both_databases!(every_answer_carries_the_security_headers);

#[tokio::test]
async fn with_docs_disabled_neither_the_docs_page_nor_the_spec_is_served() {
    // Arrange: the API with DOCS_ENABLED=false (production's default).
    let folder = std::env::temp_dir().join(format!("certflow-docs-{}", uuid::Uuid::now_v7()));
    let url = format!("sqlite://{}/docs.db?mode=rwc", folder.display());
    let vars = [("DATABASE_URL", url.as_str()), ("LISTEN_ADDR", "127.0.0.1:0"), ("DOCS_ENABLED", "false")];
    let settings = Settings::from_vars(vars.map(|(k, v)| (k.to_owned(), v.to_owned()))).expect("settings");
    let db = engine::store::connect(&settings.database_url, 2).await.expect("connect");
    Migrator::up(&db, None).await.expect("migrate");
    let application = api::Application::build_with(&settings, db, Clock::system()).await.expect("build");
    let address = format!("http://127.0.0.1:{}", application.port());
    tokio::spawn(application.run_until_stopped());
    let client = reqwest::Client::new();

    // Act / Assert: both are unknown routes; the API itself answers.
    for path in ["/docs/", "/api-docs/openapi.json"] {
        let status = client.get(format!("{address}{path}")).send().await.expect("an answer").status().as_u16();
        assert_eq!(status, 404, "{path}");
    }
    let health = client.get(format!("{address}/healthz")).send().await.expect("an answer").status().as_u16();
    assert_eq!(health, 200);
    let _ = std::fs::remove_dir_all(&folder);
}
