//! The ISO/IEC 27006 audit-time estimate.

use actix_web::{get, web};
use entities::domain::audit_time::{AuditTimeEstimate, estimate_audit_time};
use serde::Deserialize;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::AuthUser;
use crate::error::{ApiError, Refused};

/// Registers the routes.
pub fn configure(config: &mut ServiceConfig<'_>) {
    config.service(get_audit_time_estimate);
}

/// For how many persons.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditTimeQuery {
    /// Persons doing work under the organization's control (1 or more).
    pub persons: u32,
}

/// Auditor days for initial certification, surveillance and recertification.
#[utoipa::path(
    tag = "proposals",
    operation_id = "get_audit_time_estimate",
    params(AuditTimeQuery),
    responses(
        (status = 200, description = "The estimate", body = AuditTimeEstimate),
        Refused,
    ),
    security(("bearer" = []))
)]
#[get("/audit-time-estimate")]
pub async fn get_audit_time_estimate(
    _user: AuthUser,
    query: web::Query<AuditTimeQuery>,
) -> Result<web::Json<AuditTimeEstimate>, ApiError> {
    let estimate = estimate_audit_time(query.persons).map_err(|e| ApiError::invalid("persons", e))?;
    Ok(web::Json(estimate))
}
