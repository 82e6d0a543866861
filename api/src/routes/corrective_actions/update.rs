//! Revising a corrective action.

use actix_web::{HttpRequest, HttpResponse, put, web};
use engine::access::Action;
use engine::contacts::check_engagement_contact;
use engine::deadlines::{OpenDeadlines, apply_deadline_change};
use engine::history::HistoryRecord;
use engine::store::{belongs, check_version, json_strings, require_open};
use entities::domain::VerificationStatus;
use entities::domain::dates::corrective_action_due;
use entities::domain::deadline::{DeadlineChange, DeadlineKind, DeadlineStatus};
use entities::orm::prelude::*;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait, IntoActiveModel};
use uuid::Uuid;

use super::plan::{CorrectiveActionRequest, CorrectiveActionView, PlanFields, due_deadline, finding_and_anchor};
use crate::auth::AuthUser;
use crate::error::{ApiError, Refused};
use crate::idempotency::commit;
use crate::preconditions::expected_version;
use crate::state::AppState;

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
        Refused,
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
) -> Result<HttpResponse, ApiError> {
    let (id, action_id) = path.into_inner();
    let body = body.into_inner();
    let expected = expected_version(&http, body.version)?;
    let plan = PlanFields::try_from(body)?;
    let (mut write, engagement) = app.begin_on_engagement(&user, id, Action::SubmitCorrectiveAction, None).await?;
    require_open(&engagement, "corrective actions")?;
    check_engagement_contact(write.txn(), &engagement, "owner_email", plan.owner.as_str()).await?;
    let policy = write.certification_policy_of(&engagement).await?;
    let (txn, now, today) = (write.txn(), write.now(), write.today());
    let mut open_deadlines = OpenDeadlines::of(txn, id).await?;
    let action =
        belongs(CorrectiveAction::find_by_id(action_id).one(txn).await?, |a| a.engagement_id, id, "corrective action")?;
    check_version(expected, action.version)?;
    if action.verification == VerificationStatus::Accepted {
        return Err(ApiError::conflict("corrective-action-verified", "an accepted corrective action is closed"));
    }
    let (found, anchor) = finding_and_anchor(txn, id, action.finding_id).await?;
    let due_on = corrective_action_due(found.grade, anchor, plan.due_on.or(Some(action.due_on)), &policy)?;
    let subject = Some((action.id, &plan.owner));
    if due_on != action.due_on || plan.owner.as_str() != action.owner_email {
        let close = DeadlineChange::Close(DeadlineKind::CorrectiveActionDue, DeadlineStatus::Cancelled);
        apply_deadline_change(txn, &engagement, &mut open_deadlines, close, subject, now).await?;
        apply_deadline_change(txn, &engagement, &mut open_deadlines, due_deadline(due_on), subject, now).await?;
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
    let updated = model.update(txn).await?;
    let record = HistoryRecord::change(id, "corrective_action_revised", &user.subject, Some(action_id))
        .with_evidence(&plan.evidence);
    write.record_history(record).await?;
    commit(write, HttpResponse::Ok().json(CorrectiveActionView::new(updated, today))).await
}
