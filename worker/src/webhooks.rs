//! Delivering webhooks: the outbox's events made into messages (see `engine::webhooks::dispatch`),
//! and each due message sent to its endpoint, signed as Standard Webhooks have it, with its attempt
//! logged. A message keeps its `webhook-id` across every attempt; it is tried on the
//! specification's schedule; a 410 disables its endpoint, and so do five days of failures (its
//! owner's people are told by email). Requests never go to a private address: the resolver drops
//! them after DNS, and an address in the URL is checked the same way.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use engine::Engine;
use engine::store::begin_write;
use engine::webhooks::dispatch::{Dispatch, DispatchSummary, Look, QueuedEvent, Take, open_dispatch, sendable_events};
use engine::webhooks::rows::insert_attempts;
use entities::domain::people::PersonRole;
use entities::domain::webhooks::{
    EndpointOwner, Verdict, WebhookAttemptOutcome, WebhookMessageStatus, WebhookSecret, failed_too_long, may_send_to,
    message_id, next_retry, payload_body, signature_header, verdict,
};
use entities::orm::{person, prelude::*, webhook_attempt, webhook_endpoint, webhook_event, webhook_message};
use http::Uri;
use http::header::{HeaderName, HeaderValue};
use lettre::Message;
use lettre::message::Mailbox;
use sea_orm::sea_query::{CommonTableExpression, Expr, ExprTrait, LockBehavior, LockType, Query, WithClause};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, IdenStatic, QueryFilter, QuerySelect, QueryTrait};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::error::WorkerError;
use crate::mailer::Mailer;
use engine::store::WriteTransaction;

pub use crate::webhook_client::{ATTEMPT_TIMEOUT, RESPONSE_READ_LIMIT, WebhookClient};
/// The most of an answer the delivery log keeps.
pub const RESPONSE_EXCERPT_LIMIT: usize = 1024;
/// Events made into messages per pass.
const DISPATCH_BATCH: u64 = 500;
/// The most attempts recorded in one transaction.
const RECORD_BATCH: usize = 256;
/// Tries of a batch's record before it is given up (its messages are then sent again after their
/// leases), and the wait after the first failure (doubled after each).
const RECORD_TRIES: u32 = 5;
const RECORD_RETRY_FIRST_WAIT: Duration = Duration::from_millis(200);
/// How long an idle sender waits before it looks again.
const IDLE: Duration = Duration::from_millis(200);
/// After a pass that had slots to spare, the next begins no sooner than this: what comes meanwhile
/// (new events, freed slots) goes in one dispatch transaction. Without it, under a steady flow of
/// changes each pass found the few events committed since the last, and paid its dozen or more
/// round trips and two commits for them (docs/benchmarks.md, "Webhook passes in step"). A pass
/// that used every slot it had, or left due messages behind, is followed at once (a backlog is
/// not held to a pass per interval).
const PASS_INTERVAL: Duration = Duration::from_millis(50);
/// How long the recorder waits, after an attempt ends, for the others of its pass to end, so
/// that they are recorded in one transaction.
const RECORD_GATHER: Duration = Duration::from_millis(5);
/// On PostgreSQL, how long a pass waits for the first attempts of the messages its dispatch made
/// before it writes them: a message whose first attempt ended by then is written once, as that
/// attempt left it, in the dispatch's own transaction (which holds its events meanwhile: another
/// worker's dispatch skips them). Those still in flight are written `sending`, leased, and
/// recorded by the recorder when they end, as claimed messages are (docs/benchmarks.md, "A message
/// written once").
const FIRST_ATTEMPTS_WAIT: Duration = Duration::from_secs(1);

/// How often a sender looks for messages whose lease ended: a quarter of a lease, at least every
/// [`IDLE`] and at most every 10 s. Such messages are those of a worker that died or could not
/// record its attempts, and wait a lease already; the look itself is not free: on PostgreSQL it
/// walks the `sending` range of `ix_webhook_messages_due`, which holds an entry for every message
/// sent since the last vacuum (11 ms a look after a few minutes of load, made every 200 ms;
/// docs/benchmarks.md, "Dead entries in the queue's index").
fn lease_look_interval(lease: Duration) -> Duration {
    (lease / 4).clamp(IDLE, Duration::from_secs(10))
}

/// A look made every `every`, and at once while the last one may have left something.
#[derive(Debug)]
struct Periodic {
    every: Duration,
    /// When the look was last made.
    last: Option<Instant>,
    /// The last look took as many as it could: more may wait.
    left: bool,
}

impl Periodic {
    fn every(every: Duration) -> Self {
        Self { every, last: None, left: false }
    }

    fn due(&self) -> bool {
        self.left || self.last.is_none_or(|last| last.elapsed() >= self.every)
    }

    fn made(&mut self, filled: bool) {
        self.last = Some(Instant::now());
        self.left = filled;
    }
}

/// What the last passes found, which says when the next one begins and what it looks at first.
#[derive(Debug)]
struct Passes {
    /// The writer is shared with the API's writes (SQLite: one writer for all): a dispatch always
    /// looks at the outbox on the read pool first, since an empty write turn would cost them more.
    writer_shared: bool,
    /// When the last pass ended.
    last_pass: Option<Instant>,
    /// The last pass started as many attempts as it had slots: more may wait.
    last_filled: bool,
    /// The look for due messages, every [`IDLE`]. More may wait (`left`) when the last look took
    /// as many as it could, or when a dispatch made more messages than it took (the rest are
    /// pending and due).
    due: Periodic,
    /// The look for messages whose lease ended, every [`lease_look_interval`].
    leases: Periodic,
    /// The last dispatch found events: the outbox is busy, and the next dispatch goes to the
    /// writer without a look first.
    outbox_busy: bool,
}

impl Passes {
    fn new(writer_shared: bool, lease_look_every: Duration) -> Self {
        Self {
            writer_shared,
            last_pass: None,
            last_filled: false,
            due: Periodic::every(IDLE),
            leases: Periodic::every(lease_look_every),
            outbox_busy: false,
        }
    }

    /// How long the next pass waits before it begins: the rest of [`PASS_INTERVAL`] after a pass
    /// that had slots to spare, nothing when work may be left (or for the first pass).
    fn wait(&self) -> Option<Duration> {
        if self.last_filled || self.due.left {
            return None;
        }
        self.last_pass.and_then(|last| PASS_INTERVAL.checked_sub(last.elapsed())).filter(|left| !left.is_zero())
    }

    /// A pass ended, having started `started` attempts with `slots` free.
    fn passed(&mut self, started: usize, slots: usize) {
        self.last_pass = Some(Instant::now());
        self.last_filled = started > 0 && started >= slots;
    }

    /// Due messages are looked for when some may wait, and otherwise every [`IDLE`]: under a
    /// steady flow of new events, not on every pass (two reads each, for retries that are due
    /// seconds apart at the soonest).
    fn look_for_due(&self) -> bool {
        self.due.due()
    }

    fn looked_for_due(&mut self, filled: bool) {
        self.due.made(filled);
    }

