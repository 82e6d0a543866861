//! Certification bodies' proposals: record, compare against the audit-time estimate, select one.

use std::collections::HashMap;

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, NaiveDate, Utc};
use entities::domain::ProposalStatus;
use entities::domain::audit_time::{AuditTimeEstimate, estimate_audit_time};
use entities::domain::state::EngagementState;
use entities::orm::{certification_body, deadline, engagement, notification, prelude::*, proposal};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use engine::Write;
use engine::access::{Action, Tenancy};
use engine::history::HistoryRecord;
use engine::idempotency::Claim;
use engine::lifecycle::accredited_on;
use engine::store::{belongs, find_engagement};

use crate::auth::AuthUser;
use crate::error::{ApiError, Refused};
use crate::fields::Fields;
use crate::idempotency::{IdempotencyClaim, commit};
use crate::pagination::{PageQuery, decode_keyed_cursor, keyed_page, keyed_page_of, limit_of};
use crate::state::AppState;

/// Registers the routes.
pub fn configure(config: &mut ServiceConfig<'_>) {
    config.service(create_proposal).service(list_proposals).service(select_proposal);
}

/// A proposal as received from a certification body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "certification_body_id": "019a0000-0000-7000-8000-000000000002",
    "price_minor": 1450000,
    "currency": "GBP",
    "audit_days": 12.0,
    "proposed_start_on": "2027-01-18",
    "notes": "Stage 1 remote, stage 2 on site"
}))]
pub struct ProposalRequest {
    /// The proposing certification body.
    pub certification_body_id: Uuid,
    /// Price in minor units (pence, cents).
    pub price_minor: i64,
    /// ISO 4217 currency code.
    pub currency: String,
    /// Auditor days proposed for stage 1 + stage 2.
    pub audit_days: f64,
    /// Proposed start of the audits.
    pub proposed_start_on: Option<NaiveDate>,
    /// Remarks.
    pub notes: Option<String>,
}

/// A proposal, beside the audit-time estimate.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProposalView {
    /// Id.
    pub id: Uuid,
    /// The proposing certification body.
    pub certification_body_id: Uuid,
    /// Its name.
    pub certification_body_name: String,
    /// It is accredited today.
    pub accredited: bool,
    /// Price in minor units.
    pub price_minor: i64,
    /// Currency.
    pub currency: String,
    /// Auditor days proposed.
    pub audit_days: f64,
    /// Proposed days minus the ISO/IEC 27006 estimate (negative: fewer days than the table).
    pub days_versus_estimate: f64,
    /// Proposed start.
    pub proposed_start_on: Option<NaiveDate>,
    /// Submitted, selected or not selected.
    pub status: ProposalStatus,
    /// Remarks.
    pub notes: Option<String>,
    /// Received.
    pub created_at: DateTime<Utc>,
}

/// The proposals of an engagement, compared.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProposalComparison {
    /// Audit time from the organization's headcount (ISO/IEC 27006).
    pub audit_time_estimate: AuditTimeEstimate,
    /// A page of the proposals, cheapest first (`limit`, `cursor`).
    pub proposals: Vec<ProposalView>,
    /// Pass as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

fn view(
    p: proposal::Model,
    cb: Option<&certification_body::Model>,
    estimate: &AuditTimeEstimate,
    today: NaiveDate,
) -> ProposalView {
    ProposalView {
        id: p.id,
        certification_body_id: p.certification_body_id,
        certification_body_name: cb.map(|cb| cb.name.clone()).unwrap_or_default(),
        accredited: cb.is_some_and(|cb| accredited_on(cb, today)),
        price_minor: p.price_minor,
        currency: p.currency,
        audit_days: p.audit_days,
        days_versus_estimate: p.audit_days - estimate.initial_days,
        proposed_start_on: p.proposed_start_on,
        status: p.status,
        notes: p.notes,
        created_at: p.created_at,
    }
}

async fn estimate_for(
    conn: &impl sea_orm::ConnectionTrait,
    engagement: &engagement::Model,
) -> Result<AuditTimeEstimate, ApiError> {
    let organization = Organization::find_by_id(engagement.organization_id)
        .one(conn)
        .await?
        .ok_or(ApiError::not_found("organization"))?;
    let persons = u32::try_from(organization.persons).unwrap_or(1).max(1);
    estimate_audit_time(persons).map_err(ApiError::unexpected)
}

