//! The portfolio: the home page of a certification body's people (and of a client's managers, for
//! their own engagements): what is overdue and what falls due soon, each a link to its engagement,
//! filterable by organization, and the engagements by state, paged on the server.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use entities::domain::deadline::{DeadlineKind, DeadlineStatus};
use entities::domain::reminders::NotificationStatus;
use entities::domain::state::EngagementState;
use entities::orm::{audit, deadline, engagement, notification, organization, prelude::*};
use sea_orm::sea_query::{Asterisk, Expr, Func, Query};
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, JoinType, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Select,
};
use serde::Deserialize;
use uuid::Uuid;

use engine::access::{Tenancy, audits_in, deadlines_in, engagement_records_in, notifications_in};
use engine::changes::Scope;

use super::calendar::{Feed, feed_path};
use super::kept::Kept;
use super::{PageError, SignedIn, page};
use crate::state::AppState;

/// Rows a section lists.
const ROWS: u64 = 25;

/// `?organization_id=&within=&order=&state=&after=`
#[derive(Debug, Default, Deserialize)]
pub struct PortfolioQuery {
    /// Only this organization's engagements.
    organization_id: Option<Uuid>,
    /// Days ahead for what falls due (30, 60 or 90; default 90).
    within: Option<i64>,
    /// `desc`: latest due first.
    order: Option<String>,
    /// The engagement list: only this state.
    state: Option<EngagementState>,
    /// The engagement list: the page after this engagement id.
    after: Option<Uuid>,
    /// One section alone, paged (`overdue`, `majors`, `audits`, `expiring`, `suspensions`).
    section: Option<String>,
    /// That section's page after this row: `<due date>_<deadline id>`.
    from: Option<String>,
}

/// Where a page of a section starts: after the row due on that day with that id.
fn parse_from(from: Option<&str>) -> Option<(NaiveDate, Uuid)> {
    let (day, id) = from?.split_once('_')?;
    Some((day.parse().ok()?, id.parse().ok()?))
}

/// A deadline row.
#[derive(Debug, Clone)]
pub struct DueRow {
    /// Its engagement (its organization's name is read for every row at once).
    engagement_id: Uuid,
    /// Where the row leads: its engagement's page, at the row.
    href: String,
    organization: String,
    kind: String,
    due_on: NaiveDate,
    days: i64,
}

/// A section of deadlines.
#[derive(Debug, Clone)]
pub struct Section {
    id: &'static str,
    title: String,
    total: u64,
    rows: Vec<DueRow>,
    /// The link to the section's next page, when there is one.
    more: Option<String>,
}

/// An engagement row.
#[derive(Debug, Clone)]
pub struct EngagementRow {
    id: Uuid,
    organization: String,
    state: String,
}

#[derive(Template)]
#[template(path = "portfolio.html")]
struct PortfolioPage<'a> {
    me: &'a SignedIn,
    today: NaiveDate,
    /// When the view was read, in the body's time zone.
    counted_at: String,
    /// How long views are kept at most, in seconds.
    kept_seconds: u64,
    within: i64,
    organization_id: Option<Uuid>,
    organizations: Vec<(Uuid, String)>,
    sections: Vec<Section>,
    failed_emails: Vec<DueRow>,
    failed_total: u64,
    by_state: Vec<(String, u64)>,
    state: Option<EngagementState>,
    engagements: Vec<EngagementRow>,
    next_page: Option<String>,
    descending: bool,
    feeds: Vec<(&'static str, String)>,
    /// One section alone (its pages).
    only: bool,
}

impl PortfolioPage<'_> {
    fn selected(&self, id: &Uuid) -> bool {
        self.organization_id == Some(*id)
    }
}

