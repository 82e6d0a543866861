//! Webhook endpoints: registered by an organization's or a certification body's people (or an
//! admin, for either), with their delivery log and replay. An endpoint receives the events of the
//! engagements whose records its owner reads, signed as Standard Webhooks have it.

use actix_web::{HttpResponse, delete, get, post, put, web};
use chrono::{DateTime, Utc};
use engine::webhooks::dispatch::event_types_of;
use engine::webhooks::endpoints::{EndpointSpec, Replay};
use entities::domain::webhooks::{
    EndpointOwner, WebhookAttemptOutcome, WebhookEventType, WebhookMessageStatus, WebhookSecret, message_id,
};
use entities::orm::{prelude::*, webhook_attempt, webhook_endpoint, webhook_message};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Select};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_actix_web::service_config::ServiceConfig;
use uuid::Uuid;

use engine::access::Action;

use crate::auth::AuthUser;
use crate::error::{ApiError, Refused};
use crate::fields::Fields;
use crate::idempotency::{IdempotencyClaim, commit};
use crate::pagination::{
    Page, PageQuery, decode_cursor, decode_keyed_cursor, id_page, keyed_page, keyed_page_of, limit_of, merge_pages,
    page_of,
};
use crate::state::AppState;

/// Registers the routes.
pub fn configure(config: &mut ServiceConfig<'_>) {
    config
        .service(create_webhook_endpoint)
        .service(list_webhook_endpoints)
        .service(get_webhook_endpoint)
        .service(update_webhook_endpoint)
        .service(delete_webhook_endpoint)
        .service(rotate_webhook_secret)
        .service(list_webhook_messages)
        .service(list_webhook_attempts)
        .service(replay_webhook_message)
        .service(replay_webhook_messages);
}

/// An endpoint to register, or its new details (PUT replaces them all).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "url": "https://grc.example.com/hooks/certflow",
    "description": "GRC tool: engagement states and findings",
    "event_types": ["engagement.transitioned", "finding.recorded"]
}))]
pub struct WebhookEndpointRequest {
    /// Where messages are posted: `https://` (`http://` only to loopback, when
    /// `WEBHOOK_ALLOW_LOOPBACK` allows it); never a private, link-local or metadata address.
    pub url: String,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
    /// The event types it wants; absent or empty: every type, present and future.
    #[serde(default)]
    pub event_types: Vec<WebhookEventType>,
    /// Whether it receives messages (default true).
    #[serde(default)]
    pub enabled: Option<bool>,
    /// Creation by an admin: the organization that owns it (others own theirs).
    #[serde(default)]
    pub organization_id: Option<Uuid>,
    /// Creation by an admin: the certification body that owns it.
    #[serde(default)]
    pub certification_body_id: Option<Uuid>,
}

impl WebhookEndpointRequest {
    fn parse(self) -> Result<(EndpointSpec, Option<EndpointOwner>), ApiError> {
        let mut f = Fields::default();
        let description = f.optional_text::<500>("description", self.description.as_deref());
        let url = f.line::<2048>("url", &self.url);
        let owner = match (self.organization_id, self.certification_body_id) {
            (None, None) => Some(None),
            (organization, body) => match EndpointOwner::of(organization, body) {
                Some(owner) => Some(Some(owner)),
                None => {
                    f.problem("certification_body_id", "name one owner: organization_id or certification_body_id");
                    None
                }
            },
        };
        if self.event_types.len() > 64 {
            f.problem("event_types", "at most 64 event types");
        }
        let parsed = (|| Some((url?, description?, owner?)))();
        let (url, description, owner) = f.finish(parsed)?;
        let spec = EndpointSpec {
            url: url.into_inner(),
            description: description.map(|d| d.into_inner()).unwrap_or_default(),
            event_types: self.event_types,
            enabled: self.enabled.unwrap_or(true),
        };
        Ok((spec, owner))
    }
}

