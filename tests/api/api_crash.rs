//! The API process killed with SIGKILL while it is writing, then restarted on the same database:
//! every write it acknowledged is there, none is there twice, and the client's retries (same
//! `Idempotency-Key`) get the stored answers.

use std::collections::HashMap;

use futures::StreamExt;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, spawn_app};
use crate::on_both_databases;
use crate::processes::{process_token, start_api};

const REQUESTS: usize = 300;
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
    let token = process_token(&app, "admin", "sync@grc.test");
    let first = start_api(&app).await;

    // Act: an integration sends 300 creations, 16 at a time; the process is killed mid-way.
    let mut acknowledged: HashMap<usize, String> = HashMap::new();
    let address = first.address().to_owned();
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
                first.kill();
            }
        }
    }
    assert!((60..REQUESTS).contains(&acknowledged.len()), "the kill landed mid-way ({})", acknowledged.len());

    // Act: the process restarts; the integration retries every request with its key.
    let second = start_api(&app).await;
    let mut retried = Vec::new();
    for i in 0..REQUESTS {
        retried.push((i, create(&app, second.address(), &token, &organization, i).await.expect("an answer")));
    }

    // Assert: acknowledged writes come back as they were; every other request is answered too
    // (the response of a write is committed with it: none is left "in progress"); no 5xx.
    for (i, (status, body)) in &retried {
        match (*status, acknowledged.get(i)) {
            (201, Some(id)) => assert_eq!(body["id"].as_str(), Some(id.as_str()), "request {i} is replayed"),
            (201, None) => {}
            (other, _) => panic!("request {i} answered {other} after the restart: {body}"),
        }
    }
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
    // A key and its response are committed with the write: each request made exactly one
    // engagement, whether it committed before the kill (its retry replayed) or after the restart.
    assert_eq!(ids.len(), answered, "one engagement per request: none doubled or lost");
    eprintln!(
        "API kill: {} acknowledged before the kill, {answered} answered after, {} engagements",
        acknowledged.len(),
        ids.len()
    );
    for id in acknowledged.values() {
        assert!(ids.contains(id), "acknowledged engagement {id} is there");
    }
}
on_both_databases!(an_api_killed_while_writing_keeps_every_acknowledged_write_once);
