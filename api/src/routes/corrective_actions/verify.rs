//! The certification body's verification of a corrective action.

use actix_web::{HttpResponse, post, web};
use engine::access::Action;

use engine::corrective_actions::Verification;
use engine::store::require_open;
use entities::domain::VerificationStatus;
use uuid::Uuid;

use super::plan::{CorrectiveActionView, VerificationRequest};
use crate::auth::AuthUser;
use crate::error::{ApiError, Refused};
use crate::fields::Fields;
use crate::idempotency::{IdempotencyClaim, commit};
use crate::state::AppState;

/// The certification body verifies a corrective action: accepted closes the finding and meets its
/// deadline; rejected (with a note) leaves both open.
#[utoipa::path(
    tag = "corrective_actions",
    operation_id = "verify_corrective_action",
    params(("id" = Uuid, Path, description = "Engagement id"), ("corrective_action_id" = Uuid, Path, description = "Corrective action id")),
    request_body = VerificationRequest,
    responses(
        (status = 200, description = "Verified", body = CorrectiveActionView),
        Refused,
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
    let (mut write, engagement) =
        app.begin_on_engagement(&user, id, Action::VerifyCorrectiveAction, claim.claim()).await?;
    require_open(&engagement, "corrective actions")?;
    let verification = Verification { outcome: request.outcome, note: note.map(|n| n.into_inner()) };
    let updated = app.verify_corrective_action(&mut write, &user, &engagement, action_id, verification).await?;
    let today = write.today();
    commit(write, HttpResponse::Ok().json(CorrectiveActionView::new(updated, today))).await
}