    /// Whether a look for due messages also looks for those whose lease ended: every
    /// [`lease_look_interval`], or at once when the last such look may have left some.
    fn look_for_ended_leases(&self) -> bool {
        self.leases.due()
    }

    fn looked_for_ended_leases(&mut self, filled: bool) {
        self.leases.made(filled);
    }

    fn look_at_outbox(&self) -> Look {
        if self.outbox_busy && !self.writer_shared { Look::Skip } else { Look::First }
    }

    fn dispatched(&mut self, dispatched: DispatchSummary) {
        self.outbox_busy = dispatched.events > 0 || dispatched.left > 0;
        self.due.left |= dispatched.messages > dispatched.taken;
    }

    fn dispatch_failed(&mut self) {
        self.outbox_busy = false;
    }

    /// Whether the sender waits [`IDLE`] after a pass that started `started` attempts: only when
    /// it started none and its dispatch found no event. A dispatch of events no endpoint wants
    /// starts nothing, but more may follow (a backlog drains at a dispatch a pass, not one every
    /// [`IDLE`]).
    fn idles_after(&self, started: usize) -> bool {
        started == 0 && !self.outbox_busy
    }
}

/// What the sender needs.
#[derive(Debug, Clone)]
pub struct WebhookSender {
    /// The database (its read pool and its writer) and the clock (when a message is due).
    pub engine: Engine,
    /// The HTTP client: no redirects, the attempt's timeout, the address filter.
    pub client: WebhookClient,
    /// Messages sent at once.
    pub concurrency: usize,
    /// How long an attempt holds its message.
    pub lease: chrono::Duration,
    /// Whether loopback addresses are allowed (local development and tests).
    pub allow_loopback: bool,
    /// How long an ended message is kept (and can be replayed).
    pub retention: chrono::Duration,
    /// Where the owners of a failing endpoint are told.
    pub mailer: Arc<Mailer>,
    /// The sender of those emails.
    pub from: Mailbox,
}

