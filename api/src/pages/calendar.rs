//! Calendar feeds (RFC 5545) at secret addresses: a person's own (the audits they lead or are on
//! the team of, the deadlines they own, the engagements they manage) and their body's or
//! organization's whole (every audit and open deadline it sees). An address is a MAC of the
//! person, the feed and a generation the person can bump, so rotating it ends every old address
//! at once and nothing secret is stored. Each audit and deadline keeps its UID for life; a
//! deadline met or cancelled leaves the feed.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Duration;
use entities::domain::deadline::DeadlineStatus;
use entities::orm::{audit, deadline, engagement, organization, person, prelude::*, strings_of};
use icalendar::{Calendar, Component, EventLike};
use sea_orm::sea_query::{LikeExpr, Query};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use engine::access::{audits_in, deadlines_in, engagement_records_in};
use engine::people::caller_of;

use super::{Console, CsrfOnly, PageError, SignedIn, see_other};
use crate::error::ApiError;
use crate::state::AppState;

/// The most events a feed holds.
const MOST_EVENTS: u64 = 2000;

/// Which feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// What the person is concerned with.
    Mine,
    /// Everything the person's body or organization sees.
    All,
}

impl Feed {
    fn name(self) -> &'static str {
        match self {
            Self::Mine => "mine",
            Self::All => "all",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        match name {
            "mine" => Some(Self::Mine),
            "all" => Some(Self::All),
            _ => None,
        }
    }
}

/// The secret address of `person`'s `feed` (a path on this server).
pub fn feed_path(console: &Console, person: &person::Model, feed: Feed) -> String {
    let key = console.sign("calendar", &format!("{}:{}:{}", person.id, feed.name(), person.calendar_generation));
    format!("/calendar/{}/{}/{key}.ics", person.id, feed.name())
}

/// `GET /calendar/{person_id}/{feed}/{key}.ics`: 404 unless the key is the feed's current one.
pub async fn feed(
    app: web::Data<AppState>,
    console: web::Data<Console>,
    path: web::Path<(Uuid, String, String)>,
) -> Result<HttpResponse, PageError> {
    let (person_id, feed, key) = path.into_inner();
    let not_found = || PageError::Api(ApiError::not_found("calendar"));
    let feed = Feed::parse(&feed).ok_or_else(not_found)?;
    let person = Person::find_by_id(person_id).one(&app.db).await.map_err(ApiError::from)?.ok_or_else(not_found)?;
    let expected = format!("{}:{}:{}", person.id, feed.name(), person.calendar_generation);
    if !console.verify("calendar", &expected, &key) {
        return Err(not_found());
    }
    let ics = calendar_of(&app, &console, &person, feed).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/calendar; charset=utf-8")
        .insert_header((header::CONTENT_DISPOSITION, "inline; filename=\"certflow.ics\""))
        .body(ics))
}

