//! Idempotency records: the key of a write is stored in the transaction of that write, and so is
//! the response its retries get. A write that dies before its commit leaves no key (its retry
//! runs); one that committed always leaves the key with its response (its retry never runs twice).

use chrono::{DateTime, Duration, Utc};
use entities::orm::{idempotency_key, prelude::*};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ActiveValue::Set, ColumnTrait, Condition, EntityTrait, QueryFilter, QuerySelect, QueryTrait};

use crate::Engine;
use crate::error::EngineError;
use crate::store::WriteTransaction;
use crate::store::delete_in_batches;

/// How long a key is remembered.
pub const RETENTION: Duration = Duration::hours(24);

/// A caller's key for one request, claimed by the write that request runs.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The caller the key belongs to: the whole caller ([`crate::Caller::identity`]: role, scope
    /// and subject), so a replay never crosses to another role or tenant that shares a subject.
    pub owner: String,
    /// The key, as the caller sent it.
    pub key: String,
    /// The request's method, target and body, hashed: the same key for another request is refused.
    pub fingerprint: String,
    /// When the request arrived.
    pub now: DateTime<Utc>,
}

/// A response as kept for the retries of its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// The HTTP status.
    pub status: u16,
    /// The headers kept (name to string).
    pub headers: serde_json::Map<String, serde_json::Value>,
    /// The body.
    pub body: Vec<u8>,
}

impl Claim {
    fn this_key(&self) -> Condition {
        Condition::all()
            .add(idempotency_key::Column::Subject.eq(&self.owner))
            .add(idempotency_key::Column::IdempotencyKey.eq(&self.key))
    }

    /// Records the key in `txn`. Another request with the same key that committed first (a
    /// concurrent retry) makes this one a conflict, and its transaction is dropped unwritten.
    pub(crate) async fn record(&self, txn: &WriteTransaction) -> Result<(), EngineError> {
        let inserted = IdempotencyKey::insert(idempotency_key::ActiveModel {
            subject: Set(self.owner.clone()),
            idempotency_key: Set(self.key.clone()),
            request_fingerprint: Set(self.fingerprint.clone()),
            response_status: Set(None),
            response_headers: Set(None),
            response_body: Set(None),
            created_at: Set(self.now),
        })
        .on_conflict(
            OnConflict::columns([idempotency_key::Column::Subject, idempotency_key::Column::IdempotencyKey])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
        if inserted == 1 { Ok(()) } else { Err(in_progress()) }
    }

    /// Stores `response` under the key, in the transaction that recorded it.
    pub(crate) async fn store(&self, txn: &WriteTransaction, response: &StoredResponse) -> Result<(), EngineError> {
        let stored = IdempotencyKey::update_many()
            .col_expr(idempotency_key::Column::ResponseStatus, Expr::value(i32::from(response.status)))
            .col_expr(
                idempotency_key::Column::ResponseHeaders,
                Expr::value(serde_json::Value::Object(response.headers.clone())),
            )
            .col_expr(idempotency_key::Column::ResponseBody, Expr::value(response.body.clone()))
            .filter(self.this_key());
        // Goes with the commit.
        txn.defer(&stored.into_query());
        Ok(())
    }
}

impl Engine {
    /// What an earlier request with the claim's key says: nothing (run this one), its stored
    /// response, or a refusal (another request used the key; or a key without a response, which
    /// only a version that stored responses after the commit can have left). A key older than
    /// [`RETENTION`] is forgotten first.
    pub async fn earlier_response(&self, claim: &Claim) -> Result<Option<StoredResponse>, EngineError> {
        IdempotencyKey::delete_many()
            .filter(claim.this_key())
            .filter(idempotency_key::Column::CreatedAt.lt(claim.now - RETENTION))
            .exec(&self.writer)
            .await?;
        let Some(stored) = IdempotencyKey::find().filter(claim.this_key()).one(&self.db).await? else {
            return Ok(None);
        };
        if stored.request_fingerprint != claim.fingerprint {
            return Err(EngineError::Unprocessable {
                slug: "idempotency-key-reused",
                detail: "the Idempotency-Key was used for another request: use a new key for a new request".into(),
            });
        }
        let status = stored.response_status.and_then(|s| u16::try_from(s).ok()).ok_or_else(in_progress)?;
        Ok(Some(StoredResponse {
            status,
            headers: stored.response_headers.and_then(|h| h.as_object().cloned()).unwrap_or_default(),
            body: stored.response_body.unwrap_or_default(),
        }))
    }
}

/// Forgets keys older than [`RETENTION`] at `now`, `batch` at a time, at most `rounds` batches
/// (the worker calls it at every tick, so a backlog drains over a few ticks without one long
/// statement); returns how many it forgot.
pub async fn purge_expired_keys(
    engine: &Engine,
    now: DateTime<Utc>,
    batch: u64,
    rounds: usize,
) -> Result<usize, EngineError> {
    delete_in_batches(batch, rounds, move || async move {
        let expired: Vec<(String, String)> = IdempotencyKey::find()
            .select_only()
            .column(idempotency_key::Column::Subject)
            .column(idempotency_key::Column::IdempotencyKey)
            .filter(idempotency_key::Column::CreatedAt.lt(now - RETENTION))
            .limit(batch)
            .into_tuple()
            .all(&engine.db)
            .await?;
        if expired.is_empty() {
            return Ok((0, 0));
        }
        let count = expired.len();
        let these = expired.into_iter().fold(Condition::any(), |any, (owner, key)| {
            any.add(
                Condition::all()
                    .add(idempotency_key::Column::Subject.eq(owner))
                    .add(idempotency_key::Column::IdempotencyKey.eq(key)),
            )
        });
        let deleted = IdempotencyKey::delete_many()
            .filter(these)
            .filter(idempotency_key::Column::CreatedAt.lt(now - RETENTION))
            .exec(&engine.writer)
            .await?;
        Ok((count, deleted.rows_affected))
    })
    .await
}

fn in_progress() -> EngineError {
    EngineError::conflict(
        "idempotency-key-in-progress",
        "another request with this Idempotency-Key is being carried out: try again in a moment for its response",
    )
}
