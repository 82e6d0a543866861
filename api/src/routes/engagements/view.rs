//! How an engagement and its deadlines are shown.

use engine::policies::{TodayByBody, today_for};
use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use entities::domain::deadline::{DeadlineKind, DeadlineOwner, DeadlineStatus};
use entities::domain::state::{EngagementEvent, EngagementState};
use entities::domain::{StandardVersion, SuspensionCause};
use entities::orm::{deadline, engagement, prelude::*};
use sea_orm::sea_query::{Expr, ExprTrait, JoinType};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryTrait, SelectTwoModel, SelectorTrait};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use engine::access::engagements_in;
use engine::deadlines::open_deadlines_of;
use engine::store::Templates;

use crate::auth::AuthUser;
use crate::error::ApiError;

/// A dated obligation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeadlineView {
    /// Id.
    pub id: Uuid,
    /// What is due.
    pub kind: DeadlineKind,
    /// The corrective action (or other record) it concerns.
    pub subject_id: Option<Uuid>,
    /// The last day.
    pub due_on: NaiveDate,
    /// Who owns it, by role.
    pub owner: DeadlineOwner,
    /// The owner's email.
    pub owner_email: String,
    /// Open, met or cancelled.
    pub status: DeadlineStatus,
    /// Open and past its due date.
    pub overdue: bool,
    /// When it was met or cancelled.
    pub closed_at: Option<DateTime<Utc>>,
    /// The day its next reminder or escalation falls on (none left: absent).
    pub next_step_on: Option<NaiveDate>,
}

impl DeadlineView {
    /// The view of `m` on `today`.
    pub fn new(m: deadline::Model, today: NaiveDate) -> Self {
        Self {
            id: m.id,
            kind: m.kind,
            subject_id: m.subject_id,
            due_on: m.due_on,
            owner: m.owner,
            overdue: m.status == DeadlineStatus::Open && m.due_on < today,
            owner_email: m.owner_email,
            status: m.status,
            closed_at: m.closed_at,
            next_step_on: m.next_step_on.filter(|_| m.status == DeadlineStatus::Open),
        }
    }
}

/// How many open deadlines an engagement view embeds, soonest first.
pub const EMBEDDED_OPEN_DEADLINES: usize = 10;

