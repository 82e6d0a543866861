//! Making events into messages: each event of the outbox becomes one message for every enabled
//! endpoint that wants its type, whose owner reads the engagement's records, and that existed
//! when the event happened. Several workers share the outbox: each takes a batch no other holds
//! (`SKIP LOCKED` on PostgreSQL; SQLite has one writer).

use chrono::{DateTime, SubsecRound, Utc};
use entities::domain::webhooks::{EndpointOwner, WebhookEventType, WebhookMessageStatus};
use entities::orm::{prelude::*, webhook_endpoint, webhook_event, webhook_message};
use sea_orm::sea_query::{Expr, LockBehavior, LockType, OnConflict};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::Engine;
use crate::error::EngineError;
use crate::store::begin_write;

/// What one pass of the dispatch did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Dispatched {
    /// Events taken from the outbox.
    pub events: usize,
    /// Events read but left in the outbox: their messages would have been made past what the
    /// caller could take (see [`Take`]). The next dispatch reads them again.
    pub left: usize,
    /// Messages made of them.
    pub messages: usize,
    /// The messages made already taken for their first attempt (see [`Take`]).
    pub taken: Vec<webhook_message::Model>,
    /// The events the taken messages tell of, as the dispatch read them: what their first attempt
    /// sends, with no read after (an event's data never changes).
    pub taken_events: Vec<webhook_event::Model>,
}

/// How many of the messages a dispatch makes its caller takes at once for their first attempt
/// (made `sending`, their attempt counted, leased until `lease_until`), sparing each a claim.
///
/// A dispatch given a take makes messages only as far as it can take them: an event that would
/// begin past `count` messages is left in the outbox for a later pass, which has slots for it.
/// Made `pending` instead, each would be written three times (made, claimed, ended) rather than
/// twice, and locked and claimed by a pass of its own (docs/benchmarks.md, "Messages made as they
/// are sent"). An event that has slots for its first message makes all of its messages: the rest
/// wait, pending and due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Take {
    /// At most this many.
    pub count: usize,
    /// Their lease.
    pub lease_until: DateTime<Utc>,
}

/// An endpoint as the dispatch sees it.
struct Subscriber {
    id: Uuid,
    owner: EndpointOwner,
    wanted: Vec<WebhookEventType>,
    since: DateTime<Utc>,
}

impl Subscriber {
    fn of(endpoint: &webhook_endpoint::Model) -> Option<Self> {
        Some(Self {
            id: endpoint.id,
            owner: EndpointOwner::of(endpoint.organization_id, endpoint.certification_body_id)?,
            wanted: event_types_of(&endpoint.event_types),
            since: endpoint.created_at,
        })
    }

    fn is_told(&self, event: &webhook_event::Model) -> bool {
        event.occurred_at >= self.since
            && event.event_type.wanted_by(&self.wanted)
            && self.owner.is_told(event.organization_id, event.certification_body_id)
    }
}

/// The event types an endpoint's JSON list names (a name no longer known is skipped).
pub fn event_types_of(value: &serde_json::Value) -> Vec<WebhookEventType> {
    entities::orm::strings_of(value).iter().filter_map(|name| name.parse().ok()).collect()
}

/// Whether a dispatch first looks, on the read pool, for an event waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Look {
    /// Look first: an idle outbox then costs one indexed read, not a write transaction.
    First,
    /// Go to the writer at once (the last dispatch found events: the look would find more).
    Skip,
}