/// `GET /`
pub async fn portfolio(
    app: web::Data<AppState>,
    console: web::Data<super::Console>,
    me: SignedIn,
    query: web::Query<PortfolioQuery>,
) -> Result<HttpResponse, PageError> {
    let tenancy = me.user.tenancy;
    // Today as the caller's body reads it (its certification policy's time zone).
    let body = match tenancy {
        Tenancy::CertificationBody(id) => Some(id),
        _ => None,
    };
    let zone = engine::policies::certification_policy_of(&app.db, body).await?.time_zone;
    let today = zone.today(app.clock.now());
    let view = View {
        tenancy,
        today,
        organization: query.organization_id,
        within: query.within.filter(|days| [30, 60, 90].contains(days)).unwrap_or(90),
        descending: query.order.as_deref() == Some("desc"),
        state: query.state,
        after: query.after,
        section: SECTIONS.iter().copied().find(|id| query.section.as_deref() == Some(*id)),
        from: parse_from(query.from.as_deref()),
    };
    let scope = match tenancy {
        Tenancy::CertificationBody(body) => Scope::CertificationBody(body),
        _ => Scope::Every,
    };
    let portfolio = console.portfolios.of(&app.changes, view, scope, async || read_view(&app, &view).await).await?;
    let Portfolio { sections, failed_emails, failed_total, by_state, engagements, next_page, organizations, taken_at } =
        Portfolio::clone(&portfolio);
    let template = PortfolioPage {
        me: &me,
        today,
        counted_at: zone.local_time(taken_at),
        kept_seconds: console.portfolios.keep.as_secs(),
        within: view.within,
        organization_id: view.organization,
        organizations,
        sections,
        failed_emails,
        failed_total,
        by_state,
        state: view.state,
        engagements,
        next_page,
        descending: view.descending,
        only: view.section.is_some(),
        feeds: vec![
            (
                "What you are concerned with",
                format!("{}{}", console.base_url, feed_path(&console, &me.person, Feed::Mine)),
            ),
            ("Every engagement you see", format!("{}{}", console.base_url, feed_path(&console, &me.person, Feed::All))),
        ],
    };
    Ok(page(StatusCode::OK, &template))
}

/// The sections that page on their own.
const SECTIONS: [&str; 5] = ["overdue", "majors", "audits", "expiring", "suspensions"];

