//! The client reports a corrective action done: the certification body's verification is then
//! the pending step.

use actix_web::{HttpResponse, post, web};
use engine::access::Action;
use engine::store::require_open;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::plan::CorrectiveActionView;
use crate::auth::AuthUser;
use crate::error::{ApiError, Refused};
use crate::fields::Fields;
use crate::idempotency::{IdempotencyClaim, commit};
use crate::state::AppState;

/// The client's report that a corrective action is done.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "evidence": ["dms://isms/evidence/restore-test-2027-03-01.pdf"] }))]
pub struct CompletionRequest {
    /// References to the evidence of the correction, added to the action's evidence.
    #[serde(default)]
    pub evidence: Vec<String>,
}

/// The client reports a corrective action done: its own due date is met, and the certification
/// body's verification becomes the pending step (a deadline owned by the body's coordinator, due
/// after the body's `verification_days`). A rejection hands it back to the client.
#[utoipa::path(
    tag = "corrective_actions",
    operation_id = "complete_corrective_action",
    params(("id" = Uuid, Path, description = "Engagement id"), ("corrective_action_id" = Uuid, Path, description = "Corrective action id")),
    request_body = CompletionRequest,
    responses(
        (status = 200, description = "Reported done; the body's verification is pending", body = CorrectiveActionView),
        Refused,
    ),
    security(("bearer" = []))
)]
#[post("/engagements/{id}/corrective-actions/{corrective_action_id}/completion")]
pub async fn complete_corrective_action(
    app: web::Data<AppState>,
    user: AuthUser,
    claim: IdempotencyClaim,
    path: web::Path<(Uuid, Uuid)>,
    body: web::Json<CompletionRequest>,
) -> Result<HttpResponse, ApiError> {
    let (id, action_id) = path.into_inner();
    let mut f = Fields::default();
    let evidence = f.references("evidence", &body.evidence, 100);
    let evidence = f.finish(evidence)?;
    let (mut write, engagement) =
        app.begin_on_engagement(&user, id, Action::SubmitCorrectiveAction, claim.claim()).await?;
    require_open(&engagement, "corrective actions")?;
    let updated = app.report_corrective_action_done(&mut write, &user, &engagement, action_id, &evidence).await?;
    let today = write.today();
    commit(write, HttpResponse::Ok().json(CorrectiveActionView::new(updated, today))).await
}