/// An endpoint (never its secret).
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEndpointView {
    /// Id.
    pub id: Uuid,
    /// The organization that owns it.
    pub organization_id: Option<Uuid>,
    /// The certification body that owns it.
    pub certification_body_id: Option<Uuid>,
    /// Where messages are posted.
    pub url: String,
    /// What it is for.
    pub description: String,
    /// The event types it wants (empty: every type).
    pub event_types: Vec<WebhookEventType>,
    /// Whether it receives messages.
    pub enabled: bool,
    /// Why it is disabled (its owner, a 410 Gone, five days of failures).
    pub disabled_reason: Option<String>,
    /// Since when every attempt to it has failed (absent while it answers).
    pub failing_since: Option<DateTime<Utc>>,
    /// Until when the secret a rotation replaced still signs beside the new one.
    pub previous_secret_expires_at: Option<DateTime<Utc>>,
    /// Version, bumped by every change.
    pub version: i32,
    /// Who registered it.
    pub created_by: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<webhook_endpoint::Model> for WebhookEndpointView {
    fn from(m: webhook_endpoint::Model) -> Self {
        Self {
            id: m.id,
            organization_id: m.organization_id,
            certification_body_id: m.certification_body_id,
            url: m.url,
            description: m.description,
            event_types: event_types_of(&m.event_types),
            enabled: m.enabled,
            disabled_reason: m.disabled_reason,
            failing_since: m.failing_since,
            previous_secret_expires_at: m.previous_secret_expires_at,
            version: m.version,
            created_by: m.created_by,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// An endpoint with its secret: shown once, on creation or rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookEndpointWithSecret {
    /// The endpoint.
    #[serde(flatten)]
    pub endpoint: WebhookEndpointView,
    /// `whsec_` and the base64 of 32 random bytes: verify each message's `webhook-signature` with
    /// it. Never shown again.
    pub secret: String,
}

impl WebhookEndpointWithSecret {
    fn of(endpoint: webhook_endpoint::Model, secret: &WebhookSecret) -> Self {
        Self { endpoint: endpoint.into(), secret: secret.expose() }
    }
}

/// One event for one endpoint, as the delivery log shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookMessageView {
    /// Id.
    pub id: Uuid,
    /// Its `webhook-id` header, the same for every attempt and replay.
    pub webhook_id: String,
    /// The event.
    pub event_id: Uuid,
    /// Its type.
    pub event_type: WebhookEventType,
    /// Its engagement.
    pub engagement_id: Uuid,
    /// Pending, sending, delivered or failed.
    pub status: WebhookMessageStatus,
    /// Attempts since it was made (or last replayed).
    pub attempts: i32,
    /// When it is tried next, while pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The last answer's HTTP status.
    pub last_response_status: Option<i32>,
    /// Why the last attempt got no answer, or why it failed.
    pub last_error: Option<String>,
    /// When it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

impl From<webhook_message::Model> for WebhookMessageView {
    fn from(m: webhook_message::Model) -> Self {
        Self {
            id: m.id,
            webhook_id: message_id(m.id),
            event_id: m.event_id,
            event_type: m.event_type,
            engagement_id: m.engagement_id,
            status: m.status,
            attempts: m.attempts,
            next_attempt_at: (m.status == WebhookMessageStatus::Pending).then_some(m.next_attempt_at),
            last_response_status: m.last_response_status,
            last_error: m.last_error,
            delivered_at: m.delivered_at,
            created_at: m.created_at,
        }
    }
}

/// One attempt to deliver a message.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookAttemptView {
    /// Id (a first attempt that delivered its message has the message's id, and keeps it when the
    /// message is replayed).
    pub id: Uuid,
    /// The message.
    pub message_id: Uuid,
    /// The message's `webhook-id`.
    pub webhook_id: String,
    /// 1 for its first attempt (since it was made or last replayed).
    pub attempt: i32,
    /// When.
    pub attempted_at: DateTime<Utc>,
    /// Delivered, retrying, failed or gone.
    pub outcome: WebhookAttemptOutcome,
    /// The receiver's HTTP status (absent: no answer).
    pub response_status: Option<i32>,
    /// How long the attempt took, in milliseconds.
    pub latency_ms: i32,
    /// The start of the answer (at most 1,024 bytes).
    pub response_excerpt: Option<String>,
    /// Why no answer came.
    pub error: Option<String>,
    /// When the message is tried next, if it is.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl From<webhook_attempt::Model> for WebhookAttemptView {
    fn from(m: webhook_attempt::Model) -> Self {
        Self {
            id: m.id,
            message_id: m.message_id,
            webhook_id: message_id(m.message_id),
            attempt: m.attempt,
            attempted_at: m.attempted_at,
            outcome: m.outcome,
            response_status: m.response_status,
            latency_ms: m.latency_ms,
            response_excerpt: m.response_excerpt,
            error: m.error,
            next_attempt_at: m.next_attempt_at,
        }
    }
}

/// Which failed messages to send again.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// Every failed message made at or after this instant.
    pub since: DateTime<Utc>,
}

/// How many messages a replay sends again.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayView {
    /// Messages queued again, each from its first attempt.
    pub replayed: u64,
}