impl WebhookSender {
    /// Sends until `stop` says so, then lets the attempts in hand finish and be recorded.
    ///
    /// At most `concurrency` messages are held at once (claimed, sent, not yet recorded): a slot
    /// frees when its attempt is recorded. Attempts are recorded as they end, by one recorder that
    /// takes every attempt ended meanwhile into one transaction (one commit for many, on
    /// SQLite one hold of the write lock the API's writes share). A slow endpoint holds only its
    /// own slots: the others keep sending.
    pub async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let sender = Arc::new(self);
        let slots = Arc::new(Semaphore::new(sender.concurrency));
        let (made, to_record) = mpsc::unbounded_channel::<Made>();
        let recorder = tokio::spawn(sender.clone().record_as_they_end(to_record));
        let mut passes = Passes::new(
            sender.engine.writer.get_database_backend() == sea_orm::DbBackend::Sqlite,
            lease_look_interval(sender.lease.to_std().unwrap_or(ATTEMPT_TIMEOUT)),
        );
        loop {
            if *stop.borrow() {
                break;
            }
            let first = tokio::select! {
                slot = slots.clone().acquire_owned() => slot.expect("the slots are never closed"),
                _ = stop.changed() => break,
            };
            // Busy, the next pass waits out the interval; the slots freed meanwhile go with it.
            if let Some(left) = passes.wait() {
                tokio::select! {
                    _ = tokio::time::sleep(left) => {}
                    _ = stop.changed() => break,
                }
            }
            let mut free = vec![first];
            while let Ok(slot) = slots.clone().try_acquire_owned() {
                free.push(slot);
            }
            let slots_free = free.len();
            let started = match sender.start_attempts(free, &made, &mut passes).await {
                Ok(started) => started,
                Err(error) => {
                    tracing::warn!(error = ?error, "a webhook pass failed; the next one retries");
                    0
                }
            };
            passes.passed(started, slots_free);
            if passes.idles_after(started) {
                tokio::select! {
                    _ = tokio::time::sleep(IDLE) => {}
                    _ = stop.changed() => {}
                }
            }
        }
        // Every slot back: each attempt in hand has ended and been recorded.
        let all = u32::try_from(sender.concurrency).unwrap_or(u32::MAX);
        let _every_slot = slots.acquire_many(all).await;
        drop(made);
        let _ = recorder.await;
    }

    /// The outbox's new events made into messages, then as many due messages claimed as there
    /// are `free` slots, each sent in a task of its own holding its slot. Returns how many.
    ///
    /// On PostgreSQL the dispatch's messages are sent before it commits, and written with what
    /// their first attempts found ([`FIRST_ATTEMPTS_WAIT`]); on SQLite, whose one writer the API's
    /// writes share, the dispatch commits first.
    async fn start_attempts(
        self: &Arc<Self>,
        mut free: Vec<OwnedSemaphorePermit>,
        made: &mpsc::UnboundedSender<Made>,
        passes: &mut Passes,
    ) -> Result<usize, WorkerError> {
        // Messages already due first (retries, and what earlier passes had no slot for), then
        // the outbox's new events, of which the first messages take the slots left.
        let mut claimed = Vec::new();
        if passes.look_for_due() {
            let leases = passes.look_for_ended_leases();
            claimed = self.claim_due(free.len(), leases).await?;
            let filled = claimed.len() == free.len();
            passes.looked_for_due(filled);
            if leases {
                passes.looked_for_ended_leases(filled);
            }
        }
        if claimed.len() > free.len() {
            tracing::error!(
                claimed = claimed.len(),
                slots = free.len(),
                "claimed more than there are slots: the rest wait for their leases"
            );
            claimed.truncate(free.len());
        }
        let take = Take { count: free.len() - claimed.len(), lease_until: Utc::now() + self.lease };
        // A failed dispatch does not strand what was claimed: it is sent, and the outbox waits.
        let mut dispatch = match open_dispatch(&self.engine, DISPATCH_BATCH, Some(take), passes.look_at_outbox()).await
        {
            Ok(dispatch) => {
                passes.dispatched(dispatch.summary());
                Some(dispatch)
            }
            Err(error) => {
                passes.dispatch_failed();
                tracing::warn!(error = ?error, "the webhook outbox could not be dispatched; the next pass retries");
                None
            }
        };
        // The events the dispatch read, for the messages it made (an event's data never changes).
        let mut events: HashMap<Uuid, Arc<QueuedEvent>> = HashMap::new();
        if let Some(dispatch) = &dispatch {
            events.extend(dispatch.taken_events().into_iter().map(|e| (e.id, Arc::new(e))));
        }
        if passes.writer_shared
            && let Some(dispatch) = dispatch.take()
        {
            // Written and committed before anything is sent: the taken messages join the claimed.
            let mut taken = dispatch.taken().to_vec();
            match commit_as_made(dispatch).await {
                Ok(written) => {
                    taken.retain(|m| written.contains(&m.id));
                    claimed.extend(taken);
                }
                Err(error) => {
                    passes.dispatch_failed();
                    tracing::warn!(error = ?error, "the webhook outbox could not be dispatched; the next pass retries");
                }
            }
        }
        let taken = dispatch.as_ref().map(|d| d.taken().to_vec()).unwrap_or_default();
        if claimed.is_empty() && taken.is_empty() {
            if let Some(dispatch) = dispatch {
                // Events no endpoint wants, or none at all: marked dispatched.
                commit_as_made(dispatch).await?;
            }
            return Ok(0);
        }
        // The batch's endpoints, read once for all its messages once the dispatch has read them: an
        // endpoint disabled, moved or given a new secret meanwhile is sent to as it is now.
        let now = self.engine.clock.now();
        let targets: HashMap<Uuid, Arc<Target>> = WebhookEndpoint::find()
            .filter(webhook_endpoint::Column::Id.is_in(claimed.iter().chain(&taken).map(|m| m.endpoint_id)))
            .all(&self.engine.db)
            .await?
            .into_iter()
            .map(|e| (e.id, Arc::new(Target::of(e, now, self.allow_loopback))))
            .collect();
        // The events of claimed messages the dispatch did not read.
        let unread: HashSet<Uuid> = claimed.iter().map(|m| m.event_id).filter(|id| !events.contains_key(id)).collect();
        if !unread.is_empty() {
            let read = sendable_events()
                .filter(webhook_event::Column::Id.is_in(unread))
                .into_model::<QueuedEvent>()
                .all(&self.engine.db)
                .await?;
            events.extend(read.into_iter().map(|e| (e.id, Arc::new(e))));
        }
        let started = claimed.len() + taken.len();
        let first_slots = free.split_off(claimed.len());
        for (message, slot) in claimed.into_iter().zip(free) {
            let target = targets.get(&message.endpoint_id).cloned();
            let event = events.get(&message.event_id).cloned();
            let sender = self.clone();
            let made = made.clone();
            tokio::spawn(async move { sender.attempt_and_record(message, target, event, slot, made).await });
        }
        if let Some(dispatch) = dispatch {
            let mut first = JoinSet::new();
            for (message, slot) in taken.into_iter().zip(first_slots) {
                let target = targets.get(&message.endpoint_id).cloned();
                let event = events.get(&message.event_id).cloned();
                let sender = self.clone();
                first.spawn(async move { (sender.attempt(message, target, event).await, slot) });
            }
            self.write_first_attempts(dispatch, first, made).await;
        }
        Ok(started)
    }

    /// One attempt of a message whose row exists (claimed, or made by a dispatch that committed
    /// first), handed to the recorder with its slot.
    async fn attempt_and_record(
        self: Arc<Self>,
        message: webhook_message::Model,
        target: Option<Arc<Target>>,
        event: Option<Arc<QueuedEvent>>,
        slot: OwnedSemaphorePermit,
        made: mpsc::UnboundedSender<Made>,
    ) {
        let result = match self.attempt(message, target, event).await {
            // The recorder ends only after every slot is back: it is there.
            Sent::Attempted(attempt) => {
                let _ = made.send(Made { attempt, _slot: slot });
                Ok(())
            }
            Sent::GivenUp(message, why) => self.give_up(&message, &why).await,
        };
        if let Err(error) = result {
            tracing::warn!(error = ?error, "a webhook message could not be given up; its lease will expire");
        }
    }

    /// Waits up to [`FIRST_ATTEMPTS_WAIT`] for the first attempts of `dispatch`'s taken messages,
    /// then writes the messages in the dispatch's transaction: those whose attempt ended as it left
    /// them, with their attempts logged, the rest as made (`sending`). Once it commits, the
    /// attempts still in flight go to the recorder as they end. Not committed, nothing of the
    /// dispatch was written: its events are dispatched again, their messages sent again with the
    /// same ids.
    async fn write_first_attempts(
        self: &Arc<Self>,
        mut dispatch: Dispatch,
        mut first: JoinSet<(Sent, OwnedSemaphorePermit)>,
        made: &mpsc::UnboundedSender<Made>,
    ) {
        let mut ended = Vec::new();
        let until = tokio::time::Instant::now() + FIRST_ATTEMPTS_WAIT;
        while let Ok(Some(joined)) = tokio::time::timeout_at(until, first.join_next()).await {
            match joined {
                Ok(sent) => ended.push(sent),
                Err(error) => tracing::error!(%error, "a webhook attempt's task failed"),
            }
        }
        let told = self.write_ended(&mut dispatch, &ended).await;
        drop(ended);
        let committed = match told {
            Ok(told) => match dispatch.commit().await {
                Ok(()) => {
                    self.tell_owners(told);
                    true
                }
                Err(error) => {
                    tracing::warn!(error = ?error, "a webhook dispatch could not commit: its events are dispatched again");
                    false
                }
            },
            Err(error) => {
                tracing::warn!(error = ?error, "a webhook dispatch could not be written: its events are dispatched again");
                false
            }
        };
        if first.is_empty() {
            return;
        }
        // Those still in flight: recorded as they end, once their rows exist.
        let sender = self.clone();
        let made = made.clone();
        tokio::spawn(async move {
            while let Some(joined) = first.join_next().await {
                let Ok((sent, slot)) = joined else { continue };
                if !committed {
                    continue;
                }
                let result = match sent {
                    Sent::Attempted(attempt) => {
                        let _ = made.send(Made { attempt, _slot: slot });
                        Ok(())
                    }
                    Sent::GivenUp(message, why) => sender.give_up(&message, &why).await,
                };
                if let Err(error) = result {
                    tracing::warn!(error = ?error, "a webhook message could not be given up; its lease will expire");
                }
            }
        });
    }

    /// Writes `dispatch`'s messages, those of `ended` as their first attempts left them, and logs
    /// those attempts; returns the endpoints disabled whose owners are to be told.
    async fn write_ended(
        &self,
        dispatch: &mut Dispatch,
        ended: &[(Sent, OwnedSemaphorePermit)],
    ) -> Result<Vec<(webhook_endpoint::Model, String)>, WorkerError> {
        let now = self.engine.clock.now();
        let attempts: Vec<&Attempt> = ended
            .iter()
            .filter_map(|(sent, _)| match sent {
                Sent::Attempted(attempt) => Some(attempt),
                Sent::GivenUp(..) => None,
            })
            .collect();
        let judged: Vec<Judged<'_>> = attempts.iter().map(|a| Judged::of(a, now)).collect();
        let mut rows: Vec<webhook_message::Model> = judged.iter().map(|j| j.message_after(now)).collect();
        rows.extend(ended.iter().filter_map(|(sent, _)| match sent {
            Sent::GivenUp(message, why) => Some(given_up(message, why, now)),
            Sent::Attempted(_) => None,
        }));
        let written = dispatch.write(rows).await?;
        let Some(txn) = dispatch.transaction() else { return Ok(Vec::new()) };
        log_attempts(txn, &judged, &written, now).await
    }

    /// Tells the owners of endpoints just disabled, off the caller's task (an email may take its
    /// SMTP timeout).
    fn tell_owners(self: &Arc<Self>, told: Vec<(webhook_endpoint::Model, String)>) {
        for (endpoint, reason) in told {
            let sender = self.clone();
            tokio::spawn(async move { sender.tell_owner(&endpoint, &reason).await });
        }
    }

    /// Claims at most `limit` due messages (pending and due, and when `leases` those held by a lease
    /// that ended), each counting an attempt.
    async fn claim_due(&self, limit: usize, leases: bool) -> Result<Vec<webhook_message::Model>, WorkerError> {
        use webhook_message::Column as C;
        let now = self.engine.clock.now();
        // A lease measures how long an attempt has really taken: the wall clock's, not the
        // engine's (which tests move by days while an attempt is in flight).
        let wall = Utc::now();
        let limit = u64::try_from(limit).unwrap_or(64);
        // Two kinds of due message, each read along its own index range (an `OR` of both would
        // have PostgreSQL gather every due pending message, a backlog of thousands, to return a few).
        let pending_due = || C::Status.eq(WebhookMessageStatus::Pending).and(C::NextAttemptAt.lte(now));
        let lease_ended = || C::Status.eq(WebhookMessageStatus::Sending).and(C::LeaseUntil.lt(wall));
        // Nothing due costs an indexed read or two, not a write (on SQLite, the API's one write lock).
        let mut any_due = false;
        for due in [Some(pending_due()), leases.then(lease_ended)].into_iter().flatten() {
            let found: Option<Uuid> = WebhookMessage::find()
                .select_only()
                .column(C::Id)
                .filter(due)
                .limit(1)
                .into_tuple()
                .one(&self.engine.db)
                .await?;
            if found.is_some() {
                any_due = true;
                break;
            }
        }
        if !any_due {
            return Ok(Vec::new());
        }
        // The rows are chosen once (materialized CTEs), then updated: an `IN (SELECT … LIMIT …
        // SKIP LOCKED)` subquery may be run again by PostgreSQL's plan, each run skipping
        // different rows, and claim more than the limit. Messages whose lease ended come first.
        let locked = |condition, ordered: bool| {
            let mut select = Query::select();
            select.column(C::Id).from(WebhookMessage).and_where(condition).limit(limit);
            if ordered {
                select.order_by(C::NextAttemptAt, sea_orm::Order::Asc);
            }
            select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
            select
        };
        let cte = |name: &str, query: sea_orm::sea_query::SelectStatement| {
            CommonTableExpression::new().query(query).table_name(name.to_owned()).materialized(true).to_owned()
        };
        let pending = Query::select().column(C::Id).from("pending_due").to_owned();
        let chosen = if leases {
            Query::select()
                .column(C::Id)
                .from("lease_ended")
                .union(sea_orm::sea_query::UnionType::All, pending)
                .limit(limit)
                .to_owned()
        } else {
            pending
        };
        let claim = Query::update()
            .table(WebhookMessage)
            .value(C::Status, Expr::value(WebhookMessageStatus::Sending))
            .value(C::LeaseUntil, Expr::value(wall + self.lease))
            .value(C::Attempts, Expr::col(C::Attempts).add(1))
            .and_where(C::Id.in_subquery(Query::select().column(C::Id).from("chosen").to_owned()))
            .returning_all()
            .to_owned();
        let mut with = WithClause::new();
        if leases {
            with.cte(cte("lease_ended", locked(lease_ended(), false)));
        }
        let with = with.cte(cte("pending_due", locked(pending_due(), true))).cte(cte("chosen", chosen)).to_owned();
        let statement = self.engine.writer.get_database_backend().build(&with.query(claim));
        Ok(WebhookMessage::find().from_raw_sql(statement).all(&self.engine.writer).await?)
    }

    /// One attempt of `message` to `endpoint` with `event`, to be recorded; given up when either
    /// is gone or the endpoint is disabled (the message is failed at once, without an attempt).
    async fn attempt(
        &self,
        message: webhook_message::Model,
        target: Option<Arc<Target>>,
        event: Option<Arc<QueuedEvent>>,
    ) -> Sent {
        let (Some(target), Some(event)) = (target.filter(|t| t.endpoint.enabled), event) else {
            return Sent::GivenUp(message, "the endpoint is disabled or deleted".to_owned());
        };
        let body = match payload(&event) {
            Ok(body) => body,
            Err(error) => return Sent::GivenUp(message, format!("the event cannot be read: {error}")),
        };
        let id = message_id(message.id);
        // The instant of the attempt itself (receivers compare it to their own clock).
        let timestamp = Utc::now().timestamp();
        let signature = signature_header(&target.secrets.iter().collect::<Vec<_>>(), &id, timestamp, &body);
        let started = Instant::now();
        let answer = match &target.url {
            Ok(url) => self.send(url.clone(), &id, timestamp, &signature, body).await,
            Err(refused) => Err(refused.clone()),
        };
        let latency_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
        Sent::Attempted(Attempt { message, target, answer, latency_ms })
    }

    /// Posts `body` to `url` (checked by [`Target::of`]); `Err` with why when no answer came.
    async fn send(&self, url: Uri, id: &str, timestamp: i64, signature: &str, body: Vec<u8>) -> Result<Answer, String> {
        let header = |value: &str| HeaderValue::from_str(value).map_err(|e| format!("a header cannot be sent: {e}"));
        let headers = [
            (HeaderName::from_static("webhook-id"), header(id)?),
            (HeaderName::from_static("webhook-timestamp"), HeaderValue::from(timestamp)),
            (HeaderName::from_static("webhook-signature"), header(signature)?),
        ];
        let answered = self.client.post_json(url, headers, body).await?;
        let retry_after =
            answered.headers.get("retry-after").and_then(|v| v.to_str().ok()).and_then(|v| retry_after(v, Utc::now()));
        let mut excerpt = answered.body;
        excerpt.truncate(RESPONSE_EXCERPT_LIMIT);
        Ok(Answer { status: answered.status, retry_after, excerpt: String::from_utf8_lossy(&excerpt).into_owned() })
    }

    /// Records attempts as they end: each transaction takes every attempt that ended while the
    /// last one committed or within [`RECORD_GATHER`] of its first (up to [`RECORD_BATCH`]).
    /// Their slots free once they are recorded.
    async fn record_as_they_end(self: Arc<Self>, mut ended: mpsc::UnboundedReceiver<Made>) {
        while let Some(first) = ended.recv().await {
            let mut batch = vec![first];
            let gathered = tokio::time::Instant::now() + RECORD_GATHER;
            while batch.len() < RECORD_BATCH {
                match tokio::time::timeout_at(gathered, ended.recv()).await {
                    Ok(Some(made)) => batch.push(made),
                    Ok(None) | Err(_) => break,
                }
            }
            let attempts: Vec<&Attempt> = batch.iter().map(|m| &m.attempt).collect();
            // A failed transaction changed nothing: it is tried again (a busy SQLite writer, a
            // pool that had no connection free, a deadlock with another worker), the slots held
            // meanwhile. Given up, the messages are sent again once their leases end.
            let mut wait = RECORD_RETRY_FIRST_WAIT;
            for tries_left in (0..RECORD_TRIES).rev() {
                match self.record(&attempts).await {
                    Ok(disabled) => {
                        // The owners are told off the recorder: an email may take its SMTP timeout.
                        self.tell_owners(disabled);
                        break;
                    }
                    Err(error) if tries_left > 0 => {
                        tracing::warn!(error = ?error, count = attempts.len(), "webhook attempts not recorded yet; trying again");
                        tokio::time::sleep(wait).await;
                        wait *= 2;
                    }
                    Err(error) => {
                        tracing::error!(error = ?error, count = attempts.len(),
                            "webhook attempts could not be recorded; their leases will end and they are sent again");
                    }
                }
            }
        }
    }

    /// Records `attempts` in one transaction: each message's next step (only while its attempt
    /// still holds it), its attempt in the log, and each endpoint's health. Returns the endpoints
    /// it disabled whose owners are to be told, and why.
    async fn record(&self, attempts: &[&Attempt]) -> Result<Vec<(webhook_endpoint::Model, String)>, WorkerError> {
        let txn = begin_write(&self.engine.writer).await?;
        // Read once the writer is held: what the attempts are recorded at, and their next tries
        // counted from, is not an instant from before a wait for it.
        let now = self.engine.clock.now();
        let mut judged: Vec<Judged<'_>> = attempts.iter().map(|a| Judged::of(a, now)).collect();
        let moved = kept_attempts_moved(&txn, &judged).await?;
        for j in judged.iter_mut().filter(|j| moved.contains(&j.attempt.message.id)) {
            j.kept = false;
        }
        use webhook_message::Column as M;
        let mut held: HashSet<Uuid> = HashSet::new();
        // Delivered ones in one statement per answer status and attempt count (which says the
        // attempt still holds its message), and, for first attempts kept in their messages, per
        // latency and excerpt: one for all the retries of a batch, and about one a message for the
        // first attempts the recorder gets (those slower than a dispatch waits for, and on SQLite
        // every one: a statement in the process, no round trip).
        let mut delivered: BTreeMap<Delivered, Vec<Uuid>> = BTreeMap::new();
        for j in judged.iter().filter(|j| j.outcome == WebhookAttemptOutcome::Delivered) {
            let key = Delivered {
                status: j.status.map_or(0, i32::from),
                attempts: j.attempt.message.attempts,
                kept: j.kept.then(|| (j.attempt.latency_ms, j.excerpt.clone())),
            };
            delivered.entry(key).or_default().push(j.attempt.message.id);
        }
        for (Delivered { status, attempts, kept }, ids) in delivered {
            // Only the ids come back: the rows themselves are not read again.
            let mut update = WebhookMessage::update_many()
                .col_expr(M::Status, Expr::value(WebhookMessageStatus::Delivered))
                .col_expr(M::DeliveredAt, Expr::value(Some(now)))
                .col_expr(M::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
                .col_expr(M::LastResponseStatus, Expr::value(Some(status)))
                .col_expr(M::LastError, Expr::value(Option::<String>::None))
                .col_expr(M::UpdatedAt, Expr::value(now));
            if let Some((latency_ms, excerpt)) = kept {
                update = update
                    .col_expr(M::FirstAttemptLatencyMs, Expr::value(Some(latency_ms)))
                    .col_expr(M::FirstAttemptExcerpt, Expr::value(excerpt));
            }
            let update = update
                .filter(M::Id.is_in(ids))
                .filter(still_held_by(attempts))
                .into_query()
                .returning_col(M::Id)
                .to_owned();
            for row in txn.query_all(&update).await? {
                held.insert(row.try_get::<Uuid>("", M::Id.as_str())?);
            }
        }
        for j in judged.iter().filter(|j| j.outcome != WebhookAttemptOutcome::Delivered) {
            let message = &j.attempt.message;
            let update = WebhookMessage::update_many()
                .col_expr(M::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
                .col_expr(M::LastResponseStatus, Expr::value(j.status.map(i32::from)))
                .col_expr(M::LastError, Expr::value(j.error.clone()))
                .col_expr(M::UpdatedAt, Expr::value(now))
                .filter(M::Id.eq(message.id))
                .filter(still_held_by(message.attempts));
            let update = match j.next {
                Some(next) => update
                    .col_expr(M::Status, Expr::value(WebhookMessageStatus::Pending))
                    .col_expr(M::NextAttemptAt, Expr::value(next)),
                None => update.col_expr(M::Status, Expr::value(WebhookMessageStatus::Failed)),
            };
            if update.exec(&txn).await?.rows_affected > 0 {
                held.insert(message.id);
            }
        }
        let lost = judged.iter().filter(|j| !held.contains(&j.attempt.message.id)).count();
        if lost > 0 {
            tracing::warn!(lost, "leases ended and other attempts hold those messages: theirs are recorded, not these");
        }
        let told = log_attempts(&txn, &judged, &held, now).await?;
        txn.commit().await?;
        Ok(told)
    }

    /// Ends `message` as failed without an attempt (its endpoint is gone or disabled).
    async fn give_up(&self, message: &webhook_message::Model, why: &str) -> Result<(), WorkerError> {
        use webhook_message::Column as M;
        WebhookMessage::update_many()
            .col_expr(M::Status, Expr::value(WebhookMessageStatus::Failed))
            .col_expr(M::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(M::LastError, Expr::value(Some(why.to_owned())))
            .col_expr(M::UpdatedAt, Expr::value(self.engine.clock.now()))
            .filter(M::Id.eq(message.id))
            .filter(M::Status.eq(WebhookMessageStatus::Sending))
            .exec(&self.engine.writer)
            .await?;
        Ok(())
    }

    /// Emails the coordinators (of a body) or the managers (of an organization) owning
    /// `endpoint` that it was disabled, and why. A failure is logged: the endpoint stays disabled.
    async fn tell_owner(&self, endpoint: &webhook_endpoint::Model, reason: &str) {
        let people = match EndpointOwner::of(endpoint.organization_id, endpoint.certification_body_id) {
            Some(EndpointOwner::CertificationBody(body)) => Person::find()
                .filter(person::Column::CertificationBodyId.eq(body))
                .filter(person::Column::Role.eq(PersonRole::Coordinator)),
            Some(EndpointOwner::Organization(organization)) => Person::find()
                .filter(person::Column::OrganizationId.eq(organization))
                .filter(person::Column::Role.eq(PersonRole::ClientManager)),
            None => return,
        };
        let mut recipients: Vec<String> = match people.all(&self.engine.db).await {
            Ok(people) => people.into_iter().map(|p| p.email).collect(),
            Err(error) => {
                tracing::warn!(%error, "the endpoint's owners could not be read: nobody is told");
                return;
            }
        };
        if recipients.is_empty() && endpoint.created_by.contains('@') {
            recipients.push(endpoint.created_by.clone());
        }
        for recipient in recipients {
            let Ok(to) = recipient.parse::<Mailbox>() else { continue };
            let text = format!(
                "Your webhook endpoint {} ({}) was disabled: {reason}.\n\nWhat it was not sent is kept {} days: \
                 enable it again (PUT /api/v1/webhook-endpoints/{}) and replay its failed messages \
                 (POST /api/v1/webhook-endpoints/{}/replay) within them.\n",
                endpoint.url,
                endpoint.description,
                self.retention.num_days(),
                endpoint.id,
                endpoint.id
            );
            let message = Message::builder()
                .from(self.from.clone())
                .to(to)
                .subject(format!("certflow: webhook endpoint {} disabled", endpoint.url))
                .body(text);
            match message {
                Ok(message) => {
                    if let Err(error) = self.mailer.send(message).await {
                        tracing::warn!(%error, "the endpoint's owner could not be told");
                    }
                }
                Err(error) => tracing::warn!(%error, "the email to the endpoint's owner cannot be built"),
            }
        }
    }
}

/// An endpoint's answer.
struct Answer {
    status: u16,
    retry_after: Option<chrono::Duration>,
    excerpt: String,
}

/// An endpoint as the attempts of one batch send to it: its URL parsed and checked, and its
/// secrets in force read, once for all of them.
struct Target {
    endpoint: webhook_endpoint::Model,
    /// Where the attempts post, or why they cannot.
    url: Result<Uri, String>,
    /// The current secret, and during a rotation's overlap the previous one.
    secrets: Vec<WebhookSecret>,
}

impl Target {
    fn of(endpoint: webhook_endpoint::Model, now: DateTime<Utc>, allow_loopback: bool) -> Self {
        let mut secrets = Vec::new();
        for (secret, until) in
            [(Some(&endpoint.secret), None), (endpoint.previous_secret.as_ref(), endpoint.previous_secret_expires_at)]
        {
            if let (Some(secret), true) = (secret, until.is_none_or(|until| until > now)) {
                match WebhookSecret::parse(secret) {
                    Ok(secret) => secrets.push(secret),
                    Err(error) => tracing::error!(endpoint_id = %endpoint.id, %error, "a stored secret is not one"),
                }
            }
        }
        let url = url::Url::parse(&endpoint.url).map_err(|e| format!("the URL is not one: {e}")).and_then(|url| {
            // A name is checked by the resolver; an address in the URL never reaches it.
            let literal = match url.host() {
                Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
                Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
                _ => None,
            };
            match literal.filter(|a| !may_send_to(*a, allow_loopback)) {
                Some(address) => Err(format!("{address} is an address webhooks are never sent to")),
                None => url.as_str().parse::<Uri>().map_err(|e| format!("the URL is not one: {e}")),
            }
        });
        Self { endpoint, url, secrets }
    }
}

/// An attempt made, to be recorded.
struct Attempt {
    message: webhook_message::Model,
    target: Arc<Target>,
    answer: Result<Answer, String>,
    latency_ms: i32,
}

/// What became of a message sent: an attempt made, or the message given up without one (its
/// endpoint is gone or disabled, or its event cannot be read).
enum Sent {
    Attempted(Attempt),
    GivenUp(webhook_message::Model, String),
}

/// What the recorder writes alike to the messages delivered in one statement.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Delivered {
    /// The answer's status.
    status: i32,
    /// The messages' attempt count (the guard that the attempts still hold them).
    attempts: i32,
    /// The latency and excerpt of first attempts kept in their messages.
    kept: Option<(i32, Option<String>)>,
}

/// An attempt on its way to the recorder, holding its slot until it is recorded.
struct Made {
    attempt: Attempt,
    _slot: OwnedSemaphorePermit,
}

/// An attempt and what follows from its answer.
struct Judged<'a> {
    attempt: &'a Attempt,
    status: Option<u16>,
    excerpt: Option<String>,
    error: Option<String>,
    outcome: WebhookAttemptOutcome,
    next: Option<DateTime<Utc>>,
    /// Kept in its message's row rather than in a row of its own: the message's first attempt,
    /// and it delivered it (the message's status, answer status and instant are the attempt's; its
    /// latency and excerpt go with them). Most attempts are so. Not when the message was replayed
    /// after a first attempt kept so: that one's row has the message's id (see
    /// [`kept_attempts_moved`]).
    kept: bool,
}

