//! What the retention purge reads: a webhook message found by its event (the unique (endpoint,
//! event) index becomes (event, endpoint), so asking whether an event still has messages, and
//! PostgreSQL's foreign key check when one is deleted, use an index without one more to maintain;
//! listing an endpoint's messages has its own), and the dispatched events by when they were
//! dispatched (a partial index: the API's INSERT of an undispatched event adds nothing to it).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const OLD: &str = "ux_webhook_messages_endpoint_event";
const NEW: &str = "ux_webhook_messages_event_endpoint";

// async_trait expands `&SchemaManager` itself; naming its lifetime breaks the trait's signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(NEW)
                    .table("webhook_messages")
                    .col("event_id")
                    .col("endpoint_id")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager.drop_index(Index::drop().name(OLD).table("webhook_messages").to_owned()).await?;
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX ix_webhook_events_dispatched ON webhook_events (dispatched_at) \
                 WHERE dispatched_at IS NOT NULL",
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name("ix_webhook_events_dispatched").table("webhook_events").to_owned())
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(OLD)
                    .table("webhook_messages")
                    .col("endpoint_id")
                    .col("event_id")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager.drop_index(Index::drop().name(NEW).table("webhook_messages").to_owned()).await
    }
}
