//! `GET /engagements`: filtered, keyset-paged.

use actix_web::{get, web};
use chrono::NaiveDate;
use entities::domain::dates::{EARLIEST_DATE, LATEST_DATE};
use entities::domain::deadline::DeadlineStatus;
use entities::domain::state::EngagementState;
use entities::orm::{deadline, engagement, prelude::*};
use sea_orm::sea_query::Query;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::Deserialize;
use uuid::Uuid;

use super::view::EngagementView;
use engine::access::{engagements_in, of_engagements_in};

use crate::auth::AuthUser;
use crate::error::{ApiError, Refused};
use crate::pagination::{Page, decode_cursor, id_page, limit_of, page_of};
use crate::state::AppState;

/// Filters and paging of the engagement list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EngagementListQuery {
    /// Only engagements in this state.
    pub state: Option<EngagementState>,
    /// Only engagements with this certification body.
    pub certification_body_id: Option<Uuid>,
    /// Only engagements of this organization.
    pub organization_id: Option<Uuid>,
    /// Only engagements with an open deadline past its due date (`true`), or with none (`false`).
    pub overdue: Option<bool>,
    /// Only engagements with an open deadline due before this date.
    pub due_before: Option<NaiveDate>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Lists engagements, oldest first.
#[utoipa::path(
    tag = "engagements",
    operation_id = "list_engagements",
    params(EngagementListQuery),
    responses(
        (status = 200, description = "A page of engagements", body = Page<EngagementView>),
        Refused,
    ),
    security(("bearer" = []))
)]
#[get("/engagements")]
pub async fn list_engagements(
    app: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<EngagementListQuery>,
) -> Result<web::Json<Page<EngagementView>>, ApiError> {
    let limit = limit_of(query.limit)?;
    let cursor = decode_cursor(query.cursor.as_deref())?;
    let mut select =
        id_page(Engagement::find().filter(engagements_in(user.tenancy)), engagement::Column::Id, cursor, limit);
    if let Some(state) = query.state {
        select = select.filter(engagement::Column::State.eq(state));
    }
    if let Some(cb) = query.certification_body_id {
        select = select.filter(engagement::Column::CertificationBodyId.eq(cb));
    }
    if let Some(organization) = query.organization_id {
        select = select.filter(engagement::Column::OrganizationId.eq(organization));
    }
    // Only the caller's own deadlines are walked: the tenancy is applied inside the subquery too,
    // not only to the engagements it is matched against.
    let with_open_deadline_before = |day: NaiveDate| {
        Query::select()
            .column(deadline::Column::EngagementId)
            .from(Deadline)
            .and_where(deadline::Column::Status.eq(DeadlineStatus::Open))
            .and_where(deadline::Column::DueOn.lt(day))
            .cond_where(of_engagements_in(user.tenancy, deadline::Column::EngagementId))
            .to_owned()
    };
    // The filter reckons "today" in UTC; each view's own flags are in its body's time zone.
    let today = app.clock.today();
    match query.overdue {
        Some(true) => select = select.filter(engagement::Column::Id.in_subquery(with_open_deadline_before(today))),
        Some(false) => select = select.filter(engagement::Column::Id.not_in_subquery(with_open_deadline_before(today))),
        None => {}
    }
    if let Some(day) = query.due_before {
        if !(EARLIEST_DATE..=LATEST_DATE).contains(&day) {
            return Err(ApiError::InvalidQuery(format!(
                "due_before must be between {EARLIEST_DATE} and {LATEST_DATE}"
            )));
        }
        select = select.filter(engagement::Column::Id.in_subquery(with_open_deadline_before(day)));
    }
    let rows = select.all(&app.db).await?;
    let page = page_of(rows, limit, |r| r.id, |r| r);
    let items = EngagementView::many(&app.db, page.items, app.clock.now()).await?;
    Ok(web::Json(Page { items, next_cursor: page.next_cursor }))
}
