//! Making events into messages: each event of the outbox becomes one message for every enabled
//! endpoint that wants its type, whose owner reads the engagement's records, and that existed
//! when the event happened. Several workers share the outbox: each takes a batch no other holds
//! (`SKIP LOCKED` on PostgreSQL; SQLite has one writer).

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, SubsecRound, Utc};
use entities::domain::webhooks::{EndpointOwner, PayloadHead, WebhookEventType, WebhookMessageStatus, message_uuid};
use entities::orm::{prelude::*, webhook_endpoint, webhook_event, webhook_message, webhook_outbox};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, LockBehavior, LockType, Order, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, IdenStatic, QueryFilter, QueryOrder,
    QuerySelect, Select,
};
use uuid::Uuid;

use crate::Engine;
use crate::error::EngineError;
use crate::store::{WriteTransaction, begin_write};
use crate::webhooks::rows::{insert_messages, take_off_outbox};

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
    pub taken_events: Vec<QueuedEvent>,
}

/// What one pass of the dispatch read and made, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DispatchSummary {
    /// Events taken from the outbox.
    pub events: usize,
    /// Events read but left in the outbox (see [`Dispatched::left`]).
    pub left: usize,
    /// Messages made of them.
    pub messages: usize,
    /// Of which taken for their first attempt.
    pub taken: usize,
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

    fn is_told(&self, event: &QueuedEvent) -> bool {
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
/// first of them are taken at once when `take` says so, and the transaction commits before this
/// returns. See [`open_dispatch`] for a dispatch whose caller sends the first attempts before it
/// commits.
pub async fn dispatch_events(
    engine: &Engine,
    batch: u64,
    take: Option<Take>,
    look: Look,
) -> Result<Dispatched, EngineError> {
    let mut dispatch = open_dispatch(engine, batch, take, look).await?;
    let written = dispatch.write(Vec::new()).await?;
    let mut dispatched = dispatch.dispatched();
    dispatched.taken.retain(|m| written.contains(&m.id));
    let told: HashSet<Uuid> = dispatched.taken.iter().map(|m| m.event_id).collect();
    dispatched.taken_events.retain(|e| told.contains(&e.id));
    dispatch.commit().await?;
    Ok(dispatched)
}

/// A dispatch read and not yet written: the events it holds (locked: `SKIP LOCKED` keeps every
/// other dispatch off them until it ends), the messages made of them, and its transaction.
///
/// Its caller may send the taken messages' first attempts while it holds the events, then
/// [`Dispatch::write`] the messages as those attempts left them (a message delivered at once is
/// written once, `delivered`), write their attempts in [`Dispatch::transaction`], and
/// [`Dispatch::commit`]. Dropped, it rolls back: the events stay in the outbox, and the next
/// dispatch makes the same messages again, with the same ids ([`message_uuid`]).
pub struct Dispatch {
    /// `None` when the look found no event waiting.
    txn: Option<WriteTransaction>,
    /// When the messages were made.
    now: DateTime<Utc>,
    /// The events made into messages (those past the take are not held: see [`Take`]).
    events: Vec<QueuedEvent>,
    /// Events read but left in the outbox.
    left: usize,
    /// The messages made, in order: the first `taken` of them taken (`sending`).
    messages: Vec<webhook_message::Model>,
    taken: usize,
    /// Written: [`Dispatch::write`] was called.
    written: bool,
}

impl std::fmt::Debug for Dispatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatch")
            .field("events", &self.events.len())
            .field("left", &self.left)
            .field("messages", &self.messages.len())
            .field("taken", &self.taken)
            .finish()
    }
}

