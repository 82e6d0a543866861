//! On PostgreSQL the delivery log's foreign keys go: a message's to its endpoint and to its event,
//! an attempt's to its message. Each was checked row by row as the worker wrote, a query of its own
//! that locked the row referred to (a WAL record for each new lock): counted by callgrind in a model of a
//! dispatch, the three checks were 28% of the worker connection's instructions a message
//! (docs/benchmarks.md, "The delivery log's foreign keys, counted"). What they kept is kept by
//! those who write: a dispatch locks the endpoints it writes messages for as it writes them (`FOR
//! KEY SHARE`, one row an endpoint, not one a message) and writes none for an endpoint deleted
//! meanwhile; an endpoint's
//! removal deletes its messages and then their attempts; the retention deletes attempts with their
//! messages; an event is deleted only once no message of it is left (as before), and attempts are
//! written only for messages their own transaction made or holds. SQLite keeps its keys: its
//! checks are lookups without locks, and dropping one there means rebuilding the table.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The keys: (table, name, column, table referred to, on delete).
const KEYS: [(&str, &str, &str, &str, ForeignKeyAction); 3] = [
    ("webhook_messages", "fk_webhook_messages_endpoint", "endpoint_id", "webhook_endpoints", ForeignKeyAction::Cascade),
    ("webhook_messages", "fk_webhook_messages_event", "event_id", "webhook_events", ForeignKeyAction::NoAction),
    ("webhook_attempts", "fk_webhook_attempts_message", "message_id", "webhook_messages", ForeignKeyAction::Cascade),
];

// async_trait expands `&SchemaManager` itself; naming its lifetime breaks the trait's signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        for (table, name, ..) in KEYS {
            manager.drop_foreign_key(ForeignKey::drop().name(name).table(table).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        for (table, name, column, to, on_delete) in KEYS {
            manager
                .create_foreign_key(
                    ForeignKey::create().name(name).from(table, column).to(to, "id").on_delete(on_delete).to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