/// Reads `view` of the portfolio: every section's rows (keyset pages on the indexes) and counts,
/// failed emails, the engagements by state and a page of them, and the organizations named.
async fn read_view(app: &AppState, view: &View) -> Result<Portfolio, PageError> {
    let taken_at = app.clock.now();
    let View { tenancy, today, organization, within, descending, state, after, section: only, from } = *view;
    let open = || open_deadlines(tenancy, organization);
    // The filters a section's "more" link keeps.
    let mut kept = format!("within={within}");
    if descending {
        kept.push_str("&order=desc");
    }
    if let Some(id) = organization {
        kept.push_str(&format!("&organization_id={id}"));
    }
    use DeadlineKind as K;
    let horizon = today + Duration::days(within);
    let within_window = || Condition::all().add(deadline::Column::DueOn.lte(horizon));
    // Each section: its kinds of deadline and which of them.
    let specs: [(&'static str, String, &[DeadlineKind], Condition); 5] = [
        (
            "overdue",
            "Corrective actions overdue".to_owned(),
            PLANS,
            Condition::all().add(deadline::Column::DueOn.lt(today)),
        ),
        (
            "majors",
            format!("Major nonconformities reaching their 6-month limit within {within} days"),
            &[K::MajorNcLimit],
            within_window(),
        ),
        ("audits", format!("Surveillance audits due within {within} days"), &[K::SurveillanceDue], within_window()),
        (
            "expiring",
            format!("Certificates expiring within {within} days, no recertification started"),
            EXPIRIES,
            expiring_unrenewed(tenancy, horizon),
        ),
        ("suspensions", "Suspensions, by the days left to their limit".to_owned(), SUSPENSIONS, Condition::all()),
    ];
    let every_kind = specs.iter().flat_map(|(_, _, kinds, _)| kinds.iter().copied()).collect();
    let tallies = &tallies_of(app, tenancy, organization, today, horizon, every_kind).await?;
    let tally = |kinds: &[DeadlineKind], measure: fn(&(DeadlineKind, i64, i64, i64)) -> i64| -> u64 {
        let sum: i64 = tallies.iter().filter(|t| kinds.contains(&t.0)).map(measure).sum();
        u64::try_from(sum).unwrap_or(0)
    };
    let mut sections = Vec::new();
    for (id, title, kinds, which) in specs {
        if only.is_some_and(|only| only != id) {
            continue;
        }
        let total = match id {
            "overdue" => tally(kinds, |t| t.1),
            "suspensions" => tally(kinds, |t| t.3),
            "expiring" => match tally(kinds, |t| t.2) {
                // Those whose engagement has started its recertification are not counted (read
                // only when there are any to tell apart).
                0 => 0,
                _ => {
                    open()
                        .filter(deadline::Column::Kind.is_in(kinds.iter().copied()))
                        .filter(which.clone())
                        .count(&app.db)
                        .await?
                }
            },
            _ => tally(kinds, |t| t.2),
        };
        // Keyset pages in (due date, id) order: the rows after the last one shown. Each kind is
        // read in the index's order and the kinds merged here (one index range each, never every
        // matching row sorted).
        let mut found = Vec::new();
        // (A kind with nothing open is not read at all.)
        let open_kinds = kinds.iter().copied().filter(|kind| tallies.iter().any(|t| t.0 == *kind && t.3 > 0));
        for kind in open_kinds {
            let mut page = open().filter(deadline::Column::Kind.eq(kind)).filter(which.clone());
            if let Some((day, after)) = from.filter(|_| only == Some(id)) {
                let same_day_after =
                    Condition::all().add(deadline::Column::DueOn.eq(day)).add(deadline::Column::Id.gt(after));
                let later = if descending { deadline::Column::DueOn.lt(day) } else { deadline::Column::DueOn.gt(day) };
                page = page.filter(Condition::any().add(later).add(same_day_after));
            }
            let ordered = if descending {
                page.order_by_desc(deadline::Column::DueOn)
            } else {
                page.order_by_asc(deadline::Column::DueOn)
            };
            found.extend(ordered.order_by_asc(deadline::Column::Id).limit(ROWS + 1).all(&app.db).await?);
        }
        found.sort_by(|a, b| {
            let by_day = if descending { b.due_on.cmp(&a.due_on) } else { a.due_on.cmp(&b.due_on) };
            by_day.then(a.id.cmp(&b.id))
        });
        found.truncate(ROWS as usize + 1);
        let more = (found.len() as u64 > ROWS).then(|| {
            found.truncate(ROWS as usize);
            let last = found.last().map(|d| format!("{}_{}", d.due_on, d.id)).unwrap_or_default();
            format!("/?section={id}&from={last}&{kept}#{id}")
        });
        let mut rows = Vec::with_capacity(found.len());
        for d in found {
            rows.push(DueRow {
                organization: String::new(),
                engagement_id: d.engagement_id,
                href: format!("/engagements/{}?deadline={}#deadline-{}", d.engagement_id, d.id, d.id),
                kind: d.kind.to_string(),
                due_on: d.due_on,
                days: (d.due_on - today).num_days(),
            });
        }
        sections.push(Section { id, title, total, rows, more });
    }
    // Audits planned in the window, not yet completed.
    let mut planned = Audit::find()
        .filter(audits_in(tenancy))
        .filter(audit::Column::CompletedAt.is_null())
        .filter(audit::Column::FirstDay.gte(today))
        .filter(audit::Column::FirstDay.lte(horizon));
    planned = planned.filter(of_organization(audit::Column::EngagementId, organization));
    let ordered = if descending {
        planned.clone().order_by_desc(audit::Column::FirstDay).order_by_desc(audit::Column::Id)
    } else {
        planned.clone().order_by_asc(audit::Column::FirstDay).order_by_asc(audit::Column::Id)
    };
    let mut found = ordered.limit(ROWS + 1).all(&app.db).await?;
    // Counted only when they are more than a page shows.
    let total = if found.len() as u64 > ROWS { planned.count(&app.db).await? } else { found.len() as u64 };
    found.truncate(ROWS as usize);
    let mut rows = Vec::new();
    for a in found {
        rows.push(DueRow {
            organization: String::new(),
            engagement_id: a.engagement_id,
            href: format!("/engagements/{}#audits-h", a.engagement_id),
            kind: format!("{} audit", a.kind),
            due_on: a.first_day,
            days: (a.first_day - today).num_days(),
        });
    }
    if only.is_none() {
        let title = format!("Audits planned within {within} days");
        sections.insert(2, Section { id: "planned", title, total, rows, more: None });
    }
    // Emails that failed, newest first.
    let failed = Notification::find()
        .filter(notification::Column::Status.eq(NotificationStatus::Failed))
        .filter(notifications_in(tenancy));
    let failed = failed.filter(of_organization(notification::Column::EngagementId, organization));
    let mut found = failed.clone().order_by_desc(notification::Column::CreatedAt).limit(ROWS + 1).all(&app.db).await?;
    let failed_total = if found.len() as u64 > ROWS { failed.count(&app.db).await? } else { found.len() as u64 };
    found.truncate(ROWS as usize);
    let mut failed_emails = Vec::new();
    for n in found {
        failed_emails.push(DueRow {
            organization: String::new(),
            engagement_id: n.engagement_id,
            href: format!("/engagements/{}#emails-h", n.engagement_id),
            kind: n.kind.to_string(),
            due_on: n.scheduled_on,
            days: (n.scheduled_on - today).num_days(),
        });
    }
    // Engagements by state (of the chosen organization): for a body, counted on its index
    // `(certification_body_id, state, organization_id, id)` alone.
    let seen = Engagement::find().filter(engagement_records_in(tenancy));
    let mut engagements_seen = seen.clone();
    if let Some(id) = organization {
        engagements_seen = engagements_seen.filter(engagement::Column::OrganizationId.eq(id));
    }
    let mut by_state: Vec<(EngagementState, i64)> = engagements_seen
        .clone()
        .select_only()
        .column(engagement::Column::State)
        .column_as(Expr::from(Func::count(Expr::col(Asterisk))), "n")
        .group_by(engagement::Column::State)
        .into_tuple()
        .all(&app.db)
        .await?;
    by_state.sort_by_key(|(state, _)| *state);
    let organizations = organizations_named(app, tenancy).await?;
    let mut listed = engagements_seen;
    if let Some(state) = state {
        listed = listed.filter(engagement::Column::State.eq(state));
    }
    if let Some(after) = after {
        listed = listed.filter(engagement::Column::Id.gt(after));
    }
    let page_rows = listed.order_by_asc(engagement::Column::Id).limit(ROWS + 1).all(&app.db).await?;
    let more = page_rows.len() as u64 > ROWS;
    let mut engagements = Vec::new();
    for e in page_rows.into_iter().take(ROWS as usize) {
        engagements.push(EngagementRow { organization: String::new(), id: e.id, state: e.state.to_string() });
    }
    let next_page = more.then(|| {
        let last = engagements.last().map(|e| e.id.to_string()).unwrap_or_default();
        let mut link = format!("/?after={last}#engagements");
        if let Some(state) = state {
            link = format!("/?after={last}&state={state}#engagements");
        }
        if let Some(id) = organization {
            link = link.replacen("/?", &format!("/?organization_id={id}&"), 1);
        }
        link
    });
    // Every row's organization, named in one query for the whole page.
    let wanted = sections
        .iter()
        .flat_map(|s| &s.rows)
        .chain(&failed_emails)
        .map(|r| r.engagement_id)
        .chain(engagements.iter().map(|e| e.id))
        .collect();
    let names = organization_names_of(app, wanted).await?;
    for row in sections.iter_mut().flat_map(|s| s.rows.iter_mut()).chain(failed_emails.iter_mut()) {
        row.organization = names.get(&row.engagement_id).cloned().unwrap_or_default();
    }
    for row in &mut engagements {
        row.organization = names.get(&row.id).cloned().unwrap_or_default();
    }
    let by_state = by_state.into_iter().map(|(state, n)| (state.to_string(), u64::try_from(n).unwrap_or(0))).collect();
    Ok(Portfolio { sections, failed_emails, failed_total, by_state, engagements, next_page, organizations, taken_at })
}

/// The kinds of deadline of a corrective action's plan, action and verification.
const PLANS: &[DeadlineKind] = &[
    DeadlineKind::CorrectiveActionPlanDue,
    DeadlineKind::CorrectiveActionDue,
    DeadlineKind::CorrectiveActionVerification,
];
/// A certificate's expiry.
const EXPIRIES: &[DeadlineKind] = &[DeadlineKind::CertificateExpiry];
/// A suspension's limits.
const SUSPENSIONS: &[DeadlineKind] = &[DeadlineKind::SuspensionLimit, DeadlineKind::RestoreAfterExpiryLimit];

/// The open deadlines `tenancy` reads, of `organization`'s engagements when one is chosen.
fn open_deadlines(tenancy: Tenancy, organization: Option<Uuid>) -> Select<Deadline> {
    Deadline::find()
        .filter(deadline::Column::Status.eq(DeadlineStatus::Open))
        .filter(deadlines_in(tenancy))
        .filter(of_organization(deadline::Column::EngagementId, organization))
}

/// Certificate expiries by `horizon` where no recertification has started: not of an engagement
/// the caller reads that is in recertification (for a body, one range of its index by state).
fn expiring_unrenewed(tenancy: Tenancy, horizon: NaiveDate) -> Condition {
    Condition::all().add(deadline::Column::DueOn.lte(horizon)).add(
        deadline::Column::EngagementId.not_in_subquery(
            Query::select()
                .column(engagement::Column::Id)
                .from(Engagement)
                .cond_where(engagement_records_in(tenancy))
                .and_where(engagement::Column::State.eq(EngagementState::Recertification))
                .to_owned(),
        ),
    )
}

/// A view of the portfolio: whose, on which day, and the filters and page asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct View {
    tenancy: Tenancy,
    /// Today in the body's time zone.
    today: NaiveDate,
    organization: Option<Uuid>,
    /// Days ahead for what falls due.
    within: i64,
    descending: bool,
    /// The engagement list: only this state, after this engagement.
    state: Option<EngagementState>,
    after: Option<Uuid>,
    /// One section alone, from after this row.
    section: Option<&'static str>,
    from: Option<(NaiveDate, Uuid)>,
}