/// Reads at most `batch` events of the outbox, oldest first, in a transaction on the engine's
/// writer (after a look at its read pool for whether any waits, as `look` says), and makes their
/// messages, the first of them taken when `take` says so; nothing is written yet (see
/// [`Dispatch`]). The messages are made at the engine's instant once the events are read: never
/// before the events they tell of (a dispatch that waited for the writer while new events
/// committed reads those too).
pub async fn open_dispatch(
    engine: &Engine,
    batch: u64,
    take: Option<Take>,
    look: Look,
) -> Result<Dispatch, EngineError> {
    let mut dispatch = Dispatch {
        txn: None,
        now: engine.clock.now().trunc_subsecs(6),
        events: Vec::new(),
        left: 0,
        messages: Vec::new(),
        taken: 0,
        written: false,
    };
    // An idle outbox costs one indexed read, not a write transaction (on SQLite, the one write lock
    // the API's writes queue for). In the partial index's order, so a planner with statistics
    // reads that index too rather than the whole outbox.
    if look == Look::First {
        let waiting: Option<Uuid> = WebhookOutbox::find()
            .select_only()
            .column(webhook_outbox::Column::EventId)
            .order_by_asc(webhook_outbox::Column::EventId)
            .limit(1)
            .into_tuple()
            .one(&engine.db)
            .await?;
        if waiting.is_none() {
            return Ok(dispatch);
        }
    }
    let txn = begin_write(&engine.writer).await?;
    // Whole, data included: the taken messages' first attempts send it with no read after.
    let mut events = queued_events(batch).into_model::<QueuedEvent>().all(&txn).await?;
    dispatch.txn = Some(txn);
    if events.is_empty() {
        return Ok(dispatch);
    }
    let now = engine.clock.now().trunc_subsecs(6);
    dispatch.now = now;
    let Some(txn) = dispatch.txn.as_ref() else { return Ok(dispatch) };
    let subscribers: Vec<Subscriber> = WebhookEndpoint::find()
        .filter(webhook_endpoint::Column::Enabled.eq(true))
        .all(txn)
        .await?
        .iter()
        .filter_map(Subscriber::of)
        .collect();
    let mut messages = Vec::new();
    let mut taken = 0;
    let mut handled = events.len();
    for (index, event) in events.iter().enumerate() {
        let told: Vec<&Subscriber> = subscribers.iter().filter(|s| s.is_told(event)).collect();
        if take.is_some_and(|take| !told.is_empty() && messages.len() >= take.count) {
            handled = index;
            break;
        }
        for subscriber in told {
            let mut message = webhook_message::Model {
                id: message_uuid(event.id, subscriber.id),
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
                first_attempt_latency_ms: None,
                first_attempt_excerpt: None,
            };
            if let Some(take) = take.filter(|take| taken < take.count) {
                // Taken for its first attempt as it is made: no claim to write after.
                message.status = WebhookMessageStatus::Sending;
                message.attempts = 1;
                message.lease_until = Some(take.lease_until);
                taken += 1;
            }
            messages.push(message);
        }
    }
    dispatch.left = events.len() - handled;
    events.truncate(handled);
    dispatch.events = events;
    dispatch.messages = messages;
    dispatch.taken = taken;
    Ok(dispatch)
}

/// Of the endpoints `ids`, those that still exist, locked (`FOR KEY SHARE`, in their ids' order)
/// until the dispatch ends: on PostgreSQL the delivery log has no foreign keys (migration
/// `m20261204_000020`), and the lock is what keeps a message from outliving its endpoint. Taken
/// as the messages are written, as the keys' checks took it, so an endpoint's removal waits for no
/// dispatch's first attempts: a removal that committed before has the dispatch write nothing for
/// that endpoint, one that comes after waits for the commit and then deletes what it wrote. One lock
/// an endpoint a dispatch, where the key checked every message.
async fn kept_endpoints(txn: &WriteTransaction, mut ids: Vec<Uuid>) -> Result<HashSet<Uuid>, EngineError> {
    use webhook_endpoint::Column as E;
    ids.sort_unstable();
    ids.dedup();
    Ok(WebhookEndpoint::find()
        .select_only()
        .column(E::Id)
        .filter(E::Id.is_in(ids))
        .order_by_asc(E::Id)
        .lock(LockType::KeyShare)
        .into_tuple::<Uuid>()
        .all(txn)
        .await?
        .into_iter()
        .collect())
}

/// An event as its messages are made and sent: its subject left as the JSON text it was stored as.
/// A message's body is spliced from that text ([`entities::domain::webhooks::payload_body`]); read
/// as a JSON tree, parsing each event's data, copying it for the sender and dropping it took a
/// fifth of the worker's instructions a message (`instructions.py`).
#[derive(Debug, Clone, PartialEq, FromQueryResult)]
pub struct QueuedEvent {
    /// The event's id.
    pub id: Uuid,
    /// Its engagement.
    pub engagement_id: Uuid,
    /// The engagement's organization.
    pub organization_id: Uuid,
    /// Its certification body, once one was selected.
    pub certification_body_id: Option<Uuid>,
    /// Its place in its engagement's order.
    pub sequence: i64,
    /// Its type.
    pub event_type: WebhookEventType,
    /// Its subject as stored: one JSON object (`{"transition": {…}}`).
    pub data: String,
    /// When its change happened.
    pub occurred_at: DateTime<Utc>,
}

impl QueuedEvent {
    /// What its messages' bodies say of it besides the subject.
    pub fn head(&self) -> PayloadHead {
        PayloadHead {
            event_type: self.event_type,
            timestamp: self.occurred_at,
            engagement_id: self.engagement_id,
            organization_id: self.organization_id,
            certification_body_id: self.certification_body_id,
            sequence: self.sequence,
        }
    }
}

