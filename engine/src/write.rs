//! The one path every write takes: authorize on a read connection (404 outside the caller's
//! scope, 403 for its role) before taking the writer, so a stranger never queues behind real
//! writes; then begin on the writer with the caller's idempotency key recorded, lock what the
//! command changes, run it, record the history, and commit the response with the key.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use entities::domain::policy::TimeZone;
use entities::domain::webhooks::WebhookEvent;
use entities::orm::{certification_body, engagement, notification, organization, prelude::*};
use sea_orm::{
    ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, QueryFilter, QueryResult, QuerySelect, QueryTrait,
    Select, Statement,
};
use uuid::Uuid;

use crate::Engine;
use crate::access::{Action, Tenancy, engagements_in, of_engagements_in, organizations_in};
use crate::caller::Caller;
use crate::changes::Changes;
use crate::error::EngineError;
use crate::history::{HistoryRecord, record_history};
use crate::idempotency::{Claim, StoredResponse};
use crate::store::{Templates, WriteTransaction};
use crate::store::{begin_write, lock_engagement_reading};
use crate::webhooks::outbox::{append_numbered, event_inserts};

/// What a write is done to, as far as its authorization needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Nothing a caller must see first (a new organization or certification body).
    Platform,
    /// An organization the caller must see.
    Organization(Uuid),
    /// A certification body: everyone sees it, only its own people (or an admin) change it.
    CertificationBody(Uuid),
    /// An engagement the caller must see, or anything that hangs off it.
    Engagement(Uuid),
    /// A notification of an engagement the caller must see.
    Notification(Uuid),
}

/// A write in progress: one transaction on the writer, with the caller's idempotency key in it.
/// Dropped without [`Write::commit`], it rolls back, key and all.
#[derive(Debug)]
pub struct Write {
    txn: WriteTransaction,
    claim: Option<Claim>,
    now: DateTime<Utc>,
    today: NaiveDate,
    /// Told after the commit which bodies' engagements changed.
    changes: Arc<Changes>,
    /// The engagements the write changes and their bodies (`None`: not known, or no body yet).
    touched: Vec<(Option<Uuid>, Option<Uuid>)>,
    /// The engagement the write locked, if any: its events are numbered under that lock.
    locked: Option<Uuid>,
    /// The events the write tells, written to the outbox with its commit.
    events: Vec<WebhookEvent>,
}

impl Engine {
    /// Refuses `action` on `target` unless `caller` sees the target (404) and may take the
    /// action (403). Reads only, on the read pool.
    pub async fn authorize(&self, caller: &Caller, target: Target, action: Action) -> Result<(), EngineError> {
        authorize_on(&self.db, caller, target, action).await
    }

    /// Authorizes, then begins a write on the writer with `claim` recorded in it.
    pub async fn begin(
        &self,
        caller: &Caller,
        target: Target,
        action: Action,
        claim: Option<Claim>,
    ) -> Result<Write, EngineError> {
        // On PostgreSQL the caller is authorized on the connection its write then runs on: the
        // same statement, without a read pool's connection taken and given back (and pinged).
        let txn = match self.writer.take().await? {
            Some(taken) => {
                authorize_on(&taken, caller, target, action).await?;
                taken.begin().await?
            }
            None => {
                self.authorize(caller, target, action).await?;
                begin_write(&self.writer).await?
            }
        };
        if let Some(claim) = &claim {
            claim.record(&txn).await?;
        }
        // To the microsecond, as PostgreSQL keeps instants: the rows a write computes instead of
        // reading them back (`WriteTransaction::insert_later`) say what a later read will.
        let now = self.clock.now().trunc_subsecs(6);
        Ok(Write {
            txn,
            claim,
            now,
            today: now.date_naive(),
            changes: self.changes.clone(),
            touched: Vec::new(),
            locked: None,
            events: Vec::new(),
        })
    }

    /// The write path of a command on engagement `id`: [`Engine::begin`], then the engagement
    /// locked for the rest of the write (a 404 if the caller stopped seeing it meanwhile).
    pub async fn begin_on_engagement(
        &self,
        caller: &Caller,
        id: Uuid,
        action: Action,
        claim: Option<Claim>,
    ) -> Result<(Write, engagement::Model), EngineError> {
        let (write, engagement, _) = self.begin_on_engagement_reading(caller, id, action, claim, Vec::new()).await?;
        Ok((write, engagement))
    }

    /// [`Engine::begin_on_engagement`], with `also` read under the lock and sent with it (one
    /// hand-off on SQLite): the row it finds, if any.
    pub async fn begin_on_engagement_with<E: EntityTrait>(
        &self,
        caller: &Caller,
        id: Uuid,
        action: Action,
        claim: Option<Claim>,
        also: Select<E>,
    ) -> Result<(Write, engagement::Model, Option<E::Model>), EngineError> {
        let read = also.limit(1).build(self.writer.get_database_backend());
        let (write, engagement, answers) =
            self.begin_on_engagement_reading(caller, id, action, claim, vec![read]).await?;
        let found = answers.first().and_then(|rows| rows.first()).map(|row| E::Model::from_query_result(row, ""));
        Ok((write, engagement, found.transpose()?))
    }

    /// [`Engine::begin_on_engagement`], with `reads` run under the lock and sent with it (one
    /// hand-off on SQLite): their rows, in order.
    pub async fn begin_on_engagement_reading(
        &self,
        caller: &Caller,
        id: Uuid,
        action: Action,
        claim: Option<Claim>,
        reads: Vec<Statement>,
    ) -> Result<(Write, engagement::Model, Vec<Vec<QueryResult>>), EngineError> {
        let mut write = self.begin(caller, Target::Engagement(id), action, claim).await?;
        let (engagement, answers) = lock_engagement_reading(&write.txn, caller, id, reads).await?;
        write.touched.push((Some(id), engagement.certification_body_id));
        write.locked = Some(id);
        Ok((write, engagement, answers))
    }
}

