//! Audits of an engagement: planned dates, lead auditor and team, outcome.

use actix_web::{HttpResponse, get, post, put, web};
use chrono::{DateTime, NaiveDate, Utc};
use engine::webhooks::data::{audit_data, event_of};
use entities::domain::webhooks::WebhookEventType;
use entities::domain::{AuditKind, Stage1Outcome};
use entities::orm::{audit, prelude::*};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use engine::access::Action;
use engine::history::HistoryRecord;
use engine::store::{belongs, find_engagement_records, json_strings, require_open, strings_of};

use crate::auth::AuthUser;
use crate::error::{ApiError, Refused};
use crate::fields::Fields;
use crate::idempotency::{IdempotencyClaim, commit};
use crate::pagination::{Page, PageQuery, decode_keyed_cursor, keyed_page, keyed_page_of, limit_of};
use crate::state::AppState;

/// Registers the routes.
pub fn configure(config: &mut ServiceConfig<'_>) {
    config.service(create_audit).service(list_audits).service(get_audit).service(update_audit);
}

/// The longest audit the API accepts, in days: longer is a typing mistake.
const MAX_AUDIT_DAYS: i64 = 60;

/// An audit as planned.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "kind": "stage1",
    "first_day": "2027-01-18",
    "last_day": "2027-01-19",
    "lead_auditor": "lead.auditor@trusted-cb.example",
    "audit_team": ["auditor@trusted-cb.example"]
}))]
pub struct AuditRequest {
    /// Pre-audit, stage 1, stage 2, surveillance or recertification.
    pub kind: AuditKind,
    /// First day.
    pub first_day: NaiveDate,
    /// Last day: anchors corrective-action due dates and the 6-month major-NC limit.
    pub last_day: NaiveDate,
    /// The lead auditor.
    pub lead_auditor: String,
    /// Other members of the audit team.
    #[serde(default)]
    pub audit_team: Vec<String>,
}

