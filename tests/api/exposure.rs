//! Least exposure: a certification body's coordinator is shown only to that body's people, the
//! platform's admins and the organizations that selected the body; a mail server's error only to
//! the body's side and admins; no database message in any problem.

use api::auth::Role;
use reqwest::Method;
use serde_json::Value;

use crate::helpers::{Backend, spawn_app};
use crate::on_both_databases;

async fn a_coordinator_s_address_and_a_mail_server_s_words_reach_only_who_needs_them(backend: Backend) {
    // Arrange: an organization that selected one body; another body it never dealt with.
    let app = spawn_app(backend).await;
    let organization = app.create_organization(120).await;
    let selected = app.create_certification_body(true).await;
    let stranger = app.create_certification_body(true).await;
    let engagement = app.engagement_selecting(&organization, &selected).await;
    let failed = app.insert_failed_notification(&engagement).await;
    let client = app.token_for(Role::ClientManager, Some(&organization), None);
    let strangers_coordinator = app.token_for(Role::Coordinator, None, Some(&stranger));
    let selected_coordinator = app.token_for(Role::Coordinator, None, Some(&selected));
    let coordinator_of = |token: String, body: String| {
        let app = &app;
        async move {
            let path = format!("/api/v1/certification-bodies/{body}");
            app.send_as(&token, Method::GET, &path, None).await.expect(200).body["coordinator_email"].clone()
        }
    };

    // Act / Assert 1: who sees whose coordinator.
    assert_eq!(coordinator_of(client.clone(), selected.clone()).await, "coordinator@cb.test", "the body it selected");
    assert_eq!(coordinator_of(client.clone(), stranger.clone()).await, Value::Null, "a body it never selected");
    assert_eq!(coordinator_of(strangers_coordinator.clone(), selected.clone()).await, Value::Null, "a competitor's");
    assert_eq!(coordinator_of(strangers_coordinator, stranger.clone()).await, "coordinator@cb.test", "its own");
    assert_eq!(coordinator_of(app.token.clone(), stranger.clone()).await, "coordinator@cb.test", "an admin");
    let listed = app.send_as(&client, Method::GET, "/api/v1/certification-bodies?limit=100", None).await.expect(200);
    let listed_coordinator = |id: &str| {
        listed.body["items"].as_array().unwrap().iter().find(|b| b["id"] == id).unwrap()["coordinator_email"].clone()
    };
    assert_eq!(
        (listed_coordinator(&selected), listed_coordinator(&stranger)),
        ("coordinator@cb.test".into(), Value::Null)
    );

    // Act / Assert 2: the failed email's error, as each side reads it.
    let error_for = |token: String| {
        let app = &app;
        let failed = failed.clone();
        async move {
            let list = app.send_as(&token, Method::GET, "/api/v1/notifications?status=failed", None).await.expect(200);
            let item = list.body["items"].as_array().unwrap().iter().find(|n| n["id"] == failed).cloned().unwrap();
            item["last_error"].as_str().unwrap().to_owned()
        }
    };
    let for_the_body = error_for(selected_coordinator).await;
    let for_the_client = error_for(client).await;
    assert_ne!(for_the_body, for_the_client);
    assert!(for_the_client.starts_with("delivery did not succeed yet"), "{for_the_client}");
    assert!(!for_the_client.contains(&for_the_body), "the server's words stay on the body's side");
}
on_both_databases!(a_coordinator_s_address_and_a_mail_server_s_words_reach_only_who_needs_them);