impl<'a> Judged<'a> {
    fn of(attempt: &'a Attempt, now: DateTime<Utc>) -> Self {
        let tries = u32::try_from(attempt.message.attempts).unwrap_or(u32::MAX);
        let (status, retry_after, excerpt, error) = match &attempt.answer {
            Ok(a) => (Some(a.status), a.retry_after, Some(a.excerpt.clone()), None),
            Err(error) => (None, None, None, Some(error.clone())),
        };
        let jitter = rand::random_range(-1.0..=1.0);
        let (outcome, next) = match verdict(status, retry_after) {
            Verdict::Delivered => (WebhookAttemptOutcome::Delivered, None),
            Verdict::Gone => (WebhookAttemptOutcome::Gone, None),
            Verdict::Retry { retry_after } => match next_retry(tries, jitter, retry_after) {
                Some(wait) => (WebhookAttemptOutcome::Retrying, Some(now + wait)),
                None => (WebhookAttemptOutcome::Failed, None),
            },
        };
        let kept = outcome == WebhookAttemptOutcome::Delivered && attempt.message.attempts == 1;
        Self { attempt, status, excerpt, error, outcome, next, kept }
    }

    /// The message as this attempt leaves it, recorded at `now`: what the recorder's `UPDATE`
    /// writes to a message that exists, for one written with its first attempt.
    fn message_after(&self, now: DateTime<Utc>) -> webhook_message::Model {
        let mut message = self.attempt.message.clone();
        message.lease_until = None;
        message.last_response_status = self.status.map(i32::from);
        message.last_error = self.error.clone();
        message.updated_at = now;
        if self.kept {
            message.first_attempt_latency_ms = Some(self.attempt.latency_ms);
            message.first_attempt_excerpt = self.excerpt.clone();
        }
        match (self.outcome, self.next) {
            (WebhookAttemptOutcome::Delivered, _) => {
                message.status = WebhookMessageStatus::Delivered;
                message.delivered_at = Some(now);
            }
            (_, Some(next)) => {
                message.status = WebhookMessageStatus::Pending;
                message.next_attempt_at = next;
            }
            (_, None) => message.status = WebhookMessageStatus::Failed,
        }
        message
    }
}

