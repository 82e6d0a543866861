//! `GET /engagements/{id}`.

use actix_web::{get, web};
use uuid::Uuid;

use super::view::EngagementView;
use crate::auth::AuthUser;
use crate::error::{ApiError, Refused};
use crate::state::AppState;

/// One engagement, with its allowed events and open deadlines.
#[utoipa::path(
    tag = "engagements",
    operation_id = "get_engagement",
    params(("id" = Uuid, Path, description = "Engagement id")),
    responses(
        (status = 200, description = "The engagement", body = EngagementView),
        Refused,
    ),
    security(("bearer" = []))
)]
#[get("/engagements/{id}")]
pub async fn get_engagement(
    app: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<web::Json<EngagementView>, ApiError> {
    Ok(web::Json(EngagementView::find(&app.db, &user, *id, app.clock.now()).await?))
}