/// An audit.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    /// Id.
    pub id: Uuid,
    /// The engagement.
    pub engagement_id: Uuid,
    /// Kind.
    pub kind: AuditKind,
    /// First day.
    pub first_day: NaiveDate,
    /// Last day.
    pub last_day: NaiveDate,
    /// Lead auditor.
    pub lead_auditor: String,
    /// Audit team.
    pub audit_team: Vec<String>,
    /// Stage 1 only: ready or not ready.
    pub stage1_outcome: Option<Stage1Outcome>,
    /// Stage 1 only: gaps found.
    pub gaps: Vec<String>,
    /// When the lifecycle event that completed it was fired.
    pub completed_at: Option<DateTime<Utc>>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<audit::Model> for AuditView {
    fn from(m: audit::Model) -> Self {
        Self {
            id: m.id,
            engagement_id: m.engagement_id,
            kind: m.kind,
            first_day: m.first_day,
            last_day: m.last_day,
            audit_team: strings_of(&m.audit_team),
            gaps: strings_of(&m.gaps),
            lead_auditor: m.lead_auditor,
            stage1_outcome: m.stage1_outcome,
            completed_at: m.completed_at,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

fn set_plan(model: &mut audit::ActiveModel, request: AuditRequest) -> Result<(), ApiError> {
    let mut f = Fields::default();
    let first = f.date("first_day", request.first_day);
    let last = f.date("last_day", request.last_day);
    if let (Some(first), Some(last)) = (first, last) {
        f.check(first <= last, "last_day", "must not be before first_day");
        f.check((last - first).num_days() < MAX_AUDIT_DAYS, "last_day", "an audit lasts at most 60 days");
    }
    let lead = f.email("lead_auditor", &request.lead_auditor);
    f.check(request.audit_team.len() <= 50, "audit_team", "at most 50 members");
    let team = f.emails("audit_team", &request.audit_team);
    let parsed = (|| Some((first?, last?, lead?, team?)))();
    let (first, last, lead, team) = f.finish(parsed)?;
    model.kind = Set(request.kind);
    model.first_day = Set(first);
    model.last_day = Set(last);
    model.lead_auditor = Set(lead.to_string());
    model.audit_team = Set(json_strings(&team));
    Ok(())
}

/// Plans an audit.
#[utoipa::path(
    tag = "audits",
    operation_id = "create_audit",
    params(("id" = Uuid, Path, description = "Engagement id")),
    request_body = AuditRequest,
    responses(
        (status = 201, description = "Planned", body = AuditView),
        Refused,
    ),
    security(("bearer" = []))
)]
#[post("/engagements/{id}/audits")]
pub async fn create_audit(
    app: web::Data<AppState>,
    user: AuthUser,
    claim: IdempotencyClaim,
    id: web::Path<Uuid>,
    body: web::Json<AuditRequest>,
) -> Result<HttpResponse, ApiError> {
    let mut model = audit::ActiveModel {
        id: Set(Uuid::now_v7()),
        engagement_id: Set(*id),
        stage1_outcome: Set(None),
        gaps: Set(json_strings::<&str>(&[])),
        completed_at: Set(None),
        ..Default::default()
    };
    set_plan(&mut model, body.into_inner())?;
    let (mut write, engagement) = app.begin_on_engagement(&user, *id, Action::PlanAudit, claim.claim()).await?;
    require_open(&engagement, "audits")?;
    // No audit (and so no finding) exists before a body is selected: its bidders audit nothing.
    if engagement.certification_body_id.is_none() {
        return Err(ApiError::conflict(
            "engagement-state-conflict",
            "no certification body is selected yet: the selected body plans the audits",
        ));
    }
    model.certification_body_id = Set(engagement.certification_body_id);
    model.created_at = Set(write.now());
    model.updated_at = Set(write.now());
    let created = model.insert(write.txn()).await?;
    write.emit(event_of(WebhookEventType::AuditPlanned, &engagement, audit_data(&created)));
    commit(write, HttpResponse::Created().json(AuditView::from(created))).await
}

/// Lists an engagement's audits by first day.
#[utoipa::path(
    tag = "audits",
    operation_id = "list_audits",
    params(("id" = Uuid, Path, description = "Engagement id"), PageQuery),
    responses(
        (status = 200, description = "A page of the audits, by first day", body = Page<AuditView>),
        Refused,
    ),
    security(("bearer" = []))
)]
#[get("/engagements/{id}/audits")]
pub async fn list_audits(
    app: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<AuditView>>, ApiError> {
    let limit = limit_of(query.limit)?;
    let cursor = decode_keyed_cursor::<NaiveDate>(query.cursor.as_deref())?;
    find_engagement_records(&app.db, &user, *id).await?;
    let audits = Audit::find().filter(audit::Column::EngagementId.eq(*id));
    let audits = keyed_page(audits, audit::Column::FirstDay, audit::Column::Id, cursor, limit).all(&app.db).await?;
    Ok(web::Json(keyed_page_of(audits, limit, |a| (a.first_day, a.id), AuditView::from)))
}

/// One audit.
#[utoipa::path(
    tag = "audits",
    operation_id = "get_audit",
    params(("id" = Uuid, Path, description = "Engagement id"), ("audit_id" = Uuid, Path, description = "Audit id")),
    responses(
        (status = 200, description = "The audit", body = AuditView),
        Refused,
    ),
    security(("bearer" = []))
)]
#[get("/engagements/{id}/audits/{audit_id}")]
pub async fn get_audit(
    app: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<web::Json<AuditView>, ApiError> {
    let (id, audit_id) = path.into_inner();
    find_engagement_records(&app.db, &user, id).await?;
    let found = belongs(Audit::find_by_id(audit_id).one(&app.db).await?, |a| a.engagement_id, id, "audit")?;
    Ok(web::Json(found.into()))
}

/// Re-plans an audit that is not yet completed.
#[utoipa::path(
    tag = "audits",
    operation_id = "update_audit",
    params(("id" = Uuid, Path, description = "Engagement id"), ("audit_id" = Uuid, Path, description = "Audit id")),
    request_body = AuditRequest,
    responses(
        (status = 200, description = "Re-planned", body = AuditView),
        Refused,
    ),
    security(("bearer" = []))
)]
#[put("/engagements/{id}/audits/{audit_id}")]
pub async fn update_audit(
    app: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<AuditRequest>,
) -> Result<HttpResponse, ApiError> {
    let (id, audit_id) = path.into_inner();
    let (write, engagement) = app.begin_on_engagement(&user, id, Action::UpdateAudit, None).await?;
    require_open(&engagement, "audits")?;
    let found = belongs(Audit::find_by_id(audit_id).one(write.txn()).await?, |a| a.engagement_id, id, "audit")?;
    if found.completed_at.is_some() {
        return Err(ApiError::conflict(
            "audit-completed",
            "a completed audit is part of the record and cannot be re-planned",
        ));
    }
    let before = plan_of(&found);
    let mut model = found.into_active_model();
    set_plan(&mut model, body.into_inner())?;
    model.updated_at = Set(write.now());
    let updated = model.update(write.txn()).await?;
    // A re-plan changes who audits (impartiality) and when: the history keeps the plan it replaced.
    let reason = format!("was: {before}\nnow: {}", plan_of(&updated));
    let record = HistoryRecord::change(id, "audit_replanned", &user.subject, Some(audit_id)).with_reason(Some(reason));
    write.record_history(record).await?;
    commit(write, HttpResponse::Ok().json(AuditView::from(updated))).await
}

/// An audit's plan in words: kind, days, lead auditor and team.
fn plan_of(audit: &audit::Model) -> String {
    let team = strings_of(&audit.audit_team);
    let team = if team.is_empty() { "no team".to_owned() } else { format!("team {}", team.join(", ")) };
    format!("{} audit {} to {}, led by {}, {team}", audit.kind, audit.first_day, audit.last_day, audit.lead_auditor)
}
