//! The engagement page: where it stands and what can happen next (the events the caller may fire,
//! each with its form), the open deadlines with their next reminder, the audits, the findings with
//! their corrective action, the certificate, the timeline and the emails sent. A client manager
//! sees the same page with the client's forms. A refusal is shown on the page as the problem's
//! text.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;
use entities::domain::FindingStatus;
use entities::domain::RequiredDocument;
use entities::domain::dates::needs_corrective_action;
use entities::domain::stage1::Stage1Readiness;
use entities::domain::state::EngagementState;
use entities::orm::{
    audit, certificate, certification_body, corrective_action, document, finding, history_entry, notification,
    organization, prelude::*, proposal,
};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect};
use serde::Deserialize;
use uuid::Uuid;

use crate::auth::AuthUser;
use engine::access::{Action, Party, Tenancy, engagement_records_in, permits};
use engine::changes::Scope;

use super::forms::{Field, Input, event_fields, event_request, sentence};
use super::kept::Kept;
use super::{Console, PageError, SignedIn, page, see_other};
use crate::error::ApiError;
use crate::routes::corrective_actions::CorrectiveActionRequest;
use crate::routes::engagements::{DeadlineView, EngagementView};
use crate::state::AppState;

/// How many timeline entries the page shows (newest first).
pub const TIMELINE_ENTRIES: u64 = 200;

/// An event the caller may fire now, with its form.
#[derive(Debug, Clone)]
pub struct EventForm {
    /// The event's name.
    pub event: String,
    /// As a person reads it.
    pub label: String,
    /// Its fields.
    pub fields: Vec<Field>,
}

/// A row of the audit list (also the choices of an audit field).
#[derive(Debug, Clone)]
pub struct AuditRow {
    id: Uuid,
    kind: String,
    first_day: String,
    last_day: String,
    lead_auditor: String,
    completed: bool,
}

/// A proposal of a certification body.
#[derive(Debug, Clone)]
pub struct ProposalRow {
    id: Uuid,
    body: String,
    price: String,
    audit_days: f64,
    status: String,
}

/// A finding with its corrective action.
#[derive(Debug, Clone)]
pub struct FindingRow {
    id: Uuid,
    reference: String,
    grade: String,
    description: String,
    status: String,
    corrective_action: Option<String>,
    /// The client may submit its corrective action here.
    plan_form: bool,
}

/// A timeline entry.
#[derive(Debug, Clone)]
pub struct TimelineRow {
    at: String,
    action: String,
    change: String,
    actor: String,
    reason: String,
}

/// An email of the engagement.
#[derive(Debug, Clone)]
pub struct EmailRow {
    kind: String,
    status: String,
    scheduled_on: String,
    sent_at: String,
}

#[derive(Template)]
#[template(path = "engagement.html")]
struct EngagementPage<'a> {
    me: &'a SignedIn,
    /// What was read (its fields are the template's, through `Deref`).
    data: EngagementData,
    refusal: Option<Refusal>,
    fired: Option<String>,
    highlight: Option<Uuid>,
    document_kinds: Vec<String>,
}

impl std::ops::Deref for EngagementPage<'_> {
    type Target = EngagementData;

    fn deref(&self) -> &EngagementData {
        &self.data
    }
}

/// A refusal, as the page shows it.
pub struct Refusal {
    title: String,
    detail: String,
    lines: Vec<String>,
}

impl Refusal {
    /// The refusal `error` is, as the page shows it.
    pub fn of(error: &ApiError) -> Self {
        let problem = error.problem();
        let mut lines: Vec<String> =
            problem.violations.iter().flatten().map(|v| format!("{} ({})", v.detail, v.code)).collect();
        lines.extend(problem.errors.iter().flatten().map(|e| format!("{}: {}", e.field, e.detail)));
        Self { title: problem.title, detail: problem.detail, lines }
    }
}

impl EngagementPage<'_> {
    fn is_highlighted(&self, id: &Uuid) -> bool {
        self.highlight == Some(*id)
    }

    fn choices(input: &Input) -> Vec<String> {
        match input {
            Input::Choice(values) => values.clone(),
            _ => Vec::new(),
        }
    }
}

/// `text` cut to at most `max` characters, with an ellipsis when cut.
fn at_most(text: String, max: usize) -> String {
    if text.chars().count() <= max { text } else { text.chars().take(max).chain(['…']).collect() }
}

/// `?fired=&deadline=`
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    fired: Option<String>,
    deadline: Option<Uuid>,
}

