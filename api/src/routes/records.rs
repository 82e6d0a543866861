//! The engagement's record: its history, its certification decisions and its deadlines.

use actix_web::{get, web};
use chrono::{DateTime, NaiveDate, Utc};
use entities::domain::DecisionOutcome;
use entities::domain::state::EngagementState;
use entities::orm::{certification_decision, deadline, history_entry, prelude::*};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use super::engagements::DeadlineView;
use engine::store::{find_engagement_records, strings_of};

use crate::auth::AuthUser;
use crate::error::{ApiError, Refused};
use crate::pagination::{
    Page, PageQuery, decode_cursor, decode_keyed_cursor, id_page, keyed_page, keyed_page_of, limit_of, page_of,
};
use crate::state::AppState;

/// Registers the routes.
pub fn configure(config: &mut ServiceConfig<'_>) {
    config.service(get_history).service(list_decisions).service(list_deadlines);
}

/// One entry of the append-only history.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntryView {
    /// Id.
    pub id: Uuid,
    /// The event fired (transitions) or the change made (e.g. `corrective_action_accepted`).
    pub action: String,
    /// State before (transitions).
    pub from_state: Option<EngagementState>,
    /// State after (transitions).
    pub to_state: Option<EngagementState>,
    /// Who.
    pub actor: String,
    /// Why.
    pub reason: Option<String>,
    /// Evidence relied on.
    pub evidence: Vec<String>,
    /// The audit, finding, proposal or corrective action concerned.
    pub subject_id: Option<Uuid>,
    /// When.
    pub occurred_at: DateTime<Utc>,
}

/// A certification decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionView {
    /// Id.
    pub id: Uuid,
    /// Granted or refused.
    pub outcome: DecisionOutcome,
    /// The decision panel member.
    pub decided_by: String,
    /// The decision's date.
    pub decided_on: NaiveDate,
    /// The reason given.
    pub reason: Option<String>,
}

/// Everything that happened to the engagement, in order.
#[utoipa::path(
    tag = "engagements",
    operation_id = "get_engagement_history",
    params(("id" = Uuid, Path, description = "Engagement id"), PageQuery),
    responses(
        (status = 200, description = "A page of the history, oldest first", body = Page<HistoryEntryView>),
        Refused,
    ),
    security(("bearer" = []))
)]
#[get("/engagements/{id}/history")]
pub async fn get_history(
    app: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<HistoryEntryView>>, ApiError> {
    let limit = limit_of(query.limit)?;
    let cursor = decode_cursor(query.cursor.as_deref())?;
    find_engagement_records(&app.db, &user, *id).await?;
    // In the order of the writes (ids are time-ordered and taken at the write).
    let rows = HistoryEntry::find().filter(history_entry::Column::EngagementId.eq(*id));
    let rows = id_page(rows, history_entry::Column::Id, cursor, limit).all(&app.db).await?;
    Ok(web::Json(page_of(
        rows,
        limit,
        |h| h.id,
        |h| HistoryEntryView {
            id: h.id,
            evidence: strings_of(&h.evidence),
            action: h.action,
            from_state: h.from_state,
            to_state: h.to_state,
            actor: h.actor,
            reason: h.reason,
            subject_id: h.subject_id,
            occurred_at: h.occurred_at,
        },
    )))
}

/// The engagement's certification decisions.
#[utoipa::path(
    tag = "engagements",
    operation_id = "list_certification_decisions",
    params(("id" = Uuid, Path, description = "Engagement id"), PageQuery),
    responses(
        (status = 200, description = "A page of the decisions, oldest first", body = Page<DecisionView>),
        Refused,
    ),
    security(("bearer" = []))
)]
#[get("/engagements/{id}/decisions")]
pub async fn list_decisions(
    app: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<DecisionView>>, ApiError> {
    let limit = limit_of(query.limit)?;
    let cursor = decode_cursor(query.cursor.as_deref())?;
    find_engagement_records(&app.db, &user, *id).await?;
    let rows = CertificationDecision::find().filter(certification_decision::Column::EngagementId.eq(*id));
    let rows = id_page(rows, certification_decision::Column::Id, cursor, limit).all(&app.db).await?;
    Ok(web::Json(page_of(
        rows,
        limit,
        |d| d.id,
        |d| DecisionView {
            id: d.id,
            outcome: d.outcome,
            decided_by: d.decided_by,
            decided_on: d.decided_on,
            reason: d.reason,
        },
    )))
}

/// Every deadline of the engagement, open and closed, soonest due first.
#[utoipa::path(
    tag = "engagements",
    operation_id = "list_engagement_deadlines",
    params(("id" = Uuid, Path, description = "Engagement id"), PageQuery),
    responses(
        (status = 200, description = "A page of the deadlines, soonest due first", body = Page<DeadlineView>),
        Refused,
    ),
    security(("bearer" = []))
)]
#[get("/engagements/{id}/deadlines")]
pub async fn list_deadlines(
    app: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<DeadlineView>>, ApiError> {
    let limit = limit_of(query.limit)?;
    let cursor = decode_keyed_cursor::<NaiveDate>(query.cursor.as_deref())?;
    find_engagement_records(&app.db, &user, *id).await?;
    let today = app.clock.today();
    let rows = Deadline::find().filter(deadline::Column::EngagementId.eq(*id));
    let rows = keyed_page(rows, deadline::Column::DueOn, deadline::Column::Id, cursor, limit).all(&app.db).await?;
    Ok(web::Json(keyed_page_of(rows, limit, |d| (d.due_on, d.id), |d| DeadlineView::new(d, today))))
}