/// `message` failed without an attempt, for `why`: what [`WebhookSender::give_up`] writes.
fn given_up(message: &webhook_message::Model, why: &str, now: DateTime<Utc>) -> webhook_message::Model {
    webhook_message::Model {
        status: WebhookMessageStatus::Failed,
        lease_until: None,
        last_error: Some(why.to_owned()),
        updated_at: now,
        ..message.clone()
    }
}

/// Writes `dispatch`'s messages as they were made and commits; returns the ids written.
async fn commit_as_made(mut dispatch: Dispatch) -> Result<HashSet<Uuid>, WorkerError> {
    let written = dispatch.write(Vec::new()).await?;
    dispatch.commit().await?;
    Ok(written)
}

/// What a batch's attempts found about one endpoint.
struct Health<'a> {
    endpoint: &'a webhook_endpoint::Model,
    delivered: bool,
    gone: bool,
    failed: bool,
}

/// Of the messages whose first attempts in `judged` would be kept in them, those replayed after a
/// first attempt was kept so: a replay gives that attempt a row under the message's id, which the
/// next first attempt would share. Those attempts get rows of their own. (A dispatch's messages are
/// new: it needs no such look.)
async fn kept_attempts_moved(txn: &WriteTransaction, judged: &[Judged<'_>]) -> Result<HashSet<Uuid>, WorkerError> {
    let candidates: Vec<Uuid> = judged.iter().filter(|j| j.kept).map(|j| j.attempt.message.id).collect();
    if candidates.is_empty() {
        return Ok(HashSet::new());
    }
    use webhook_attempt::Column as A;
    let moved: Vec<Uuid> = WebhookAttempt::find()
        .select_only()
        .column(A::Id)
        .filter(A::Id.is_in(candidates))
        .into_tuple()
        .all(txn)
        .await?;
    Ok(moved.into_iter().collect())
}

/// Logs the attempts of `judged` whose messages they `held` (the rows this record or dispatch
/// wrote), those their messages keep left out ([`Judged::kept`]), and each endpoint's
/// health from what they found. Returns the endpoints disabled whose owners are to be told, and why.
async fn log_attempts(
    txn: &WriteTransaction,
    judged: &[Judged<'_>],
    held: &HashSet<Uuid>,
    now: DateTime<Utc>,
) -> Result<Vec<(webhook_endpoint::Model, String)>, WorkerError> {
    let logged: Vec<webhook_attempt::Model> = judged
        .iter()
        .filter(|j| held.contains(&j.attempt.message.id) && !j.kept)
        .map(|j| webhook_attempt::Model {
            id: Uuid::now_v7(),
            message_id: j.attempt.message.id,
            endpoint_id: j.attempt.target.endpoint.id,
            attempt: j.attempt.message.attempts,
            attempted_at: now,
            outcome: j.outcome,
            response_status: j.status.map(i32::from),
            latency_ms: j.attempt.latency_ms,
            response_excerpt: j.excerpt.clone(),
            error: j.error.clone(),
            next_attempt_at: j.next,
        })
        .collect();
    insert_attempts(txn, logged).await?;
    // Each endpoint's health, from what its held attempts found.
    // In the endpoints' order: two workers lock the same endpoints in the same order.
    let mut health: BTreeMap<Uuid, Health<'_>> = BTreeMap::new();
    for j in judged.iter().filter(|j| held.contains(&j.attempt.message.id)) {
        let seen = health.entry(j.attempt.target.endpoint.id).or_insert(Health {
            endpoint: &j.attempt.target.endpoint,
            delivered: false,
            gone: false,
            failed: false,
        });
        match j.outcome {
            WebhookAttemptOutcome::Delivered => seen.delivered = true,
            WebhookAttemptOutcome::Gone => seen.gone = true,
            _ => seen.failed = true,
        }
    }
    let mut disabled = Vec::new();
    use webhook_endpoint::Column as E;
    for seen in health.values() {
        let id = seen.endpoint.id;
        if seen.gone {
            if disable(txn, id, "the endpoint answered 410 Gone", now).await? {
                disabled.push((seen.endpoint, "the endpoint answered 410 Gone".to_owned(), false));
            }
        } else if seen.failed && !seen.delivered {
            // Read afresh: another batch (or worker) may have marked it failing since the
            // snapshot this attempt was sent with.
            let Some(current) = WebhookEndpoint::find_by_id(id).one(txn).await? else { continue };
            let since = current.failing_since.unwrap_or(now);
            if !current.enabled {
                // Disabled while these attempts were in flight: what they leave pending
                // waits, failed, for a replay, as the rest of its messages do.
                let reason = current.disabled_reason.unwrap_or_else(|| "it was disabled".to_owned());
                fail_pending(txn, id, &reason, now).await?;
            } else if failed_too_long(Some(since), now) {
                let reason = format!("every attempt failed since {}", since.format("%Y-%m-%d %H:%M UTC"));
                if disable(txn, id, &reason, now).await? {
                    disabled.push((seen.endpoint, reason, true));
                }
            } else if current.failing_since.is_none() {
                WebhookEndpoint::update_many()
                    .col_expr(E::FailingSince, Expr::value(Some(now)))
                    .filter(E::Id.eq(id))
                    .filter(E::FailingSince.is_null())
                    .exec(txn)
                    .await?;
            }
        } else if seen.delivered {
            // A write only when it was failing (an indexed read otherwise).
            WebhookEndpoint::update_many()
                .col_expr(E::FailingSince, Expr::value(Option::<DateTime<Utc>>::None))
                .filter(E::Id.eq(id))
                .filter(E::FailingSince.is_not_null())
                .exec(txn)
                .await?;
        }
    }
    let mut told = Vec::new();
    for (endpoint, reason, tell) in disabled {
        tracing::warn!(endpoint_id = %endpoint.id, %reason, "webhook endpoint disabled");
        if tell {
            told.push((endpoint.clone(), reason));
        }
    }
    Ok(told)
}

/// The guard of an attempt's record: its message is still being sent, by this attempt (its count
/// of attempts unchanged since the attempt's claim). Written as one expression, which no index
/// serves: the messages are found by their ids. On PostgreSQL the `sending` range of
/// `ix_webhook_messages_due` holds an entry for every message sent since the table was last
/// vacuumed (each was `sending` once, and its old row version stays indexed until then), and
/// plans that walked it to find a batch's rows (`status = 'sending' AND id IN (…)`) made the
/// record cost five times more after a few minutes of load (docs/benchmarks.md, "Dead entries in
/// the queue's index").
fn still_held_by(attempts: i32) -> sea_orm::sea_query::SimpleExpr {
    use webhook_message::Column as M;
    Expr::expr(Expr::case(M::Status.eq(WebhookMessageStatus::Sending), Expr::col(M::Attempts))).eq(attempts)
}

/// Disables endpoint `id` for `reason` and fails what it had pending (a replay sends it once the
/// endpoint is enabled again). `false` when it was disabled already (by another attempt).
async fn disable(txn: &WriteTransaction, id: Uuid, reason: &str, now: DateTime<Utc>) -> Result<bool, WorkerError> {
    use webhook_endpoint::Column as E;
    let flipped = WebhookEndpoint::update_many()
        .col_expr(E::Enabled, Expr::value(false))
        .col_expr(E::DisabledReason, Expr::value(Some(reason.to_owned())))
        .col_expr(E::UpdatedAt, Expr::value(now))
        .filter(E::Id.eq(id))
        .filter(E::Enabled.eq(true))
        .exec(txn)
        .await?
        .rows_affected
        > 0;
    if flipped {
        fail_pending(txn, id, reason, now).await?;
    }
    Ok(flipped)
}

/// Fails the pending messages of endpoint `id`, disabled for `reason`.
async fn fail_pending(txn: &WriteTransaction, id: Uuid, reason: &str, now: DateTime<Utc>) -> Result<(), WorkerError> {
    use webhook_message::Column as M;
    WebhookMessage::update_many()
        .col_expr(M::Status, Expr::value(WebhookMessageStatus::Failed))
        .col_expr(M::LastError, Expr::value(Some(format!("the endpoint was disabled: {reason}"))))
        .col_expr(M::UpdatedAt, Expr::value(now))
        .filter(M::EndpointId.eq(id))
        .filter(M::Status.eq(WebhookMessageStatus::Pending))
        .exec(txn)
        .await?;
    Ok(())
}

/// The body of `event`'s messages: `{type, timestamp, data}`.
pub fn payload(event: &QueuedEvent) -> Result<Vec<u8>, serde_json::Error> {
    payload_body(&event.head(), &event.data)
}

/// A `Retry-After` header's wait: seconds, or an HTTP date after `now`.
fn retry_after(value: &str, now: DateTime<Utc>) -> Option<chrono::Duration> {
    if let Ok(seconds) = value.trim().parse::<i64>() {
        return (seconds >= 0).then(|| chrono::Duration::seconds(seconds));
    }
    DateTime::parse_from_rfc2822(value.trim())
        .ok()
        .map(|at| (at.with_timezone(&Utc) - now).max(chrono::Duration::zero()))
}

#[cfg(test)]
mod tests {
    use super::{IDLE, Look, PASS_INTERVAL, Passes, lease_look_interval, retry_after};
    use chrono::{Duration, TimeZone, Utc};
    use engine::webhooks::dispatch::DispatchSummary;

    fn dispatched(events: usize, messages: usize, taken: usize) -> DispatchSummary {
        DispatchSummary { events, messages, taken, left: 0 }
    }

    #[test]
    fn due_messages_are_looked_for_first_then_every_idle_while_none_are_left() {
        let mut passes = Passes::new(false, IDLE);
        assert!(passes.look_for_due(), "the first pass looks");
        passes.looked_for_due(false);
        assert!(!passes.look_for_due(), "none were left: the next pass does not look again at once");
        passes.due.last = Some(std::time::Instant::now().checked_sub(IDLE).expect("up longer than IDLE"));
        assert!(passes.look_for_due(), "an idle interval later it does");
    }

    #[test]
    fn ended_leases_are_looked_for_every_quarter_lease_within_idle_and_ten_seconds() {
        assert_eq!(lease_look_interval(std::time::Duration::from_secs(60)), std::time::Duration::from_secs(10));
        assert_eq!(lease_look_interval(std::time::Duration::from_secs(2)), std::time::Duration::from_millis(500));
        assert_eq!(lease_look_interval(std::time::Duration::from_millis(400)), IDLE);
        let mut passes = Passes::new(false, std::time::Duration::from_secs(10));
        assert!(passes.look_for_ended_leases(), "the first look includes them (a worker restarted after a crash)");
        passes.looked_for_ended_leases(false);
        assert!(!passes.look_for_ended_leases(), "not again before the interval");
        passes.due.last = Some(std::time::Instant::now().checked_sub(IDLE).expect("up longer than IDLE"));
        assert!(passes.look_for_due() && !passes.look_for_ended_leases(), "due retries are looked for, leases not");
        passes.looked_for_ended_leases(true);
        assert!(passes.look_for_ended_leases(), "the look took as many as it could: more may wait");
        passes.looked_for_ended_leases(false);
        passes.leases.last =
            Some(std::time::Instant::now().checked_sub(std::time::Duration::from_secs(10)).expect("up 10 s"));
        assert!(passes.look_for_ended_leases(), "an interval later");
    }

    #[test]
    fn due_messages_are_looked_for_at_once_when_some_may_be_left() {
        let mut passes = Passes::new(false, IDLE);
        passes.looked_for_due(true);
        assert!(passes.look_for_due(), "the look took as many as it could: more may wait");
        passes.looked_for_due(false);
        passes.dispatched(dispatched(3, 3, 3));
        assert!(!passes.look_for_due(), "every message the dispatch made was taken");
        passes.dispatched(dispatched(5, 5, 2));
        assert!(passes.look_for_due(), "three messages were made pending: they are due now");
    }

    #[test]
    fn the_outbox_is_looked_at_first_unless_the_last_dispatch_found_events() {
        let mut passes = Passes::new(false, IDLE);
        assert_eq!(passes.look_at_outbox(), Look::First);
        passes.dispatched(dispatched(4, 0, 0));
        assert_eq!(passes.look_at_outbox(), Look::Skip, "a busy outbox: straight to the writer");
        passes.dispatched(dispatched(0, 0, 0));
        assert_eq!(passes.look_at_outbox(), Look::First, "idle again: a read first, not a write");
        passes.dispatched(dispatched(4, 0, 0));
        passes.dispatch_failed();
        assert_eq!(passes.look_at_outbox(), Look::First);
    }

    #[test]
    fn a_pass_that_dispatched_events_no_endpoint_wants_is_followed_without_an_idle_wait() {
        let mut passes = Passes::new(false, IDLE);
        passes.dispatched(dispatched(500, 0, 0));
        assert!(!passes.idles_after(0), "a backlog of such events drains a dispatch a pass");
        passes.dispatched(DispatchSummary { left: 7, ..DispatchSummary::default() });
        assert!(!passes.idles_after(0), "events were left for lack of slots");
        assert_eq!(passes.look_at_outbox(), Look::Skip, "and the next dispatch reads them at once");
        passes.dispatched(dispatched(0, 0, 0));
        assert!(passes.idles_after(0), "the outbox was empty and nothing was started");
        assert!(!passes.idles_after(1));
    }

    #[test]
    fn retry_after_is_seconds_or_a_date() {
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap();
        assert_eq!(retry_after("120", now), Some(Duration::seconds(120)));
        assert_eq!(retry_after("Tue, 01 Dec 2026 10:05:00 GMT", now), Some(Duration::minutes(5)));
        assert_eq!(retry_after("Tue, 01 Dec 2026 09:05:00 GMT", now), Some(Duration::zero()));
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-5", now), None);
    }

    #[test]
    fn on_a_shared_writer_the_outbox_is_always_looked_at_first() {
        let mut passes = Passes::new(true, IDLE);
        passes.dispatched(dispatched(4, 0, 0));
        assert_eq!(passes.look_at_outbox(), Look::First, "an empty write turn would cost the API's writes");
    }

    #[test]
    fn a_pass_with_slots_to_spare_is_followed_an_interval_later_and_a_full_one_at_once() {
        let mut passes = Passes::new(false, IDLE);
        assert_eq!(passes.wait(), None, "the first pass begins at once");
        passes.passed(3, 64);
        let wait = passes.wait().expect("slots to spare: the next pass waits");
        assert!(wait <= PASS_INTERVAL, "{wait:?}");
        passes.passed(64, 64);
        assert_eq!(passes.wait(), None, "every slot used: more may wait, no interval");
        passes.passed(3, 3);
        assert_eq!(passes.wait(), None, "every free slot used");
        passes.passed(0, 64);
        passes.dispatched(dispatched(600, 600, 0));
        assert_eq!(passes.wait(), None, "the dispatch left pending messages behind");
    }
}