async fn calendar_of(
    app: &AppState,
    console: &Console,
    person: &person::Model,
    feed: Feed,
) -> Result<String, PageError> {
    let caller = caller_of(person);
    let email = person.email.as_str();
    let mut audits = Audit::find().filter(audits_in(caller.tenancy));
    let mut deadlines =
        Deadline::find().filter(deadline::Column::Status.eq(DeadlineStatus::Open)).filter(deadlines_in(caller.tenancy));
    if feed == Feed::Mine {
        let managed = Query::select()
            .column(engagement::Column::Id)
            .from(Engagement)
            .and_where(engagement::Column::ManagerEmail.eq(email))
            .to_owned();
        audits = audits.filter(
            Condition::any()
                .add(audit::Column::LeadAuditor.eq(email))
                .add(
                    audit::Column::AuditTeam.like(LikeExpr::new(format!("%\"{}\"%", like_literal(email))).escape('\\')),
                )
                .add(audit::Column::EngagementId.in_subquery(managed.clone())),
        );
        deadlines = deadlines.filter(
            Condition::any()
                .add(deadline::Column::OwnerEmail.eq(email))
                .add(deadline::Column::EngagementId.in_subquery(managed)),
        );
    }
    let audits =
        audits.order_by_asc(audit::Column::FirstDay).limit(MOST_EVENTS).all(&app.db).await.map_err(ApiError::from)?;
    let deadlines = deadlines
        .order_by_asc(deadline::Column::DueOn)
        .limit(MOST_EVENTS)
        .all(&app.db)
        .await
        .map_err(ApiError::from)?;
    let mut engagement_ids: Vec<Uuid> = audits.iter().map(|a| a.engagement_id).collect();
    engagement_ids.extend(deadlines.iter().map(|d| d.engagement_id));
    engagement_ids.sort();
    engagement_ids.dedup();
    let organization_of: Vec<(Uuid, Uuid)> = Engagement::find()
        .select_only()
        .column(engagement::Column::Id)
        .column(engagement::Column::OrganizationId)
        .filter(engagement::Column::Id.is_in(engagement_ids))
        .filter(engagement_records_in(caller.tenancy))
        .into_tuple()
        .all(&app.db)
        .await?;
    let mut organization_ids: Vec<Uuid> = organization_of.iter().map(|(_, o)| *o).collect();
    organization_ids.sort();
    organization_ids.dedup();
    let names: Vec<(Uuid, String)> = Organization::find()
        .select_only()
        .column(organization::Column::Id)
        .column(organization::Column::LegalName)
        .filter(organization::Column::Id.is_in(organization_ids))
        .into_tuple()
        .all(&app.db)
        .await?;
    let name_of = |id: Uuid| {
        let organization = organization_of.iter().find(|(e, _)| *e == id).map(|(_, o)| *o);
        names.iter().find(|(o, _)| Some(*o) == organization).map_or("", |(_, n)| n.as_str())
    };
    let mut calendar = Calendar::new();
    calendar.name(match feed {
        Feed::Mine => "certflow: mine",
        Feed::All => "certflow: all engagements",
    });
    for a in &audits {
        let mut event = icalendar::Event::new();
        event
            .uid(&format!("audit-{}@certflow", a.id))
            .summary(&format!("{} audit: {}", a.kind, name_of(a.engagement_id)))
            .description(&format!("Lead auditor {}; team {}", a.lead_auditor, strings_of(&a.audit_team).join(", ")))
            .url(&format!("{}/engagements/{}", console.base_url, a.engagement_id))
            .timestamp(a.updated_at)
            .last_modified(a.updated_at)
            .starts(a.first_day)
            .ends(a.last_day + Duration::days(1));
        calendar.push(event);
    }
    for d in &deadlines {
        let mut event = icalendar::Event::new();
        event
            .uid(&format!("deadline-{}@certflow", d.id))
            .summary(&format!("Due: {} ({})", d.kind, name_of(d.engagement_id)))
            .description(&format!("Owner {}", d.owner_email))
            .url(&format!("{}/engagements/{}?deadline={}#deadline-{}", console.base_url, d.engagement_id, d.id, d.id))
            .timestamp(d.created_at)
            .last_modified(d.created_at)
            .starts(d.due_on)
            .ends(d.due_on + Duration::days(1));
        calendar.push(event);
    }
    Ok(calendar.done().to_string())
}

/// `text` matched literally by LIKE with `\\` as its escape (`%` and `_` are wildcards).
fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `POST /calendar/rotate`: new addresses for the signed-in person's feeds; the old ones stop.
pub async fn rotate(
    app: web::Data<AppState>,
    console: web::Data<Console>,
    request: HttpRequest,
    me: SignedIn,
    form: web::Form<CsrfOnly>,
) -> Result<HttpResponse, PageError> {
    me.check_form(&console, &request, &form.csrf)?;
    app.rotate_calendar(&me.user, me.person.id).await?;
    Ok(see_other("/#calendar"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_address_is_matched_literally_in_the_audit_team() {
        assert_eq!(super::like_literal("first_last%1@cb.test"), "first\\_last\\%1@cb.test");
    }
}
