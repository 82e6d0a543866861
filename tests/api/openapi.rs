//! The served OpenAPI document is the checked-in `openapi/openapi.json`.

use crate::helpers::{Backend, spawn_app};

#[tokio::test]
async fn the_served_spec_matches_the_checked_in_file() {
    let app = spawn_app(Backend::Sqlite).await;
    let served = app.reply(app.client.get(format!("{}/api-docs/openapi.json", app.address))).await.expect(200).body;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi/openapi.json");
    let checked_in: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("openapi/openapi.json exists")).unwrap();
    assert!(
        served == checked_in,
        "openapi/openapi.json is stale: run `cargo run -p openapi > openapi/openapi.json` and commit it"
    );
    assert_eq!(served["openapi"], "3.1.0");
    let docs = app.reply(app.client.get(format!("{}/docs/", app.address))).await;
    assert_eq!(docs.status, 200, "the docs page is served");
}
