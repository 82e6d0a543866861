//! Prometheus metrics: the process's recorder, the HTTP middleware that times every request, and
//! `GET /metrics` (on the API's port, or on a listener of its own: `METRICS_ADDR`).
//!
//! What is recorded, and where:
//! - `certflow_http_request_duration_seconds{method,route,status}` (histogram; its `_count` counts
//!   the requests): here, by route template (`/api/v1/engagements/{id}`), never by raw path;
//! - `certflow_db_pool_connections{pool,state}` and `certflow_db_pool_max_connections{pool}`:
//!   sampled at each scrape;
//! - `certflow_engagements{state}`, `certflow_deadlines_open{kind}`,
//!   `certflow_deadlines_overdue{kind}`: the engine's census, taken on a timer (not per scrape);
//! - `certflow_transitions_total{event,outcome,code}`: the events endpoint;
//! - `certflow_emails_total{outcome}`, `certflow_scan_duration_seconds`,
//!   `certflow_scan_claimed_steps_total`: the worker.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use anyhow::Context;
use engine::Engine;
use engine::store::Pool;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets, in seconds: from a cached read to the SMTP timeout.
const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// How often the census (engagements by state, open and overdue deadlines by kind) is retaken.
pub const CENSUS_INTERVAL: Duration = Duration::from_secs(60);

/// The route label of a request no route matched: raw paths would make a series per URL.
const UNMATCHED: &str = "unmatched";

/// The process's Prometheus recorder, installed on first use (one per process: the `metrics`
/// macros of every crate record into it).
pub fn recorder() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .expect("the buckets are not empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("another metrics recorder was installed first: /metrics shows none of its figures");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_histogram!(
        "certflow_http_request_duration_seconds",
        Unit::Seconds,
        "HTTP requests by route template, method and status: time to the response's head"
    );
    describe_gauge!("certflow_db_pool_connections", "Database connections by pool and state (in_use, idle)");
    describe_gauge!("certflow_db_pool_max_connections", "The most connections each pool may open");
    describe_gauge!("certflow_engagements", "Engagements by state (the census)");
    describe_gauge!("certflow_deadlines_open", "Open deadlines by kind (the census)");
    describe_gauge!("certflow_deadlines_overdue", "Open deadlines past their due day (UTC), by kind (the census)");
    describe_histogram!("certflow_census_duration_seconds", Unit::Seconds, "Time the census's queries took");
    describe_counter!(
        "certflow_transitions_total",
        "Lifecycle events asked for through the API: fired, or refused with the problem's code"
    );
    engine::observe::describe();
}

/// What `/metrics` renders: the recorder, and the pools sampled at each scrape.
#[derive(Clone)]
pub struct MetricsEndpoint {
    handle: PrometheusHandle,
    pools: Arc<Vec<(&'static str, Pool)>>,
}

impl MetricsEndpoint {
    /// Renders the process's recorder, sampling `pools` (name, pool) at each scrape.
    pub fn new(pools: Vec<(&'static str, Pool)>) -> Self {
        Self { handle: recorder(), pools: Arc::new(pools) }
    }

    /// The Prometheus text of every metric now.
    pub fn render(&self) -> String {
        for (name, pool) in self.pools.iter() {
            engine::observe::sample_pool(name, pool);
        }
        self.handle.render()
    }
}

/// `GET /metrics`: Prometheus' text exposition format.
pub async fn serve_metrics(endpoint: web::Data<MetricsEndpoint>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(endpoint.render())
}

/// What stops `/metrics`' own listener.
pub type MetricsServerHandle = actix_web::dev::ServerHandle;

/// A listener of its own for `/metrics` (`METRICS_ADDR`), for the API or a worker running alone:
/// nothing else is served on it.
pub fn metrics_server(address: SocketAddr, endpoint: MetricsEndpoint) -> anyhow::Result<(Server, u16)> {
    let endpoint = web::Data::new(endpoint);
    let listener =
        std::net::TcpListener::bind(address).with_context(|| format!("Failed to listen on METRICS_ADDR {address}"))?;
    let port = listener.local_addr().context("Failed to read the metrics listener's address")?.port();
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(endpoint.clone())
            .route("/metrics", web::get().to(serve_metrics))
            .default_service(web::to(HttpResponse::NotFound))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)
    .context("Failed to start the metrics listener")?
    .run();
    Ok((server, port))
}

/// Times every request, labelled by its route template (or `unmatched`), method and status.
pub async fn time_request(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let method = method_label(request.method());
    let response = next.call(request).await?;
    let route = response.request().match_pattern().unwrap_or_else(|| UNMATCHED.to_owned());
    metrics::histogram!(
        "certflow_http_request_duration_seconds",
        "method" => method,
        "route" => route,
        "status" => response.status().as_str().to_owned(),
    )
    .record(started.elapsed().as_secs_f64());
    Ok(response)
}

/// The `method` label: HTTP's methods by name, any other a client sends as `other` (a label per
/// invented method would let clients grow the series without bound).
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Keeps the recorder's histograms bounded, and retakes the census every [`CENSUS_INTERVAL`]
/// when `census` is given (the API; a worker running alone takes none).
pub fn keep_metrics(census: Option<Engine>) -> impl Future<Output = ()> {
    let handle = recorder();
    async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(5));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut census_taken: Option<Instant> = None;
        loop {
            ticks.tick().await;
            handle.run_upkeep();
            let Some(engine) = &census else { continue };
            if census_taken.is_some_and(|taken| taken.elapsed() < CENSUS_INTERVAL) {
                continue;
            }
            census_taken = Some(Instant::now());
            if let Err(error) = engine::observe::take_census(engine).await {
                tracing::warn!(?error, "could not take the census for /metrics; the last figures stay");
            }
        }
    }
}
