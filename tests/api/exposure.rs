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

async fn certflow_emails_only_addresses_on_the_organization_s_or_the_selected_body_s_domains(backend: Backend) {
    // Arrange: an organization on acme.test (its contacts' domain); a body selected later.
    let app = spawn_app(backend).await;
    let organization = app.create_organization(120).await;
    let client = app.token_for(Role::ClientManager, Some(&organization), None);
    let new_engagement =
        |manager: &str| serde_json::json!({ "organization_id": organization, "manager_email": manager });

    // Act / Assert 1: a client cannot name an outsider as the engagement's manager.
    let refused =
        app.send_as(&client, Method::POST, "/api/v1/engagements", Some(&new_engagement("victim@mail.example"))).await;
    assert_eq!((refused.status, refused.problem_type().as_str()), (422, "email-domain-not-registered"));
    assert!(refused.str("detail").starts_with("manager_email:"), "{}", refused.body);
    let listed = app.get(&format!("/api/v1/engagements?organization_id={organization}")).await.expect(200);
    assert_eq!(listed.body["items"], serde_json::json!([]), "nothing was written");
    app.send_as(&client, Method::POST, "/api/v1/engagements", Some(&new_engagement("cto@ops.acme.test")))
        .await
        .expect(201);

    // Act / Assert 2: the domains are the platform's: a client cannot add one, an admin can.
    let path = format!("/api/v1/organizations/{organization}");
    let mut details = app.get(&path).await.expect(200).body;
    assert_eq!(details["email_domains"], serde_json::json!(["acme.test"]));
    for field in ["id", "created_at", "updated_at"] {
        details.as_object_mut().unwrap().remove(field);
    }
    details["email_domains"] = serde_json::json!(["acme.test", "mail.example"]);
    let forbidden = app.send_as(&client, Method::PUT, &path, Some(&details)).await;
    assert_eq!((forbidden.status, forbidden.problem_type().as_str()), (403, "forbidden"), "{}", forbidden.body);
    let mut outsider = app.get(&path).await.expect(200).body;
    for field in ["id", "created_at", "updated_at", "email_domains"] {
        outsider.as_object_mut().unwrap().remove(field);
    }
    outsider["isms_manager_email"] = serde_json::json!("isms@mail.example");
    let refused = app.send_as(&client, Method::PUT, &path, Some(&outsider)).await;
    assert_eq!((refused.status, refused.problem_type().as_str()), (422, "email-domain-not-registered"));
    app.put(&path, &details).await.expect(200);
    app.send_as(&client, Method::POST, "/api/v1/engagements", Some(&new_engagement("isms@mail.example")))
        .await
        .expect(201);

    // Act / Assert 3: a corrective action's owner: the organization's people or the selected
    // body's, nobody else.
    let (engagement, stage2, finding) = app.stage2_with_finding("minor_nc", "A.8.13").await;
    app.set_today(crate::helpers::day(44));
    let completed = serde_json::json!({ "event": "complete_stage2", "audit_id": stage2 });
    app.fire(&engagement, completed).await.expect(200);
    let plan = |owner: &str| {
        serde_json::json!({
            "root_cause": "no owner", "correction": "fixed", "corrective_action": "owner named",
            "owner_email": owner, "evidence": ["dms://e.pdf"]
        })
    };
    let cap = format!("/api/v1/engagements/{engagement}/findings/{finding}/corrective-action");
    let refused = app.post(&cap, &plan("someone@elsewhere.example")).await;
    assert_eq!((refused.status, refused.problem_type().as_str()), (422, "email-domain-not-registered"));
    let refused = app.post(&cap, &plan("someone@cb.test")).await;
    assert_eq!(refused.problem_type(), "email-domain-not-registered", "the body's person, not its domain");
    app.post(&cap, &plan("coordinator@cb.test")).await.expect(201);
}
on_both_databases!(certflow_emails_only_addresses_on_the_organization_s_or_the_selected_body_s_domains);