/// The events as [`QueuedEvent`]s are read (`into_model`): their columns, the data as text.
pub fn sendable_events() -> Select<WebhookEventRecord> {
    use webhook_event::Column as C;
    WebhookEventRecord::find()
        .select_only()
        .columns([C::Id, C::EngagementId, C::OrganizationId, C::CertificationBodyId, C::Sequence, C::EventType])
        .expr_as(Expr::col(C::Data).cast_as(Alias::new("text")), C::Data.as_str())
        .column(C::OccurredAt)
}

/// The oldest `batch` events waiting in the outbox's queue, oldest first, their places in the queue
/// locked (`FOR UPDATE SKIP LOCKED` on PostgreSQL: those another dispatch holds are passed over);
/// the events themselves are only read.
pub fn queued_events(batch: u64) -> Select<WebhookEventRecord> {
    let queued = Query::select()
        .column(webhook_outbox::Column::EventId)
        .from(WebhookOutbox)
        .order_by(webhook_outbox::Column::EventId, Order::Asc)
        .limit(batch)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .to_owned();
    sendable_events().filter(webhook_event::Column::Id.in_subquery(queued)).order_by_asc(webhook_event::Column::Id)
}

impl Dispatch {
    /// The messages taken for their first attempt (`sending`, their attempt counted, leased).
    pub fn taken(&self) -> &[webhook_message::Model] {
        &self.messages[..self.taken]
    }

    /// The events the taken messages tell of, as the dispatch read them: what their first attempts
    /// send, with no read after (an event's data never changes).
    pub fn taken_events(&self) -> Vec<QueuedEvent> {
        let told: HashSet<Uuid> = self.taken().iter().map(|m| m.event_id).collect();
        self.events.iter().filter(|e| told.contains(&e.id)).cloned().collect()
    }

    /// What the dispatch read and made, counted.
    pub fn summary(&self) -> DispatchSummary {
        DispatchSummary { events: self.events.len(), left: self.left, messages: self.messages.len(), taken: self.taken }
    }

    /// What the dispatch read and made, its taken messages as they were made.
    pub fn dispatched(&self) -> Dispatched {
        Dispatched {
            events: self.events.len(),
            left: self.left,
            messages: self.messages.len(),
            taken: self.taken().to_vec(),
            taken_events: self.taken_events(),
        }
    }

    /// When the messages were made (their `created_at`).
    pub fn made_at(&self) -> DateTime<Utc> {
        self.now
    }

    /// The transaction, for what its caller writes with the messages (their attempts); `None`
    /// when there was nothing to dispatch.
    pub fn transaction(&self) -> Option<&WriteTransaction> {
        self.txn.as_ref().filter(|_| !self.events.is_empty())
    }

    /// Writes the messages made, each as `sent` has it where it holds one of the same id (a taken
    /// message whose first attempt ended), and takes the events off the outbox's queue (see
    /// [`crate::webhooks::rows`]). A message whose endpoint was removed meanwhile is not written
    /// (see [`kept_endpoints`]). Returns the ids of the messages written: a message that existed
    /// already is not made again (nor is its attempt to be recorded: the row is not this
    /// dispatch's).
    pub async fn write(&mut self, sent: Vec<webhook_message::Model>) -> Result<HashSet<Uuid>, EngineError> {
        let Some(txn) = self.transaction() else { return Ok(HashSet::new()) };
        if self.written {
            return Err(EngineError::Unexpected(anyhow::anyhow!("a dispatch is written once")));
        }
        let mut sent: HashMap<Uuid, webhook_message::Model> = sent.into_iter().map(|m| (m.id, m)).collect();
        let mut rows: Vec<webhook_message::Model> =
            self.messages.iter().map(|made| sent.remove(&made.id).unwrap_or_else(|| made.clone())).collect();
        // SQLite's one writer has held the endpoints still since they were read.
        if txn.get_database_backend() == DbBackend::Postgres && !rows.is_empty() {
            let kept = kept_endpoints(txn, rows.iter().map(|m| m.endpoint_id).collect()).await?;
            rows.retain(|m| kept.contains(&m.endpoint_id));
        }
        let written = insert_messages(txn, rows).await?;
        take_off_outbox(txn, self.events.iter().map(|e| e.id).collect()).await?;
        self.written = true;
        Ok(written)
    }

    /// Commits what was written (nothing, if [`Dispatch::write`] was not called: the events stay
    /// in the outbox).
    pub async fn commit(self) -> Result<(), EngineError> {
        if let Some(txn) = self.txn {
            txn.commit().await?;
        }
        Ok(())
    }
}
