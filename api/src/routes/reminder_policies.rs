//! Each certification body's reminder and escalation schedules: data, not code.

use actix_web::{HttpRequest, HttpResponse, get, put, web};
use chrono::{DateTime, Utc};
use entities::domain::reminders::ReminderPolicy;
use entities::orm::prelude::*;
use sea_orm::EntityTrait;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use engine::access::Action;
use engine::reminders::reminder_policy_of;

use crate::auth::AuthUser;
use crate::error::{ApiError, Refused};
use crate::idempotency::commit;
use crate::preconditions::if_match;
use crate::state::AppState;

/// Registers the routes.
pub fn configure(config: &mut ServiceConfig<'_>) {
    config.service(get_reminder_policy).service(put_reminder_policy);
}

/// A certification body's reminder policy.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReminderPolicyView {
    /// The certification body.
    pub certification_body_id: Uuid,
    /// The schedules per kind of deadline.
    pub policy: ReminderPolicy,
    /// True while the CB uses the defaults.
    pub is_default: bool,
    /// Version, for `If-Match` (0 while default).
    pub version: i32,
    /// Last changed.
    pub updated_at: Option<DateTime<Utc>>,
}

/// The reminder and escalation schedules of a certification body's engagements.
#[utoipa::path(
    tag = "certification_bodies",
    operation_id = "get_reminder_policy",
    params(("id" = Uuid, Path, description = "Certification body id")),
    responses(
        (status = 200, description = "The policy", body = ReminderPolicyView),
        Refused,
    ),
    security(("bearer" = []))
)]
#[get("/certification-bodies/{id}/reminder-policy")]
pub async fn get_reminder_policy(
    app: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<web::Json<ReminderPolicyView>, ApiError> {
    CertificationBody::find_by_id(*id).one(&app.db).await?.ok_or(ApiError::not_found("certification body"))?;
    user.may_for_certification_body(Action::ReadReminderPolicy, *id)?;
    let record = ReminderPolicyRecord::find_by_id(*id).one(&app.db).await?;
    let policy = reminder_policy_of(&app.db, Some(*id)).await?;
    Ok(web::Json(ReminderPolicyView {
        certification_body_id: *id,
        policy,
        is_default: record.is_none(),
        version: record.as_ref().map_or(0, |r| r.version),
        updated_at: record.map(|r| r.updated_at),
    }))
}

/// Replaces the schedules. Offsets are sorted, reminders fall before or on the due date and
/// escalations on or after it, recipients are known roles, every kind of deadline has a schedule.
/// Open deadlines of the CB's engagements are re-planned at once.
#[utoipa::path(
    tag = "certification_bodies",
    operation_id = "put_reminder_policy",
    params(("id" = Uuid, Path, description = "Certification body id"), ("If-Match" = Option<String>, Header, description = "The version last read")),
    request_body = ReminderPolicy,
    responses(
        (status = 200, description = "Saved", body = ReminderPolicyView),
        Refused,
    ),
    security(("bearer" = []))
)]
#[put("/certification-bodies/{id}/reminder-policy")]
pub async fn put_reminder_policy(
    app: web::Data<AppState>,
    user: AuthUser,
    http: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Json<ReminderPolicy>,
) -> Result<HttpResponse, ApiError> {
    let expected = if_match(&http)?;
    let policy = body.into_inner();
    policy.validate()?;
    let (write, version, updated_at) = app.replace_reminder_policy(&user, *id, &policy, expected).await?;
    let view = ReminderPolicyView {
        certification_body_id: *id,
        policy,
        is_default: false,
        version,
        updated_at: Some(updated_at),
    };
    commit(write, HttpResponse::Ok().json(view)).await
}
