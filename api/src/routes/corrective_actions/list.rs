//! An engagement's corrective actions.

use actix_web::{get, web};
use chrono::NaiveDate;
use engine::policies::today_for;
use engine::store::find_engagement_records;
use entities::orm::{corrective_action, prelude::*};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use super::plan::CorrectiveActionView;
use crate::auth::AuthUser;
use crate::error::{ApiError, Refused};
use crate::pagination::{Page, PageQuery, decode_keyed_cursor, keyed_page, keyed_page_of, limit_of};
use crate::state::AppState;

/// Lists an engagement's corrective actions, soonest due first.
#[utoipa::path(
    tag = "corrective_actions",
    operation_id = "list_corrective_actions",
    params(("id" = Uuid, Path, description = "Engagement id"), PageQuery),
    responses(
        (status = 200, description = "A page of the corrective actions, soonest due first", body = Page<CorrectiveActionView>),
        Refused,
    ),
    security(("bearer" = []))
)]
#[get("/engagements/{id}/corrective-actions")]
pub async fn list_corrective_actions(
    app: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<CorrectiveActionView>>, ApiError> {
    let limit = limit_of(query.limit)?;
    let cursor = decode_keyed_cursor::<NaiveDate>(query.cursor.as_deref())?;
    let engagement = find_engagement_records(&app.db, &user, *id).await?;
    let actions = CorrectiveAction::find().filter(corrective_action::Column::EngagementId.eq(*id));
    let (due_on, action_id) = (corrective_action::Column::DueOn, corrective_action::Column::Id);
    let actions = keyed_page(actions, due_on, action_id, cursor, limit).all(&app.db).await?;
    let due_dates = actions.iter().map(|a| a.due_on);
    let today = today_for(&app.db, engagement.certification_body_id, app.clock.now(), due_dates).await?;
    Ok(web::Json(keyed_page_of(actions, limit, |a| (a.due_on, a.id), |a| CorrectiveActionView::new(a, today))))
}
