//! Audit findings: major NC, minor NC or OFI, each citing a clause or an Annex A control; an
//! accepted minor's follow-up at a later audit.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use engine::nonconformities::{FollowUp, finding_row, plan_due_if_audit_completed};
use engine::webhooks::data::{event_of, finding_data};
use entities::domain::finding::RequirementReference;
use entities::domain::webhooks::WebhookEventType;
use entities::domain::{FindingGrade, FindingStatus, FollowUpOutcome};
use entities::orm::{finding, prelude::*};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use engine::access::Action;
use engine::history::HistoryRecord;
use engine::store::{belongs, find_engagement_records, require_open};

use crate::auth::AuthUser;
use crate::error::{ApiError, Refused};
use crate::fields::Fields;
use crate::idempotency::{IdempotencyClaim, commit};
use crate::pagination::{Page, PageQuery, decode_cursor, id_page, limit_of, page_of};
use crate::state::AppState;

/// Registers the routes.
pub fn configure(config: &mut ServiceConfig<'_>) {
    config
        .service(create_finding)
        .service(list_findings)
        .service(get_finding)
        .service(follow_up_finding)
        .service(list_audit_follow_ups);
}

/// A finding as the auditor records it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "grade": "major_nc",
    "reference": "A.8.13",
    "description": "Backups of the production database have not been restored in a test for 14 months."
}))]
pub struct FindingRequest {
    /// Major NC, minor NC or OFI.
    pub grade: FindingGrade,
    /// The requirement: a clause of 4–10 (`6.1.2`) or an Annex A control (`A.8.13`).
    pub reference: String,
    /// What was found.
    pub description: String,
}

/// A finding.
#[derive(Debug, Serialize, ToSchema)]
pub struct FindingView {
    /// Id.
    pub id: Uuid,
    /// The engagement.
    pub engagement_id: Uuid,
    /// The audit that found it.
    pub audit_id: Uuid,
    /// Grade.
    pub grade: FindingGrade,
    /// The requirement cited.
    pub reference: String,
    /// What was found.
    pub description: String,
    /// Open until its corrective action is accepted; then closed (a major) or `follow_up` (a
    /// minor, verified at the next audit); an OFI is closed (noted) at once.
    pub status: FindingStatus,
    /// Who recorded it.
    pub created_by: String,
    /// Recorded.
    pub created_at: DateTime<Utc>,
    /// Closed.
    pub closed_at: Option<DateTime<Utc>>,
    /// The later audit that followed up its accepted plan (a minor).
    pub follow_up_audit_id: Option<Uuid>,
    /// What that follow-up found.
    pub follow_up_outcome: Option<FollowUpOutcome>,
    /// The auditor's note of the follow-up.
    pub follow_up_note: Option<String>,
}

impl From<finding::Model> for FindingView {
    fn from(m: finding::Model) -> Self {
        Self {
            id: m.id,
            engagement_id: m.engagement_id,
            audit_id: m.audit_id,
            grade: m.grade,
            reference: m.reference,
            description: m.description,
            status: m.status,
            created_by: m.created_by,
            created_at: m.created_at,
            closed_at: m.closed_at,
            follow_up_audit_id: m.follow_up_audit_id,
            follow_up_outcome: m.follow_up_outcome,
            follow_up_note: m.follow_up_note,
        }
    }
}

/// Filters of the finding list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FindingListQuery {
    /// Only findings of this grade.
    pub grade: Option<FindingGrade>,
    /// Only open or closed findings.
    pub status: Option<FindingStatus>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Records a finding of an audit.
