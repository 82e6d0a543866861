//! Building and running the API server.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::dev::Server;
use actix_web::middleware::Condition;
use actix_web::{App, HttpRequest, HttpServer, web};
use anyhow::Context;
use engine::Engine;
use entities::clock::Clock;
use entities::settings::{MetricsExposure, Settings};
use sea_orm::DatabaseConnection;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::TokenKeys;
use crate::error::{ApiError, json_error, path_error, query_error};
use crate::metrics::{MetricsEndpoint, keep_metrics, metrics_server, serve_metrics, time_request};
use crate::rate_limit::RateLimits;
use crate::revocations::RevocationList;
use crate::routes::register_routes;
use crate::state::{AppState, JSON_BODY_LIMIT};

/// A built server, bound to its port, not yet running.
pub struct Application {
    port: u16,
    server: Server,
    /// `/metrics` on a listener of its own (`METRICS_ADDR`).
    metrics_server: Option<Server>,
    housekeeping: Vec<tokio::task::JoinHandle<()>>,
    stopping: Arc<AtomicBool>,
    drain: Duration,
}

impl Application {
    /// Connects to the database, applies the migrations and binds the listener.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        Self::build_on(settings, Engine::open(settings, Clock::system()).await?).await
    }

    /// Binds the listener over an open database (its read pool: the writer is opened beside it)
    /// with a given clock.
    pub async fn build_with(settings: &Settings, db: DatabaseConnection, clock: Clock) -> anyhow::Result<Self> {
        Self::build_on(settings, Engine::beside(settings, db, clock).await?).await
    }

    /// Binds the listener over `engine` (its pools and clock; a worker in the same process may
    /// share them).
    pub async fn build_on(settings: &Settings, engine: Engine) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.listen_addr)
            .with_context(|| format!("Failed to listen on {}", settings.listen_addr))?;
        let port = listener.local_addr().context("Failed to read the bound address")?.port();
        let metrics = (settings.metrics != MetricsExposure::Off).then(|| MetricsEndpoint::new(engine.pools()));
        let metrics_server = match (settings.metrics, &metrics) {
            (MetricsExposure::Listener(address), Some(endpoint)) => Some(metrics_server(address, endpoint.clone())?.0),
            _ => None,
        };
        let metrics_route = metrics.filter(|_| settings.metrics == MetricsExposure::OnApiPort).map(web::Data::new);
        let keys = web::Data::new(TokenKeys::from_settings(settings)?);
        // A revoked token is refused from the first request on.
        let revoked = web::Data::new(RevocationList::default());
        revoked.refresh(&engine).await.context("Failed to read the token revocations")?;
        let limits = web::Data::new(RateLimits::new(settings.caller_rate_limit, settings.anonymous_rate_limit));
        let mut housekeeping = vec![tokio::spawn(keep_house(
            engine.clone(),
            revoked.clone(),
            limits.clone(),
            Duration::from_secs(settings.token_revocation_refresh_seconds.into()),
        ))];
        let timed = settings.metrics != MetricsExposure::Off;
        if timed {
            housekeeping.push(tokio::spawn(keep_metrics(Some(engine.clone()))));
        }
        let console = web::Data::new(crate::pages::Console::from_settings(settings)?);
        let stopping = Arc::new(AtomicBool::new(false));
        let state = web::Data::new(AppState {
            engine,
            stopping: stopping.clone(),
            webhook_allow_loopback: settings.webhook_allow_loopback,
        });
        let docs_enabled = settings.docs_enabled;
        let server = HttpServer::new(move || {
            let (app, document) = register_routes(
                App::new()
                    .into_utoipa_app()
                    .app_data(state.clone())
                    .app_data(keys.clone())
                    .app_data(revoked.clone())
                    .app_data(limits.clone())
                    .app_data(console.clone())
                    .app_data(web::JsonConfig::default().limit(JSON_BODY_LIMIT).error_handler(json_error))
                    .app_data(web::FormConfig::default().limit(64 * 1024).error_handler(crate::pages::form_error))
                    .app_data(web::QueryConfig::default().error_handler(query_error))
                    .app_data(web::PathConfig::default().error_handler(path_error)),
            )
            .split_for_parts();
            // The docs page and the served spec only where asked for (`DOCS_ENABLED`).
            let docs = docs_enabled.then(|| {
                SwaggerUi::new("/docs/{_:.*}").url("/api-docs/openapi.json", crate::openapi::finish(document))
            });
            app.configure(|config| {
                if let Some(docs) = docs {
                    config.service(docs);
                }
                if let Some(endpoint) = &metrics_route {
                    config.app_data(endpoint.clone()).route("/metrics", web::get().to(serve_metrics));
                }
                crate::pages::configure(config);
            })
            .default_service(web::to(unknown_route))
            .wrap(actix_web::middleware::from_fn(crate::idempotency::idempotency))
            .wrap(actix_web::middleware::from_fn(crate::rate_limit::rate_limit))
            .wrap(actix_web::middleware::from_fn(crate::request_id::trace_request))
            .wrap(Condition::new(timed, actix_web::middleware::from_fn(time_request)))
            .wrap(security_headers())
        })
        .disable_signals()
        .shutdown_timeout(settings.shutdown_grace_seconds.into());
        // 0: actix's own default, one per core.
        let server = match settings.http_workers {
            0 => server,
            n => server.workers(n as usize),
        };
        let server = server.listen(listener).context("Failed to start the HTTP server")?.run();
        let drain = Duration::from_secs(settings.shutdown_drain_seconds.into());
        Ok(Self { port, server, metrics_server, housekeeping, stopping, drain })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the task is dropped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.run_until(std::future::pending()).await
    }

    /// Serves until `stop` completes, then stops gracefully: `/readyz` answers 503 and every answer
    /// closes its connection for `SHUTDOWN_DRAIN_SECONDS` (a load balancer stops sending), then
    /// the listener closes and requests in flight have `SHUTDOWN_GRACE_SECONDS` to finish.
    pub async fn run_until(self, stop: impl Future<Output = ()>) -> std::io::Result<()> {
        let Self { server, metrics_server, housekeeping, stopping, drain, .. } = self;
        let handle = server.handle();
        let metrics_handle = metrics_server.as_ref().map(Server::handle);
        let metrics_server = async move {
            match metrics_server {
                Some(server) => server.await,
                None => Ok(()),
            }
        };
        let mut serving = std::pin::pin!(async { tokio::try_join!(server, metrics_server).map(|_| ()) });
        let ended = tokio::select! {
            ended = &mut serving => Some(ended),
            () = stop => None,
        };
        let ended = match ended {
            Some(ended) => ended,
            None => {
                stopping.store(true, Ordering::Relaxed);
                tracing::info!(
                    drain_seconds = drain.as_secs(),
                    "stopping: draining, then finishing requests in flight"
                );
                // Still serving while the load balancer notices.
                let drained = tokio::time::timeout(drain, &mut serving).await;
                match drained {
                    Ok(ended) => ended,
                    Err(_) => {
                        let stop_metrics = async {
                            if let Some(handle) = metrics_handle {
                                handle.stop(true).await;
                            }
                        };
                        let ((), (), ended) = tokio::join!(handle.stop(true), stop_metrics, serving);
                        ended
                    }
                }
            }
        };
        for task in housekeeping {
            task.abort();
        }
        ended
    }
}

