//! Reminder and escalation emails: what was sent to whom and when, what failed, and re-queuing.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, NaiveDate, Utc};
use entities::domain::reminders::{NotificationStatus, StepKind};
use entities::orm::{notification, prelude::*};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QuerySelect,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use engine::Caller;
use engine::Target;
use engine::access::{Action, Party, of_engagements_in};
use engine::store::strings_of;

use crate::auth::AuthUser;
use crate::error::{ApiError, Refused};
use crate::idempotency::{IdempotencyClaim, commit};
use crate::pagination::{Page, decode_cursor, id_page, limit_of, page_of};
use crate::state::AppState;

/// What a client reads for a delivery error (the certification body's people see the real one).
const CLIENT_SEES_ERROR: &str =
    "delivery did not succeed yet; certflow retries it and the certification body sees the details";

/// Registers the routes.
pub fn configure(config: &mut ServiceConfig<'_>) {
    config.service(list_notifications).service(requeue_notification);
}

/// One reminder or escalation email.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationView {
    /// Id (also in the email's Message-ID).
    pub id: Uuid,
    /// The deadline it is about.
    pub deadline_id: Uuid,
    /// The engagement.
    pub engagement_id: Uuid,
    /// Which step of the schedule: `reminder-14`, `escalation+7`.
    pub step_key: String,
    /// Reminder or escalation.
    pub kind: StepKind,
    /// Who it goes to.
    pub recipients: Vec<String>,
    /// The day the step fell on.
    pub scheduled_on: NaiveDate,
    /// Pending, sending, sent, failed, skipped or cancelled.
    pub status: NotificationStatus,
    /// Delivery attempts so far.
    pub attempts: i32,
    /// When the next try is due (pending notifications).
    pub next_attempt_at: DateTime<Utc>,
    /// The last delivery error: the mail server's words to the certification body's people and
    /// admins; a client sees only that delivery did not succeed yet.
    pub last_error: Option<String>,
    /// The email's Message-ID.
    pub message_id: Option<String>,
    /// When it was claimed.
    pub created_at: DateTime<Utc>,
    /// When the mail server accepted it.
    pub sent_at: Option<DateTime<Utc>>,
}

impl NotificationView {
    /// The view of `m` for `caller`: a mail server's error (addresses, hosts, its own words) is
    /// the operators' business, not the client's.
    fn for_caller(m: notification::Model, caller: &Caller) -> Self {
        let operator = !matches!(caller.party, Party::ClientManager | Party::ClientIntegration);
        let last_error = match m.last_error {
            Some(error) if operator => Some(error),
            Some(_) => Some(CLIENT_SEES_ERROR.to_owned()),
            None => None,
        };
        Self {
            last_error,
            id: m.id,
            deadline_id: m.deadline_id,
            engagement_id: m.engagement_id,
            step_key: m.step_key,
            kind: m.kind,
            recipients: strings_of(&m.recipients),
            scheduled_on: m.scheduled_on,
            status: m.status,
            attempts: m.attempts,
            next_attempt_at: m.next_attempt_at,
            message_id: m.message_id,
            created_at: m.created_at,
            sent_at: m.sent_at,
        }
    }
}

/// Filters of the notification list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NotificationListQuery {
    /// Only notifications in this status (e.g. `failed`).
    pub status: Option<NotificationStatus>,
    /// Only notifications of this engagement.
    pub engagement_id: Option<Uuid>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Lists reminder and escalation emails, oldest first.
#[utoipa::path(
    tag = "notifications",
    operation_id = "list_notifications",
    params(NotificationListQuery),
    responses(
        (status = 200, description = "A page of notifications", body = Page<NotificationView>),
        Refused,
    ),
    security(("bearer" = []))
)]
#[get("/notifications")]
pub async fn list_notifications(
    app: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<NotificationListQuery>,
) -> Result<web::Json<Page<NotificationView>>, ApiError> {
    let limit = limit_of(query.limit)?;
    let cursor = decode_cursor(query.cursor.as_deref())?;
    let select = Notification::find().filter(of_engagements_in(user.tenancy, notification::Column::EngagementId));
    let mut select = id_page(select, notification::Column::Id, cursor, limit);
    if let Some(status) = query.status {
        select = select.filter(notification::Column::Status.eq(status));
    }
    if let Some(engagement) = query.engagement_id {
        select = select.filter(notification::Column::EngagementId.eq(engagement));
    }
    let rows = select.all(&app.db).await?;
    Ok(web::Json(page_of(rows, limit, |r| r.id, |r| NotificationView::for_caller(r, &user))))
}

/// Re-queues a failed notification (admins, and the coordinators of its certification body): it is tried again from the first attempt.
#[utoipa::path(
    tag = "notifications",
    operation_id = "requeue_notification",
    params(("id" = Uuid, Path, description = "Notification id")),
    responses(
        (status = 200, description = "Pending again", body = NotificationView),
        Refused,
    ),
    security(("bearer" = []))
)]
#[post("/notifications/{id}/requeue")]
pub async fn requeue_notification(
    app: web::Data<AppState>,
    user: AuthUser,
    claim: IdempotencyClaim,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let mut write = app.begin(&user, Target::Notification(*id), Action::RequeueNotification, claim.claim()).await?;
    let (txn, now) = (write.txn(), write.now());
    let found = Notification::find_by_id(*id)
        .filter(of_engagements_in(user.tenancy, notification::Column::EngagementId))
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or(ApiError::not_found("notification"))?;
    if found.status != NotificationStatus::Failed {
        return Err(ApiError::conflict(
            "notification-not-failed",
            format!("only a failed notification is re-queued; this one is {}", found.status),
        ));
    }
    let (engagement, body) = (found.engagement_id, found.certification_body_id);
    let mut model = found.into_active_model();
    model.status = Set(NotificationStatus::Pending);
    model.attempts = Set(0);
    model.next_attempt_at = Set(now);
    model.queued_at = Set(None);
    model.lease_until = Set(None);
    let updated = model.update(txn).await?;
    write.concerns(Some(engagement), body);
    commit(write, HttpResponse::Ok().json(NotificationView::for_caller(updated, &user))).await
}
