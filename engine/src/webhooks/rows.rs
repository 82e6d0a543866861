//! The delivery log's rows as the worker writes them, many at once: a dispatch's messages, their
//! attempts, and the events taken off the outbox's queue.
//!
//! On PostgreSQL each is one statement whatever the number of rows: `INSERT … SELECT * FROM
//! UNNEST($1, …, $n)`, one array a column (sqlx binds arrays whose elements may be null, which
//! sea-query does not). A `VALUES` list is a new statement text for each number of rows: some 150
//! texts a worker connection, past sqlx's cache of 100 prepared statements, each parsed and
//! planned again; and PostgreSQL's executor builds the expressions of a `VALUES` list again for
//! each of its rows, which `perf` showed as the largest part of the worker connection's time
//! (`ExprEvalPushStep`, `ExecBuildProjectionInfo`; docs/benchmarks.md, "Rows as arrays (session 33)").
//! Elsewhere (SQLite) the rows go in `VALUES` lists a few hundred at a time.

use std::collections::HashSet;

use entities::orm::{prelude::*, webhook_attempt, webhook_message, webhook_outbox};
use sea_orm::sea_query::OnConflict;
use sea_orm::sqlx;
use sea_orm::{
    ActiveEnum, ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, IdenStatic, IntoActiveModel,
    QueryFilter, QueryTrait,
};
use uuid::Uuid;

use crate::error::EngineError;
use crate::store::WriteTransaction;

/// Inserts `messages` unless one of the same event and endpoint exists; returns the ids of those
/// inserted.
pub async fn insert_messages(
    txn: &WriteTransaction,
    messages: Vec<webhook_message::Model>,
) -> Result<HashSet<Uuid>, EngineError> {
    let id = webhook_message::Column::Id.as_str();
    let mut written = HashSet::new();
    if messages.is_empty() {
        return Ok(written);
    }
    if txn.get_database_backend() == DbBackend::Postgres {
        let c = MessageColumns::of(messages);
        let query = sqlx::query(
            "INSERT INTO webhook_messages (id, endpoint_id, event_id, engagement_id, event_type, status, attempts, \
             next_attempt_at, lease_until, last_response_status, last_error, delivered_at, created_at, updated_at, \
             first_attempt_latency_ms, first_attempt_excerpt) \
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[], \
             $7::int4[], $8::timestamptz[], $9::timestamptz[], $10::int4[], $11::text[], $12::timestamptz[], \
             $13::timestamptz[], $14::timestamptz[], $15::int4[], $16::text[]) \
             ON CONFLICT (event_id, endpoint_id) DO NOTHING RETURNING id",
        )
        .bind(c.id)
        .bind(c.endpoint_id)
        .bind(c.event_id)
        .bind(c.engagement_id)
        .bind(c.event_type)
        .bind(c.status)
        .bind(c.attempts)
        .bind(c.next_attempt_at)
        .bind(c.lease_until)
        .bind(c.last_response_status)
        .bind(c.last_error)
        .bind(c.delivered_at)
        .bind(c.created_at)
        .bind(c.updated_at)
        .bind(c.first_attempt_latency_ms)
        .bind(c.first_attempt_excerpt);
        for row in txn.query_postgres(query).await? {
            written.insert(row.try_get::<Uuid>("", id)?);
        }
        return Ok(written);
    }
    let rows: Vec<webhook_message::ActiveModel> =
        messages.into_iter().map(|m| m.into_active_model().reset_all()).collect();
    // A few hundred rows a statement keeps under SQLite's bound-parameter limit.
    for chunk in rows.chunks(200) {
        let conflict = OnConflict::columns([webhook_message::Column::EventId, webhook_message::Column::EndpointId])
            .do_nothing()
            .to_owned();
        let insert = WebhookMessage::insert_many(chunk.to_vec())
            .on_conflict(conflict)
            .into_query()
            .returning_col(webhook_message::Column::Id)
            .to_owned();
        for row in txn.query_all(&insert).await? {
            written.insert(row.try_get::<Uuid>("", id)?);
        }
    }
    Ok(written)
}

/// Inserts `attempts` into the delivery log.
pub async fn insert_attempts(txn: &WriteTransaction, attempts: Vec<webhook_attempt::Model>) -> Result<(), EngineError> {
    if attempts.is_empty() {
        return Ok(());
    }
    if txn.get_database_backend() == DbBackend::Postgres {
        let c = AttemptColumns::of(attempts);
        let query = sqlx::query(
            "INSERT INTO webhook_attempts (id, message_id, endpoint_id, attempt, attempted_at, outcome, \
             response_status, latency_ms, response_excerpt, error, next_attempt_at) \
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::int4[], $5::timestamptz[], $6::text[], \
             $7::int4[], $8::int4[], $9::text[], $10::text[], $11::timestamptz[])",
        )
        .bind(c.id)
        .bind(c.message_id)
        .bind(c.endpoint_id)
        .bind(c.attempt)
        .bind(c.attempted_at)
        .bind(c.outcome)
        .bind(c.response_status)
        .bind(c.latency_ms)
        .bind(c.response_excerpt)
        .bind(c.error)
        .bind(c.next_attempt_at);
        txn.query_postgres(query).await?;
        return Ok(());
    }
    let rows: Vec<webhook_attempt::ActiveModel> =
        attempts.into_iter().map(|a| a.into_active_model().reset_all()).collect();
    // 11 values a row: a hundred rows a statement keeps under SQLite's bound-parameter limit.
    for chunk in rows.chunks(100) {
        WebhookAttempt::insert_many(chunk.to_vec()).exec_without_returning(txn).await?;
    }
    Ok(())
}

