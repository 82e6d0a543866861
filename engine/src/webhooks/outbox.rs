//! The outbox: each change's events, written by the change's own transaction, numbered in their
//! engagement's order, each queued (`webhook_outbox`) for the dispatch. An event exists exactly
//! when its change committed, and is never updated after: the dispatch takes it off the queue.

use chrono::{DateTime, Utc};
use entities::domain::webhooks::{WebhookEvent, WebhookEventType};
use entities::orm::{engagement, notification, prelude::*, webhook_event, webhook_outbox};
use sea_orm::sea_query::{Expr, InsertStatement, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::error::EngineError;
use crate::webhooks::data::{event_of, reminder_data};

/// Appends `event` to the outbox in `txn`, as its engagement's next (one statement: the sequence is
/// one more than the engagement's last). The engagement must be locked by `txn` (see
/// [`lock_for_events`]) so no other write numbers an event of it meanwhile.
pub async fn append(txn: &impl ConnectionTrait, event: &WebhookEvent, now: DateTime<Utc>) -> Result<(), EngineError> {
    for insert in event_inserts(event, now)? {
        txn.execute(&insert).await?;
    }
    Ok(())
}

/// The statements that append `event` to the outbox (see [`append`]): the event, then its place in
/// the dispatch's queue.
pub fn event_inserts(event: &WebhookEvent, now: DateTime<Utc>) -> Result<[InsertStatement; 2], EngineError> {
    use webhook_event::Column as C;
    let data = serde_json::to_value(&event.subject)
        .map_err(|error| EngineError::Unexpected(anyhow::anyhow!(error.to_string())))?;
    let id = Uuid::now_v7();
    let next = Query::select()
        .expr(Expr::val(id))
        .expr(Expr::val(event.engagement_id))
        .expr(Expr::val(event.organization_id))
        .expr(Expr::val(event.certification_body_id))
        .expr(Expr::cust("COALESCE(MAX(sequence), 0) + 1"))
        .expr(Expr::val(event.event_type.to_string()))
        .expr(Expr::val(data))
        .expr(Expr::val(now))
        .from(WebhookEventRecord)
        .and_where(C::EngagementId.eq(event.engagement_id))
        .to_owned();
    let event = Query::insert()
        .into_table(WebhookEventRecord)
        .columns([
            C::Id,
            C::EngagementId,
            C::OrganizationId,
            C::CertificationBodyId,
            C::Sequence,
            C::EventType,
            C::Data,
            C::OccurredAt,
        ])
        .select_from(next)
        .map_err(|error| EngineError::Unexpected(anyhow::anyhow!(error.to_string())))?
        .to_owned();
    let queued = Query::insert()
        .into_table(WebhookOutbox)
        .columns([webhook_outbox::Column::EventId])
        .values([Expr::val(id)])
        .map_err(|error| EngineError::Unexpected(anyhow::anyhow!(error.to_string())))?
        .to_owned();
    Ok([event, queued])
}

/// Locks engagement `id` in `txn` for numbering its events, when the write did not lock it already
/// (a worker's write). On SQLite the write transaction holds the only write lock already.
pub async fn lock_for_events(txn: &impl ConnectionTrait, id: Uuid) -> Result<Option<engagement::Model>, EngineError> {
    Ok(Engagement::find().filter(engagement::Column::Id.eq(id)).lock_exclusive().one(txn).await?)
}

/// Appends `event` in `txn`, a write that has not locked its engagement: on PostgreSQL the
/// engagement is locked first (its id only) for the numbering; on SQLite the write transaction
/// holds the one write lock already, and nothing more is read.
pub async fn append_numbered(
    txn: &impl ConnectionTrait,
    event: &WebhookEvent,
    now: DateTime<Utc>,
) -> Result<(), EngineError> {
    if txn.get_database_backend() == DbBackend::Postgres {
        Engagement::find_by_id(event.engagement_id)
            .select_only()
            .column(engagement::Column::Id)
            .lock_exclusive()
            .into_tuple::<Uuid>()
            .one(txn)
            .await?;
    }
    append(txn, event, now).await
}

/// Tells `event_type` of the email `notification` (a reminder or an escalation that went out, or
/// an email that failed for good, with `error`) in `txn`, the transaction that records it: its
/// engagement is locked for the numbering. Nothing is told of an email whose deadline or
/// engagement is gone.
pub async fn append_about_email(
    txn: &impl ConnectionTrait,
    event_type: WebhookEventType,
    notification: &notification::Model,
    error: Option<String>,
    now: DateTime<Utc>,
) -> Result<(), EngineError> {
    let Some(engagement) = lock_for_events(txn, notification.engagement_id).await? else { return Ok(()) };
    let Some(deadline) = Deadline::find_by_id(notification.deadline_id).one(txn).await? else { return Ok(()) };
    let about = reminder_data(&deadline, notification, error);
    append(txn, &event_of(event_type, &engagement, about), now).await
}