/// `GET /engagements/{id}`
pub async fn engagement_page(
    app: web::Data<AppState>,
    console: web::Data<Console>,
    me: SignedIn,
    id: web::Path<Uuid>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, PageError> {
    let fired = query.fired.as_deref().filter(|f| event_fields().contains_key(*f)).map(sentence);
    render(&app, Some(&console.engagements), &me, *id, None, fired, query.deadline, StatusCode::OK).await
}

/// What the engagement pages read, kept per engagement and per caller's tenancy and party (see
/// [`Kept`]).
pub type KeptEngagements = Kept<(Uuid, Tenancy, Party), EngagementData>;

/// What an engagement page shows, as read for a caller.
#[derive(Debug, Clone)]
pub struct EngagementData {
    view: EngagementView,
    organization: String,
    body: String,
    forms: Vec<EventForm>,
    deadlines: Vec<DeadlineView>,
    audits: Vec<AuditRow>,
    findings: Vec<FindingRow>,
    certificate: Option<certificate::Model>,
    timeline: Vec<TimelineRow>,
    emails: Vec<EmailRow>,
    records_visible: bool,
    readiness: Option<Stage1Readiness>,
    proposals: Vec<ProposalRow>,
    selects: bool,
    documents: Vec<document::Model>,
    client_documents: bool,
    /// When it was read, in the body's time zone.
    read_at: String,
}

/// The engagement page: what it shows as `kept` (when given: a refusal's page reads afresh), with
/// the caller's forms, a refusal, the event just fired and the deadline to highlight.
#[allow(clippy::too_many_arguments)]
pub(super) async fn render(
    app: &AppState,
    kept: Option<&KeptEngagements>,
    me: &SignedIn,
    id: Uuid,
    refusal: Option<Refusal>,
    fired: Option<String>,
    highlight: Option<Uuid>,
    status: StatusCode,
) -> Result<HttpResponse, PageError> {
    let user = &me.user;
    let data = match kept {
        Some(kept) => {
            let read = async || read_engagement(app, user, id).await;
            EngagementData::clone(
                &*kept.of(&app.changes, (id, user.tenancy, user.party), Scope::Engagement(id), read).await?,
            )
        }
        None => read_engagement(app, user, id).await?,
    };
    let template = EngagementPage {
        me,
        data,
        refusal,
        fired,
        highlight,
        document_kinds: <RequiredDocument as sea_orm::Iterable>::iter().map(|kind| kind.to_string()).collect(),
    };
    Ok(page(status, &template))
}

/// Reads what engagement `id`'s page shows `user`.
async fn read_engagement(app: &AppState, user: &AuthUser, id: Uuid) -> Result<EngagementData, PageError> {
    let view = EngagementView::find(&app.db, user, id, app.clock.now()).await?;
    let organization = Organization::find_by_id(view.organization_id)
        .select_only()
        .column(organization::Column::LegalName)
        .into_tuple::<String>()
        .one(&app.db)
        .await?
        .unwrap_or_default();
    let body = match view.certification_body_id {
        Some(cb) => CertificationBody::find_by_id(cb)
            .select_only()
            .column(certification_body::Column::Name)
            .into_tuple::<String>()
            .one(&app.db)
            .await?
            .unwrap_or_default(),
        None => "not selected yet".to_owned(),
    };
    // A body that has only bid sees the engagement, none of its records (as in the API).
    let records_visible =
        Engagement::find_by_id(id).filter(engagement_records_in(user.tenancy)).count(&app.db).await? > 0;
    let forms = view
        .allowed_events
        .iter()
        .filter(|event| permits(user.party, Action::Fire(**event)))
        .filter_map(|event| {
            let name = event.to_string();
            event_fields().get(&name).map(|fields| EventForm {
                label: sentence(&name),
                event: name,
                fields: fields.clone(),
            })
        })
        .collect();
    // Instants in the body's time zone (its certification policy's), as its people read them.
    let zone = engine::policies::certification_policy_of(&app.db, view.certification_body_id).await?.time_zone;
    let (mut audits, mut findings, mut timeline, mut emails, mut certificate) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), None);
    let (mut readiness, mut documents) = (None, Vec::new());
    // The proposals: all of them for the client and the platform, its own for a body.
    let mut proposals = Proposal::find().filter(proposal::Column::EngagementId.eq(id));
    if let engine::access::Tenancy::CertificationBody(own) = user.tenancy {
        proposals = proposals.filter(proposal::Column::CertificationBodyId.eq(own));
    }
    let proposals = proposals.order_by_asc(proposal::Column::CreatedAt).all(&app.db).await?;
    let mut bodies: Vec<Uuid> = proposals.iter().map(|p| p.certification_body_id).collect();
    bodies.dedup();
    let body_names: Vec<(Uuid, String)> = CertificationBody::find()
        .select_only()
        .column(certification_body::Column::Id)
        .column(certification_body::Column::Name)
        .filter(certification_body::Column::Id.is_in(bodies))
        .into_tuple()
        .all(&app.db)
        .await?;
    let proposals: Vec<ProposalRow> = proposals
        .into_iter()
        .map(|p| ProposalRow {
            id: p.id,
            body: body_names
                .iter()
                .find(|(b, _)| *b == p.certification_body_id)
                .map(|(_, n)| n.clone())
                .unwrap_or_default(),
            price: format!("{}.{:02} {}", p.price_minor / 100, p.price_minor % 100, p.currency),
            audit_days: p.audit_days,
            status: p.status.to_string(),
        })
        .collect();
    let selects = view.state == EngagementState::CbSelection && permits(user.party, Action::SelectProposal);
    if records_visible {
        readiness = Some(engine::lifecycle::stage1_readiness(&app.db, id).await?);
        documents = Document::find()
            .filter(document::Column::EngagementId.eq(id))
            .order_by_asc(document::Column::Kind)
            .all(&app.db)
            .await?;
        audits = Audit::find()
            .filter(audit::Column::EngagementId.eq(id))
            .order_by_asc(audit::Column::FirstDay)
            .all(&app.db)
            .await?
            .into_iter()
            .map(|a| AuditRow {
                id: a.id,
                kind: a.kind.to_string(),
                first_day: a.first_day.to_string(),
                last_day: a.last_day.to_string(),
                lead_auditor: a.lead_auditor,
                completed: a.completed_at.is_some(),
            })
            .collect();
        let actions =
            CorrectiveAction::find().filter(corrective_action::Column::EngagementId.eq(id)).all(&app.db).await?;
        let client_plans = permits(user.party, Action::SubmitCorrectiveAction);
        findings = Finding::find()
            .filter(finding::Column::EngagementId.eq(id))
            .order_by_asc(finding::Column::CreatedAt)
            .all(&app.db)
            .await?
            .into_iter()
            .map(|f| {
                let action = actions.iter().find(|a| a.finding_id == f.id);
                FindingRow {
                    plan_form: client_plans
                        && action.is_none()
                        && needs_corrective_action(f.grade)
                        && f.status == FindingStatus::Open,
                    corrective_action: action
                        .map(|a| format!("{} — due {}, {}", a.corrective_action, a.due_on, a.verification)),
                    id: f.id,
                    reference: f.reference,
                    grade: f.grade.to_string(),
                    description: f.description,
                    status: f.status.to_string(),
                }
            })
            .collect();
        certificate = Certificate::find()
            .filter(certificate::Column::EngagementId.eq(id))
            .order_by_desc(certificate::Column::CreatedAt)
            .one(&app.db)
            .await?;
        timeline = HistoryEntry::find()
            .filter(history_entry::Column::EngagementId.eq(id))
            .order_by_desc(history_entry::Column::OccurredAt)
            .order_by_desc(history_entry::Column::Id)
            .limit(TIMELINE_ENTRIES)
            .all(&app.db)
            .await?
            .into_iter()
            .map(|h| TimelineRow {
                at: zone.local_time(h.occurred_at),
                change: match (h.from_state, h.to_state) {
                    (Some(from), Some(to)) if from != to => format!("{from} → {to}"),
                    _ => String::new(),
                },
                action: h.action,
                actor: h.actor,
                reason: at_most(h.reason.unwrap_or_default(), 300),
            })
            .collect();
        emails = Notification::find()
            .filter(notification::Column::EngagementId.eq(id))
            .order_by_desc(notification::Column::CreatedAt)
            .limit(50)
            .all(&app.db)
            .await?
            .into_iter()
            .map(|n| EmailRow {
                kind: n.kind.to_string(),
                status: n.status.to_string(),
                scheduled_on: n.scheduled_on.to_string(),
                sent_at: n.sent_at.map(|s| zone.local_time(s)).unwrap_or_default(),
            })
            .collect();
    }
    let deadlines = if records_visible { view.open_deadlines.clone() } else { Vec::new() };
    Ok(EngagementData {
        view,
        organization,
        body,
        forms,
        deadlines,
        audits,
        findings,
        certificate,
        timeline,
        emails,
        records_visible,
        readiness,
        proposals,
        selects,
        documents,
        client_documents: permits(user.party, Action::SubmitDocument),
        read_at: zone.local_time(app.clock.now()),
    })
}