/// What a view of the portfolio shows.
#[derive(Debug, Clone)]
pub struct Portfolio {
    sections: Vec<Section>,
    failed_emails: Vec<DueRow>,
    failed_total: u64,
    by_state: Vec<(String, u64)>,
    engagements: Vec<EngagementRow>,
    next_page: Option<String>,
    /// The organizations to filter by (the first 500), by name.
    organizations: Vec<(Uuid, String)>,
    /// When it was read.
    taken_at: DateTime<Utc>,
}

/// The views of the portfolio, kept (see [`Kept`]).
pub type KeptPortfolios = Kept<View, Portfolio>;

/// Per kind of `every_kind`, how many are open in `tenancy`'s portfolio (of `organization`'s
/// engagements when one is chosen): overdue, due by `horizon`, at all. One pass over the open
/// deadlines of those kinds (on the body's index range alone).
async fn tallies_of(
    app: &AppState,
    tenancy: Tenancy,
    organization: Option<Uuid>,
    today: NaiveDate,
    horizon: NaiveDate,
    every_kind: Vec<DeadlineKind>,
) -> Result<Vec<(DeadlineKind, i64, i64, i64)>, PageError> {
    let count_where = |condition: Expr| Expr::from(Func::count(Expr::Case(Box::new(Expr::case(condition, 1)))));
    Ok(open_deadlines(tenancy, organization)
        .filter(deadline::Column::Kind.is_in(every_kind))
        .select_only()
        .column(deadline::Column::Kind)
        .column_as(count_where(deadline::Column::DueOn.lt(today)), "overdue")
        .column_as(count_where(deadline::Column::DueOn.lte(horizon)), "due_soon")
        .column_as(Expr::from(Func::count(Expr::col(Asterisk))), "open")
        .group_by(deadline::Column::Kind)
        .into_tuple()
        .all(&app.db)
        .await?)
}

