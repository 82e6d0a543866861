//! OpenTelemetry export over OTLP (HTTP), to a real receiver in the test process: with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` set, a certflow process sends the span of every request, named by
//! its route and carrying its request id, and flushes what it holds when it stops.

use std::sync::{Arc, Mutex};

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::Value;

use crate::helpers::{Backend, spawn_app, wait_at_most};
use crate::processes::{process_token, start_api_with};

/// A span as received: its name, its attributes (key, value as text), its service.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    name: String,
    attributes: Vec<(String, String)>,
    service: String,
}

impl ReceivedSpan {
    fn attribute(&self, key: &str) -> Option<String> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    }
}

/// An OTLP/HTTP receiver on 127.0.0.1: keeps the JSON bodies posted to `/v1/traces`.
struct Collector {
    port: u16,
    received: Arc<Mutex<Vec<Value>>>,
    server: actix_web::dev::ServerHandle,
}

impl Collector {
    fn start() -> Self {
        let received: Arc<Mutex<Vec<Value>>> = Arc::default();
        let kept = web::Data::new(received.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = HttpServer::new(move || {
            App::new().app_data(kept.clone()).app_data(web::PayloadConfig::new(16 << 20)).route(
                "/v1/traces",
                web::post().to(|kept: web::Data<Arc<Mutex<Vec<Value>>>>, body: web::Bytes| async move {
                    let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    kept.lock().unwrap().push(parsed);
                    HttpResponse::Ok().content_type("application/json").body("{}")
                }),
            )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { port, received, server: handle }
    }

    /// Every span received.
    fn spans(&self) -> Vec<ReceivedSpan> {
        let mut spans = Vec::new();
        for body in self.received.lock().unwrap().iter() {
            for resource in body["resourceSpans"].as_array().into_iter().flatten() {
                let service = attribute(&resource["resource"]["attributes"], "service.name").unwrap_or_default();
                for scope in resource["scopeSpans"].as_array().into_iter().flatten() {
                    for span in scope["spans"].as_array().into_iter().flatten() {
                        let attributes = span["attributes"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|a| (a["key"].as_str().unwrap_or_default().to_owned(), string_of(&a["value"])))
                            .collect();
                        let name = span["name"].as_str().unwrap_or_default().to_owned();
                        spans.push(ReceivedSpan { name, attributes, service: service.clone() });
                    }
                }
            }
        }
        spans
    }
}

fn string_of(value: &Value) -> String {
    match (&value["stringValue"], &value["intValue"]) {
        (Value::String(text), _) => text.clone(),
        (_, Value::String(n)) => n.clone(),
        (_, Value::Number(n)) => n.to_string(),
        _ => value.to_string(),
    }
}

fn attribute(attributes: &Value, key: &str) -> Option<String> {
    attributes.as_array()?.iter().find(|a| a["key"] == key).map(|a| string_of(&a["value"]))
}

#[tokio::test]
async fn with_an_otlp_endpoint_each_request_arrives_as_a_span_with_its_request_id() {
    // Arrange: a receiver, and an API process exporting to it as JSON in batches sent once a
    // minute (so what arrives before that was flushed by the stop).
    let collector = Collector::start();
    let app = spawn_app(Backend::Sqlite).await;
    let endpoint = format!("http://127.0.0.1:{}", collector.port);
    let settings = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_BSP_SCHEDULE_DELAY", "60000"),
        ("RUST_LOG", "info"),
    ];
    let mut api = start_api_with(&app, &settings).await;
    let token = process_token(&app, "admin", "root@platform.test");

    // Act: a read of an engagement that does not exist, named by the caller's request id; then
    // the process is stopped.
    let missing = uuid::Uuid::now_v7();
    let request = app
        .client
        .get(format!("{}/api/v1/engagements/{missing}", api.address()))
        .bearer_auth(&token)
        .header("X-Request-Id", "otlp-test-request-1");
    assert_eq!(app.reply(request).await.status, 404);
    let ours = |spans: Vec<ReceivedSpan>| {
        spans.into_iter().find(|span| span.attribute("request_id").as_deref() == Some("otlp-test-request-1"))
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(ours(collector.spans()).is_none(), "held for the next batch");
    api.terminate();
    assert!(api.exit_within(15).await.is_some_and(|status| status.success()), "a clean stop");

    // Assert: its span arrived, flushed by the stop, with the request's id, caller and engagement.
    wait_at_most(5, "the request's span reaches the receiver", || async { ours(collector.spans()).is_some() }).await;
    let span = ours(collector.spans()).unwrap();
    assert_eq!((span.name.as_str(), span.service.as_str()), ("request", "certflow"));
    assert_eq!(span.attribute("path"), Some(format!("/api/v1/engagements/{missing}")));
    assert_eq!(span.attribute("engagement_id"), Some(missing.to_string()));
    assert_eq!(span.attribute("subject"), Some("root@platform.test".to_owned()));
    collector.server.stop(true).await;
}
