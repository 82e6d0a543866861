//! Liveness and readiness probes.

use actix_web::{HttpResponse, get, web};
use sea_orm::ConnectionTrait;

use crate::error::{ApiError, Problem};
use crate::state::AppState;

/// The process is up.
#[utoipa::path(tag = "health", operation_id = "get_healthz", responses((status = 200, description = "The process is up")))]
#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// The database answers, on the read pool and on the writer, and the process is not stopping
/// (after SIGTERM it answers 503 `shutting-down` while it drains: `SHUTDOWN_DRAIN_SECONDS`).
#[utoipa::path(
    tag = "health",
    operation_id = "get_readyz",
    responses(
        (status = 200, description = "The database answers"),
        (status = 503, description = "The database does not answer, or the process is stopping", body = Problem, content_type = "application/problem+json"),
    )
)]
#[get("/readyz")]
pub async fn readyz(app: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if app.is_stopping() {
        return Err(ApiError::ShuttingDown);
    }
    // Both pools: ready means reads and writes are served (the writer's connections are its own).
    let unreachable = |error| ApiError::from(engine::EngineError::unreachable(error));
    app.db.execute_unprepared("SELECT 1").await.map_err(unreachable)?;
    app.writer.execute_unprepared("SELECT 1").await.map_err(unreachable)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })))
}
