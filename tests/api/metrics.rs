//! `/metrics` scraped from real certflow processes and read by a Prometheus text parser
//! (`prom_text_format_parser`, a grammar of the exposition format): after known traffic, the
//! counters have moved by exactly what was sent.

use prom_text_format_parser::{Scrape, Type, ValueType};
use reqwest::Method;
use serde_json::json;

use crate::helpers::{Backend, TestApp, a_day_already_due_by_the_wall_clock, spawn_app, wait_at_most};
use crate::on_both_databases;
use crate::processes::{process_token, start_api_with, start_worker};
use crate::smtp::SmtpSink;

/// `GET {url}`, parsed as Prometheus' text format.
async fn scrape(app: &TestApp, url: &str) -> Scrape {
    let answer = app.client.get(url).send().await.expect("scrape /metrics");
    assert_eq!(answer.status(), 200, "GET {url}");
    let content_type = answer.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = answer.text().await.unwrap();
    Scrape::parse(&text).unwrap_or_else(|error| panic!("Prometheus text format: {error:?}\n{text}"))
}

/// The value of `metric` with exactly these `labels` (a histogram's: its count), or 0 when the
/// series does not exist yet.
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let Some(family) = scrape.metrics.iter().find(|family| family.name == metric) else { return 0.0 };
    let wanted = if family.kind == Type::Histogram { ValueType::Count } else { ValueType::Sample };
    let matching: Vec<_> = family
        .samples
        .iter()
        .filter(|sample| sample.value.value_type == wanted && sample.labels.len() == labels.len())
        .filter(|sample| {
            labels.iter().all(|(name, value)| sample.labels.iter().any(|l| l.key == *name && l.value == *value))
        })
        .collect();
    assert!(matching.len() <= 1, "{metric}{labels:?} names one series");
    matching.first().map_or(0.0, |sample| sample.value.value.as_f64())
}

const REQUESTS: &str = "certflow_http_request_duration_seconds";

