//! The portfolio: the home page of a certification body's people (and of a client's managers, for
//! their own engagements): what is overdue and what falls due soon, each a link to its engagement,
//! filterable by organization, and the engagements by state, paged on the server.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{Duration, NaiveDate};
use entities::domain::deadline::{DeadlineKind, DeadlineStatus};
use entities::domain::reminders::NotificationStatus;
use entities::domain::state::EngagementState;
use entities::orm::{audit, deadline, engagement, notification, organization, prelude::*};
use sea_orm::sea_query::{Asterisk, Expr, Func, Query};
use sea_orm::{ColumnTrait, Condition, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Deserialize;
use uuid::Uuid;

use engine::access::{deadlines_in, engagement_records_in, of_engagements_in};

use super::calendar::{Feed, feed_path};
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
pub struct Section {
    id: &'static str,
    title: String,
    total: u64,
    rows: Vec<DueRow>,
    /// The link to the section's next page, when there is one.
    more: Option<String>,
}

/// An engagement row.
pub struct EngagementRow {
    id: Uuid,
    organization_id: Uuid,
    organization: String,
    state: String,
}

#[derive(Template)]
#[template(path = "portfolio.html")]
struct PortfolioPage<'a> {
    me: &'a SignedIn,
    today: NaiveDate,
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
        engine::access::Tenancy::CertificationBody(id) => Some(id),
        _ => None,
    };
    let zone = engine::policies::certification_policy_of(&app.db, body).await?.time_zone;
    let today = zone.today(app.clock.now());
    let within = query.within.filter(|days| [30, 60, 90].contains(days)).unwrap_or(90);
    let descending = query.order.as_deref() == Some("desc");
    let organization = query.organization_id;
    let open = || {
        Deadline::find()
            .filter(deadline::Column::Status.eq(DeadlineStatus::Open))
            .filter(deadlines_in(tenancy))
            .filter(of_organization(deadline::Column::EngagementId, organization))
    };
    let only = query.section.as_deref();
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
    let plans = vec![K::CorrectiveActionPlanDue, K::CorrectiveActionDue, K::CorrectiveActionVerification];
    let within_window = || Condition::all().add(deadline::Column::DueOn.lte(horizon));
    // Each section: its kinds of deadline and which of them.
    let specs: [(&'static str, String, Vec<DeadlineKind>, Condition); 5] = [
        (
            "overdue",
            "Corrective actions overdue".to_owned(),
            plans,
            Condition::all().add(deadline::Column::DueOn.lt(today)),
        ),
        (
            "majors",
            format!("Major nonconformities reaching their 6-month limit within {within} days"),
            vec![K::MajorNcLimit],
            within_window(),
        ),
        ("audits", format!("Surveillance audits due within {within} days"), vec![K::SurveillanceDue], within_window()),
        (
            "expiring",
            format!("Certificates expiring within {within} days, no recertification started"),
            vec![K::CertificateExpiry],
            // Only where no recertification has started: not an engagement the caller reads that is
            // in recertification (for a body, one range of its index by state).
            within_window().add(
                deadline::Column::EngagementId.not_in_subquery(
                    Query::select()
                        .column(engagement::Column::Id)
                        .from(Engagement)
                        .cond_where(engagement_records_in(tenancy))
                        .and_where(engagement::Column::State.eq(EngagementState::Recertification))
                        .to_owned(),
                ),
            ),
        ),
        (
            "suspensions",
            "Suspensions, by the days left to their limit".to_owned(),
            vec![K::SuspensionLimit, K::RestoreAfterExpiryLimit],
            Condition::all(),
        ),
    ];
    // Every section's count from one pass over the open deadlines of their kinds (on the body's
    // index range alone): per kind, how many are overdue, due within the window, open at all.
    let every_kind: Vec<DeadlineKind> = specs.iter().flat_map(|(_, _, kinds, _)| kinds.clone()).collect();
    let count_where = |condition: Expr| Expr::from(Func::count(Expr::Case(Box::new(Expr::case(condition, 1)))));
    let tallies: Vec<(DeadlineKind, i64, i64, i64)> = open()
        .filter(deadline::Column::Kind.is_in(every_kind))
        .select_only()
        .column(deadline::Column::Kind)
        .column_as(count_where(deadline::Column::DueOn.lt(today)), "overdue")
        .column_as(count_where(deadline::Column::DueOn.lte(horizon)), "due_soon")
        .column_as(Expr::from(Func::count(Expr::col(Asterisk))), "open")
        .group_by(deadline::Column::Kind)
        .into_tuple()
        .all(&app.db)
        .await?;
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
            "overdue" => tally(&kinds, |t| t.1),
            "suspensions" => tally(&kinds, |t| t.3),
            "expiring" => match tally(&kinds, |t| t.2) {
                // Those whose engagement has started its recertification are not counted (read
                // only when there are any to tell apart).
                0 => 0,
                _ => {
                    open()
                        .filter(deadline::Column::Kind.is_in(kinds.clone()))
                        .filter(which.clone())
                        .count(&app.db)
                        .await?
                }
            },
            _ => tally(&kinds, |t| t.2),
        };
        // Keyset pages in (due date, id) order: the rows after the last one shown. Each kind is
        // read in the index's order and the kinds merged here (one index range each, never every
        // matching row sorted).
        let mut found = Vec::new();
        // (A kind with nothing open is not read at all.)
        let open_kinds = kinds.into_iter().filter(|kind| tallies.iter().any(|t| t.0 == *kind && t.3 > 0));
        for kind in open_kinds {
            let mut page = open().filter(deadline::Column::Kind.eq(kind)).filter(which.clone());
            if let Some((day, after)) = parse_from(query.from.as_deref()).filter(|_| only == Some(id)) {
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
        .filter(of_engagements_in(tenancy, audit::Column::EngagementId))
        .filter(audit::Column::CompletedAt.is_null())
        .filter(audit::Column::FirstDay.gte(today))
        .filter(audit::Column::FirstDay.lte(horizon));
    planned = planned.filter(of_organization(audit::Column::EngagementId, organization));
    let ordered = if descending {
        planned.clone().order_by_desc(audit::Column::FirstDay)
    } else {
        planned.clone().order_by_asc(audit::Column::FirstDay)
    };
    let mut found = ordered.order_by_asc(audit::Column::Id).limit(ROWS + 1).all(&app.db).await?;
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
        .filter(of_engagements_in(tenancy, notification::Column::EngagementId));
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
    // Engagements by state and by organization, counted in one pass (for a body, from its index
    // alone): the counts by state (of the chosen organization) and the organizations to filter by.
    let seen = Engagement::find().filter(engagement_records_in(tenancy));
    let by_state_and_organization: Vec<(EngagementState, Uuid, i64)> = seen
        .clone()
        .select_only()
        .column(engagement::Column::State)
        .column(engagement::Column::OrganizationId)
        .column_as(Expr::from(Func::count(Expr::col(Asterisk))), "n")
        .group_by(engagement::Column::State)
        .group_by(engagement::Column::OrganizationId)
        .into_tuple()
        .all(&app.db)
        .await?;
    let mut by_state: Vec<(EngagementState, i64)> = Vec::new();
    for (state, of, n) in &by_state_and_organization {
        if organization.is_some_and(|chosen| chosen != *of) {
            continue;
        }
        match by_state.iter_mut().find(|(s, _)| s == state) {
            Some((_, total)) => *total += n,
            None => by_state.push((*state, *n)),
        }
    }
    by_state.sort_by_key(|(state, _)| *state);
    let mut engagements_seen = seen;
    if let Some(id) = organization {
        engagements_seen = engagements_seen.filter(engagement::Column::OrganizationId.eq(id));
    }
    let mut listed = engagements_seen;
    if let Some(state) = query.state {
        listed = listed.filter(engagement::Column::State.eq(state));
    }
    if let Some(after) = query.after {
        listed = listed.filter(engagement::Column::Id.gt(after));
    }
    let page_rows = listed.order_by_asc(engagement::Column::Id).limit(ROWS + 1).all(&app.db).await?;
    let more = page_rows.len() as u64 > ROWS;
    let mut engagements = Vec::new();
    for e in page_rows.into_iter().take(ROWS as usize) {
        engagements.push(EngagementRow {
            organization: String::new(),
            organization_id: e.organization_id,
            id: e.id,
            state: e.state.to_string(),
        });
    }
    let next_page = more.then(|| {
        let last = engagements.last().map(|e| e.id.to_string()).unwrap_or_default();
        let mut link = format!("/?after={last}#engagements");
        if let Some(state) = query.state {
            link = format!("/?after={last}&state={state}#engagements");
        }
        if let Some(id) = organization {
            link = link.replacen("/?", &format!("/?organization_id={id}&"), 1);
        }
        link
    });
    // The organizations the caller sees, for the filter, by name.
    let mut organization_ids: Vec<Uuid> = by_state_and_organization.iter().map(|(_, of, _)| *of).collect();
    organization_ids.sort();
    organization_ids.dedup();
    organization_ids.truncate(500);
    // Every row's organization, and those of the filter, named in two queries for the whole page.
    let wanted: Vec<Uuid> =
        sections.iter().flat_map(|s| &s.rows).chain(&failed_emails).map(|r| r.engagement_id).collect();
    let organization_of = organizations_of(&app, wanted).await?;
    let filter_ids = organization_ids.clone();
    organization_ids.extend(organization_of.values().copied());
    organization_ids.extend(engagements.iter().map(|e| e.organization_id));
    let names = names_of(&app, organization_ids).await?;
    let mut organizations: Vec<(Uuid, String)> =
        filter_ids.into_iter().filter_map(|id| names.get(&id).map(|name| (id, name.clone()))).collect();
    organizations.sort_by(|a, b| a.1.cmp(&b.1));
    let name_of_engagement =
        |id: &Uuid| organization_of.get(id).and_then(|o| names.get(o)).cloned().unwrap_or_default();
    for row in sections.iter_mut().flat_map(|s| s.rows.iter_mut()).chain(failed_emails.iter_mut()) {
        row.organization = name_of_engagement(&row.engagement_id);
    }
    for row in &mut engagements {
        row.organization = names.get(&row.organization_id).cloned().unwrap_or_default();
    }
    let template = PortfolioPage {
        me: &me,
        today,
        within,
        organization_id: organization,
        organizations,
        sections,
        failed_emails,
        failed_total,
        by_state: by_state.into_iter().map(|(state, n)| (state.to_string(), u64::try_from(n).unwrap_or(0))).collect(),
        state: query.state,
        engagements,
        next_page,
        descending,
        only: only.is_some(),
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

/// The organization of each of `engagements`.
async fn organizations_of(app: &AppState, mut engagements: Vec<Uuid>) -> Result<HashMap<Uuid, Uuid>, PageError> {
    engagements.sort();
    engagements.dedup();
    if engagements.is_empty() {
        return Ok(HashMap::new());
    }
    let pairs: Vec<(Uuid, Uuid)> = Engagement::find()
        .select_only()
        .column(engagement::Column::Id)
        .column(engagement::Column::OrganizationId)
        .filter(engagement::Column::Id.is_in(engagements))
        .into_tuple()
        .all(&app.db)
        .await?;
    Ok(pairs.into_iter().collect())
}

/// The names of `organizations`.
async fn names_of(app: &AppState, mut organizations: Vec<Uuid>) -> Result<HashMap<Uuid, String>, PageError> {
    organizations.sort();
    organizations.dedup();
    if organizations.is_empty() {
        return Ok(HashMap::new());
    }
    let pairs: Vec<(Uuid, String)> = Organization::find()
        .select_only()
        .column(organization::Column::Id)
        .column(organization::Column::LegalName)
        .filter(organization::Column::Id.is_in(organizations))
        .into_tuple()
        .all(&app.db)
        .await?;
    Ok(pairs.into_iter().collect())
}
