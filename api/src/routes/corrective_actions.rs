//! The corrective action plan: one corrective action per nonconformity, due 30–90 days after the
//! audit, verified by the certification body.

use actix_web::{HttpRequest, HttpResponse, get, post, put, web};
use chrono::{DateTime, NaiveDate, Utc};
use entities::domain::dates::{corrective_action_due, major_nc_limit};
use entities::domain::deadline::{DeadlineChange, DeadlineKind, DeadlineOwner, DeadlineStatus, DeadlineToOpen};
use entities::domain::state::EngagementState;
use entities::domain::text::EmailAddress;
use entities::domain::{FindingGrade, FindingStatus, VerificationStatus};
use entities::orm::{corrective_action, engagement, finding, prelude::*};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter,
    QueryOrder,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use crate::access::Action;
use crate::auth::AuthUser;
use crate::db::{
    UniqueViolation, begin_write, begin_write_claiming, belongs, check_version, expected_version, find_engagement,
    json_strings, lock_engagement, require_open, strings_of,
};
use crate::error::{ApiError, Problem};
use crate::fields::Fields;
use crate::idempotency::IdempotencyClaim;
use crate::lifecycle::{HistoryRecord, OpenDeadlines, apply_deadline_change, count_open_findings, record_history};
use crate::startup::AppState;

/// Registers the routes.
pub fn configure(config: &mut ServiceConfig<'_>) {
    config
        .service(create_corrective_action)
        .service(list_corrective_actions)
        .service(update_corrective_action)
        .service(verify_corrective_action);
}

/// A corrective action as the client submits it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "root_cause": "Restore tests were never scheduled after the backup tool changed.",
    "correction": "Full restore of the production database tested on 2027-02-03.",
    "corrective_action": "Quarterly restore test added to the operations calendar, owned by the SRE lead.",
    "owner_email": "sre.lead@acme.example",
    "due_on": "2027-04-15",
    "evidence": ["dms://isms/evidence/restore-test-2027-02-03.pdf"]
}))]
pub struct CorrectiveActionRequest {
    /// Why the nonconformity happened.
    pub root_cause: String,
    /// The immediate fix.
    pub correction: String,
    /// What prevents it from happening again.
    pub corrective_action: String,
    /// Who is responsible.
    pub owner_email: String,
    /// Due date, 30–90 days after the audit's last day (default: the CB policy for the grade).
    pub due_on: Option<NaiveDate>,
    /// References to evidence.
    #[serde(default)]
    pub evidence: Vec<String>,
    /// On an update: the version last read; the write is refused (412) if it changed. `If-Match`
    /// says the same.
    #[serde(default)]
    pub version: Option<i32>,
}

/// The certification body's verification.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "outcome": "accepted", "note": "Restore test report reviewed." }))]
pub struct VerificationRequest {
    /// Accepted (major: correction verified; minor: plan accepted) or rejected.
    pub outcome: VerificationStatus,
    /// Why; required when rejected.
    pub note: Option<String>,
}

