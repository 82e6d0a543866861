//! Submitting the corrective action for a nonconformity.

use actix_web::{HttpResponse, post, web};
use engine::access::Action;
use engine::contacts::check_engagement_contact;
use engine::deadlines::{OpenDeadlines, apply_deadline_change};
use engine::history::HistoryRecord;
use engine::idempotency::Claim;
use engine::store::{UniqueViolation, json_strings, require_open};
use engine::webhooks::data::{corrective_action_data, event_of};
use engine::{EngineError, Write};
use entities::domain::VerificationStatus;
use entities::domain::dates::corrective_action_due;
use entities::domain::deadline::{DeadlineChange, DeadlineKind, DeadlineStatus};
use entities::domain::webhooks::WebhookEventType;
use entities::orm::corrective_action;
use sea_orm::{ActiveModelTrait, ActiveValue::Set};
use uuid::Uuid;

use super::plan::{CorrectiveActionRequest, CorrectiveActionView, PlanFields, due_deadline, finding_and_anchor};
use crate::auth::AuthUser;
use crate::error::{ApiError, Problem};
use crate::idempotency::{IdempotencyClaim, commit};
use crate::state::AppState;

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
    let (write, created) =
        submit_corrective_action(&app, &user, claim.claim(), id, finding_id, body.into_inner()).await?;
    let today = write.today();
    commit(write, HttpResponse::Created().json(CorrectiveActionView::new(created, today))).await
}

/// Submits the corrective action for finding `finding_id` of engagement `id` (the API's and the
/// console's one way): the write is left for the caller to commit.
pub async fn submit_corrective_action(
    app: &AppState,
    user: &AuthUser,
    claim: Option<Claim>,
    id: Uuid,
    finding_id: Uuid,
    body: CorrectiveActionRequest,
) -> Result<(Write, corrective_action::Model), ApiError> {
    let plan = PlanFields::try_from(body)?;
    let (mut write, engagement) = app.begin_on_engagement(user, id, Action::SubmitCorrectiveAction, claim).await?;
    require_open(&engagement, "corrective actions")?;
    check_engagement_contact(write.txn(), &engagement, "owner_email", plan.owner.as_str()).await?;
    let policy = write.certification_policy_of(&engagement).await?;
    let (txn, now) = (write.txn(), write.now());
    let mut open_deadlines = OpenDeadlines::of(txn, id).await?;
    let (found, anchor) = finding_and_anchor(txn, id, finding_id).await?;
    let due_on = corrective_action_due(found.grade, anchor, plan.due_on, &policy)?;
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
        reported_done_at: Set(None),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(txn)
    .await
    .on_unique_violation(|| {
        EngineError::conflict(
            "corrective-action-exists",
            "this finding already has a corrective action: update it instead",
        )
    })?;
    // The plan is in: its deadline is met, and the plan's own due date follows.
    let plan_met = DeadlineChange::Close(DeadlineKind::CorrectiveActionPlanDue, DeadlineStatus::Met);
    apply_deadline_change(txn, &engagement, &mut open_deadlines, plan_met, Some((finding_id, &plan.owner)), now)
        .await?;
    let subject = Some((created.id, &plan.owner));
    apply_deadline_change(txn, &engagement, &mut open_deadlines, due_deadline(due_on), subject, now).await?;
    let record = HistoryRecord::change(id, "corrective_action_submitted", &user.subject, Some(created.id))
        .with_evidence(&plan.evidence);
    write.record_history(record).await?;
    let submitted = corrective_action_data(&created);
    write.emit(event_of(WebhookEventType::CorrectiveActionSubmitted, &engagement, submitted));
    Ok((write, created))
}
