//! `POST /engagements`.

use actix_web::{HttpResponse, post, web};
use engine::contacts::check_organization_contact;
use entities::domain::StandardVersion;
use entities::domain::dates::standard_accepted_for_audit;
use entities::domain::state::EngagementState;
use entities::orm::engagement;
use sea_orm::{ActiveModelTrait, ActiveValue::Set};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use engine::Target;
use engine::access::Action;
use engine::history::HistoryRecord;

use super::view::EngagementView;
use crate::auth::AuthUser;
use crate::error::{ApiError, Refused};
use crate::fields::Fields;
use crate::idempotency::{IdempotencyClaim, commit};
use crate::state::AppState;

/// A new engagement.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "organization_id": "019a0000-0000-7000-8000-000000000001",
    "manager_email": "isms@acme.example",
    "standard": "2022"
}))]
pub struct EngagementRequest {
    /// The organization seeking certification.
    pub organization_id: Uuid,
    /// The client's manager of the engagement (reminders and escalations).
    pub manager_email: String,
    /// The standard certified against (default 2022).
    #[serde(default = "default_standard")]
    pub standard: StandardVersion,
}

fn default_standard() -> StandardVersion {
    StandardVersion::Iso27001_2022
}

/// Starts an engagement in `cb_selection`.
#[utoipa::path(
    tag = "engagements",
    operation_id = "create_engagement",
    request_body = EngagementRequest,
    responses(
        (status = 201, description = "Created, in cb_selection", body = EngagementView),
        Refused,
    ),
    security(("bearer" = []))
)]
#[post("/engagements")]
pub async fn create_engagement(
    app: web::Data<AppState>,
    user: AuthUser,
    claim: IdempotencyClaim,
    body: web::Json<EngagementRequest>,
) -> Result<HttpResponse, ApiError> {
    user.may(Action::CreateEngagement)?;
    let request = body.into_inner();
    let now = app.clock.now();
    let mut f = Fields::default();
    let manager = f.email("manager_email", &request.manager_email);
    f.check(
        standard_accepted_for_audit(request.standard, now.date_naive()),
        "standard",
        "no initial audit against ISO/IEC 27001:2013 after 2024-04-30 (IAF MD 26): use 2022",
    );
    let manager = f.finish(manager)?;
    let target = Target::Organization(request.organization_id);
    let write = app.begin(&user, target, Action::CreateEngagement, claim.claim()).await?;
    check_organization_contact(write.txn(), request.organization_id, "manager_email", manager.as_str()).await?;
    let created = engagement::ActiveModel {
        id: Set(Uuid::now_v7()),
        organization_id: Set(request.organization_id),
        certification_body_id: Set(None),
        standard: Set(request.standard),
        state: Set(EngagementState::CbSelection),
        manager_email: Set(manager.to_string()),
        engagement_letter_signed_on: Set(None),
        stage1_ready_on: Set(None),
        stage2_last_day: Set(None),
        suspended_on: Set(None),
        expired_on: Set(None),
        suspension_cause: Set(None),
        scope: Set(None),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(write.txn())
    .await?;
    let record = HistoryRecord {
        engagement_id: created.id,
        action: "engagement_created".into(),
        from_state: None,
        to_state: Some(EngagementState::CbSelection),
        actor: &user.subject,
        reason: None,
        evidence: &[],
        subject_id: None,
    };
    write.record_history(record).await?;
    commit(write, HttpResponse::Created().json(EngagementView::new(created, Vec::new()))).await
}