/// Takes the events `ids` off the outbox's queue.
pub async fn take_off_outbox(txn: &WriteTransaction, ids: Vec<Uuid>) -> Result<(), EngineError> {
    if ids.is_empty() {
        return Ok(());
    }
    if txn.get_database_backend() == DbBackend::Postgres {
        let delete = sqlx::query("DELETE FROM webhook_outbox WHERE event_id = ANY($1::uuid[])").bind(ids);
        txn.query_postgres(delete).await?;
        return Ok(());
    }
    for chunk in ids.chunks(500) {
        WebhookOutbox::delete_many()
            .filter(webhook_outbox::Column::EventId.is_in(chunk.iter().copied()))
            .exec(txn)
            .await?;
    }
    Ok(())
}

type Time = chrono::DateTime<chrono::Utc>;

/// Rows gathered one array a column, to be bound to `UNNEST`.
trait Columns: Default {
    type Row;

    /// Appends `row`'s values, each to its column.
    fn push(&mut self, row: Self::Row);

    fn of(rows: Vec<Self::Row>) -> Self {
        let mut columns = Self::default();
        for row in rows {
            columns.push(row);
        }
        columns
    }
}

/// A dispatch's messages, one array a column.
#[derive(Default)]
struct MessageColumns {
    id: Vec<Uuid>,
    endpoint_id: Vec<Uuid>,
    event_id: Vec<Uuid>,
    engagement_id: Vec<Uuid>,
    event_type: Vec<String>,
    status: Vec<String>,
    attempts: Vec<i32>,
    next_attempt_at: Vec<Time>,
    lease_until: Vec<Option<Time>>,
    last_response_status: Vec<Option<i32>>,
    last_error: Vec<Option<String>>,
    delivered_at: Vec<Option<Time>>,
    created_at: Vec<Time>,
    updated_at: Vec<Time>,
    first_attempt_latency_ms: Vec<Option<i32>>,
    first_attempt_excerpt: Vec<Option<String>>,
}

impl Columns for MessageColumns {
    type Row = webhook_message::Model;

    fn push(&mut self, m: webhook_message::Model) {
        self.id.push(m.id);
        self.endpoint_id.push(m.endpoint_id);
        self.event_id.push(m.event_id);
        self.engagement_id.push(m.engagement_id);
        self.event_type.push(m.event_type.to_value());
        self.status.push(m.status.to_value());
        self.attempts.push(m.attempts);
        self.next_attempt_at.push(m.next_attempt_at);
        self.lease_until.push(m.lease_until);
        self.last_response_status.push(m.last_response_status);
        self.last_error.push(m.last_error);
        self.delivered_at.push(m.delivered_at);
        self.created_at.push(m.created_at);
        self.updated_at.push(m.updated_at);
        self.first_attempt_latency_ms.push(m.first_attempt_latency_ms);
        self.first_attempt_excerpt.push(m.first_attempt_excerpt);
    }
}

/// Attempts, one array a column.
#[derive(Default)]
struct AttemptColumns {
    id: Vec<Uuid>,
    message_id: Vec<Uuid>,
    endpoint_id: Vec<Uuid>,
    attempt: Vec<i32>,
    attempted_at: Vec<Time>,
    outcome: Vec<String>,
    response_status: Vec<Option<i32>>,
    latency_ms: Vec<i32>,
    response_excerpt: Vec<Option<String>>,
    error: Vec<Option<String>>,
    next_attempt_at: Vec<Option<Time>>,
}

impl Columns for AttemptColumns {
    type Row = webhook_attempt::Model;

    fn push(&mut self, a: webhook_attempt::Model) {
        self.id.push(a.id);
        self.message_id.push(a.message_id);
        self.endpoint_id.push(a.endpoint_id);
        self.attempt.push(a.attempt);
        self.attempted_at.push(a.attempted_at);
        self.outcome.push(a.outcome.to_value());
        self.response_status.push(a.response_status);
        self.latency_ms.push(a.latency_ms);
        self.response_excerpt.push(a.response_excerpt);
        self.error.push(a.error);
        self.next_attempt_at.push(a.next_attempt_at);
    }
}