/// An engagement, with what can happen next.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EngagementView {
    /// Id.
    pub id: Uuid,
    /// The organization certified.
    pub organization_id: Uuid,
    /// The certification body, once a proposal is selected.
    pub certification_body_id: Option<Uuid>,
    /// The standard certified against.
    pub standard: StandardVersion,
    /// Where the engagement stands.
    pub state: EngagementState,
    /// The events the current state allows.
    pub allowed_events: Vec<EngagementEvent>,
    /// The client's manager of the engagement.
    pub manager_email: String,
    /// The scope to certify, set with the engagement letter (the certificate states it).
    pub scope: Option<String>,
    /// When the engagement letter was signed.
    pub engagement_letter_signed_on: Option<NaiveDate>,
    /// Last day of the stage 1 audit that found the organization ready.
    pub stage1_ready_on: Option<NaiveDate>,
    /// Last day of the latest stage-2-depth audit.
    pub stage2_last_day: Option<NaiveDate>,
    /// When the current suspension began.
    pub suspended_on: Option<NaiveDate>,
    /// Why the certificate is suspended (while it is): restoring it needs this cause resolved.
    pub suspension_cause: Option<SuspensionCause>,
    /// When the certificate expired.
    pub expired_on: Option<NaiveDate>,
    /// Open deadlines, soonest first: the first [`EMBEDDED_OPEN_DEADLINES`] (10) at most; every
    /// deadline is at `deadlines_href`.
    pub open_deadlines: Vec<DeadlineView>,
    /// How many deadlines are open (more than `open_deadlines` holds when over the cap).
    pub open_deadlines_total: usize,
    /// The engagement's deadlines, open and closed, paged.
    pub deadlines_href: String,
    /// Version: changes with every write.
    pub version: i32,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl EngagementView {
    /// The view of `m` with its open deadlines.
    pub fn new(m: engagement::Model, mut open_deadlines: Vec<DeadlineView>) -> Self {
        let open_deadlines_total = open_deadlines.len();
        open_deadlines.truncate(EMBEDDED_OPEN_DEADLINES);
        Self {
            open_deadlines_total,
            deadlines_href: format!("/api/v1/engagements/{}/deadlines", m.id),
            id: m.id,
            organization_id: m.organization_id,
            certification_body_id: m.certification_body_id,
            standard: m.standard,
            allowed_events: m.state.allowed_events(),
            state: m.state,
            manager_email: m.manager_email,
            scope: m.scope,
            engagement_letter_signed_on: m.engagement_letter_signed_on,
            stage1_ready_on: m.stage1_ready_on,
            stage2_last_day: m.stage2_last_day,
            suspended_on: m.suspended_on,
            suspension_cause: m.suspension_cause,
            expired_on: m.expired_on,
            open_deadlines,
            version: m.version,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }

    /// The view of `engagement` on `today` with its `open` deadlines (in any order).
    pub fn with_open_deadlines(engagement: engagement::Model, open: Vec<deadline::Model>, today: NaiveDate) -> Self {
        Self::new(engagement, soonest_first(open, today))
    }

    /// Views of `engagements`, with their open deadlines read in one query. A page in one statement
    /// (its engagements as a LIMITed subquery joined with their deadlines) was measured and is
    /// slower on PostgreSQL: with the LIMIT a parameter, PostgreSQL finds its generic plan costlier
    /// than a custom one and plans the join anew at every execution.
    pub async fn many(
        conn: &impl ConnectionTrait,
        engagements: Vec<engagement::Model>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Self>, ApiError> {
        let ids: Vec<Uuid> = engagements.iter().map(|e| e.id).collect();
        let mut by_engagement: HashMap<Uuid, Vec<deadline::Model>> = HashMap::new();
        if !ids.is_empty() {
            for d in open_deadlines_of(ids).all(conn).await? {
                by_engagement.entry(d.engagement_id).or_default().push(d);
            }
        }
        let mut views = Vec::with_capacity(engagements.len());
        let mut today_by_body = TodayByBody::default();
        for e in engagements {
            let open = by_engagement.remove(&e.id).unwrap_or_default();
            let dates = open.iter().map(|d| d.due_on);
            let today = today_by_body.today_for(conn, e.certification_body_id, now, dates).await?;
            views.push(Self::with_open_deadlines(e, open, today));
        }
        Ok(views)
    }

    /// The view of engagement `id` as `user` sees it (404 when it does not), read in one query:
    /// the engagement joined with its open deadlines.
    pub async fn find(
        conn: &impl ConnectionTrait,
        user: &AuthUser,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Self, ApiError> {
        let read = SEEN_WITH_OPEN_DEADLINES.seen_by(conn.get_database_backend(), user.tenancy, id, |id, tenancy| {
            let mut select = Engagement::find_by_id(id).filter(engagements_in(tenancy)).select_also(Deadline);
            let its_open_deadlines = Expr::col((Deadline, deadline::Column::EngagementId))
                .equals((Engagement, engagement::Column::Id))
                .and(deadline::Column::Status.eq(DeadlineStatus::Open));
            QueryTrait::query(&mut select).join(JoinType::LeftJoin, Deadline, its_open_deadlines);
            select.into_query()
        });
        let rows = conn.query_all_raw(read).await?;
        let mut rows = rows
            .into_iter()
            .map(SelectTwoModel::<engagement::Model, deadline::Model>::from_raw_query_result)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter();
        let (engagement, first) = rows.next().ok_or(ApiError::not_found("engagement"))?;
        let open: Vec<deadline::Model> = first.into_iter().chain(rows.filter_map(|(_, d)| d)).collect();
        let today = today_for(conn, engagement.certification_body_id, now, open.iter().map(|d| d.due_on)).await?;
        Ok(Self::with_open_deadlines(engagement, open, today))
    }
}

/// The engagement as its caller sees it with its open deadlines (one row each), built once per
/// backend and kind of tenancy ([`Templates`]).
static SEEN_WITH_OPEN_DEADLINES: Templates = Templates::new();

/// Views of an engagement's open deadlines on `today`, soonest first.
fn soonest_first(mut open: Vec<deadline::Model>, today: NaiveDate) -> Vec<DeadlineView> {
    open.sort_by_key(|d| d.due_on);
    open.into_iter().map(|d| DeadlineView::new(d, today)).collect()
}