/// Makes at most `batch` events of the outbox, oldest first, into messages, in one transaction on
/// the engine's writer (after a look at its read pool for whether any waits, as `look` says); the
/// first of them are taken at once when `take` says so. The messages are made at the engine's
/// instant once the events are read: never before the events they tell of (a dispatch that waited
/// for the writer while new events committed reads those too).
pub async fn dispatch_events(
    engine: &Engine,
    batch: u64,
    take: Option<Take>,
    look: Look,
) -> Result<Dispatched, EngineError> {
    // An idle outbox costs one indexed read, not a write transaction (on SQLite, the one write lock
    // the API's writes queue for). In the partial index's order, so a planner with statistics
    // reads that index too rather than the whole outbox.
    if look == Look::First {
        let waiting: Option<Uuid> = WebhookEventRecord::find()
            .select_only()
            .column(webhook_event::Column::Id)
            .filter(webhook_event::Column::DispatchedAt.is_null())
            .order_by_asc(webhook_event::Column::Id)
            .limit(1)
            .into_tuple()
            .one(&engine.db)
            .await?;
        if waiting.is_none() {
            return Ok(Dispatched::default());
        }
    }
    let txn = begin_write(&engine.writer).await?;
    // Whole, data included: the taken messages' first attempts send it with no read after.
    let mut events = WebhookEventRecord::find()
        .filter(webhook_event::Column::DispatchedAt.is_null())
        .order_by_asc(webhook_event::Column::Id)
        .limit(batch)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .all(&txn)
        .await?;
    if events.is_empty() {
        return Ok(Dispatched::default());
    }
    let now = engine.clock.now().trunc_subsecs(6);
    let subscribers: Vec<Subscriber> = WebhookEndpoint::find()
        .filter(webhook_endpoint::Column::Enabled.eq(true))
        .all(&txn)
        .await?
        .iter()
        .filter_map(Subscriber::of)
        .collect();
    let mut messages = Vec::new();
    let mut taken = Vec::new();
    let mut handled = events.len();
    for (index, event) in events.iter().enumerate() {
        let told: Vec<&Subscriber> = subscribers.iter().filter(|s| s.is_told(event)).collect();
        if take.is_some_and(|take| !told.is_empty() && messages.len() >= take.count) {
            handled = index;
            break;
        }
        for subscriber in told {
            let mut message = webhook_message::Model {
                id: Uuid::now_v7(),
                endpoint_id: subscriber.id,
                event_id: event.id,
                engagement_id: event.engagement_id,
                event_type: event.event_type,
                status: WebhookMessageStatus::Pending,
                attempts: 0,
                next_attempt_at: now,
                lease_until: None,
                last_response_status: None,
                last_error: None,
                delivered_at: None,
                created_at: now,
                updated_at: now,
            };
            if let Some(take) = take.filter(|take| taken.len() < take.count) {
                // Taken for its first attempt as it is made: no claim to write after.
                message.status = WebhookMessageStatus::Sending;
                message.attempts = 1;
                message.lease_until = Some(take.lease_until);
                taken.push(message.clone());
            }
            messages.push(message.into_active_model().reset_all());
        }
    }
    let left = events.len() - handled;
    events.truncate(handled);
    if events.is_empty() {
        return Ok(Dispatched { left, ..Dispatched::default() });
    }
    let made = messages.len();
    let mut inserted = 0;
    // A few hundred rows a statement keeps under SQLite's bound-parameter limit.
    for chunk in messages.chunks(200) {
        let conflict = OnConflict::columns([webhook_message::Column::EventId, webhook_message::Column::EndpointId])
            .do_nothing()
            .to_owned();
        inserted +=
            WebhookMessage::insert_many(chunk.to_vec()).on_conflict(conflict).exec_without_returning(&txn).await?;
    }
    if inserted < made as u64 && !taken.is_empty() {
        // A message that existed already was not made again: a taken one is sent only if its row
        // is there (a `webhook-id` no row has could not be told from a repeat).
        let there: Vec<Uuid> = WebhookMessage::find()
            .select_only()
            .column(webhook_message::Column::Id)
            .filter(webhook_message::Column::Id.is_in(taken.iter().map(|m| m.id)))
            .into_tuple()
            .all(&txn)
            .await?;
        taken.retain(|m| there.contains(&m.id));
    }
    WebhookEventRecord::update_many()
        .col_expr(webhook_event::Column::DispatchedAt, Expr::value(now))
        .filter(webhook_event::Column::Id.is_in(events.iter().map(|e| e.id)))
        .exec(&txn)
        .await?;
    txn.commit().await?;
    let count = events.len();
    let told: std::collections::HashSet<Uuid> = taken.iter().map(|m| m.event_id).collect();
    let taken_events = events.into_iter().filter(|e| told.contains(&e.id)).collect();
    Ok(Dispatched { events: count, left, messages: made, taken, taken_events })
}