/// Rows whose engagement (its `column`) is `organization`'s; every row when none is chosen.
fn of_organization(column: impl ColumnTrait, organization: Option<Uuid>) -> Condition {
    match organization {
        Some(id) => Condition::all().add(
            column.in_subquery(
                Query::select()
                    .column(engagement::Column::Id)
                    .from(Engagement)
                    .and_where(engagement::Column::OrganizationId.eq(id))
                    .to_owned(),
            ),
        ),
        None => Condition::all(),
    }
}

/// The name of the organization of each of `engagements`.
async fn organization_names_of(app: &AppState, mut engagements: Vec<Uuid>) -> Result<HashMap<Uuid, String>, PageError> {
    engagements.sort();
    engagements.dedup();
    if engagements.is_empty() {
        return Ok(HashMap::new());
    }
    let pairs: Vec<(Uuid, String)> = Engagement::find()
        .select_only()
        .column(engagement::Column::Id)
        .column(organization::Column::LegalName)
        .join(
            JoinType::InnerJoin,
            Engagement::belongs_to(Organization)
                .from(engagement::Column::OrganizationId)
                .to(organization::Column::Id)
                .into(),
        )
        .filter(engagement::Column::Id.is_in(engagements))
        .into_tuple()
        .all(&app.db)
        .await?;
    Ok(pairs.into_iter().collect())
}

/// The organizations of the engagements `tenancy` reads (the first 500 by id), by name: the
/// filter's choices, in one statement.
async fn organizations_named(app: &AppState, tenancy: Tenancy) -> Result<Vec<(Uuid, String)>, PageError> {
    let theirs = Query::select()
        .distinct()
        .column(engagement::Column::OrganizationId)
        .from(Engagement)
        .cond_where(engagement_records_in(tenancy))
        .order_by(engagement::Column::OrganizationId, sea_orm::Order::Asc)
        .limit(500)
        .to_owned();
    let mut named: Vec<(Uuid, String)> = Organization::find()
        .select_only()
        .column(organization::Column::Id)
        .column(organization::Column::LegalName)
        .filter(organization::Column::Id.in_subquery(theirs))
        .into_tuple()
        .all(&app.db)
        .await?;
    named.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(named)
}