async fn the_counters_move_by_exactly_the_requests_and_transitions_sent(backend: Backend) {
    // Arrange: an engagement with its body selected; an API process serving /metrics on its port.
    let app = spawn_app(backend).await;
    let engagement = app.engagement_with_selected_proposal().await;
    let api = start_api_with(&app, &[]).await;
    let admin = process_token(&app, "admin", "root@platform.test");
    let metrics_url = format!("{}/metrics", api.address());
    // The census the process takes at start runs beside the first requests: wait for it, so it
    // counts the engagement as it was before the event below.
    wait_at_most(30, "the census taken at start", || async {
        value(&scrape(&app, &metrics_url).await, "certflow_engagements", &[("state", "cb_selection")]) == 1.0
    })
    .await;
    let before = scrape(&app, &metrics_url).await;
    let send = |method: Method, path: String, body: Option<serde_json::Value>| {
        let mut request = app.client.request(method, format!("{}{path}", api.address())).bearer_auth(&admin);
        if let Some(body) = body {
            request = request.json(&body);
        }
        app.reply(request)
    };

    // Act: three reads, two reads of an engagement that does not exist, one refused event and one
    // that fires.
    for _ in 0..3 {
        send(Method::GET, format!("/api/v1/engagements/{engagement}"), None).await.expect(200);
    }
    for _ in 0..2 {
        send(Method::GET, format!("/api/v1/engagements/{}", uuid::Uuid::now_v7()), None).await.expect(404);
    }
    let events = format!("/api/v1/engagements/{engagement}/events");
    let refused = send(Method::POST, events.clone(), Some(json!({ "event": "grant_certification" }))).await;
    assert!(refused.status >= 400, "granting a certificate in cb_selection is refused");
    let refused_code = refused.problem_type().rsplit('/').next().unwrap().to_owned();
    let signed = a_day_already_due_by_the_wall_clock();
    let fired = json!({ "event": "sign_engagement_letter", "signed_on": signed });
    send(Method::POST, events, Some(fired)).await.expect(200);
    // A method HTTP does not have is labelled `other`, never by its name.
    let invented = Method::from_bytes(b"FROBNICATE").unwrap();
    send(invented, format!("/api/v1/engagements/{engagement}"), None).await;
    let after = scrape(&app, &metrics_url).await;

    // Assert: each series moved by exactly what was sent.
    let moved = |metric: &str, labels: &[(&str, &str)]| value(&after, metric, labels) - value(&before, metric, labels);
    let engagement_route = "/api/v1/engagements/{id}";
    let events_route = "/api/v1/engagements/{id}/events";
    assert_eq!(moved(REQUESTS, &[("method", "GET"), ("route", engagement_route), ("status", "200")]), 3.0);
    assert_eq!(moved(REQUESTS, &[("method", "GET"), ("route", engagement_route), ("status", "404")]), 2.0);
    assert_eq!(moved(REQUESTS, &[("method", "POST"), ("route", events_route), ("status", "200")]), 1.0);
    let refused_status = refused.status.to_string();
    assert_eq!(moved(REQUESTS, &[("method", "POST"), ("route", events_route), ("status", &refused_status)]), 1.0);
    assert_eq!(
        moved(REQUESTS, &[("method", "GET"), ("route", "/metrics"), ("status", "200")]),
        1.0,
        "the first scrape"
    );
    let invented_series = after.metrics.iter().flat_map(|family| &family.samples).flat_map(|s| s.labels.iter());
    assert!(invented_series.filter(|label| label.key == "method").all(|label| label.value != "FROBNICATE"));
    let other_methods: f64 = ["404", "405"]
        .iter()
        .map(|status| moved(REQUESTS, &[("method", "other"), ("route", "unmatched"), ("status", status)]))
        .chain(
            ["404", "405"]
                .iter()
                .map(|status| moved(REQUESTS, &[("method", "other"), ("route", engagement_route), ("status", status)])),
        )
        .sum();
    assert_eq!(other_methods, 1.0, "the invented method counted once, as `other`");
    let transitions = "certflow_transitions_total";
    assert_eq!(moved(transitions, &[("event", "sign_engagement_letter"), ("outcome", "fired")]), 1.0);
    let refusal = [("event", "grant_certification"), ("outcome", "refused"), ("code", refused_code.as_str())];
    assert_eq!(moved(transitions, &refusal), 1.0, "refused with {refused_code}");
    // No raw path became a series of its own.
    let routes = after.metrics.iter().flat_map(|family| &family.samples).flat_map(|sample| sample.labels.iter());
    assert!(routes.filter(|label| label.key == "route").all(|label| !label.value.contains(&engagement)));
    // The pools (DATABASE_MAX_CONNECTIONS=5 in these processes) and the census taken at start:
    // the one engagement, in cb_selection.
    assert_eq!(value(&after, "certflow_db_pool_max_connections", &[("pool", "read")]), 5.0);
    let in_use = value(&after, "certflow_db_pool_connections", &[("pool", "read"), ("state", "in_use")]);
    let idle = value(&after, "certflow_db_pool_connections", &[("pool", "read"), ("state", "idle")]);
    assert!(in_use + idle >= 1.0 && in_use + idle <= 5.0, "{in_use} in use, {idle} idle");
    assert_eq!(value(&after, "certflow_engagements", &[("state", "cb_selection")]), 1.0);
    assert_eq!(value(&after, "certflow_engagements", &[("state", "certified")]), 0.0);
}
on_both_databases!(the_counters_move_by_exactly_the_requests_and_transitions_sent);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn metrics_on_a_listener_of_their_own_leave_the_api_port_and_count_a_lone_workers_emails(backend: Backend) {
    // Arrange: five due reminders, an API and a worker each serving /metrics on a port of its own.
    let app = spawn_app(backend).await;
    let smtp = SmtpSink::start();
    let engagement = app.engagement_in_stage2().await;
    let api_metrics = format!("127.0.0.1:{}", free_port());
    let api = start_api_with(&app, &[("METRICS_ADDR", api_metrics.as_str())]).await;
    let worker_metrics = format!("127.0.0.1:{}", free_port());
    let worker_url = format!("http://{worker_metrics}/metrics");
    // The scan runs once at start (then on the minute): the reminders are inserted first.
    app.insert_due_deadlines(&engagement, 5, a_day_already_due_by_the_wall_clock()).await;
    let _worker = start_worker(&app, smtp.port, &[("METRICS_ADDR", worker_metrics.as_str())]);

    // Act: the worker sends what is due (the five reminders, and the escalation of the stage 1
    // validity deadline, long past by the system clock).
    let db = app.db().await;
    let settled = || async {
        use entities::domain::reminders::NotificationStatus as S;
        use entities::orm::{notification, prelude::*};
        use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
        let count =
            |statuses: Vec<S>| Notification::find().filter(notification::Column::Status.is_in(statuses)).count(&db);
        let unsettled = count(vec![S::Pending, S::Sending]).await.unwrap();
        (unsettled == 0).then_some(count(vec![S::Sent]).await.unwrap())
    };
    wait_at_most(60, "the reminders are sent", || async { settled().await.is_some_and(|sent| sent >= 5) }).await;
    let sent = settled().await.expect("every email sent") as f64;

    // Assert: the API's port serves no /metrics; its own listener and the worker's do.
    let on_api_port = app.client.get(format!("{}/metrics", api.address())).send().await.unwrap();
    assert_eq!(on_api_port.status(), 404);
    let api_scrape = scrape(&app, &format!("http://{api_metrics}/metrics")).await;
    assert_eq!(value(&api_scrape, "certflow_db_pool_max_connections", &[("pool", "read")]), 5.0);
    assert_eq!(value(&api_scrape, "certflow_engagements", &[("state", "stage2")]), 1.0);
    let worker_scrape = scrape(&app, &worker_url).await;
    let emails = value(&worker_scrape, "certflow_emails_total", &[("outcome", "sent")]);
    let received = smtp.received().iter().map(|m| m.message_id()).collect::<std::collections::HashSet<_>>().len();
    assert_eq!((emails, received as f64), (sent, sent), "one count per email sent and received");
    assert!(value(&worker_scrape, "certflow_scan_duration_seconds", &[]) >= 1.0, "the scan at start");
    assert!(value(&worker_scrape, "certflow_scan_claimed_steps_total", &[]) >= 5.0);
    assert_eq!(value(&worker_scrape, "certflow_db_pool_max_connections", &[("pool", "read")]), 5.0);
    // Its writes go through a writer of their own, as the API's do: SQLite's one connection, or
    // PostgreSQL's write pool (DATABASE_WRITE_CONNECTIONS, 8 by default).
    let writers = if backend == Backend::Sqlite { 1.0 } else { 8.0 };
    assert_eq!(value(&worker_scrape, "certflow_db_pool_max_connections", &[("pool", "write")]), writers);
    assert_eq!(value(&worker_scrape, "certflow_emails_total", &[("outcome", "failed")]), 0.0);
}
on_both_databases!(metrics_on_a_listener_of_their_own_leave_the_api_port_and_count_a_lone_workers_emails);