/// Registers a webhook endpoint; its secret is in the answer, and only there.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "create_webhook_endpoint",
    request_body = WebhookEndpointRequest,
    responses((status = 201, description = "Registered, with its secret (shown once)", body = WebhookEndpointWithSecret), Refused),
    security(("bearer" = []))
)]
#[post("/webhook-endpoints")]
pub async fn create_webhook_endpoint(
    app: web::Data<AppState>,
    user: AuthUser,
    claim: IdempotencyClaim,
    body: web::Json<WebhookEndpointRequest>,
) -> Result<HttpResponse, ApiError> {
    user.may(Action::ManageWebhooks)?;
    let (spec, owner) = body.into_inner().parse()?;
    let (write, endpoint, secret) =
        app.create_webhook_endpoint(&user, owner, spec, app.webhook_allow_loopback, claim.claim()).await?;
    commit(write, HttpResponse::Created().json(WebhookEndpointWithSecret::of(endpoint, &secret))).await
}

/// Lists the caller's side's webhook endpoints (every one for an admin).
#[utoipa::path(
    tag = "webhooks",
    operation_id = "list_webhook_endpoints",
    params(PageQuery),
    responses((status = 200, description = "A page of endpoints", body = Page<WebhookEndpointView>), Refused),
    security(("bearer" = []))
)]
#[get("/webhook-endpoints")]
pub async fn list_webhook_endpoints(
    app: web::Data<AppState>,
    user: AuthUser,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<WebhookEndpointView>>, ApiError> {
    let limit = limit_of(query.limit)?;
    let cursor = decode_cursor(query.cursor.as_deref())?;
    user.may(Action::ManageWebhooks)?;
    let visible = WebhookEndpoint::find().filter(engine::webhooks::endpoints::endpoints_in(user.tenancy));
    let rows = id_page(visible, webhook_endpoint::Column::Id, cursor, limit).all(&app.db).await?;
    Ok(web::Json(page_of(rows, limit, |e| e.id, WebhookEndpointView::from)))
}

/// One webhook endpoint.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "get_webhook_endpoint",
    params(("id" = Uuid, Path, description = "Endpoint id")),
    responses((status = 200, description = "The endpoint", body = WebhookEndpointView), Refused),
    security(("bearer" = []))
)]
#[get("/webhook-endpoints/{id}")]
pub async fn get_webhook_endpoint(
    app: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<web::Json<WebhookEndpointView>, ApiError> {
    let endpoint = app.webhook_endpoint(&user, *id).await?;
    user.may(Action::ManageWebhooks)?;
    Ok(web::Json(endpoint.into()))
}

/// Changes a webhook endpoint (URL, description, event types, enabled). Enabling it again
/// clears its failures; replay its failed messages to have them sent.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "update_webhook_endpoint",
    params(("id" = Uuid, Path, description = "Endpoint id")),
    request_body = WebhookEndpointRequest,
    responses((status = 200, description = "Changed", body = WebhookEndpointView), Refused),
    security(("bearer" = []))
)]
#[put("/webhook-endpoints/{id}")]
pub async fn update_webhook_endpoint(
    app: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    body: web::Json<WebhookEndpointRequest>,
) -> Result<HttpResponse, ApiError> {
    let (spec, owner) = body.into_inner().parse()?;
    if owner.is_some() {
        return Err(ApiError::invalid("organization_id", "an endpoint's owner does not change"));
    }
    let (write, endpoint) = app.update_webhook_endpoint(&user, *id, spec, app.webhook_allow_loopback).await?;
    commit(write, HttpResponse::Ok().json(WebhookEndpointView::from(endpoint))).await
}