/// [`Engine::authorize`] on `conn`: the read pool, or the connection the write will run on.
async fn authorize_on<C: ConnectionTrait>(
    conn: &C,
    caller: &Caller,
    target: Target,
    action: Action,
) -> Result<(), EngineError> {
    match target {
        Target::Platform => {}
        Target::Organization(id) => {
            Organization::find_by_id(id)
                .select_only()
                .column(organization::Column::Id)
                .filter(organizations_in(caller.tenancy, organization::Column::Id))
                .into_tuple::<Uuid>()
                .one(conn)
                .await?
                .ok_or(EngineError::NotFound("organization"))?;
        }
        Target::CertificationBody(id) => {
            CertificationBody::find_by_id(id)
                .select_only()
                .column(certification_body::Column::Id)
                .into_tuple::<Uuid>()
                .one(conn)
                .await?
                .ok_or(EngineError::NotFound("certification body"))?;
            return caller.may_for_certification_body(action, id);
        }
        Target::Engagement(id) => {
            let seen = SEEN_ENGAGEMENT.seen_by(conn.get_database_backend(), caller.tenancy, id, |id, tenancy| {
                Engagement::find_by_id(id)
                    .select_only()
                    .column(engagement::Column::CertificationBodyId)
                    .filter(engagements_in(tenancy))
                    .limit(1)
                    .into_query()
            });
            let row = conn.query_one_raw(seen).await?.ok_or(EngineError::NotFound("engagement"))?;
            let selected: Option<Uuid> = row.try_get_by_index(0)?;
            only_the_selected_body_writes(caller, selected, action)?;
        }
        Target::Notification(id) => {
            let engagement_id: Uuid = Notification::find_by_id(id)
                .select_only()
                .column(notification::Column::EngagementId)
                .filter(of_engagements_in(caller.tenancy, notification::Column::EngagementId))
                .into_tuple()
                .one(conn)
                .await?
                .ok_or(EngineError::NotFound("notification"))?;
            if matches!(caller.tenancy, Tenancy::CertificationBody(_)) {
                let selected: Option<Option<Uuid>> = Engagement::find_by_id(engagement_id)
                    .select_only()
                    .column(engagement::Column::CertificationBodyId)
                    .into_tuple()
                    .one(conn)
                    .await?;
                only_the_selected_body_writes(caller, selected.flatten(), action)?;
            }
        }
    }
    caller.may(action)
}

/// The read that authorizes a write to an engagement, built once per backend and tenancy kind.
static SEEN_ENGAGEMENT: Templates = Templates::new();

/// A certification body's people write to an engagement only when their body is its selected
/// one: a body that has only bid sees the engagement (and its own proposal) and writes nothing.
fn only_the_selected_body_writes(caller: &Caller, selected: Option<Uuid>, action: Action) -> Result<(), EngineError> {
    match caller.tenancy {
        Tenancy::CertificationBody(own) if selected != Some(own) => Err(EngineError::Forbidden(format!(
            "only the selected certification body's people may {action}: this body has not been selected"
        ))),
        _ => Ok(()),
    }
}

impl Write {
    /// The transaction, for the command's own statements.
    pub fn txn(&self) -> &WriteTransaction {
        &self.txn
    }

    /// The time of the write: every row it stamps carries this.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// The day of the write: in UTC, until [`Write::reckon_in`] names the zone its date rules
    /// are reckoned in.
    pub fn today(&self) -> NaiveDate {
        self.today
    }

    /// Reckons the write's day in `zone` (its certification body's time zone).
    pub fn reckon_in(&mut self, zone: TimeZone) {
        self.today = zone.today(self.now);
    }

    /// The write also changes `engagement` or what `body`'s engagements are or hold (an
    /// engagement it selects that body for, an email of theirs; `None`: not known, or no body
    /// yet): said after the commit, as the locked engagement is.
    pub fn concerns(&mut self, engagement: Option<Uuid>, body: Option<Uuid>) {
        self.touched.push((engagement, body));
    }

    /// Tells `event` to the webhooks: written to the outbox by the commit, so it exists exactly
    /// when the write does.
    pub fn emit(&mut self, event: WebhookEvent) {
        self.events.push(event);
    }

    /// Appends a row to the engagement's history.
    pub async fn record_history(&self, record: HistoryRecord<'_>) -> Result<(), EngineError> {
        record_history(&self.txn, record, self.now).await
    }

    /// Whether the commit must be given the response, for the retries of the request.
    pub fn keeps_response(&self) -> bool {
        self.claim.is_some()
    }

    /// Commits, with `response` stored under the caller's key (when the write has one) in the
    /// same transaction: once the write is there, so is the answer its retries get.
    pub async fn commit(self, response: Option<&StoredResponse>) -> Result<(), EngineError> {
        for event in &self.events {
            // Numbered under the engagement's lock: the write's own, or, on SQLite, the writer's.
            if self.locked == Some(event.engagement_id) || self.txn.get_database_backend() == DbBackend::Sqlite {
                for insert in event_inserts(event, self.now)? {
                    self.txn.defer(&insert);
                }
            } else {
                append_numbered(&self.txn, event, self.now).await?;
            }
        }
        if let (Some(claim), Some(response)) = (&self.claim, response) {
            claim.store(&self.txn, response).await?;
        }
        self.txn.commit().await?;
        for (engagement, body) in self.touched {
            self.changes.touch(engagement, body);
        }
        Ok(())
    }
}