#[utoipa::path(
    tag = "findings",
    operation_id = "create_finding",
    params(("id" = Uuid, Path, description = "Engagement id"), ("audit_id" = Uuid, Path, description = "Audit id")),
    request_body = FindingRequest,
    responses(
        (status = 201, description = "Recorded", body = FindingView),
        Refused,
    ),
    security(("bearer" = []))
)]
#[post("/engagements/{id}/audits/{audit_id}/findings")]
pub async fn create_finding(
    app: web::Data<AppState>,
    user: AuthUser,
    claim: IdempotencyClaim,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<FindingRequest>,
) -> Result<HttpResponse, ApiError> {
    let (id, audit_id) = path.into_inner();
    let request = body.into_inner();
    let mut f = Fields::default();
    let reference = RequirementReference::parse(&request.reference).map_err(|e| f.problem("reference", e)).ok();
    let description = f.text::<4000>("description", &request.description);
    let (reference, description) = f.finish(reference.zip(description))?;
    let (mut write, engagement, audit) = app
        .begin_on_engagement_with(&user, id, Action::RecordFinding, claim.claim(), Audit::find_by_id(audit_id))
        .await?;
    require_open(&engagement, "findings")?;
    let (txn, now) = (write.txn(), write.now());
    let audit = belongs(audit, |a| a.engagement_id, id, "audit")?;
    // Only a certifying audit finds nonconformities; a pre-audit or stage 1 lists gaps, which
    // never block a decision (its gaps go with the stage 1 outcome, or as OFIs).
    if request.grade != FindingGrade::Ofi && !audit.kind.records_nonconformities() {
        return Err(ApiError::invalid(
            "grade",
            format!("a {} audit records gaps, not nonconformities: record an OFI or list the gap", audit.kind),
        ));
    }
    let row = finding_row(&audit, request.grade, reference.to_string(), description.into_inner(), &user.subject, now);
    let created = txn.insert_later(row)?;
    plan_due_if_audit_completed(txn, &engagement, &audit, &created, now).await?;
    let record =
        HistoryRecord::change(id, format!("finding_recorded:{}", created.grade), &user.subject, Some(created.id));
    write.record_history(record).await?;
    write.emit(event_of(WebhookEventType::FindingRecorded, &engagement, finding_data(&created)));
    commit(write, HttpResponse::Created().json(FindingView::from(created))).await
}

/// Lists an engagement's findings, oldest first.
#[utoipa::path(
    tag = "findings",
    operation_id = "list_findings",
    params(("id" = Uuid, Path, description = "Engagement id"), FindingListQuery),
    responses(
        (status = 200, description = "A page of the findings, oldest first", body = Page<FindingView>),
        Refused,
    ),
    security(("bearer" = []))
)]
#[get("/engagements/{id}/findings")]
pub async fn list_findings(
    app: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    query: web::Query<FindingListQuery>,
) -> Result<web::Json<Page<FindingView>>, ApiError> {
    let limit = limit_of(query.limit)?;
    let cursor = decode_cursor(query.cursor.as_deref())?;
    find_engagement_records(&app.db, &user, *id).await?;
    let mut select = Finding::find().filter(finding::Column::EngagementId.eq(*id));
    if let Some(grade) = query.grade {
        select = select.filter(finding::Column::Grade.eq(grade));
    }
    if let Some(status) = query.status {
        select = select.filter(finding::Column::Status.eq(status));
    }
    let rows = id_page(select, finding::Column::Id, cursor, limit).all(&app.db).await?;
    Ok(web::Json(page_of(rows, limit, |f| f.id, FindingView::from)))
}

/// One finding.
#[utoipa::path(
    tag = "findings",
    operation_id = "get_finding",
    params(("id" = Uuid, Path, description = "Engagement id"), ("finding_id" = Uuid, Path, description = "Finding id")),
    responses(
        (status = 200, description = "The finding", body = FindingView),
        Refused,
    ),
    security(("bearer" = []))
)]
#[get("/engagements/{id}/findings/{finding_id}")]
pub async fn get_finding(
    app: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<web::Json<FindingView>, ApiError> {
    let (id, finding_id) = path.into_inner();
    find_engagement_records(&app.db, &user, id).await?;
    let found = belongs(Finding::find_by_id(finding_id).one(&app.db).await?, |f| f.engagement_id, id, "finding")?;
    Ok(web::Json(found.into()))
}

/// The follow-up of an accepted minor NC's plan at a later audit.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "audit_id": "0193a5e4-7c1e-7f00-8000-000000000042",
    "outcome": "not_effective",
    "note": "Restore tests were scheduled but none was run this quarter."
}))]
pub struct FollowUpRequest {
    /// The later stage 2, surveillance or recertification audit it is followed up at.
    pub audit_id: Uuid,
    /// Effective (it closes) or not effective (it closes and a new minor NC is recorded on that
    /// audit, citing the same requirement).
    pub outcome: FollowUpOutcome,
    /// What the auditor found; required when not effective.
    pub note: Option<String>,
}

