//! An engagement's corrective actions.

use actix_web::{get, web};
use engine::policies::today_for;
use engine::store::find_engagement;
use entities::orm::{corrective_action, prelude::*};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use super::plan::CorrectiveActionView;
use crate::auth::AuthUser;
use crate::error::{ApiError, Refused};
use crate::state::AppState;

/// Lists an engagement's corrective actions, soonest due first.
#[utoipa::path(
    tag = "corrective_actions",
    operation_id = "list_corrective_actions",
    params(("id" = Uuid, Path, description = "Engagement id")),
    responses(
        (status = 200, description = "The corrective actions", body = Vec<CorrectiveActionView>),
        Refused,
    ),
    security(("bearer" = []))
)]
#[get("/engagements/{id}/corrective-actions")]
pub async fn list_corrective_actions(
    app: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<web::Json<Vec<CorrectiveActionView>>, ApiError> {
    let engagement = find_engagement(&app.db, &user, *id).await?;
    let actions = CorrectiveAction::find()
        .filter(corrective_action::Column::EngagementId.eq(*id))
        .order_by_asc(corrective_action::Column::DueOn)
        .all(&app.db)
        .await?;
    let due_dates = actions.iter().map(|a| a.due_on);
    let today = today_for(&app.db, engagement.certification_body_id, app.clock.now(), due_dates).await?;
    Ok(web::Json(actions.into_iter().map(|a| CorrectiveActionView::new(a, today)).collect()))
}
