//! Audit findings: major NC, minor NC or OFI, each citing a clause or an Annex A control.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use engine::deadlines::OpenDeadlines;
use engine::nonconformities::open_plan_deadline;
use entities::domain::finding::RequirementReference;
use entities::domain::{AuditKind, FindingGrade, FindingStatus};
use entities::orm::{finding, prelude::*};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use engine::access::Action;
use engine::history::HistoryRecord;
use engine::store::{belongs, find_engagement, require_open};

use crate::auth::AuthUser;
use crate::error::{ApiError, Refused};
use crate::fields::Fields;
use crate::idempotency::{IdempotencyClaim, commit};
use crate::state::AppState;

/// Registers the routes.
pub fn configure(config: &mut ServiceConfig<'_>) {
    config.service(create_finding).service(list_findings).service(get_finding);
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
    /// Open until its corrective action is accepted; an OFI is closed (noted) at once.
    pub status: FindingStatus,
    /// Who recorded it.
    pub created_by: String,
    /// Recorded.
    pub created_at: DateTime<Utc>,
    /// Closed.
    pub closed_at: Option<DateTime<Utc>>,
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
    let (mut write, engagement) = app.begin_on_engagement(&user, id, Action::RecordFinding, claim.claim()).await?;
    require_open(&engagement, "findings")?;
    let policy = write.certification_policy_of(&engagement).await?;
    let (txn, now) = (write.txn(), write.now());
    let audit = belongs(Audit::find_by_id(audit_id).one(txn).await?, |a| a.engagement_id, id, "audit")?;
    // Only a certifying audit finds nonconformities; a pre-audit or stage 1 lists gaps, which
    // never block a decision (its gaps go with the stage 1 outcome, or as OFIs).
    if request.grade != FindingGrade::Ofi && matches!(audit.kind, AuditKind::PreAudit | AuditKind::Stage1) {
        return Err(ApiError::invalid(
            "grade",
            format!("a {} audit records gaps, not nonconformities: record an OFI or list the gap", audit.kind),
        ));
    }
    let is_ofi = request.grade == FindingGrade::Ofi;
    let created = finding::ActiveModel {
        id: Set(Uuid::now_v7()),
        engagement_id: Set(id),
        audit_id: Set(audit_id),
        grade: Set(request.grade),
        reference: Set(reference.to_string()),
        description: Set(description.into_inner()),
        status: Set(if is_ofi { FindingStatus::Closed } else { FindingStatus::Open }),
        created_by: Set(user.subject.clone()),
        created_at: Set(now),
        closed_at: Set(is_ofi.then_some(now)),
    }
    .insert(txn)
    .await?;
    if audit.completed_at.is_some() {
        // Recorded after its audit completed: its plan is due from now, like its audit's others.
        let mut open_deadlines = OpenDeadlines::of(txn, id).await?;
        open_plan_deadline(txn, &engagement, &mut open_deadlines, &created, audit.last_day, &policy, now).await?;
    }
    let record =
        HistoryRecord::change(id, format!("finding_recorded:{}", created.grade), &user.subject, Some(created.id));
    write.record_history(record).await?;
    commit(write, HttpResponse::Created().json(FindingView::from(created))).await
}

/// Lists an engagement's findings, oldest first.
#[utoipa::path(
    tag = "findings",
    operation_id = "list_findings",
    params(("id" = Uuid, Path, description = "Engagement id"), FindingListQuery),
    responses(
        (status = 200, description = "The findings", body = Vec<FindingView>),
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
) -> Result<web::Json<Vec<FindingView>>, ApiError> {
    find_engagement(&app.db, &user, *id).await?;
    let mut select = Finding::find().filter(finding::Column::EngagementId.eq(*id)).order_by_asc(finding::Column::Id);
    if let Some(grade) = query.grade {
        select = select.filter(finding::Column::Grade.eq(grade));
    }
    if let Some(status) = query.status {
        select = select.filter(finding::Column::Status.eq(status));
    }
    Ok(web::Json(select.all(&app.db).await?.into_iter().map(FindingView::from).collect()))
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
    find_engagement(&app.db, &user, id).await?;
    let found = belongs(Finding::find_by_id(finding_id).one(&app.db).await?, |f| f.engagement_id, id, "finding")?;
    Ok(web::Json(found.into()))
}
