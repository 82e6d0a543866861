//! Each certification body's certification policy: CAP days per grade, stage 1 validity, the
//! suspension limit, the clock's graces and the body's time zone. Data, like its reminder policy.

use actix_web::{HttpRequest, HttpResponse, get, put, web};
use chrono::{DateTime, Utc};
use engine::policies::StoredCertificationPolicy;
use entities::domain::policy::CertificationPolicy;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::auth::AuthUser;
use crate::error::{ApiError, Refused};
use crate::idempotency::commit;
use crate::preconditions::if_match;
use crate::state::AppState;

/// Registers the routes.
pub fn configure(config: &mut ServiceConfig<'_>) {
    config.service(get_certification_policy).service(put_certification_policy);
}

/// A certification body's certification policy.
#[derive(Debug, Serialize, ToSchema)]
pub struct CertificationPolicyView {
    /// The certification body.
    pub certification_body_id: Uuid,
    /// The settings.
    pub policy: CertificationPolicy,
    /// True while the CB uses the defaults.
    pub is_default: bool,
    /// Version, for `If-Match` (0 while default).
    pub version: i32,
    /// Last changed.
    pub updated_at: Option<DateTime<Utc>>,
}

impl CertificationPolicyView {
    fn new(certification_body_id: Uuid, stored: StoredCertificationPolicy) -> Self {
        Self {
            certification_body_id,
            policy: stored.policy,
            is_default: stored.is_default,
            version: stored.version,
            updated_at: stored.updated_at,
        }
    }
}

/// The certification policy of a certification body's engagements (the defaults until it sets
/// one).
#[utoipa::path(
    tag = "certification_bodies",
    operation_id = "get_certification_policy",
    params(("id" = Uuid, Path, description = "Certification body id")),
    responses(
        (status = 200, description = "The policy", body = CertificationPolicyView),
        Refused,
    ),
    security(("bearer" = []))
)]
#[get("/certification-bodies/{id}/certification-policy")]
pub async fn get_certification_policy(
    app: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<web::Json<CertificationPolicyView>, ApiError> {
    let stored = app.certification_policy(&user, *id).await?;
    Ok(web::Json(CertificationPolicyView::new(*id, stored)))
}

/// Replaces the policy (a setting left out takes its default). CAP days are 30–90, stage 1
/// validity and the suspension limit 1–12 months, the graces 0–90 days, the time zone an IANA
/// name. A change applies to deadlines opened after it; the dates already given stand.
#[utoipa::path(
    tag = "certification_bodies",
    operation_id = "put_certification_policy",
    params(("id" = Uuid, Path, description = "Certification body id"), ("If-Match" = Option<String>, Header, description = "The version last read")),
    request_body = CertificationPolicy,
    responses(
        (status = 200, description = "Saved", body = CertificationPolicyView),
        Refused,
    ),
    security(("bearer" = []))
)]
#[put("/certification-bodies/{id}/certification-policy")]
pub async fn put_certification_policy(
    app: web::Data<AppState>,
    user: AuthUser,
    http: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Json<CertificationPolicy>,
) -> Result<HttpResponse, ApiError> {
    let expected = if_match(&http)?;
    let policy = body.into_inner();
    policy.validate()?;
    let (write, saved) = app.replace_certification_policy(&user, *id, policy, expected, None).await?;
    commit(write, HttpResponse::Ok().json(CertificationPolicyView::new(*id, saved))).await
}