/// Aborts its task when dropped (with the task that owns it).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a running API process keeps up to date: the revocations every `refresh` (a failed read
/// keeps the last set and is logged), and the rate limiters' memory every minute.
async fn keep_house(
    engine: Engine,
    revoked: web::Data<RevocationList>,
    limits: web::Data<RateLimits>,
    refresh: Duration,
) {
    // The limiters' memory is kept on a timer of its own: a reread that waits on the database
    // must not keep it from being freed.
    let forgetting = tokio::spawn(async move {
        let mut minutes = tokio::time::interval(Duration::from_secs(60));
        loop {
            minutes.tick().await;
            limits.forget_idle();
        }
    });
    let _stop_forgetting_with_this = AbortOnDrop(forgetting);
    let mut ticks = tokio::time::interval(refresh);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if let Err(error) = revoked.refresh(&engine).await {
            tracing::warn!(?error, "could not reread the token revocations; the last ones read stay in force");
        }
    }
}

async fn unknown_route(request: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    tracing::debug!(path = %request.path(), method = %request.method(), "no such route");
    Err(ApiError::not_found("route"))
}

/// Headers on every answer: no content sniffing, no framing, no referrer, and nothing kept by a
/// cache (answers are per caller and change with every write).
fn security_headers() -> actix_web::middleware::DefaultHeaders {
    actix_web::middleware::DefaultHeaders::new()
        .add(("X-Content-Type-Options", "nosniff"))
        .add(("X-Frame-Options", "DENY"))
        .add(("Referrer-Policy", "no-referrer"))
        .add(("Cache-Control", "no-store"))
}