/// A corrective action.
#[derive(Debug, Serialize, ToSchema)]
pub struct CorrectiveActionView {
    /// Id.
    pub id: Uuid,
    /// The engagement.
    pub engagement_id: Uuid,
    /// The nonconformity it answers.
    pub finding_id: Uuid,
    /// Root cause.
    pub root_cause: String,
    /// Correction.
    pub correction: String,
    /// Corrective action.
    pub corrective_action: String,
    /// Owner.
    pub owner_email: String,
    /// Due date.
    pub due_on: NaiveDate,
    /// Not yet accepted and past its due date.
    pub overdue: bool,
    /// Evidence references.
    pub evidence: Vec<String>,
    /// Pending, accepted or rejected.
    pub verification: VerificationStatus,
    /// The CB's note.
    pub verification_note: Option<String>,
    /// Who verified.
    pub verified_by: Option<String>,
    /// When.
    pub verified_at: Option<DateTime<Utc>>,
    /// Version, for `If-Match`.
    pub version: i32,
    /// Submitted.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl CorrectiveActionView {
    fn new(m: corrective_action::Model, today: NaiveDate) -> Self {
        Self {
            id: m.id,
            engagement_id: m.engagement_id,
            finding_id: m.finding_id,
            overdue: m.verification != VerificationStatus::Accepted && m.due_on < today,
            evidence: strings_of(&m.evidence),
            root_cause: m.root_cause,
            correction: m.correction,
            corrective_action: m.corrective_action,
            owner_email: m.owner_email,
            due_on: m.due_on,
            verification: m.verification,
            verification_note: m.verification_note,
            verified_by: m.verified_by,
            verified_at: m.verified_at,
            version: m.version,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

struct PlanFields {
    root_cause: String,
    correction: String,
    corrective_action: String,
    owner: EmailAddress,
    due_on: Option<NaiveDate>,
    evidence: Vec<String>,
}

impl TryFrom<CorrectiveActionRequest> for PlanFields {
    type Error = ApiError;

    fn try_from(request: CorrectiveActionRequest) -> Result<Self, ApiError> {
        let mut f = Fields::default();
        let root_cause = f.text::<4000>("root_cause", &request.root_cause);
        let correction = f.text::<4000>("correction", &request.correction);
        let corrective_action = f.text::<4000>("corrective_action", &request.corrective_action);
        let owner = f.email("owner_email", &request.owner_email);
        let due_on = request.due_on.map(|d| f.date("due_on", d));
        let evidence = f.references("evidence", &request.evidence, 100);
        let parsed = (|| Some((root_cause?, correction?, corrective_action?, owner?, evidence?)))();
        let (root_cause, correction, corrective_action, owner, evidence) = f.finish(parsed)?;
        Ok(Self {
            root_cause: root_cause.into_inner(),
            correction: correction.into_inner(),
            corrective_action: corrective_action.into_inner(),
            owner,
            due_on: due_on.flatten(),
            evidence,
        })
    }
}

/// The finding's grade and its audit's last day: the anchor of the due-date window.
async fn finding_and_anchor(
    txn: &DatabaseTransaction,
    engagement_id: Uuid,
    finding_id: Uuid,
) -> Result<(finding::Model, NaiveDate), ApiError> {
    let found =
        belongs(Finding::find_by_id(finding_id).one(txn).await?, |f| f.engagement_id, engagement_id, "finding")?;
    let audit = Audit::find_by_id(found.audit_id).one(txn).await?.ok_or(ApiError::NotFound("audit"))?;
    Ok((found, audit.last_day))
}

fn due_deadline(due_on: NaiveDate) -> DeadlineChange {
    DeadlineChange::Open(DeadlineToOpen {
        kind: DeadlineKind::CorrectiveActionDue,
        due_on,
        owner: DeadlineOwner::CorrectiveActionOwner,
    })
}

/// Submits the corrective action for a nonconformity.
#[utoipa::path(
    tag = "corrective_actions",
    operation_id = "create_corrective_action",
    params(("id" = Uuid, Path, description = "Engagement id"), ("finding_id" = Uuid, Path, description = "Finding id")),
    request_body = CorrectiveActionRequest,
    responses(
        (status = 201, description = "Submitted; its deadline is open", body = CorrectiveActionView),
        (status = "4XX", description = "Refused (e.g. a due date outside 30–90 days: cap-due-date-out-of-window)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/engagements/{id}/findings/{finding_id}/corrective-action")]
pub async fn create_corrective_action(
    app: web::Data<AppState>,
    user: AuthUser,
    claim: IdempotencyClaim,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<CorrectiveActionRequest>,
) -> Result<HttpResponse, ApiError> {
    let (id, finding_id) = path.into_inner();
    let plan = PlanFields::try_from(body.into_inner())?;
    let now = app.clock.now();
    let txn = begin_write_claiming(&app.writer, &claim).await?;
    let engagement = lock_engagement(&txn, &user, id, Action::SubmitCorrectiveAction).await?;
    require_open(&engagement, "corrective actions")?;
    let mut open_deadlines = OpenDeadlines::of(&txn, id).await?;
    let (found, anchor) = finding_and_anchor(&txn, id, finding_id).await?;
    let due_on = corrective_action_due(found.grade, anchor, plan.due_on, &app.policy)?;
    let created = corrective_action::ActiveModel {
        id: Set(Uuid::now_v7()),
        engagement_id: Set(id),
        finding_id: Set(finding_id),
        root_cause: Set(plan.root_cause),
        correction: Set(plan.correction),
        corrective_action: Set(plan.corrective_action),
        owner_email: Set(plan.owner.to_string()),
        due_on: Set(due_on),
        evidence: Set(json_strings(&plan.evidence)),
        verification: Set(VerificationStatus::Pending),
        verification_note: Set(None),
        verified_by: Set(None),
        verified_at: Set(None),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .on_unique_violation(|| {
        ApiError::conflict(
            "corrective-action-exists",
            "this finding already has a corrective action: update it instead",
        )
    })?;
    apply_deadline_change(
        &txn,
        &engagement,
        &mut open_deadlines,
        due_deadline(due_on),
        Some((created.id, &plan.owner)),
        now,
    )
    .await?;
    let record = HistoryRecord::change(id, "corrective_action_submitted", &user.subject, Some(created.id))
        .with_evidence(&plan.evidence);
    record_history(&txn, record, now).await?;
    claim.commit(txn, HttpResponse::Created().json(CorrectiveActionView::new(created, now.date_naive()))).await
}

/// Lists an engagement's corrective actions, soonest due first.
#[utoipa::path(
    tag = "corrective_actions",
    operation_id = "list_corrective_actions",
    params(("id" = Uuid, Path, description = "Engagement id")),
    responses(
        (status = 200, description = "The corrective actions", body = Vec<CorrectiveActionView>),
        (status = "4XX", description = "Refused", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/engagements/{id}/corrective-actions")]
pub async fn list_corrective_actions(
    app: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<web::Json<Vec<CorrectiveActionView>>, ApiError> {
    find_engagement(&app.db, &user, *id).await?;
    let today = app.clock.today();
    let actions = CorrectiveAction::find()
        .filter(corrective_action::Column::EngagementId.eq(*id))
        .order_by_asc(corrective_action::Column::DueOn)
        .all(&app.db)
        .await?;
    Ok(web::Json(actions.into_iter().map(|a| CorrectiveActionView::new(a, today)).collect()))
}

/// Revises a corrective action (e.g. after a rejection); a new due date moves its deadline.
#[utoipa::path(
    tag = "corrective_actions",
    operation_id = "update_corrective_action",
    params(
        ("id" = Uuid, Path, description = "Engagement id"),
        ("corrective_action_id" = Uuid, Path, description = "Corrective action id"),
        ("If-Match" = Option<String>, Header, description = "The version last read"),
    ),
    request_body = CorrectiveActionRequest,
    responses(
        (status = 200, description = "Revised; pending verification again", body = CorrectiveActionView),
        (status = "4XX", description = "Refused", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[put("/engagements/{id}/corrective-actions/{corrective_action_id}")]
pub async fn update_corrective_action(
    app: web::Data<AppState>,
    user: AuthUser,
    http: HttpRequest,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<CorrectiveActionRequest>,
) -> Result<web::Json<CorrectiveActionView>, ApiError> {
    let (id, action_id) = path.into_inner();
    let body = body.into_inner();
    let expected = expected_version(&http, body.version)?;
    let plan = PlanFields::try_from(body)?;
    let now = app.clock.now();
    let txn = begin_write(&app.writer).await?;
    let engagement = lock_engagement(&txn, &user, id, Action::SubmitCorrectiveAction).await?;
    require_open(&engagement, "corrective actions")?;
    let mut open_deadlines = OpenDeadlines::of(&txn, id).await?;
    let action = belongs(
        CorrectiveAction::find_by_id(action_id).one(&txn).await?,
        |a| a.engagement_id,
        id,
        "corrective action",
    )?;
    check_version(expected, action.version)?;
    if action.verification == VerificationStatus::Accepted {
        return Err(ApiError::conflict("corrective-action-verified", "an accepted corrective action is closed"));
    }
    let (found, anchor) = finding_and_anchor(&txn, id, action.finding_id).await?;
    let due_on = corrective_action_due(found.grade, anchor, plan.due_on.or(Some(action.due_on)), &app.policy)?;
    let subject = Some((action.id, &plan.owner));
    if due_on != action.due_on || plan.owner.as_str() != action.owner_email {
        let close = DeadlineChange::Close(DeadlineKind::CorrectiveActionDue, DeadlineStatus::Cancelled);
        apply_deadline_change(&txn, &engagement, &mut open_deadlines, close, subject, now).await?;
        apply_deadline_change(&txn, &engagement, &mut open_deadlines, due_deadline(due_on), subject, now).await?;
    }
    let version = action.version;
    let mut model = action.into_active_model();
    model.root_cause = Set(plan.root_cause);
    model.correction = Set(plan.correction);
    model.corrective_action = Set(plan.corrective_action);
    model.owner_email = Set(plan.owner.to_string());
    model.due_on = Set(due_on);
    model.evidence = Set(json_strings(&plan.evidence));
    model.verification = Set(VerificationStatus::Pending);
    model.version = Set(version + 1);
    model.updated_at = Set(now);
    let updated = model.update(&txn).await?;
    let record = HistoryRecord::change(id, "corrective_action_revised", &user.subject, Some(action_id))
        .with_evidence(&plan.evidence);
    record_history(&txn, record, now).await?;
    txn.commit().await?;
    Ok(web::Json(CorrectiveActionView::new(updated, now.date_naive())))
}

/// The certification body verifies a corrective action: accepted closes the finding and meets its
/// deadline; rejected (with a note) leaves both open.
#[utoipa::path(
    tag = "corrective_actions",
    operation_id = "verify_corrective_action",
    params(("id" = Uuid, Path, description = "Engagement id"), ("corrective_action_id" = Uuid, Path, description = "Corrective action id")),
    request_body = VerificationRequest,
    responses(
        (status = 200, description = "Verified", body = CorrectiveActionView),
        (status = "4XX", description = "Refused", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/engagements/{id}/corrective-actions/{corrective_action_id}/verification")]
pub async fn verify_corrective_action(
    app: web::Data<AppState>,
    user: AuthUser,
    claim: IdempotencyClaim,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<VerificationRequest>,
) -> Result<HttpResponse, ApiError> {
    let (id, action_id) = path.into_inner();
    let request = body.into_inner();
    let mut f = Fields::default();
    f.check(request.outcome != VerificationStatus::Pending, "outcome", "must be accepted or rejected");
    let note = f.optional_text::<4000>("note", request.note.as_deref());
    if request.outcome == VerificationStatus::Rejected {
        f.check(request.note.as_deref().is_some_and(|n| !n.trim().is_empty()), "note", "a rejection must say why");
    }
    let note = f.finish(note)?;
    let now = app.clock.now();
    let txn = begin_write_claiming(&app.writer, &claim).await?;
    let engagement = lock_engagement(&txn, &user, id, Action::VerifyCorrectiveAction).await?;
    require_open(&engagement, "corrective actions")?;
    let mut open_deadlines = OpenDeadlines::of(&txn, id).await?;
    let action = belongs(
        CorrectiveAction::find_by_id(action_id).one(&txn).await?,
        |a| a.engagement_id,
        id,
        "corrective action",
    )?;
    if action.verification == VerificationStatus::Accepted {
        return Err(ApiError::conflict("corrective-action-verified", "this corrective action is already accepted"));
    }
    let found = Finding::find_by_id(action.finding_id).one(&txn).await?.ok_or(ApiError::NotFound("finding"))?;
    let accepted = request.outcome == VerificationStatus::Accepted;
    if accepted && found.grade == FindingGrade::MajorNc {
        refuse_after_major_limit(&engagement, now.date_naive(), &app)?;
    }
    if accepted {
        let mut finding = found.clone().into_active_model();
        finding.status = Set(FindingStatus::Closed);
        finding.closed_at = Set(Some(now));
        finding.update(&txn).await?;
        let owner = EmailAddress::parse(&action.owner_email).map_err(|e| ApiError::Unexpected(e.into()))?;
        let met = DeadlineChange::Close(DeadlineKind::CorrectiveActionDue, DeadlineStatus::Met);
        apply_deadline_change(&txn, &engagement, &mut open_deadlines, met, Some((action.id, &owner)), now).await?;
        if found.grade == FindingGrade::MajorNc && count_open_findings(&txn, id, FindingGrade::MajorNc).await? == 0 {
            let limit_met = DeadlineChange::Close(DeadlineKind::MajorNcLimit, DeadlineStatus::Met);
            apply_deadline_change(&txn, &engagement, &mut open_deadlines, limit_met, None, now).await?;
        }
    }
    let version = action.version;
    let mut model = action.into_active_model();
    model.verification = Set(request.outcome);
    model.verification_note = Set(note.map(|n| n.into_inner()));
    model.verified_by = Set(Some(user.subject.clone()));
    model.verified_at = Set(Some(now));
    model.version = Set(version + 1);
    model.updated_at = Set(now);
    let updated = model.update(&txn).await?;
    let record =
        HistoryRecord::change(id, format!("corrective_action_{}", request.outcome), &user.subject, Some(action_id))
            .with_reason(updated.verification_note.clone());
    record_history(&txn, record, now).await?;
    claim.commit(txn, HttpResponse::Ok().json(CorrectiveActionView::new(updated, now.date_naive()))).await
}

/// ISO/IEC 17021-1: a major NC not verified within 6 months of stage 2 needs a new stage 2, so a
/// late verification is refused while the engagement waits in `corrective_actions`.
fn refuse_after_major_limit(engagement: &engagement::Model, today: NaiveDate, app: &AppState) -> Result<(), ApiError> {
    let limit = engagement.stage2_last_day.map(|day| major_nc_limit(day, &app.policy));
    match limit {
        Some(limit) if engagement.state == EngagementState::CorrectiveActions && today > limit => {
            Err(ApiError::conflict(
                "major-nc-limit-passed",
                format!("the 6-month limit for verifying major NCs ended on {limit}: fire require_new_stage2"),
            ))
        }
        _ => Ok(()),
    }
}
