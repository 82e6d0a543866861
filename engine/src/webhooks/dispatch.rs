//! Making events into messages: each event of the outbox becomes one message for every enabled
//! endpoint that wants its type, whose owner reads the engagement's records, and that existed
//! when the event happened. Several workers share the outbox: each takes a batch no other holds
//! (`SKIP LOCKED` on PostgreSQL; SQLite has one writer).

use chrono::{DateTime, Utc};
use entities::domain::webhooks::{EndpointOwner, WebhookEventType, WebhookMessageStatus};
use entities::orm::{prelude::*, webhook_endpoint, webhook_event, webhook_message};
use sea_orm::sea_query::{Expr, LockBehavior, LockType, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::error::EngineError;
use crate::store::begin_write;

/// What one pass of the dispatch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dispatched {
    /// Events taken from the outbox.
    pub events: usize,
    /// Messages made of them.
    pub messages: usize,
}

/// An endpoint as the dispatch sees it.
struct Subscriber {
    id: Uuid,
    owner: EndpointOwner,
    wanted: Vec<WebhookEventType>,
    since: DateTime<Utc>,
}

impl Subscriber {
    fn of(endpoint: webhook_endpoint::Model) -> Option<Self> {
        Some(Self {
            id: endpoint.id,
            owner: EndpointOwner::of(endpoint.organization_id, endpoint.certification_body_id)?,
            wanted: event_types_of(&endpoint.event_types),
            since: endpoint.created_at,
        })
    }

    fn is_told(&self, event: &Undispatched) -> bool {
        event.occurred_at >= self.since
            && event.event_type.wanted_by(&self.wanted)
            && self.owner.is_told(event.organization_id, event.certification_body_id)
    }
}

/// An event waiting for its messages: what deciding who is told needs (not its data).
#[derive(sea_orm::FromQueryResult)]
struct Undispatched {
    id: Uuid,
    engagement_id: Uuid,
    organization_id: Uuid,
    certification_body_id: Option<Uuid>,
    event_type: WebhookEventType,
    occurred_at: DateTime<Utc>,
}

/// The event types an endpoint's JSON list names (a name no longer known is skipped).
pub fn event_types_of(value: &serde_json::Value) -> Vec<WebhookEventType> {
    entities::orm::strings_of(value).iter().filter_map(|name| name.parse().ok()).collect()
}

/// Makes at most `batch` events of the outbox, oldest first, into messages, in one transaction.
pub async fn dispatch_events(
    db: &DatabaseConnection,
    now: DateTime<Utc>,
    batch: u64,
) -> Result<Dispatched, EngineError> {
    // An idle outbox costs one indexed read, not a write transaction (on SQLite, the one write lock
    // the API's writes queue for).
    let waiting: Option<Uuid> = WebhookEventRecord::find()
        .select_only()
        .column(webhook_event::Column::Id)
        .filter(webhook_event::Column::DispatchedAt.is_null())
        .limit(1)
        .into_tuple()
        .one(db)
        .await?;
    if waiting.is_none() {
        return Ok(Dispatched::default());
    }
    let txn = begin_write(db).await?;
    use webhook_event::Column as E;
    let events = WebhookEventRecord::find()
        .select_only()
        .columns([E::Id, E::EngagementId, E::OrganizationId, E::CertificationBodyId, E::EventType, E::OccurredAt])
        .filter(webhook_event::Column::DispatchedAt.is_null())
        .order_by_asc(webhook_event::Column::Id)
        .limit(batch)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .into_model::<Undispatched>()
        .all(&txn)
        .await?;
    if events.is_empty() {
        return Ok(Dispatched::default());
    }
    let subscribers: Vec<Subscriber> = WebhookEndpoint::find()
        .filter(webhook_endpoint::Column::Enabled.eq(true))
        .all(&txn)
        .await?
        .into_iter()
        .filter_map(Subscriber::of)
        .collect();
    let mut messages = Vec::new();
    for event in &events {
        for subscriber in subscribers.iter().filter(|s| s.is_told(event)) {
            messages.push(webhook_message::ActiveModel {
                id: Set(Uuid::now_v7()),
                endpoint_id: Set(subscriber.id),
                event_id: Set(event.id),
                engagement_id: Set(event.engagement_id),
                event_type: Set(event.event_type),
                status: Set(WebhookMessageStatus::Pending),
                attempts: Set(0),
                next_attempt_at: Set(now),
                lease_until: Set(None),
                last_response_status: Set(None),
                last_error: Set(None),
                delivered_at: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
            });
        }
    }
    let made = messages.len();
    // A few hundred rows a statement keeps under SQLite's bound-parameter limit.
    for chunk in messages.chunks(200) {
        let conflict = OnConflict::columns([webhook_message::Column::EventId, webhook_message::Column::EndpointId])
            .do_nothing()
            .to_owned();
        WebhookMessage::insert_many(chunk.to_vec()).on_conflict(conflict).exec_without_returning(&txn).await?;
    }
    WebhookEventRecord::update_many()
        .col_expr(webhook_event::Column::DispatchedAt, Expr::value(now))
        .filter(webhook_event::Column::Id.is_in(events.iter().map(|e| e.id)))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(Dispatched { events: events.len(), messages: made })
}