/// Removes a webhook endpoint with its messages and their log.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "delete_webhook_endpoint",
    params(("id" = Uuid, Path, description = "Endpoint id")),
    responses((status = 204, description = "Removed"), Refused),
    security(("bearer" = []))
)]
#[delete("/webhook-endpoints/{id}")]
pub async fn delete_webhook_endpoint(
    app: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let write = app.delete_webhook_endpoint(&user, *id).await?;
    commit(write, HttpResponse::NoContent().finish()).await
}

/// A new secret for the endpoint, shown once; the one it replaces keeps signing beside it (a
/// second signature in `webhook-signature`) for 24 hours.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "rotate_webhook_secret",
    params(("id" = Uuid, Path, description = "Endpoint id")),
    responses((status = 200, description = "Rotated, with the new secret (shown once)", body = WebhookEndpointWithSecret), Refused),
    security(("bearer" = []))
)]
#[post("/webhook-endpoints/{id}/secret-rotation")]
pub async fn rotate_webhook_secret(
    app: web::Data<AppState>,
    user: AuthUser,
    claim: IdempotencyClaim,
    id: web::Path<Uuid>,
) -> Result<HttpResponse, ApiError> {
    let (write, endpoint, secret) = app.rotate_webhook_secret(&user, *id, claim.claim()).await?;
    commit(write, HttpResponse::Ok().json(WebhookEndpointWithSecret::of(endpoint, &secret))).await
}

/// Query of the delivery log's messages.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MessageQuery {
    /// Only messages in this status.
    pub status: Option<WebhookMessageStatus>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The endpoint's messages, oldest first.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "list_webhook_messages",
    params(("id" = Uuid, Path, description = "Endpoint id"), MessageQuery),
    responses((status = 200, description = "A page of messages", body = Page<WebhookMessageView>), Refused),
    security(("bearer" = []))
)]
#[get("/webhook-endpoints/{id}/messages")]
pub async fn list_webhook_messages(
    app: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    query: web::Query<MessageQuery>,
) -> Result<web::Json<Page<WebhookMessageView>>, ApiError> {
    let limit = limit_of(query.limit)?;
    let cursor = decode_keyed_cursor(query.cursor.as_deref())?;
    let endpoint = app.webhook_endpoint(&user, *id).await?;
    user.may(Action::ManageWebhooks)?;
    let rows = messages_page(endpoint.id, query.status, cursor, limit).all(&app.db).await?;
    Ok(web::Json(keyed_page_of(rows, limit, |m| (m.created_at, m.id), WebhookMessageView::from)))
}

/// A page of endpoint `endpoint`'s messages (in `status` only, when given) in the order they were
/// made, from after `cursor`: read along the endpoint's index in that order, never sorted.
pub fn messages_page(
    endpoint: Uuid,
    status: Option<WebhookMessageStatus>,
    cursor: Option<(DateTime<Utc>, Uuid)>,
    limit: u64,
) -> Select<WebhookMessage> {
    use webhook_message::Column as M;
    let mut messages = WebhookMessage::find().filter(M::EndpointId.eq(endpoint));
    if let Some(status) = status {
        messages = messages.filter(M::Status.eq(status));
    }
    keyed_page(messages, M::CreatedAt, M::Id, cursor, limit)
}

/// A page of endpoint `endpoint`'s attempts that have rows of their own, in the order they were
/// made, from after `cursor`: read along the endpoint's index in that order, never sorted.
pub fn attempts_page(endpoint: Uuid, cursor: Option<(DateTime<Utc>, Uuid)>, limit: u64) -> Select<WebhookAttempt> {
    use webhook_attempt::Column as A;
    keyed_page(WebhookAttempt::find().filter(A::EndpointId.eq(endpoint)), A::AttemptedAt, A::Id, cursor, limit)
}

/// A page of endpoint `endpoint`'s messages that keep their first attempt in their row
/// ([`webhook_message::Model::first_attempt`]), in the order of those attempts (when they ended,
/// then id), from after `cursor`: read along the partial index of such messages, never sorted.
pub fn first_attempts_page(
    endpoint: Uuid,
    cursor: Option<(DateTime<Utc>, Uuid)>,
    limit: u64,
) -> Select<WebhookMessage> {
    use webhook_message::Column as M;
    let kept = WebhookMessage::find().filter(M::EndpointId.eq(endpoint)).filter(M::FirstAttemptLatencyMs.is_not_null());
    keyed_page(kept, M::DeliveredAt, M::Id, cursor, limit)
}