fn require_cb_selection(engagement: &engagement::Model) -> Result<(), ApiError> {
    if engagement.state == EngagementState::CbSelection {
        Ok(())
    } else {
        Err(ApiError::conflict(
            "engagement-state-conflict",
            format!("proposals are handled in cb_selection; the engagement is in {}", engagement.state),
        ))
    }
}

/// Records a certification body's proposal (in `cb_selection` only).
#[utoipa::path(
    tag = "proposals",
    operation_id = "create_proposal",
    params(("id" = Uuid, Path, description = "Engagement id")),
    request_body = ProposalRequest,
    responses(
        (status = 201, description = "Recorded", body = ProposalView),
        Refused,
    ),
    security(("bearer" = []))
)]
#[post("/engagements/{id}/proposals")]
pub async fn create_proposal(
    app: web::Data<AppState>,
    user: AuthUser,
    claim: IdempotencyClaim,
    id: web::Path<Uuid>,
    body: web::Json<ProposalRequest>,
) -> Result<HttpResponse, ApiError> {
    let request = body.into_inner();
    let mut f = Fields::default();
    f.check(request.price_minor >= 0, "price_minor", "must not be negative");
    let currency_ok = request.currency.len() == 3 && request.currency.bytes().all(|b| b.is_ascii_uppercase());
    f.check(currency_ok, "currency", "must be an ISO 4217 code such as EUR or GBP");
    f.check(
        request.audit_days > 0.0 && request.audit_days <= 1000.0,
        "audit_days",
        "must be more than 0 and at most 1000",
    );
    let start = request.proposed_start_on.map(|d| f.date("proposed_start_on", d));
    let notes = f.optional_text::<4000>("notes", request.notes.as_deref());
    let notes = f.finish(notes)?;
    let (write, engagement) = app.begin_on_engagement(&user, *id, Action::RecordProposal, claim.claim()).await?;
    require_cb_selection(&engagement)?;
    let (txn, now) = (write.txn(), write.now());
    let cb = CertificationBody::find_by_id(request.certification_body_id)
        .one(txn)
        .await?
        .ok_or_else(|| ApiError::invalid("certification_body_id", "no such certification body"))?;
    let created = proposal::ActiveModel {
        id: Set(Uuid::now_v7()),
        engagement_id: Set(engagement.id),
        certification_body_id: Set(cb.id),
        price_minor: Set(request.price_minor),
        currency: Set(request.currency),
        audit_days: Set(request.audit_days),
        proposed_start_on: Set(start.flatten()),
        status: Set(ProposalStatus::Submitted),
        notes: Set(notes.map(|n| n.into_inner())),
        created_at: Set(now),
    }
    .insert(txn)
    .await?;
    let estimate = estimate_for(txn, &engagement).await?;
    commit(write, HttpResponse::Created().json(view(created, Some(&cb), &estimate, now.date_naive()))).await
}