async fn writes_queued_for_the_sqlite_writer_show_as_waiting_and_commit_together() {
    // Arrange: an API process; the test holds SQLite's write lock.
    let app = spawn_app(Backend::Sqlite).await;
    let api = start_api_with(&app, &[]).await;
    let admin = process_token(&app, "admin", "root@platform.test");
    let metrics_url = format!("{}/metrics", api.address());
    let waiting = |scrape: &Scrape| value(scrape, "certflow_db_pool_waiting", &[("pool", "write")]);
    let before = scrape(&app, &metrics_url).await;
    assert_eq!(waiting(&before), 0.0);
    let db = app.db().await;
    let held = crate::shutdown::hold_writes(&db).await;

    // Act: three organizations are created meanwhile.
    let writes: Vec<_> = (0..3)
        .map(|n| {
            let request = app
                .client
                .post(format!("{}/api/v1/organizations", api.address()))
                .bearer_auth(&admin)
                .json(&json!({ "legal_name": format!("Queued {n} Ltd"), "isms_scope": "Operations", "persons": 10,
                    "sites": ["York"], "isms_manager_email": "isms@acme.test", "executive_email": "ceo@acme.test" }));
            tokio::spawn(request.send())
        })
        .collect();

    // Assert: the three wait for the writer while the lock is held, none once it is let go; the
    // first (its BEGIN waited for the lock) ended while the two others waited for it, and the
    // three were committed together (SQLITE_GROUP_COMMIT), each answered after that commit.
    wait_at_most(3, "three writes wait for the writer", || async { waiting(&scrape(&app, &metrics_url).await) == 3.0 })
        .await;
    held.rollback().await.unwrap();
    for write in writes {
        assert_eq!(write.await.unwrap().unwrap().status(), 201);
    }
    let after = scrape(&app, &metrics_url).await;
    assert_eq!(waiting(&after), 0.0);
    let moved = |metric: &str| value(&after, metric, &[]) - value(&before, metric, &[]);
    assert_eq!(moved("certflow_sqlite_group_commits_total"), 1.0, "one commit");
    assert_eq!(moved("certflow_sqlite_grouped_writes_total"), 3.0, "of the three writes");
    let organizations = app.get("/api/v1/organizations?limit=100").await.expect(200).body;
    let queued = organizations["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["legal_name"].as_str().is_some_and(|name| name.starts_with("Queued ")));
    assert_eq!(queued.count(), 3, "the three organizations are there");
}

#[tokio::test]
async fn writes_queued_for_the_sqlite_writer_show_as_waiting_and_commit_together_on_sqlite() {
    writes_queued_for_the_sqlite_writer_show_as_waiting_and_commit_together().await;
}