/// A page of endpoint `endpoint`'s attempts, from after `cursor`: those with rows of their own and
/// those kept in their messages, each read a page long in the log's order, merged. Both read in one
/// snapshot: a replay moving a kept attempt into a row between the two reads would have it listed
/// in neither.
async fn attempts_of(
    db: &DatabaseConnection,
    endpoint: Uuid,
    cursor: Option<(DateTime<Utc>, Uuid)>,
    limit: u64,
) -> Result<Vec<webhook_attempt::Model>, sea_orm::DbErr> {
    let snapshot = engine::store::read_snapshot(db).await?;
    let logged = attempts_page(endpoint, cursor, limit).all(&snapshot).await?;
    let kept = first_attempts_page(endpoint, cursor, limit).all(&snapshot).await?;
    snapshot.commit().await?;
    let page = usize::try_from(limit + 1).unwrap_or(usize::MAX);
    Ok(merge_pages(logged, kept.iter().filter_map(webhook_message::Model::first_attempt).collect(), page, |a| {
        (a.attempted_at, a.id)
    }))
}

/// The endpoint's attempts, oldest first.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "list_webhook_attempts",
    params(("id" = Uuid, Path, description = "Endpoint id"), PageQuery),
    responses((status = 200, description = "A page of attempts", body = Page<WebhookAttemptView>), Refused),
    security(("bearer" = []))
)]
#[get("/webhook-endpoints/{id}/attempts")]
pub async fn list_webhook_attempts(
    app: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<Uuid>,
    query: web::Query<PageQuery>,
) -> Result<web::Json<Page<WebhookAttemptView>>, ApiError> {
    let limit = limit_of(query.limit)?;
    let cursor = decode_keyed_cursor(query.cursor.as_deref())?;
    let endpoint = app.webhook_endpoint(&user, *id).await?;
    user.may(Action::ManageWebhooks)?;
    let rows = attempts_of(&app.db, endpoint.id, cursor, limit).await?;
    Ok(web::Json(keyed_page_of(rows, limit, |a| (a.attempted_at, a.id), WebhookAttemptView::from)))
}

/// Sends one message again, from its first attempt, with the same `webhook-id`.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "replay_webhook_message",
    params(("id" = Uuid, Path, description = "Endpoint id"), ("message_id" = Uuid, Path, description = "Message id")),
    responses((status = 202, description = "Queued again", body = ReplayView), Refused),
    security(("bearer" = []))
)]
#[post("/webhook-endpoints/{id}/messages/{message_id}/replay")]
pub async fn replay_webhook_message(
    app: web::Data<AppState>,
    user: AuthUser,
    claim: IdempotencyClaim,
    path: web::Path<(Uuid, Uuid)>,
) -> Result<HttpResponse, ApiError> {
    let (id, message) = path.into_inner();
    let (write, replayed) = app.replay_webhook_messages(&user, id, Replay::Message(message), claim.claim()).await?;
    commit(write, HttpResponse::Accepted().json(ReplayView { replayed })).await
}

/// Sends every failed message made since an instant again, each from its first attempt.
#[utoipa::path(
    tag = "webhooks",
    operation_id = "replay_webhook_messages",
    params(("id" = Uuid, Path, description = "Endpoint id")),
    request_body = ReplayRequest,
    responses((status = 202, description = "Queued again", body = ReplayView), Refused),
    security(("bearer" = []))
)]
#[post("/webhook-endpoints/{id}/replay")]
pub async fn replay_webhook_messages(
    app: web::Data<AppState>,
    user: AuthUser,
    claim: IdempotencyClaim,
    id: web::Path<Uuid>,
    body: web::Json<ReplayRequest>,
) -> Result<HttpResponse, ApiError> {
    let which = Replay::FailedSince(body.since);
    let (write, replayed) = app.replay_webhook_messages(&user, *id, which, claim.claim()).await?;
    commit(write, HttpResponse::Accepted().json(ReplayView { replayed })).await
}