/// A follow-up: the finding, and the nonconformity a not-effective follow-up recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct FollowUpView {
    /// The finding followed up (closed).
    pub finding: FindingView,
    /// The new minor NC, when the action was not effective.
    pub new_nonconformity: Option<FindingView>,
}

/// Follows up an accepted minor NC's plan at a later certifying audit (ISO/IEC 17021-1: minors are
/// checked at the next audit): it closes as effective, or as not effective with a new minor NC on
/// that audit (whose plan is due from now if that audit has completed).
#[utoipa::path(
    tag = "findings",
    operation_id = "follow_up_finding",
    params(("id" = Uuid, Path, description = "Engagement id"), ("finding_id" = Uuid, Path, description = "Finding id")),
    request_body = FollowUpRequest,
    responses(
        (status = 200, description = "Followed up", body = FollowUpView),
        Refused,
    ),
    security(("bearer" = []))
)]
#[post("/engagements/{id}/findings/{finding_id}/follow-up")]
pub async fn follow_up_finding(
    app: web::Data<AppState>,
    user: AuthUser,
    claim: IdempotencyClaim,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<FollowUpRequest>,
) -> Result<HttpResponse, ApiError> {
    let (id, finding_id) = path.into_inner();
    let request = body.into_inner();
    let mut f = Fields::default();
    let note = f.optional_text::<4000>("note", request.note.as_deref());
    if request.outcome == FollowUpOutcome::NotEffective {
        f.check(request.note.as_deref().is_some_and(|n| !n.trim().is_empty()), "note", "say what was not effective");
    }
    let note = f.finish(note)?;
    let (write, engagement) = app.begin_on_engagement(&user, id, Action::RecordFinding, claim.claim()).await?;
    require_open(&engagement, "findings")?;
    let follow = FollowUp { audit_id: request.audit_id, outcome: request.outcome, note: note.map(|n| n.into_inner()) };
    let (followed, recurred) = app.follow_up_finding(&write, &user, &engagement, finding_id, follow).await?;
    let view = FollowUpView { finding: followed.into(), new_nonconformity: recurred.map(FindingView::from) };
    commit(write, HttpResponse::Ok().json(view)).await
}

/// The minor NCs an audit follows up: while it is not completed, every accepted minor plan of
/// the engagement's other audits still awaiting its follow-up; and those it followed up.
#[utoipa::path(
    tag = "findings",
    operation_id = "list_audit_follow_ups",
    params(("id" = Uuid, Path, description = "Engagement id"), ("audit_id" = Uuid, Path, description = "Audit id"), PageQuery),
    responses(
        (status = 200, description = "A page of the minors to follow up at this audit", body = Page<FindingView>),
        Refused,
    ),
    security(("bearer" = []))
)]
#[get("/engagements/{id}/audits/{audit_id}/follow-ups")]
pub async fn list_audit_follow_ups(
    app: web::Data<AppState>,
    user: AuthUser,
    path: web::Path<(Uuid, Uuid)>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<FindingView>>, ApiError> {
    let (id, audit_id) = path.into_inner();
    let limit = limit_of(query.limit)?;
    let cursor = decode_cursor(query.cursor.as_deref())?;
    find_engagement_records(&app.db, &user, id).await?;
    let audit = belongs(Audit::find_by_id(audit_id).one(&app.db).await?, |a| a.engagement_id, id, "audit")?;
    let mut which = Condition::any().add(finding::Column::FollowUpAuditId.eq(audit_id));
    if audit.completed_at.is_none() {
        which = which.add(
            Condition::all()
                .add(finding::Column::Status.eq(FindingStatus::FollowUp))
                .add(finding::Column::AuditId.ne(audit_id)),
        );
    }
    let findings = Finding::find().filter(finding::Column::EngagementId.eq(id)).filter(which);
    let findings = id_page(findings, finding::Column::Id, cursor, limit).all(&app.db).await?;
    Ok(web::Json(page_of(findings, limit, |f| f.id, FindingView::from)))
}
