//! Building and running the API server.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{App, HttpRequest, HttpServer, web};
use anyhow::Context;
use engine::Engine;
use engine::store::{connect, connect_writer};
use entities::clock::Clock;
use entities::settings::Settings;
use migration::{Migrator, MigratorTrait};
use sea_orm::DatabaseConnection;
use utoipa_actix_web::AppExt;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::TokenKeys;
use crate::error::{ApiError, json_error, path_error, query_error};
use crate::rate_limit::RateLimits;
use crate::revocations::RevocationList;
use crate::routes::register_routes;
use crate::state::{AppState, JSON_BODY_LIMIT};

/// A built server, bound to its port, not yet running.
pub struct Application {
    port: u16,
    server: Server,
    housekeeping: tokio::task::JoinHandle<()>,
}

impl Application {
    /// Connects to the database, applies the migrations and binds the listener.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        let db = connect(&settings.database_url, settings.database_max_connections).await?;
        Migrator::up(&db, None).await.context("Failed to apply the database migrations")?;
        Self::build_with(settings, db, Clock::system()).await
    }

    /// Binds the listener over an open database with a given clock.
    pub async fn build_with(settings: &Settings, db: DatabaseConnection, clock: Clock) -> anyhow::Result<Self> {
        let writer = connect_writer(&settings.database_url, &db, settings.database_write_connections).await?;
        let listener = TcpListener::bind(settings.listen_addr)
            .with_context(|| format!("Failed to listen on {}", settings.listen_addr))?;
        let port = listener.local_addr().context("Failed to read the bound address")?.port();
        let engine = Engine::new(db, writer, clock);
        let keys = web::Data::new(TokenKeys::from_settings(settings)?);
        // A revoked token is refused from the first request on.
        let revoked = web::Data::new(RevocationList::default());
        revoked.refresh(&engine).await.context("Failed to read the token revocations")?;
        let limits = web::Data::new(RateLimits::new(settings.caller_rate_limit, settings.anonymous_rate_limit));
        let housekeeping = tokio::spawn(keep_house(
            engine.clone(),
            revoked.clone(),
            limits.clone(),
            std::time::Duration::from_secs(settings.token_revocation_refresh_seconds.into()),
        ));
        let state = web::Data::new(AppState { engine });
        let docs_enabled = settings.docs_enabled;
        let server = HttpServer::new(move || {
            let (app, document) = register_routes(
                App::new()
                    .into_utoipa_app()
                    .app_data(state.clone())
                    .app_data(keys.clone())
                    .app_data(revoked.clone())
                    .app_data(limits.clone())
                    .app_data(web::JsonConfig::default().limit(JSON_BODY_LIMIT).error_handler(json_error))
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
            })
            .default_service(web::to(unknown_route))
            .wrap(actix_web::middleware::from_fn(crate::idempotency::idempotency))
            .wrap(actix_web::middleware::from_fn(crate::rate_limit::rate_limit))
            .wrap(actix_web::middleware::from_fn(crate::request_id::trace_request))
            .wrap(security_headers())
        })
        .listen(listener)
        .context("Failed to start the HTTP server")?
        .run();
        Ok(Self { port, server, housekeeping })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until the server is stopped (SIGINT/SIGTERM).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let stopped = self.server.await;
        self.housekeeping.abort();
        stopped
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
    refresh: std::time::Duration,
) {
    // The limiters' memory is kept on a timer of its own: a reread that waits on the database
    // must not keep it from being freed.
    let forgetting = tokio::spawn(async move {
        let mut minutes = tokio::time::interval(std::time::Duration::from_secs(60));
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