/// `POST /engagements/{id}/events`: fires the form's event through the API's own code, then
/// shows the page again (the new state, or the refusal).
pub async fn fire_from_form(
    app: web::Data<AppState>,
    console: web::Data<Console>,
    request: HttpRequest,
    me: SignedIn,
    id: web::Path<Uuid>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, PageError> {
    let posted = form.into_inner();
    let value = |name: &str| posted.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    me.check_form(&console, &request, value("csrf").unwrap_or_default())?;
    let event = value("event").unwrap_or_default().to_owned();
    let outcome = async {
        let body = event_request(&event, &posted)?;
        let expected = body.version;
        let (write, _) = crate::routes::engagements::fire_request(&app, &me.user, None, *id, body, expected).await?;
        write.commit(None).await.map_err(ApiError::from)
    }
    .await;
    crate::routes::engagements::count_transition(static_name(&event), outcome.as_ref().err());
    after_form(&app, &me, *id, outcome, &format!("/engagements/{id}?fired={event}")).await
}

/// Where a form leads: on success to `to`; refused by a rule or a field, to the page again with the
/// refusal shown (with its status); unseen, as a 404 page; anything else, as its error page.
pub(super) async fn after_form(
    app: &AppState,
    me: &SignedIn,
    id: Uuid,
    outcome: Result<(), ApiError>,
    to: &str,
) -> Result<HttpResponse, PageError> {
    match outcome {
        Ok(()) => Ok(see_other(to)),
        Err(error) if error.status_code() == StatusCode::NOT_FOUND => Err(error.into()),
        Err(error) if error.status_code().is_client_error() => {
            let status = error.status_code();
            render(app, None, me, id, Some(Refusal::of(&error)), None, None, status).await
        }
        Err(error) => Err(error.into()),
    }
}

/// The event's name as a `'static` label for the transitions counter (from the events the schema
/// lists, a bounded set).
fn static_name(name: &str) -> &'static str {
    use sea_orm::Iterable;
    entities::domain::state::EngagementEvent::iter()
        .map(<&'static str>::from)
        .find(|known| *known == name)
        .unwrap_or("unknown")
}

/// The client's corrective action form.
#[derive(Debug, Deserialize)]
pub struct CorrectiveActionForm {
    #[serde(default)]
    csrf: String,
    root_cause: String,
    correction: String,
    corrective_action: String,
    owner_email: String,
    #[serde(default)]
    due_on: String,
    #[serde(default)]
    evidence: String,
}

/// `POST /engagements/{id}/findings/{finding_id}/corrective-action`: the client submits its
/// corrective action through the API's own code.
pub async fn submit_corrective_action_form(
    app: web::Data<AppState>,
    console: web::Data<Console>,
    request: HttpRequest,
    me: SignedIn,
    path: web::Path<(Uuid, Uuid)>,
    form: web::Form<CorrectiveActionForm>,
) -> Result<HttpResponse, PageError> {
    let (id, finding_id) = path.into_inner();
    me.check_form(&console, &request, &form.csrf)?;
    let form = form.into_inner();
    let outcome = async {
        let due_on = match form.due_on.trim() {
            "" => None,
            day => Some(
                day.parse().map_err(|_| ApiError::invalid("due_on", format!("'{day}' is not a day (YYYY-MM-DD)")))?,
            ),
        };
        let body = CorrectiveActionRequest {
            root_cause: form.root_cause,
            correction: form.correction,
            corrective_action: form.corrective_action,
            owner_email: form.owner_email,
            due_on,
            evidence: form.evidence.lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect(),
            version: None,
        };
        let (write, _) =
            crate::routes::corrective_actions::submit_corrective_action(&app, &me.user, None, id, finding_id, body)
                .await?;
        write.commit(None).await.map_err(ApiError::from)
    }
    .await;
    after_form(&app, &me, id, outcome, &format!("/engagements/{id}#finding-{finding_id}")).await
}

/// `POST /engagements/{id}/proposals/{proposal_id}/selection`: the client selects a proposal
/// through the API's own code.
pub async fn select_proposal_form(
    app: web::Data<AppState>,
    console: web::Data<Console>,
    request: HttpRequest,
    me: SignedIn,
    path: web::Path<(Uuid, Uuid)>,
    form: web::Form<super::CsrfOnly>,
) -> Result<HttpResponse, PageError> {
    let (id, proposal_id) = path.into_inner();
    me.check_form(&console, &request, &form.csrf)?;
    let outcome = async {
        let (write, ..) = crate::routes::proposals::choose_proposal(&app, &me.user, None, id, proposal_id).await?;
        write.commit(None).await.map_err(ApiError::from)
    }
    .await;
    after_form(&app, &me, id, outcome, &format!("/engagements/{id}#proposals-h")).await
}
