//! Scale-out on PostgreSQL: two API processes and two worker processes on one database. A client
//! sends each write to both APIs at once (as a retrying integration behind a load balancer does)
//! while the workers deliver reminders: nothing is lost and nothing is done twice.

use std::collections::HashSet;

use chrono::Utc;
use entities::domain::reminders::NotificationStatus;
use entities::orm::{notification, prelude::*};
use futures::future::join_all;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::{Backend, Reply, TestApp, a_day_already_due_by_the_wall_clock, spawn_app, wait_at_most};
use crate::processes::{CertflowProcess, process_token, start_api, start_worker};
use crate::smtp::SmtpSink;

const ENGAGEMENTS: usize = 20;
const DUE_PER_ENGAGEMENT: usize = 10;

async fn post(app: &TestApp, api: &CertflowProcess, token: &str, path: &str, key: Option<&str>, body: &Value) -> Reply {
    let mut request = app.client.post(format!("{}{path}", api.address())).bearer_auth(token).json(body);
    if let Some(key) = key {
        request = request.header("Idempotency-Key", key);
    }
    app.reply(request).await
}

#[tokio::test]
async fn two_api_processes_and_two_workers_on_postgres_lose_and_double_nothing() {
    // Arrange: one database, two API processes, two worker processes (scanning every second).
    let app = spawn_app(Backend::Postgres).await;
    let smtp = SmtpSink::start();
    let organization = app.create_organization(120).await;
    let cb = app.create_certification_body(true).await;
    let apis = [start_api(&app).await, start_api(&app).await];
    let worker_settings = [("SCAN_SCHEDULE", "* * * * * *"), ("DELIVERY_CONCURRENCY", "8")];
    let _workers = [start_worker(&app, smtp.port, &worker_settings), start_worker(&app, smtp.port, &worker_settings)];
    let token = process_token(&app, "admin", "grc@scale.test");

    // Act: each creation goes to both APIs at once, with one Idempotency-Key.
    let creations = join_all((0..ENGAGEMENTS).map(|i| {
        let (app, apis, token, organization) = (&app, &apis, &token, &organization);
        async move {
            let body = json!({ "organization_id": organization, "manager_email": format!("manager{i}@acme.test") });
            let key = format!("scale-out-{i}");
            let path = "/api/v1/engagements";
            tokio::join!(
                post(app, &apis[0], token, path, Some(&key), &body),
                post(app, &apis[1], token, path, Some(&key), &body)
            )
        }
    }))
    .await;

    // Assert: one engagement per key; the other API replayed it or said it was in progress.
    let mut engagements = Vec::new();
    for (i, (first, second)) in creations.iter().enumerate() {
        let created: Vec<&Reply> = [first, second].into_iter().filter(|r| r.status == 201).collect();
        let others: Vec<&Reply> = [first, second].into_iter().filter(|r| r.status != 201).collect();
        assert!(!created.is_empty(), "creation {i}: {} and {}", first.body, second.body);
        for other in others {
            assert_eq!((other.status, other.problem_type().as_str()), (409, "idempotency-key-in-progress"), "{i}");
        }
        let ids: HashSet<String> = created.iter().map(|r| r.str("id")).collect();
        assert_eq!(ids.len(), 1, "creation {i}: a replay answers the same engagement");
        engagements.extend(ids);
    }
    let listed = app.get(&format!("/api/v1/engagements?organization_id={organization}&limit=200")).await.expect(200);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), ENGAGEMENTS, "one engagement per key, none doubled");

    // Arrange: each engagement gets a selected proposal and due reminders (each deadline has one
    // step already due by the system clock, which the processes use, whatever the hour).
    for engagement in &engagements {
        let proposal = app.propose(engagement, &cb).await;
        app.select_proposal(engagement, &proposal).await;
        app.insert_due_deadlines(engagement, DUE_PER_ENGAGEMENT, a_day_already_due_by_the_wall_clock()).await;
    }

    // Act: while the workers deliver, each engagement letter is signed through both APIs at once.
    let signings = join_all(engagements.iter().map(|engagement| {
        let (app, apis, token) = (&app, &apis, &token);
        async move {
            let path = format!("/api/v1/engagements/{engagement}/events");
            let body = json!({ "event": "sign_engagement_letter", "signed_on": Utc::now().date_naive() });
            tokio::join!(post(app, &apis[0], token, &path, None, &body), post(app, &apis[1], token, &path, None, &body))
        }
    }))
    .await;

    // Assert: one signing per engagement took effect, the other was refused by the state; one
    // history entry each.
    for (engagement, (first, second)) in engagements.iter().zip(&signings) {
        let mut statuses = [first.status, second.status];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409], "{engagement}: {} / {}", first.body, second.body);
        let refused = if first.status == 409 { first } else { second };
        assert_eq!(refused.problem_type(), "illegal-transition");
        assert_eq!(refused.body["state"], "stage1");
        let history = app.history_actions(engagement).await;
        assert_eq!(history.iter().filter(|a| *a == "sign_engagement_letter").count(), 1, "{engagement}: {history:?}");
    }

    // Assert: every due reminder was claimed once and sent once, by one worker or the other.
    let due = (ENGAGEMENTS * DUE_PER_ENGAGEMENT) as u64;
    let db = app.db().await;
    let ours = || notification::Column::StepKey.eq("reminder-14");
    wait_at_most(120, "every reminder is sent", || async {
        let sent =
            Notification::find().filter(ours()).filter(notification::Column::Status.eq(NotificationStatus::Sent));
        sent.count(&db).await.unwrap() == due
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(Notification::find().filter(ours()).count(&db).await.unwrap(), due, "each step claimed once");
    let received: Vec<_> =
        smtp.received().into_iter().filter(|m| m.to.iter().all(|to| to.starts_with("owner"))).collect();
    let message_ids: HashSet<String> = received.iter().map(|m| m.message_id()).collect();
    assert_eq!((received.len() as u64, message_ids.len() as u64), (due, due), "every reminder once, none twice");
}
