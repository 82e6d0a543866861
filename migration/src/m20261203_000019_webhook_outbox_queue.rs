//! The webhook outbox becomes a queue of its own: `webhook_outbox`, one row (the event's id) per
//! event not yet made into messages, inserted with the event by the change's transaction and
//! deleted by the dispatch that makes its messages. Events are then written once and never
//! updated: marking one dispatched (`dispatched_at`) rewrote the whole row, its data included,
//! and, the column being in both partial indexes' predicates, added an entry to each of its
//! indexes (PostgreSQL's HOT update does not apply), all left for VACUUM. The two partial indexes
//! and the column go; the retention finds old events by when they occurred instead (a BRIN index on
//! PostgreSQL: the events are appended in time order, and a block range's summary costs an insert
//! next to nothing; a B-tree on SQLite).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{timestamp_with_time_zone_null, uuid};
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

const OCCURRED: &str = "ix_webhook_events_occurred_at";

// async_trait expands `&SchemaManager` itself; naming its lifetime breaks the trait's signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(Table::create().table("webhook_outbox").col(uuid("event_id").primary_key()).to_owned())
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(
            "INSERT INTO webhook_outbox (event_id) SELECT id FROM webhook_events WHERE dispatched_at IS NULL",
        )
        .await?;
        for name in ["ix_webhook_events_undispatched", "ix_webhook_events_dispatched"] {
            manager.drop_index(Index::drop().name(name).table("webhook_events").to_owned()).await?;
        }
        manager.alter_table(Table::alter().table("webhook_events").drop_column("dispatched_at").to_owned()).await?;
        let index = match db.get_database_backend() {
            DbBackend::Postgres => format!("CREATE INDEX {OCCURRED} ON webhook_events USING brin (occurred_at)"),
            _ => format!("CREATE INDEX {OCCURRED} ON webhook_events (occurred_at)"),
        };
        db.execute_unprepared(&index).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name(OCCURRED).table("webhook_events").to_owned()).await?;
        manager
            .alter_table(
                Table::alter()
                    .table("webhook_events")
                    .add_column(timestamp_with_time_zone_null("dispatched_at"))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        // An event no longer queued was dispatched; when is not kept: when it occurred stands in.
        db.execute_unprepared(
            "UPDATE webhook_events SET dispatched_at = occurred_at \
             WHERE id NOT IN (SELECT event_id FROM webhook_outbox)",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX ix_webhook_events_undispatched ON webhook_events (id) WHERE dispatched_at IS NULL",
        )
        .await?;
        db.execute_unprepared(
            "CREATE INDEX ix_webhook_events_dispatched ON webhook_events (dispatched_at) \
             WHERE dispatched_at IS NOT NULL",
        )
        .await?;
        manager.drop_table(Table::drop().table("webhook_outbox").to_owned()).await
    }
}
