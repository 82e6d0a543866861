//! Webhooks end to end: a real HTTP receiver in the test process, the API and the worker on both
//! databases, every signature checked by an independent Standard Webhooks implementation (the
//! `standardwebhooks` crate, not our signer).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use chrono::Duration;
use chrono::SubsecRound;
use entities::domain::webhooks::{WebhookAttemptOutcome, WebhookEventType, WebhookMessageStatus};
use entities::orm::{prelude::*, webhook_attempt, webhook_event, webhook_message};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{Backend, TestApp, TestWorker, day, spawn_app_with, wait_at_most};
use crate::on_both_databases;
use crate::smtp::SmtpSink;

const LOOPBACK: &[(&str, &str)] = &[("WEBHOOK_ALLOW_LOOPBACK", "true")];

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    pub fn id(&self) -> String {
        self.headers["webhook-id"].to_str().unwrap().to_owned()
    }

    /// Verified with `secret` by the independent implementation.
    pub fn verifies_with(&self, secret: &str) -> bool {
        standardwebhooks::Webhook::new(secret).unwrap().verify(&self.body, &self.headers).is_ok()
    }
}

/// The answers a receiver gives, in order: a status, and a `Retry-After`.
type Script = VecDeque<(u16, Option<&'static str>)>;

/// A real HTTP server on 127.0.0.1 that records what it gets and answers as scripted (then 200).
#[derive(Clone, Default)]
pub struct Receiver {
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Script>>,
    /// How long it takes to answer, in milliseconds.
    delay_ms: Arc<AtomicU64>,
}

impl Receiver {
    /// Starts on `port` (0: any).
    pub fn start_on(port: u16) -> (Self, u16) {
        let receiver = Receiver::default();
        let state = receiver.clone();
        let server = HttpServer::new(move || {
            let state = state.clone();
            App::new().default_service(web::to(move |request: HttpRequest, body: web::Bytes| {
                let state = state.clone();
                async move {
                    let mut headers = http::HeaderMap::new();
                    for (name, value) in request.headers() {
                        headers.insert(
                            http::HeaderName::from_bytes(name.as_str().as_bytes()).unwrap(),
                            http::HeaderValue::from_bytes(value.as_bytes()).unwrap(),
                        );
                    }
                    state.received.lock().unwrap().push(Received { headers, body: body.to_vec() });
                    let delay = state.delay_ms.load(Ordering::SeqCst);
                    if delay > 0 {
                        tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                    }
                    let (status, retry_after) = state.script.lock().unwrap().pop_front().unwrap_or((200, None));
                    let mut answer = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
                    if let Some(after) = retry_after {
                        answer.insert_header(("retry-after", after));
                    }
                    answer.body("thanks")
                }
            }))
        })
        .workers(1)
        .bind(("127.0.0.1", port))
        .expect("the receiver binds");
        let port = server.addrs()[0].port();
        tokio::spawn(server.run());
        (receiver, port)
    }

    pub fn answer(&self, status: u16, retry_after: Option<&'static str>) {
        self.script.lock().unwrap().push_back((status, retry_after));
    }

    /// Answers 200 from now on (the scripted answers not given yet are dropped).
    pub fn recover(&self) {
        self.script.lock().unwrap().clear();
    }

    /// Answers each request `ms` milliseconds after it arrives (its body is recorded at once).
    pub fn slow_down(&self, ms: u64) {
        self.delay_ms.store(ms, Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// A port nothing listens on (yet).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub async fn register(app: &TestApp, organization: &str, port: u16, types: &[&str]) -> (String, String) {
    let body = json!({
        "url": format!("http://127.0.0.1:{port}/hooks"),
        "description": "test receiver",
        "event_types": types,
        "organization_id": organization,
    });
    let created = app.post("/api/v1/webhook-endpoints", &body).await.expect(201);
    (created.str("id"), created.str("secret"))
}

/// A failed message of endpoint `endpoint` about `engagement` (for the access matrix's replay).
pub async fn insert_failed_message(app: &TestApp, endpoint: &str, engagement: &str) -> String {
    let db = app.db().await;
    let engagement = Uuid::parse_str(engagement).unwrap();
    let found = Engagement::find_by_id(engagement).one(&db).await.unwrap().unwrap();
    let now = app.clock.now();
    let last: Option<Option<i64>> = WebhookEventRecord::find()
        .select_only()
        .column_as(webhook_event::Column::Sequence.max(), "last")
        .filter(webhook_event::Column::EngagementId.eq(engagement))
        .into_tuple()
        .one(&db)
        .await
        .unwrap();
    let event = webhook_event::ActiveModel {
        id: Set(Uuid::now_v7()),
        engagement_id: Set(engagement),
        organization_id: Set(found.organization_id),
        certification_body_id: Set(found.certification_body_id),
        sequence: Set(last.flatten().unwrap_or(0) + 1),
        event_type: Set(WebhookEventType::FindingRecorded),
        data: Set(json!({})),
        occurred_at: Set(now),
    };
    let event = WebhookEventRecord::insert(event).exec(&db).await.unwrap().last_insert_id;
    let id = Uuid::now_v7();
    let message = webhook_message::ActiveModel {
        id: Set(id),
        endpoint_id: Set(Uuid::parse_str(endpoint).unwrap()),
        event_id: Set(event),
        engagement_id: Set(engagement),
        event_type: Set(WebhookEventType::FindingRecorded),
        status: Set(WebhookMessageStatus::Failed),
        attempts: Set(9),
        next_attempt_at: Set(now),
        lease_until: Set(None),
        last_response_status: Set(Some(500)),
        last_error: Set(None),
        delivered_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        first_attempt_latency_ms: Set(None),
        first_attempt_excerpt: Set(None),
    };
    WebhookMessage::insert(message).exec_without_returning(&db).await.unwrap();
    id.to_string()
}

/// An app on `backend` with a stage 2 engagement, and a worker delivering (its mail to a sink).
struct Delivering {
    app: TestApp,
    smtp: SmtpSink,
    worker: TestWorker,
    engagement: String,
    organization: String,
}

async fn delivering(backend: Backend) -> Delivering {
    let app = spawn_app_with(backend, LOOPBACK).await;
    let smtp = SmtpSink::start();
    let worker = app.spawn_worker_with(smtp.port, LOOPBACK).await;
    let engagement = app.engagement_in_stage2().await;
    let organization = app.engagement(&engagement).await.expect(200).str("organization_id");
    Delivering { app, smtp, worker, engagement, organization }
}

async fn attempts_of(app: &TestApp, endpoint: &str) -> Vec<Value> {
    let log = app.get(&format!("/api/v1/webhook-endpoints/{endpoint}/attempts")).await.expect(200);
    log.body["items"].as_array().unwrap().clone()
}

async fn events_of(app: &TestApp, engagement: &str) -> u64 {
    let db = app.db().await;
    WebhookEventRecord::find()
        .filter(webhook_event::Column::EngagementId.eq(Uuid::parse_str(engagement).unwrap()))
        .count(&db)
        .await
        .unwrap()
}

async fn every_change_arrives_once_signed_in_order_and_only_to_whom_sees_it(backend: Backend) {
    // Arrange: two tenants, each with an endpoint wanting every event, and a real worker.
    let app = spawn_app_with(backend, LOOPBACK).await;
    let smtp = SmtpSink::start();
    let _worker = app.spawn_worker_with(smtp.port, LOOPBACK).await;
    let (ours, our_port) = Receiver::start_on(0);
    let (theirs, their_port) = Receiver::start_on(0);
    let organization = app.create_organization(120).await;
    let body = app.create_certification_body(true).await;
    let stranger = app.create_organization(40).await;
    let (our_endpoint, secret) = register(&app, &organization, our_port, &[]).await;
    register(&app, &stranger, their_port, &[]).await;

    // Act: the whole way to a certificate, with a nonconformity corrected on the way.
    app.set_today(day(0));
    let engagement = app.engagement_selecting(&organization, &body).await;
    app.move_to_stage2(&engagement).await;
    let audit = app.create_audit(&engagement, "stage2", day(40), day(43)).await;
    let finding = app.record_finding(&engagement, &audit, "minor_nc", "A.8.13").await;
    app.set_today(day(44));
    let action = app.submit_corrective_action(&engagement, &finding, None).await.expect(201).str("id");
    app.verify_corrective_action(&engagement, &action, "accepted").await.expect(200);
    app.certify_from_stage2(&engagement).await;
    let suspend = json!({ "event": "suspend", "cause": "client_request", "reason": "site relocation" });
    app.fire(&engagement, suspend).await.expect(200);
    app.fire(&engagement, json!({ "event": "restore", "reason": "relocation audited" })).await.expect(200);
    let suspend = json!({ "event": "suspend", "cause": "failure", "reason": "the Leeds site failed its controls" });
    app.fire(&engagement, suspend).await.expect(200);
    let narrower = "SaaS platform operations, London site only";
    let reduce = json!({ "event": "reduce_scope", "scope": narrower, "reason": "Leeds removed from the scope" });
    app.fire(&engagement, reduce).await.expect(200);
    app.fire(&engagement, json!({ "event": "withdraw", "reason": "the client stopped its ISMS" })).await.expect(200);
    // A refused event writes nothing, and tells nothing.
    let before = events_of(&app, &engagement).await;
    let refused = app.fire(&engagement, json!({ "event": "complete_stage2" })).await;
    assert!(refused.status >= 400, "the event is refused: {}", refused.status);
    assert_eq!(events_of(&app, &engagement).await, before, "a refused transition writes no event");

    // Assert: one message per event, each verified, numbered 1, 2, 3… without a gap.
    wait_at_most(60, "every event arrives", || async { ours.received().len() as u64 >= before }).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let received = ours.received();
    assert_eq!(received.len() as u64, before, "each event once");
    let ids: HashSet<String> = received.iter().map(Received::id).collect();
    assert_eq!(ids.len(), received.len(), "one webhook-id per event");
    assert!(received.iter().all(|r| r.verifies_with(&secret)), "every signature verifies");
    let mut sequences: Vec<i64> = received.iter().map(|r| r.json()["data"]["sequence"].as_i64().unwrap()).collect();
    sequences.sort_unstable();
    assert_eq!(sequences, (1..=before as i64).collect::<Vec<_>>(), "numbered in the engagement's order");
    // The delivery log, three messages a page: each message once, in the order they were made.
    let (mut logged, mut made, mut cursor) = (Vec::new(), Vec::new(), None::<String>);
    loop {
        let after = cursor.as_ref().map(|c| format!("&cursor={c}")).unwrap_or_default();
        let page =
            app.get(&format!("/api/v1/webhook-endpoints/{our_endpoint}/messages?limit=3{after}")).await.expect(200);
        for message in page.body["items"].as_array().unwrap() {
            logged.push(message["webhook_id"].as_str().unwrap().to_owned());
            made.push(chrono::DateTime::parse_from_rfc3339(message["created_at"].as_str().unwrap()).unwrap());
        }
        cursor = page.body["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(logged.iter().cloned().collect::<HashSet<_>>(), ids, "every message on one page or another");
    assert_eq!(logged.len(), ids.len(), "none on two pages");
    assert!(made.windows(2).all(|w| w[0] <= w[1]), "in the order they were made: {made:?}");
    let types: HashMap<String, usize> = received.iter().fold(HashMap::new(), |mut counts, r| {
        *counts.entry(r.json()["type"].as_str().unwrap().to_owned()).or_default() += 1;
        counts
    });
    let transitions = app.history_actions(&engagement).await.len();
    for (kind, at_least) in [
        ("audit.planned", 1),
        ("finding.recorded", 1),
        ("corrective_action.submitted", 1),
        ("corrective_action.verified", 1),
        ("certificate.issued", 1),
        ("certificate.suspended", 2),
        ("certificate.restored", 1),
        ("certificate.scope_changed", 1),
        ("certificate.withdrawn", 1),
        ("engagement.transitioned", 9),
    ] {
        assert!(types.get(kind).copied().unwrap_or(0) >= at_least, "{kind} arrived: {types:?}");
    }
    assert!(types["engagement.transitioned"] < transitions, "one per transition, not per history row");
    let issued = received.iter().find(|r| r.json()["type"] == "certificate.issued").unwrap().json();
    assert_eq!(issued["data"]["engagement_id"], engagement.as_str());
    assert_eq!(issued["data"]["certificate"]["status"], "active");
    let withdrawn = received.iter().find(|r| r.json()["type"] == "certificate.withdrawn").unwrap().json();
    assert_eq!(withdrawn["data"]["certificate"]["status"], "withdrawn");
    let changed = received.iter().find(|r| r.json()["type"] == "certificate.scope_changed").unwrap().json();
    assert_eq!(changed["data"]["certificate"]["scope"], narrower);
    let transition = received.iter().find(|r| r.json()["type"] == "engagement.transitioned").unwrap().json();
    for field in ["from", "to", "event", "actor"] {
        assert!(transition["data"]["transition"][field].is_string(), "{field} in {transition}");
    }
    assert!(theirs.received().is_empty(), "another tenant's endpoint receives nothing of this engagement");
}
on_both_databases!(every_change_arrives_once_signed_in_order_and_only_to_whom_sees_it);

async fn a_receiver_down_then_failing_then_slowing_gets_the_message_once_with_one_id(backend: Backend) {
    // Arrange: an endpoint for findings on a port nothing listens on yet.
    let Delivering { app, smtp: _smtp, worker: _worker, engagement, organization } = delivering(backend).await;
    let port = free_port();
    let (endpoint, secret) = register(&app, &organization, port, &["finding.recorded"]).await;

    // Act: a finding; its first attempt finds nobody.
    let audit = app.create_audit(&engagement, "stage2", day(40), day(43)).await;
    app.record_finding(&engagement, &audit, "ofi", "A.5.1").await;
    wait_at_most(30, "the first attempt", || async { attempts_of(&app, &endpoint).await.len() == 1 }).await;
    // Then the receiver is up, answering 500, then 429 asking for an hour, then 200.
    let (receiver, _) = Receiver::start_on(port);
    receiver.answer(500, None);
    receiver.answer(429, Some("3600"));
    let start = app.clock.now();
    app.set_now(start + Duration::seconds(10));
    wait_at_most(30, "the second attempt", || async { attempts_of(&app, &endpoint).await.len() == 2 }).await;
    app.set_now(start + Duration::minutes(6));
    wait_at_most(30, "the third attempt", || async { attempts_of(&app, &endpoint).await.len() == 3 }).await;
    let third = attempts_of(&app, &endpoint).await[2].clone();
    let asked = chrono::DateTime::parse_from_rfc3339(third["next_attempt_at"].as_str().unwrap()).unwrap();
    assert!(asked >= start + Duration::minutes(6) + Duration::seconds(3600), "Retry-After honoured: {third}");
    // Past the schedule's 30 minutes, but not the hour the receiver asked for: no attempt.
    app.set_now(start + Duration::minutes(40));
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(attempts_of(&app, &endpoint).await.len(), 3, "not before the receiver asked");
    app.set_now(start + Duration::minutes(67));
    wait_at_most(30, "the fourth attempt", || async { attempts_of(&app, &endpoint).await.len() == 4 }).await;

    // Assert: four attempts logged, three answers received, one id throughout, delivered.
    let log = attempts_of(&app, &endpoint).await;
    let outcomes: Vec<&str> = log.iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["retrying", "retrying", "retrying", "delivered"]);
    let statuses: Vec<Value> = log.iter().map(|a| a["response_status"].clone()).collect();
    assert_eq!(statuses, [Value::Null, json!(500), json!(429), json!(200)]);
    assert!(log[0]["error"].as_str().unwrap().contains("onnect"), "why no answer came: {}", log[0]);
    assert_eq!(log[3]["response_excerpt"], "thanks");
    let received = receiver.received();
    assert_eq!(received.len(), 3);
    let ids: HashSet<String> = received.iter().map(Received::id).collect();
    assert_eq!(ids.len(), 1, "the same webhook-id on every attempt");
    assert!(received.iter().all(|r| r.verifies_with(&secret)));
    let messages = app.get(&format!("/api/v1/webhook-endpoints/{endpoint}/messages")).await.expect(200);
    assert_eq!(messages.body["items"][0]["status"], "delivered");
    assert_eq!(messages.body["items"][0]["webhook_id"], received[0].id());
}
on_both_databases!(a_receiver_down_then_failing_then_slowing_gets_the_message_once_with_one_id);

/// Every attempt of endpoint `endpoint`'s log, read `limit` at a time.
async fn attempts_paged(app: &TestApp, endpoint: &str, limit: u64) -> Vec<Value> {
    let (mut items, mut cursor) = (Vec::new(), None::<String>);
    loop {
        let mut path = format!("/api/v1/webhook-endpoints/{endpoint}/attempts?limit={limit}");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page = app.get(&path).await.expect(200);
        items.extend(page.body["items"].as_array().unwrap().iter().cloned());
        match page.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return items,
        }
    }
}

async fn a_first_attempt_that_delivers_is_kept_in_its_message_listed_paged_and_kept_through_a_replay(backend: Backend) {
    // Arrange: an endpoint for findings, its receiver answering 200.
    let Delivering { app, smtp: _smtp, worker: _worker, engagement, organization } = delivering(backend).await;
    let (receiver, port) = Receiver::start_on(0);
    let (endpoint, _) = register(&app, &organization, port, &["finding.recorded"]).await;
    let endpoint_id = Uuid::parse_str(&endpoint).unwrap();
    let audit = app.create_audit(&engagement, "stage2", day(40), day(43)).await;

    // Act: three findings, each delivered at its first attempt.
    for n in 1..=3 {
        app.record_finding(&engagement, &audit, "ofi", &format!("A.5.{n}")).await;
    }
    wait_at_most(30, "three attempts", || async { attempts_of(&app, &endpoint).await.len() == 3 }).await;

    // Assert: listed as any attempt is, with their answers, though no attempt row was written.
    let db = app.db().await;
    let rows = WebhookAttempt::find().filter(webhook_attempt::Column::EndpointId.eq(endpoint_id)).count(&db).await;
    assert_eq!(rows.unwrap(), 0, "kept in their messages' rows");
    let kept = attempts_of(&app, &endpoint).await;
    for attempt in &kept {
        assert_eq!(attempt["id"], attempt["message_id"], "{attempt}");
        assert_eq!((attempt["attempt"].clone(), attempt["outcome"].clone()), (json!(1), json!("delivered")));
        assert_eq!(
            (attempt["response_status"].clone(), attempt["response_excerpt"].clone()),
            (json!(200), json!("thanks"))
        );
        let latency = attempt["latency_ms"].as_i64().unwrap();
        assert!((0..15_000).contains(&latency) && attempt["error"].is_null(), "{attempt}");
    }

    // Act: a fourth finding whose first answer is a 500, then a 200; then the first message replayed.
    receiver.answer(500, None);
    app.record_finding(&engagement, &audit, "ofi", "A.5.4").await;
    wait_at_most(30, "the failed attempt", || async { attempts_of(&app, &endpoint).await.len() == 4 }).await;
    app.set_now(app.clock.now() + Duration::seconds(10));
    wait_at_most(30, "the retry", || async { attempts_of(&app, &endpoint).await.len() == 5 }).await;
    let first = kept[0]["message_id"].as_str().unwrap().to_owned();
    let replay = format!("/api/v1/webhook-endpoints/{endpoint}/messages/{first}/replay");
    app.post(&replay, &json!({})).await.expect(202);
    wait_at_most(30, "the replayed message's attempt", || async { attempts_of(&app, &endpoint).await.len() == 6 })
        .await;

    // Assert: the first message's kept attempt is still listed as it was, beside its new one; the
    // log read one attempt a page is the log read whole, in order, each attempt once.
    let whole = attempts_paged(&app, &endpoint, 200).await;
    assert!(whole.contains(&kept[0]), "the replayed message's first attempt listed as it was: {whole:?}");
    let of_first: Vec<&Value> = whole.iter().filter(|a| a["message_id"] == first.as_str()).collect();
    assert_eq!(of_first.len(), 2, "{of_first:?}");
    assert_ne!(of_first[1]["id"], of_first[0]["id"], "the new first attempt has an id of its own: {of_first:?}");
    let db = app.db().await;
    let rows = WebhookAttempt::find().filter(webhook_attempt::Column::EndpointId.eq(endpoint_id)).count(&db).await;
    assert_eq!(rows.unwrap(), 4, "the failed attempt, the retry, the moved first attempt and the replay's");
    assert!(of_first.iter().all(|a| a["attempt"] == 1 && a["outcome"] == "delivered"));
    let outcomes: Vec<&str> = whole.iter().map(|a| a["outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "retrying").count(), 1, "{outcomes:?}");
    assert_eq!(attempts_paged(&app, &endpoint, 1).await, whole, "paged one at a time");
    let order: Vec<(String, String)> = whole
        .iter()
        .map(|a| (a["attempted_at"].as_str().unwrap().to_owned(), a["id"].as_str().unwrap().to_owned()))
        .collect();
    let ids: HashSet<&String> = order.iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), 6, "each attempt once");
    let when = |a: &Value| chrono::DateTime::parse_from_rfc3339(a["attempted_at"].as_str().unwrap()).unwrap();
    assert!(whole.windows(2).all(|w| when(&w[0]) <= when(&w[1])), "oldest first: {order:?}");
    assert_eq!(receiver.received().len(), 6);
}
on_both_databases!(a_first_attempt_that_delivers_is_kept_in_its_message_listed_paged_and_kept_through_a_replay);

async fn gone_disables_a_rotated_secret_signs_beside_the_old_and_private_addresses_are_refused(backend: Backend) {
    // Arrange
    let Delivering { app, smtp: _smtp, worker: _worker, engagement, organization } = delivering(backend).await;
    let audit = app.create_audit(&engagement, "stage2", day(40), day(43)).await;

    // A rotated secret: the next message verifies with the old one and with the new one.
    let (receiver, port) = Receiver::start_on(0);
    let (endpoint, old) = register(&app, &organization, port, &["finding.recorded"]).await;
    let rotated =
        app.post(&format!("/api/v1/webhook-endpoints/{endpoint}/secret-rotation"), &json!({})).await.expect(200);
    let new = rotated.str("secret");
    assert_ne!(new, old);
    assert!(app.get(&format!("/api/v1/webhook-endpoints/{endpoint}")).await.expect(200).body.get("secret").is_none());
    app.record_finding(&engagement, &audit, "ofi", "A.5.1").await;
    wait_at_most(30, "the message arrives", || async { receiver.received().len() == 1 }).await;
    let message = &receiver.received()[0];
    assert!(message.verifies_with(&old) && message.verifies_with(&new), "both secrets sign during the overlap");
    // A day later, the old one no longer does.
    app.set_now(app.clock.now() + Duration::hours(25));
    app.record_finding(&engagement, &audit, "ofi", "A.5.2").await;
    wait_at_most(30, "the next message arrives", || async { receiver.received().len() == 2 }).await;
    let later = &receiver.received()[1];
    assert!(later.verifies_with(&new) && !later.verifies_with(&old), "the old secret expired");

    // 410 Gone disables the endpoint; nothing more is sent to it.
    receiver.answer(410, None);
    app.record_finding(&engagement, &audit, "ofi", "A.5.3").await;
    let path = format!("/api/v1/webhook-endpoints/{endpoint}");
    wait_at_most(30, "the endpoint is disabled", || async { app.get(&path).await.body["enabled"] == false }).await;
    assert!(app.get(&path).await.body["disabled_reason"].as_str().unwrap().contains("410"));
    app.record_finding(&engagement, &audit, "ofi", "A.5.4").await;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(receiver.received().len(), 3, "a disabled endpoint receives nothing");

    // Private and metadata addresses are refused, whatever the loopback setting.
    for url in ["https://10.0.0.8/hooks", "https://169.254.169.254/latest/meta-data", "https://[fd00:ec2::254]/"] {
        let refused = app
            .post("/api/v1/webhook-endpoints", &json!({ "url": url, "organization_id": organization }))
            .await
            .expect(422);
        assert_eq!(refused.problem_type(), "webhook-url-private-address", "{url}: {}", refused.body);
    }
}
on_both_databases!(gone_disables_a_rotated_secret_signs_beside_the_old_and_private_addresses_are_refused);

async fn loopback_is_refused_when_not_allowed_at_registration_and_after_dns_at_send_time(backend: Backend) {
    // Arrange: an API that allows loopback (local development) and a worker that does not.
    let app = spawn_app_with(backend, LOOPBACK).await;
    let smtp = SmtpSink::start();
    let _worker = app.spawn_worker(smtp.port).await;
    let engagement = app.engagement_in_stage2().await;
    let organization = app.engagement(&engagement).await.expect(200).str("organization_id");
    let (receiver, port) = Receiver::start_on(0);
    let body = json!({ "url": format!("http://localhost:{port}/hooks"), "organization_id": organization });
    let endpoint = app.post("/api/v1/webhook-endpoints", &body).await.expect(201).str("id");

    // Act: an event for it.
    let audit = app.create_audit(&engagement, "stage2", day(40), day(43)).await;
    let attempts = format!("/api/v1/webhook-endpoints/{endpoint}/attempts");
    wait_at_most(30, "an attempt", || async { !app.get(&attempts).await.body["items"].as_array().unwrap().is_empty() })
        .await;

    // Assert: the name resolved to loopback, and nothing was sent.
    let log = app.get(&attempts).await.body;
    assert!(log["items"][0]["error"].as_str().unwrap().contains("never sent to"), "{log}");
    assert!(receiver.received().is_empty(), "nothing reached the loopback receiver");
    let _ = audit;

    // And an API that does not allow loopback refuses such an endpoint outright.
    let strict = crate::helpers::spawn_app(backend).await;
    let organization = strict.create_organization(10).await;
    let refused = strict
        .post("/api/v1/webhook-endpoints", &json!({ "url": "http://127.0.0.1:9/x", "organization_id": organization }))
        .await
        .expect(422);
    assert_eq!(refused.problem_type(), "webhook-url-private-address");
}
on_both_databases!(loopback_is_refused_when_not_allowed_at_registration_and_after_dns_at_send_time);

async fn each_reminder_and_escalation_sent_is_told_once(backend: Backend) {
    // Arrange: a corrective action due on day 80, an endpoint for the emails' events.
    let app = spawn_app_with(backend, LOOPBACK).await;
    let smtp = SmtpSink::start();
    let (engagement, stage2, minor) = app.stage2_with_finding("minor_nc", "A.8.13").await;
    app.set_today(day(44));
    app.fire(&engagement, json!({ "event": "complete_stage2", "audit_id": stage2 })).await.expect(200);
    let action = app.submit_corrective_action(&engagement, &minor, Some(day(80))).await.expect(201).str("id");
    let organization = app.engagement(&engagement).await.expect(200).str("organization_id");
    let (receiver, port) = Receiver::start_on(0);
    let (_, secret) = register(&app, &organization, port, &["deadline.reminded", "deadline.escalated"]).await;
    let worker = app.spawn_worker_with(smtp.port, LOOPBACK).await;

    // Act: the clock walks past the due date, a scan a day (each twice: a repeated tick changes
    // nothing).
    for n in 66..=88 {
        app.set_today(day(n));
        worker.tick().await;
        worker.tick().await;
        app.wait_for_deliveries(&engagement).await;
    }

    // Assert: three reminders and two escalations of the corrective action, each told once.
    let about_action = |kind: &str| {
        receiver
            .received()
            .iter()
            .map(Received::json)
            .filter(|m| m["type"] == kind && m["data"]["reminder"]["subject_id"] == action.as_str())
            .count()
    };
    wait_at_most(30, "the emails' events arrive", || async {
        about_action("deadline.reminded") + about_action("deadline.escalated") >= 5
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(about_action("deadline.reminded"), 3);
    assert_eq!(about_action("deadline.escalated"), 2);
    assert!(receiver.received().iter().all(|r| r.verifies_with(&secret)));
    let told = receiver.received().iter().map(Received::json).find(|m| m["type"] == "deadline.reminded").unwrap();
    assert_eq!(told["data"]["reminder"]["step"], "reminder");
    assert!(told["data"]["reminder"]["recipients"].as_i64().unwrap() >= 1);
}
on_both_databases!(each_reminder_and_escalation_sent_is_told_once);

async fn the_clock_the_mail_server_and_a_cancellation_tell_their_events_once(backend: Backend) {
    // Arrange: a certificate expiring on 2029-02-18, a mail server refusing every recipient (each
    // email has one try), and an endpoint for what the clock, the mail server and a cancellation do.
    let app = spawn_app_with(backend, LOOPBACK).await;
    let smtp = SmtpSink::start();
    smtp.reject(true);
    let engagement = app.certified_engagement().await;
    let organization = app.engagement(&engagement).await.expect(200).str("organization_id");
    let (receiver, port) = Receiver::start_on(0);
    let types = ["certificate.expired", "certificate.cancelled", "notification.failed"];
    let (_, secret) = register(&app, &organization, port, &types).await;
    let worker = app.spawn_worker_with(smtp.port, &[LOOPBACK[0], ("DELIVERY_MAX_ATTEMPTS", "1")]).await;

    // Act: the expiry day's emails fail; the day after, the clock expires the certificate.
    let expiry = chrono::NaiveDate::from_ymd_opt(2029, 2, 18).unwrap();
    app.set_today(expiry);
    worker.tick().await;
    app.wait_for_deliveries(&engagement).await;
    app.set_today(expiry.succ_opt().unwrap());
    worker.tick().await;
    worker.tick().await;
    app.wait_for_deliveries(&engagement).await;
    assert_eq!(app.engagement(&engagement).await.expect(200).str("state"), "expired");
    // Recertified within six months, then the client cancels before the decision.
    let first = chrono::NaiveDate::from_ymd_opt(2029, 3, 1).unwrap();
    let audit = app.create_audit(&engagement, "recertification", first, first.succ_opt().unwrap()).await;
    app.set_today(chrono::NaiveDate::from_ymd_opt(2029, 3, 10).unwrap());
    let restore = json!({ "event": "restore_after_expiry", "audit_id": audit, "reason": "recertification audit done" });
    app.fire(&engagement, restore).await.expect(200);
    app.fire(&engagement, json!({ "event": "cancel", "reason": "the client stops its ISMS" })).await.expect(200);

    // Assert: one event per change, each verified.
    let db = app.db().await;
    let failed =
        entities::orm::notification::Column::Status.eq(entities::domain::reminders::NotificationStatus::Failed);
    let failures = Notification::find().filter(failed).count(&db).await.unwrap() as usize;
    assert!(failures >= 1, "the refused emails failed");
    let of = |kind: &str| receiver.received().iter().filter(|r| r.json()["type"] == kind).count();
    wait_at_most(60, "the events arrive", || async {
        of("certificate.expired") + of("certificate.cancelled") + of("notification.failed") >= 2 + failures
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!((of("certificate.expired"), of("certificate.cancelled")), (1, 1), "once each");
    assert_eq!(of("notification.failed"), failures, "one per failed email");
    assert!(receiver.received().iter().all(|r| r.verifies_with(&secret)));
    let told = |kind: &str| receiver.received().iter().map(Received::json).find(|m| m["type"] == kind).unwrap();
    assert_eq!(told("certificate.expired")["data"]["certificate"]["status"], "expired");
    assert_eq!(told("certificate.cancelled")["data"]["certificate"]["status"], "cancelled");
    let failure = told("notification.failed");
    assert_eq!(failure["data"]["engagement_id"], engagement.as_str());
    assert!(failure["data"]["reminder"]["error"].as_str().unwrap_or_default().contains("550"), "{failure}");
}
on_both_databases!(the_clock_the_mail_server_and_a_cancellation_tell_their_events_once);

async fn an_endpoint_failing_for_five_days_is_disabled_its_owner_told_and_its_messages_replayed(backend: Backend) {
    // Arrange: an endpoint whose receiver answers 500 to everything.
    let Delivering { app, smtp, worker: _worker, engagement, organization } = delivering(backend).await;
    let (receiver, port) = Receiver::start_on(0);
    for _ in 0..20 {
        receiver.answer(500, None);
    }
    let (endpoint, secret) = register(&app, &organization, port, &["finding.recorded"]).await;
    let path = format!("/api/v1/webhook-endpoints/{endpoint}");

    // Act: a finding whose message fails, tried again after a day, then after five.
    let audit = app.create_audit(&engagement, "stage2", day(40), day(43)).await;
    app.record_finding(&engagement, &audit, "ofi", "A.5.1").await;
    wait_at_most(30, "the first attempt", || async { attempts_of(&app, &endpoint).await.len() == 1 }).await;
    let start = app.clock.now();
    app.set_now(start + Duration::days(1));
    app.record_finding(&engagement, &audit, "ofi", "A.5.2").await;
    wait_at_most(30, "the day after's attempts", || async { attempts_of(&app, &endpoint).await.len() == 3 }).await;
    assert_eq!(app.get(&path).await.body["enabled"], true, "a day of failures is not five");
    assert!(smtp.received().is_empty());
    app.set_now(start + Duration::days(5) + Duration::minutes(1));

    // Assert: the next failing attempt disables it, and its owner is told by email.
    wait_at_most(30, "the endpoint is disabled", || async { app.get(&path).await.body["enabled"] == false }).await;
    let disabled = app.get(&path).await;
    assert!(disabled.str("disabled_reason").contains("every attempt failed since"), "{}", disabled.body);
    wait_at_most(30, "the owner's email", || async { !smtp.received().is_empty() }).await;
    let email = &smtp.received()[0];
    assert!(email.subject().contains("disabled"), "{}", email.subject());
    assert!(email.data.contains(&endpoint), "the email names the endpoint");
    assert!(email.data.contains("kept 30 days"), "and how long what it missed is kept: {}", email.data);
    // What it had not delivered waits, failed: at once what was pending when it was disabled, and
    // an attempt that was in flight then once it is recorded.
    let failed = format!("{path}/messages?status=failed");
    wait_at_most(30, "both messages failed", || async {
        app.get(&failed).await.expect(200).body["items"].as_array().unwrap().len() == 2
    })
    .await;
    let received = receiver.received().len();
    receiver.recover();

    // Enabled again and replayed, the two findings arrive (once each), signed as before.
    let url = format!("http://127.0.0.1:{port}/hooks");
    let enable = json!({ "url": url, "event_types": ["finding.recorded"], "enabled": true });
    app.put(&path, &enable).await.expect(200);
    let since = (start - Duration::hours(1)).to_rfc3339();
    app.post(&format!("{path}/replay"), &json!({ "since": since })).await.expect(202);
    wait_at_most(30, "the replayed messages arrive", || async { receiver.received().len() == received + 2 }).await;
    let delivered = format!("{path}/messages?status=delivered");
    wait_at_most(30, "both are recorded delivered", || async {
        app.get(&delivered).await.expect(200).body["items"].as_array().unwrap().len() == 2
    })
    .await;
    assert!(receiver.received()[received..].iter().all(|r| r.verifies_with(&secret)));
    let references: HashSet<String> = receiver.received()[received..]
        .iter()
        .map(|r| r.json()["data"]["finding"]["reference"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(references, HashSet::from(["A.5.1".to_owned(), "A.5.2".to_owned()]));
}
on_both_databases!(an_endpoint_failing_for_five_days_is_disabled_its_owner_told_and_its_messages_replayed);

async fn what_ended_is_purged_after_the_retention_and_what_waits_is_kept(backend: Backend) {
    // Arrange: a finding told to two endpoints, one delivered, one whose receiver is down.
    let Delivering { app, smtp: _smtp, worker, engagement, organization } = delivering(backend).await;
    let (receiver, port) = Receiver::start_on(0);
    let (delivered, _) = register(&app, &organization, port, &["finding.recorded"]).await;
    let (waiting, _) = register(&app, &organization, free_port(), &["finding.recorded"]).await;
    let audit = app.create_audit(&engagement, "stage2", day(40), day(43)).await;
    app.record_finding(&engagement, &audit, "ofi", "A.5.1").await;
    wait_at_most(30, "one delivered, one tried", || async {
        receiver.received().len() == 1
            && attempts_of(&app, &delivered).await.len() == 1
            && attempts_of(&app, &waiting).await.len() == 1
    })
    .await;
    let messages = |endpoint: &str| {
        let path = format!("/api/v1/webhook-endpoints/{endpoint}/messages");
        let app = &app;
        async move { app.get(&path).await.expect(200).body["items"].as_array().unwrap().clone() }
    };
    let start = app.clock.now();
    let events = events_of(&app, &engagement).await;
    assert!(events > 1, "the engagement's earlier transitions are in the outbox too");

    // Act: 31 days later (the retention is 30), the scan purges.
    let db = app.db().await;
    let status_of = |id: &str| {
        let db = &db;
        let id = id.to_owned();
        async move {
            WebhookMessage::find()
                .filter(webhook_message::Column::EndpointId.eq(Uuid::parse_str(&id).unwrap()))
                .one(db)
                .await
                .unwrap()
                .map(|m| m.status)
        }
    };
    app.set_now(start + Duration::days(31));
    // (The waiting message is due again meanwhile: its attempt fails and, five days past its first
    // failure, disables its endpoint; the message ends failed now, so it is kept another 30 days.)
    wait_at_most(30, "the waiting message ends", || async {
        status_of(&waiting).await == Some(WebhookMessageStatus::Failed)
    })
    .await;
    let first = worker.tick().await.webhooks_purged;

    // Assert: the delivered message and its attempt are gone, and the events nobody waits for; the
    // failed message and its event are kept until they too are 30 days old.
    assert_eq!(first.messages, 1, "{first:?}");
    assert_eq!(first.events as u64, events - 1, "{first:?}");
    assert!(messages(&delivered).await.is_empty());
    assert!(attempts_of(&app, &delivered).await.is_empty(), "its attempts went with it");
    assert_eq!(messages(&waiting).await.len(), 1, "the failed message waits for a replay");
    assert_eq!(events_of(&app, &engagement).await, 1, "its event is kept with it");
    app.set_now(start + Duration::days(62));
    let second = worker.tick().await.webhooks_purged;
    assert_eq!((second.messages, second.events), (1, 0), "{second:?}");
    assert!(messages(&waiting).await.is_empty());
    // The engagement's latest event is kept: the next one is numbered after it, not from 1 again.
    assert_eq!(events_of(&app, &engagement).await, 1, "its latest event is kept");
    app.record_finding(&engagement, &audit, "ofi", "A.5.2").await;
    wait_at_most(30, "the next finding is told", || async { receiver.received().len() == 2 }).await;
    let next = receiver.received()[1].json();
    assert_eq!(next["data"]["sequence"].as_i64(), Some(events as i64 + 1), "numbered after the purged ones");
    assert_eq!(worker.tick().await.webhooks_purged.messages, 0, "nothing twice");
}
on_both_databases!(what_ended_is_purged_after_the_retention_and_what_waits_is_kept);

async fn removing_an_endpoint_removes_its_messages_and_their_attempts(backend: Backend) {
    // Arrange: two endpoints told of a finding, each with its message delivered and its attempt
    // logged.
    let Delivering { app, smtp: _smtp, worker: _worker, engagement, organization } = delivering(backend).await;
    let (receiver, port) = Receiver::start_on(0);
    let (other_receiver, other_port) = Receiver::start_on(0);
    let (removed, _) = register(&app, &organization, port, &["finding.recorded"]).await;
    let (kept, _) = register(&app, &organization, other_port, &["finding.recorded"]).await;
    let audit = app.create_audit(&engagement, "stage2", day(40), day(43)).await;
    app.record_finding(&engagement, &audit, "ofi", "A.5.1").await;
    wait_at_most(30, "both delivered and logged", || async {
        receiver.received().len() == 1
            && other_receiver.received().len() == 1
            && attempts_of(&app, &removed).await.len() == 1
            && attempts_of(&app, &kept).await.len() == 1
    })
    .await;

    // Act
    app.send(reqwest::Method::DELETE, &format!("/api/v1/webhook-endpoints/{removed}"), None).await.expect(204);

    // Assert: nothing of the removed endpoint is left (its messages and their attempts go with it:
    // a delivery log of an endpoint no one can read again); the other's log is whole.
    let db = app.db().await;
    let removed = Uuid::parse_str(&removed).unwrap();
    let messages = WebhookMessage::find().filter(webhook_message::Column::EndpointId.eq(removed)).count(&db).await;
    let attempts = WebhookAttempt::find().filter(webhook_attempt::Column::EndpointId.eq(removed)).count(&db).await;
    assert_eq!((messages.unwrap(), attempts.unwrap()), (0, 0));
    assert_eq!(attempts_of(&app, &kept).await.len(), 1);
    app.get(&format!("/api/v1/webhook-endpoints/{kept}/messages")).await.expect(200);
}
on_both_databases!(removing_an_endpoint_removes_its_messages_and_their_attempts);

/// On PostgreSQL the delivery log has no foreign keys (a check a row cost more than the row): a
/// dispatch locks the endpoints it writes messages for as it writes them, so that no message
/// outlives its endpoint, whichever of a removal and the dispatch comes first.
#[tokio::test]
async fn on_postgres_an_endpoint_removed_while_a_dispatch_makes_its_messages_keeps_none_of_them() {
    // Arrange: two endpoints, a finding both want, and a dispatch that has made their messages and
    // not yet written them (a worker's dispatch waits for first attempts so, holding its events).
    let app = spawn_app_with(Backend::Postgres, LOOPBACK).await;
    let engagement = app.engagement_in_stage2().await;
    let organization = app.engagement(&engagement).await.expect(200).str("organization_id");
    app.set_now(app.clock.now() + Duration::hours(1));
    let (before, _) = register(&app, &organization, free_port(), &["finding.recorded"]).await;
    let (after, _) = register(&app, &organization, free_port(), &["finding.recorded"]).await;
    let audit = app.create_audit(&engagement, "stage2", day(40), day(43)).await;
    app.record_finding(&engagement, &audit, "ofi", "A.5.1").await;
    let db = app.db().await;
    let tuning = engine::store::Tuning::default();
    let writer = engine::store::connect_writer(&app.database_url, &db, 1, tuning).await.expect("a writer");
    let engine = engine::Engine::new(db.clone(), writer, app.clock.clone());
    let take = engine::webhooks::dispatch::Take { count: 64, lease_until: chrono::Utc::now() + Duration::minutes(5) };
    let mut dispatch =
        engine::webhooks::dispatch::open_dispatch(&engine, 500, Some(take), engine::webhooks::dispatch::Look::First)
            .await
            .expect("the dispatch");
    assert_eq!(dispatch.taken().len(), 2, "{dispatch:?}");

    // Act: one endpoint removed before the dispatch writes (its first attempts are not waited
    // for), the other after it wrote and before it commits.
    app.send(reqwest::Method::DELETE, &format!("/api/v1/webhook-endpoints/{before}"), None).await.expect(204);
    let written = dispatch.write(Vec::new()).await.expect("the messages written");
    let path = format!("/api/v1/webhook-endpoints/{after}");
    let removal = app.send(reqwest::Method::DELETE, &path, None);
    tokio::pin!(removal);
    let waited = tokio::time::timeout(std::time::Duration::from_millis(700), &mut removal).await;
    assert!(waited.is_err(), "the removal waits for the dispatch that wrote messages for the endpoint");
    dispatch.commit().await.expect("the dispatch committed");
    removal.await.expect(204);

    // Assert: no message was written for the endpoint removed first, and the one written for the
    // other went with it; the event is off the outbox.
    assert_eq!(written.len(), 1, "only the endpoint still there is written to");
    assert_eq!(WebhookMessage::find().count(&db).await.unwrap(), 0, "no message outlives its endpoint");
    assert_eq!(WebhookOutbox::find().count(&db).await.unwrap(), 0);
}

async fn a_message_is_never_made_before_the_event_it_tells_of(backend: Backend) {
    // Arrange: events in the outbox, an endpoint for them, no worker; a dispatch that must wait
    // for the writer (the test holds its one connection) while the clock moves on and a new event
    // commits.
    let app = spawn_app_with(backend, LOOPBACK).await;
    let engagement = app.engagement_in_stage2().await;
    let organization = app.engagement(&engagement).await.expect(200).str("organization_id");
    register(&app, &organization, free_port(), &[]).await;
    let db = app.db().await;
    let tuning = engine::store::Tuning::default();
    let writer = engine::store::connect_writer(&app.database_url, &db, 1, tuning).await.expect("a writer");
    let held = engine::store::begin_write(&writer).await.expect("hold the writer");
    let dispatch = {
        let engine = engine::Engine::new(db.clone(), writer.clone(), app.clock.clone());
        tokio::spawn(async move {
            engine::webhooks::dispatch::dispatch_events(&engine, 500, None, engine::webhooks::dispatch::Look::First)
                .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    app.set_now(app.clock.now() + Duration::hours(1));
    let audit = app.create_audit(&engagement, "stage2", day(40), day(43)).await;
    app.record_finding(&engagement, &audit, "ofi", "A.5.1").await;

    // Act: the writer free, the dispatch goes on.
    drop(held);
    let dispatched = dispatch.await.unwrap().expect("the dispatch");

    // Assert: it read the new event too, and made each message at or after its event.
    assert!(dispatched.messages >= 2, "{dispatched:?}");
    let messages = WebhookMessage::find().all(&db).await.unwrap();
    let events: HashMap<Uuid, chrono::DateTime<chrono::Utc>> =
        WebhookEventRecord::find().all(&db).await.unwrap().into_iter().map(|e| (e.id, e.occurred_at)).collect();
    assert!(
        messages.iter().any(|m| m.event_type == WebhookEventType::FindingRecorded),
        "the event that came meanwhile"
    );
    for message in &messages {
        let occurred = events[&message.event_id];
        assert!(
            message.created_at >= occurred,
            "{} made at {} before its event at {occurred}",
            message.id,
            message.created_at
        );
    }
}
on_both_databases!(a_message_is_never_made_before_the_event_it_tells_of);

async fn a_dispatch_makes_no_more_messages_than_its_caller_takes(backend: Backend) {
    // Arrange: an endpoint, then three events it wants (an audit planned, two findings), no worker.
    let app = spawn_app_with(backend, LOOPBACK).await;
    let engagement = app.engagement_in_stage2().await;
    let organization = app.engagement(&engagement).await.expect(200).str("organization_id");
    // An hour after the engagement's last transition: the endpoint is not told of it.
    app.set_now(app.clock.now() + Duration::hours(1));
    register(&app, &organization, free_port(), &[]).await;
    let audit = app.create_audit(&engagement, "stage2", day(40), day(43)).await;
    app.record_finding(&engagement, &audit, "ofi", "A.5.1").await;
    app.record_finding(&engagement, &audit, "ofi", "A.5.2").await;
    let db = app.db().await;
    let tuning = engine::store::Tuning::default();
    let writer = engine::store::connect_writer(&app.database_url, &db, 1, tuning).await.expect("a writer");
    let engine = engine::Engine::new(db.clone(), writer, app.clock.clone());
    // A dispatch whose caller has `slots` free for first attempts.
    let dispatch = |slots, look| {
        use engine::webhooks::dispatch::{Take, dispatch_events};
        let take = Take { count: slots, lease_until: chrono::Utc::now() + Duration::minutes(5) };
        let engine = &engine;
        async move { dispatch_events(engine, 500, Some(take), look).await.expect("the dispatch") }
    };
    let undispatched = || async { WebhookOutbox::find().count(&db).await.unwrap() };

    // Act: a dispatch with one slot.
    let first = dispatch(1, engine::webhooks::dispatch::Look::First).await;

    // Assert: one message, taken; the events it had no slot for wait in the outbox, not as
    // pending messages (each would be claimed by a write of its own).
    assert_eq!((first.messages, first.taken.len()), (1, 1), "{first:?}");
    assert_eq!(first.left, 2, "{first:?}");
    assert_eq!(undispatched().await, 2);
    let made = WebhookMessage::find().all(&db).await.unwrap();
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].status, WebhookMessageStatus::Sending);

    // Act: a dispatch with slots for them.
    let second = dispatch(64, engine::webhooks::dispatch::Look::Skip).await;

    // Assert: their messages made, every one taken; the outbox empty.
    assert_eq!((second.messages, second.taken.len(), second.left), (2, 2, 0), "{second:?}");
    assert_eq!(undispatched().await, 0);
    let pending = WebhookMessage::find()
        .filter(webhook_message::Column::Status.eq(WebhookMessageStatus::Pending))
        .count(&db)
        .await
        .unwrap();
    assert_eq!(pending, 0, "no message waits to be claimed");
    assert_eq!(WebhookMessage::find().count(&db).await.unwrap(), 3);
}
on_both_databases!(a_dispatch_makes_no_more_messages_than_its_caller_takes);

/// Who last wrote the latest finding's message on PostgreSQL, and what it holds.
#[derive(Debug, Default)]
struct Writers {
    /// The transaction that wrote the event (`xmin`).
    event: String,
    /// The transaction that last wrote the message.
    message: String,
    /// The transaction that last locked the message's endpoint (`xmax`, a lock only): the last
    /// dispatch that wrote messages for it (`FOR KEY SHARE`).
    dispatch: String,
    /// The message's status.
    status: String,
    /// The latency of the first attempt the message keeps in its row.
    kept_latency_ms: Option<i32>,
    /// The message's attempts that have rows of their own.
    attempt_rows: i64,
    /// The message's id, and the id derived from its event and endpoint.
    id: Uuid,
    derived: Uuid,
}

async fn writers_of_the_message(app: &TestApp, engagement: &str) -> Writers {
    use sea_orm::{ConnectionTrait, Statement};
    let db = app.db().await;
    let sql = "SELECT e.xmin::text AS event, m.xmin::text AS message, en.xmax::text AS dispatch, m.status, \
               m.first_attempt_latency_ms, (SELECT count(*) FROM webhook_attempts a WHERE a.message_id = m.id) AS rows, \
               m.id AS message_id, m.endpoint_id, e.id AS event_id \
               FROM webhook_messages m JOIN webhook_events e ON e.id = m.event_id \
               JOIN webhook_endpoints en ON en.id = m.endpoint_id \
               WHERE m.id = (SELECT l.id FROM webhook_messages l JOIN webhook_events le ON le.id = l.event_id \
               WHERE l.engagement_id = $1 AND l.event_type = 'finding.recorded' ORDER BY le.sequence DESC LIMIT 1)";
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            sql,
            [Uuid::parse_str(engagement).unwrap().into()],
        ))
        .await
        .unwrap();
    // None: not made yet.
    let Some(row) = row else { return Writers::default() };
    let text = |column: &str| row.try_get::<String>("", column).unwrap();
    let id = |column: &str| row.try_get::<Uuid>("", column).unwrap();
    Writers {
        event: text("event"),
        message: text("message"),
        dispatch: text("dispatch"),
        status: text("status"),
        kept_latency_ms: row.try_get("", "first_attempt_latency_ms").unwrap(),
        attempt_rows: row.try_get("", "rows").unwrap(),
        id: id("message_id"),
        derived: entities::domain::webhooks::message_uuid(id("event_id"), id("endpoint_id")),
    }
}

#[tokio::test]
async fn on_postgres_a_message_is_written_once_with_its_first_attempt_and_later_when_that_attempt_is_slow() {
    // Arrange: a worker, an endpoint for findings that answers at once.
    let app = spawn_app_with(Backend::Postgres, LOOPBACK).await;
    let smtp = SmtpSink::start();
    let _worker = app.spawn_worker_with(smtp.port, LOOPBACK).await;
    let (receiver, port) = Receiver::start_on(0);
    let engagement = app.engagement_in_stage2().await;
    let organization = app.engagement(&engagement).await.expect(200).str("organization_id");
    register(&app, &organization, port, &["finding.recorded"]).await;
    let audit = app.create_audit(&engagement, "stage2", day(40), day(43)).await;

    // Act: a finding, delivered at its first attempt.
    app.record_finding(&engagement, &audit, "ofi", "A.5.1").await;
    wait_at_most(30, "the message is delivered", || async { receiver.received().len() == 1 }).await;
    wait_at_most(30, "and recorded", || async {
        writers_of_the_message(&app, &engagement).await.status == "delivered"
    })
    .await;

    // Assert: the message (delivered, its attempt kept in its row) was written by one transaction,
    // the dispatch's (the one that locked its endpoint): it was never written `sending` first and
    // updated after. The event is as the finding's own transaction wrote it.
    let written = writers_of_the_message(&app, &engagement).await;
    assert_eq!(written.message, written.dispatch, "one transaction for the message and its attempt: {written:?}");
    assert!(written.kept_latency_ms.is_some() && written.attempt_rows == 0, "the attempt kept in it: {written:?}");
    assert_eq!(written.event, finding_writer(&app, "A.5.1").await, "the event is never updated");
    assert_eq!(written.id, written.derived, "the message's id is its event's and endpoint's, whenever it is made");
    assert_eq!(receiver.received()[0].id(), entities::domain::webhooks::message_id(written.id));

    // Arrange: the receiver now slower than a pass waits for an answer.
    receiver.slow_down(2_500);

    // Act: a second finding, whose first attempt is still in flight when the dispatch writes.
    app.record_finding(&engagement, &audit, "ofi", "A.5.2").await;
    let sending = || async { message_status_of(&app, &engagement).await.as_deref() == Some("sending") };
    wait_at_most(30, "the slow message is written sending while its attempt is in flight", sending).await;
    wait_at_most(30, "the slow message is delivered", || async { receiver.received().len() == 2 }).await;
    let recorded = || async {
        let written = writers_of_the_message(&app, &engagement).await;
        written.status == "delivered"
            && receiver.received()[1].id() == entities::domain::webhooks::message_id(written.id)
    };
    wait_at_most(30, "and recorded", recorded).await;

    // Assert: written `sending` by the dispatch, then recorded (its attempt kept in it) by a
    // transaction of its own.
    let written = writers_of_the_message(&app, &engagement).await;
    assert_ne!(written.message, written.dispatch, "updated after its dispatch: {written:?}");
    assert!(written.kept_latency_ms.is_some_and(|ms| ms >= 2_500) && written.attempt_rows == 0, "{written:?}");
    assert_eq!(written.event, finding_writer(&app, "A.5.2").await, "the event is never updated");
}

/// The transaction that wrote the finding of `reference` on PostgreSQL (`xmin`).
async fn finding_writer(app: &TestApp, reference: &str) -> String {
    use sea_orm::{ConnectionTrait, Statement};
    let db = app.db().await;
    let sql = "SELECT xmin::text AS writer FROM findings WHERE reference = $1";
    let row = db
        .query_one_raw(Statement::from_sql_and_values(sea_orm::DbBackend::Postgres, sql, [reference.into()]))
        .await
        .unwrap()
        .expect("the finding");
    row.try_get::<String>("", "writer").unwrap()
}

/// The status of the message about the latest finding of `engagement`, once it is written.
async fn message_status_of(app: &TestApp, engagement: &str) -> Option<String> {
    use sea_orm::{ConnectionTrait, Statement};
    let db = app.db().await;
    let sql = "SELECT m.status FROM webhook_messages m JOIN webhook_events e ON e.id = m.event_id \
               WHERE m.engagement_id = $1 AND m.event_type = 'finding.recorded' ORDER BY e.sequence DESC LIMIT 1";
    let engagement = Uuid::parse_str(engagement).unwrap();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(sea_orm::DbBackend::Postgres, sql, [engagement.into()]))
        .await
        .unwrap()?;
    Some(row.try_get::<String>("", "status").unwrap())
}

async fn the_delivery_log_is_written_as_given_nulls_included_and_a_message_once(backend: Backend) {
    // Arrange: the events of an engagement taken to stage 2, three endpoints; no worker. A
    // message for each event and endpoint, every other one with each optional field set (on
    // PostgreSQL the rows go as one array a column, whose elements may be null).
    let app = spawn_app_with(backend, LOOPBACK).await;
    let engagement = app.engagement_in_stage2().await;
    let organization = app.engagement(&engagement).await.expect(200).str("organization_id");
    let mut endpoints = Vec::new();
    for _ in 0..3 {
        endpoints.push(Uuid::parse_str(&register(&app, &organization, free_port(), &[]).await.0).unwrap());
    }
    let db = app.db().await;
    let events = WebhookEventRecord::find().all(&db).await.unwrap();
    assert!(events.len() >= 3, "{} events", events.len());
    let now = app.clock.now().trunc_subsecs(6);
    let later = now + Duration::minutes(5);
    let mut messages = Vec::new();
    for event in &events {
        for endpoint in &endpoints {
            let full = messages.len() % 2 == 0;
            messages.push(webhook_message::Model {
                id: entities::domain::webhooks::message_uuid(event.id, *endpoint),
                endpoint_id: *endpoint,
                event_id: event.id,
                engagement_id: event.engagement_id,
                event_type: event.event_type,
                status: if full { WebhookMessageStatus::Delivered } else { WebhookMessageStatus::Pending },
                attempts: i32::from(full),
                next_attempt_at: later,
                lease_until: full.then_some(later),
                last_response_status: full.then_some(204),
                last_error: full.then(|| "a \"quoted\", comma'd error\nover two lines".to_owned()),
                delivered_at: full.then_some(now),
                created_at: now,
                updated_at: later,
                first_attempt_latency_ms: full.then_some(17),
                first_attempt_excerpt: full.then(|| "{\"ok\": \"a 'quoted', comma'd answer\"}".to_owned()),
            });
        }
    }
    let (first, rest) = messages.split_at(messages.len() - 2);
    let attempts: Vec<webhook_attempt::Model> = messages
        .iter()
        .enumerate()
        .map(|(index, m)| {
            let answered = index % 2 == 0;
            webhook_attempt::Model {
                id: Uuid::now_v7(),
                message_id: m.id,
                endpoint_id: m.endpoint_id,
                attempt: 1,
                attempted_at: now,
                outcome: if answered { WebhookAttemptOutcome::Delivered } else { WebhookAttemptOutcome::Retrying },
                response_status: answered.then_some(200),
                latency_ms: i32::try_from(index).unwrap(),
                response_excerpt: answered.then(|| "{\"ok\": true}".to_owned()),
                error: (!answered).then(|| "connection refused".to_owned()),
                next_attempt_at: (!answered).then_some(later),
            }
        })
        .collect();
    let tuning = engine::store::Tuning::default();
    let writer = engine::store::connect_writer(&app.database_url, &db, 1, tuning).await.expect("a writer");
    use engine::webhooks::rows::{insert_attempts, insert_messages, take_off_outbox};

    // Act: all but the last two messages, then all of them (the first ones again), their attempts,
    // and the events taken off the outbox.
    let txn = engine::store::begin_write(&writer).await.unwrap();
    let written_first = insert_messages(&txn, first.to_vec()).await.unwrap();
    let written_then = insert_messages(&txn, messages.clone()).await.unwrap();
    insert_attempts(&txn, attempts.clone()).await.unwrap();
    take_off_outbox(&txn, events.iter().map(|e| e.id).collect()).await.unwrap();
    txn.commit().await.unwrap();

    // Assert: each message written once (the second write made only the two new ones), every
    // row read back as it was given, nulls where none was given, and the outbox empty.
    assert_eq!(written_first, first.iter().map(|m| m.id).collect::<HashSet<_>>());
    assert_eq!(written_then, rest.iter().map(|m| m.id).collect::<HashSet<_>>());
    let mut stored = WebhookMessage::find().all(&db).await.unwrap();
    stored.sort_by_key(|m| m.id);
    messages.sort_by_key(|m| m.id);
    assert_eq!(stored, messages);
    let mut logged = WebhookAttempt::find().all(&db).await.unwrap();
    logged.sort_by_key(|a| a.id);
    let mut attempts = attempts;
    attempts.sort_by_key(|a| a.id);
    assert_eq!(logged, attempts);
    assert_eq!(WebhookOutbox::find().count(&db).await.unwrap(), 0);
}
on_both_databases!(the_delivery_log_is_written_as_given_nulls_included_and_a_message_once);
