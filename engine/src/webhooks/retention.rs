//! How long the delivery log is kept: a message that reached its end (delivered, or failed and not
//! replayed) is deleted with its attempts once it has neither changed nor been due for the
//! retention; an event is deleted once it occurred that long ago, was dispatched (it is off the
//! outbox's queue), no message of it is left, and a later event of its engagement exists (each
//! engagement's latest event is kept: the next one is numbered after it). Pending messages and
//! their events are never purged. Messages are read along their (status, due time) index, events
//! along their time's (a BRIN index on PostgreSQL, a B-tree on SQLite).

use chrono::{DateTime, Utc};
use entities::domain::webhooks::WebhookMessageStatus;
use entities::orm::{prelude::*, webhook_attempt, webhook_event, webhook_message, webhook_outbox};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query, SimpleExpr};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, IdenStatic, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::error::EngineError;
use crate::store::{Writer, begin_write, delete_in_batches};

/// What one purge deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgedWebhooks {
    /// Messages (their attempts went with them).
    pub messages: usize,
    /// Events.
    pub events: usize,
}

/// Deletes, `batch` rows a statement and at most `rounds` statements of each kind, the messages
/// and events older than `retention` at `now`.
pub async fn purge_old_webhooks(
    writer: &Writer,
    now: DateTime<Utc>,
    retention: chrono::Duration,
    batch: u64,
    rounds: usize,
) -> Result<PurgedWebhooks, EngineError> {
    let cutoff = now - retention;
    let mut purged = PurgedWebhooks::default();
    use webhook_message::Column as M;
    let ended = || {
        M::Status
            .is_in([WebhookMessageStatus::Delivered, WebhookMessageStatus::Failed])
            .and(M::NextAttemptAt.lt(cutoff))
            .and(M::UpdatedAt.lt(cutoff))
    };
    purged.messages = delete_in_batches(batch, rounds, move || async move {
        let ids: Vec<Uuid> = WebhookMessage::find()
            .select_only()
            .column(M::Id)
            .filter(ended())
            .limit(batch)
            .into_tuple()
            .all(writer)
            .await?;
        if ids.is_empty() {
            return Ok((0, 0));
        }
        let found = ids.len();
        // Checked again: a replay in between made it pending. Their attempts go with them, in the
        // same transaction (on PostgreSQL no foreign key cascades: migration `m20261204_000020`).
        let txn = begin_write(writer).await?;
        let delete = Query::delete()
            .from_table(WebhookMessage)
            .cond_where(M::Id.is_in(ids).and(ended()))
            .returning_col(M::Id)
            .to_owned();
        let mut deleted = Vec::new();
        for row in txn.query_all(&delete).await? {
            deleted.push(row.try_get::<Uuid>("", M::Id.as_str())?);
        }
        let gone = deleted.len() as u64;
        if !deleted.is_empty() {
            WebhookAttempt::delete_many().filter(webhook_attempt::Column::MessageId.is_in(deleted)).exec(&txn).await?;
        }
        txn.commit().await?;
        Ok((found, gone))
    })
    .await?;
    use webhook_event::Column as E;
    use webhook_outbox::Column as Q;
    let unsent = || -> SimpleExpr {
        let no_message = Expr::exists(
            Query::select()
                .expr(Expr::val(1))
                .from(WebhookMessage)
                .and_where(Expr::col((WebhookMessage, M::EventId)).equals((WebhookEventRecord, E::Id)))
                .to_owned(),
        )
        .not();
        let later = Alias::new("later");
        let not_the_latest = Expr::exists(
            Query::select()
                .expr(Expr::val(1))
                .from_as(WebhookEventRecord, later.clone())
                .and_where(Expr::col((later.clone(), E::EngagementId)).equals((WebhookEventRecord, E::EngagementId)))
                .and_where(Expr::col((later, E::Sequence)).gt(Expr::col((WebhookEventRecord, E::Sequence))))
                .to_owned(),
        );
        let dispatched = Expr::exists(
            Query::select()
                .expr(Expr::val(1))
                .from(WebhookOutbox)
                .and_where(Expr::col((WebhookOutbox, Q::EventId)).equals((WebhookEventRecord, E::Id)))
                .to_owned(),
        )
        .not();
        no_message.and(not_the_latest).and(dispatched)
    };
    purged.events = delete_in_batches(batch, rounds, move || async move {
        let ids: Vec<Uuid> = WebhookEventRecord::find()
            .select_only()
            .column(E::Id)
            .filter(E::OccurredAt.lt(cutoff))
            .filter(unsent())
            .limit(batch)
            .into_tuple()
            .all(writer)
            .await?;
        if ids.is_empty() {
            return Ok((0, 0));
        }
        let found = ids.len();
        let deleted = WebhookEventRecord::delete_many().filter(E::Id.is_in(ids)).filter(unsent()).exec(writer).await?;
        Ok((found, deleted.rows_affected))
    })
    .await?;
    Ok(purged)
}