/// Compares an engagement's proposals against the audit-time estimate. A certification body
/// sees only its own proposal; the client and the admin see them all.
#[utoipa::path(
    tag = "proposals",
    operation_id = "list_proposals",
    params(("id" = Uuid, Path, description = "Engagement id"), PageQuery),
    responses(
        (status = 200, description = "A page of the proposals and the estimate", body = ProposalComparison),
        Refused,
    ),
    security(("bearer" = []))
)]
#[get("/engagements/{id}/proposals")]
pub async fn list_proposals(
    app: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<ProposalComparison>, ApiError> {
    let limit = limit_of(query.limit)?;
    let cursor = decode_keyed_cursor::<i64>(query.cursor.as_deref())?;
    let engagement = find_engagement(&app.db, &user, *id).await?;
    let estimate = estimate_for(&app.db, &engagement).await?;
    let mut proposals = Proposal::find().filter(proposal::Column::EngagementId.eq(engagement.id));
    // A certification body sees its own bid only: its competitors' prices are the client's.
    if let Tenancy::CertificationBody(own) = user.tenancy {
        proposals = proposals.filter(proposal::Column::CertificationBodyId.eq(own));
    }
    let (price, proposal_id) = (proposal::Column::PriceMinor, proposal::Column::Id);
    let proposals = keyed_page(proposals, price, proposal_id, cursor, limit).all(&app.db).await?;
    let page = keyed_page_of(proposals, limit, |p| (p.price_minor, p.id), |p| p);
    let (proposals, next_cursor) = (page.items, page.next_cursor);
    let cb_ids: Vec<Uuid> = proposals.iter().map(|p| p.certification_body_id).collect();
    let bodies: HashMap<Uuid, certification_body::Model> = CertificationBody::find()
        .filter(certification_body::Column::Id.is_in(cb_ids))
        .all(&app.db)
        .await?
        .into_iter()
        .map(|cb| (cb.id, cb))
        .collect();
    let rows = proposals.into_iter().map(|p| {
        let cb = bodies.get(&p.certification_body_id).cloned();
        (p, cb)
    });
    let today = app.clock.today();
    let proposals = rows.map(|(p, cb)| view(p, cb.as_ref(), &estimate, today)).collect();
    Ok(web::Json(ProposalComparison { audit_time_estimate: estimate, proposals, next_cursor }))
}

/// Selects a proposal: its certification body becomes the engagement's; the others are not selected.
#[utoipa::path(
    tag = "proposals",
    operation_id = "select_proposal",
    params(("id" = Uuid, Path, description = "Engagement id"), ("proposal_id" = Uuid, Path, description = "Proposal id")),
    responses(
        (status = 200, description = "Selected", body = ProposalView),
        Refused,
    ),
    security(("bearer" = []))
)]
#[post("/engagements/{id}/proposals/{proposal_id}/selection")]
pub async fn select_proposal(
    app: web::Data<AppState>,
    user: AuthUser,
    claim: IdempotencyClaim,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (id, proposal_id) = path.into_inner();
    let (write, chosen, cb, estimate) = choose_proposal(&app, &user, claim.claim(), id, proposal_id).await?;
    let now = write.now();
    commit(write, HttpResponse::Ok().json(view(chosen, cb.as_ref(), &estimate, now.date_naive()))).await
}

/// Selects proposal `proposal_id` of engagement `id` (the API's and the console's one way): the
/// chosen proposal, its body and the audit-time estimate; the caller commits the write.
pub async fn choose_proposal(
    app: &AppState,
    user: &AuthUser,
    claim: Option<Claim>,
    id: Uuid,
    proposal_id: Uuid,
) -> Result<(Write, proposal::Model, Option<certification_body::Model>, AuditTimeEstimate), ApiError> {
    let (mut write, engagement) = app.begin_on_engagement(user, id, Action::SelectProposal, claim).await?;
    require_cb_selection(&engagement)?;
    let (txn, now) = (write.txn(), write.now());
    let chosen = belongs(Proposal::find_by_id(proposal_id).one(txn).await?, |p| p.engagement_id, id, "proposal")?;
    Proposal::update_many()
        .col_expr(proposal::Column::Status, Expr::value(ProposalStatus::NotSelected))
        .filter(proposal::Column::EngagementId.eq(id))
        .filter(proposal::Column::Id.ne(proposal_id))
        .exec(txn)
        .await?;
    let mut chosen = chosen.into_active_model();
    chosen.status = Set(ProposalStatus::Selected);
    let chosen = chosen.update(txn).await?;
    let cb = CertificationBody::find_by_id(chosen.certification_body_id).one(txn).await?;
    let estimate = estimate_for(txn, &engagement).await?;
    let version = engagement.version;
    let mut model = engagement.into_active_model();
    model.certification_body_id = Set(Some(chosen.certification_body_id));
    model.version = Set(version + 1);
    model.updated_at = Set(now);
    model.update(txn).await?;
    // Its deadlines and their emails, if any yet, are the chosen body's from now on (its portfolio
    // reads them so).
    Deadline::update_many()
        .col_expr(deadline::Column::CertificationBodyId, Expr::value(chosen.certification_body_id))
        .filter(deadline::Column::EngagementId.eq(id))
        .exec(txn)
        .await?;
    Notification::update_many()
        .col_expr(notification::Column::CertificationBodyId, Expr::value(chosen.certification_body_id))
        .filter(notification::Column::EngagementId.eq(id))
        .exec(txn)
        .await?;
    let record = HistoryRecord::change(id, "proposal_selected", &user.subject, Some(proposal_id));
    write.record_history(record).await?;
    write.concerns(None, Some(chosen.certification_body_id));
    Ok((write, chosen, cb, estimate))
}
