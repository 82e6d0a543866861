//! A message delivered at its first attempt keeps that attempt in its row: the attempt's latency
//! and the start of its answer go in two new columns of `webhook_messages` (its status, answer
//! status and instant are the message's own), and no row of `webhook_attempts` is written for it.
//! The delivery log's attempts are then those rows and these messages, read along a partial index
//! of the messages that keep one, in the order the attempts are listed (by endpoint, then when
//! they ended, then id). Most messages are delivered so: an
//! attempt row and its three index entries were a fifth of what a message cost the worker's
//! PostgreSQL connection (docs/benchmarks.md, "First attempts kept in their messages").
//!
//! Undone, each attempt kept so gets its row back (its id the message's, as the log showed it).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{integer_null, text_null};
use sea_orm_migration::sea_orm::ConnectionTrait;

#[derive(DeriveMigrationName)]
pub struct Migration;

const INDEX: &str = "ix_webhook_messages_first_attempts";
const LATENCY: &str = "first_attempt_latency_ms";
const EXCERPT: &str = "first_attempt_excerpt";

// async_trait expands `&SchemaManager` itself; naming its lifetime breaks the trait's signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column a statement: SQLite adds one at a time.
        for column in [integer_null(LATENCY), text_null(EXCERPT)] {
            manager.alter_table(Table::alter().table("webhook_messages").add_column(column).to_owned()).await?;
        }
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "CREATE INDEX {INDEX} ON webhook_messages (endpoint_id, delivered_at, id) WHERE {LATENCY} IS NOT NULL"
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "INSERT INTO webhook_attempts (id, message_id, endpoint_id, attempt, attempted_at, outcome, \
                 response_status, latency_ms, response_excerpt, error, next_attempt_at) \
                 SELECT id, id, endpoint_id, 1, delivered_at, 'delivered', last_response_status, {LATENCY}, {EXCERPT}, \
                 NULL, NULL FROM webhook_messages WHERE {LATENCY} IS NOT NULL"
            ))
            .await?;
        manager.drop_index(Index::drop().name(INDEX).table("webhook_messages").to_owned()).await?;
        for column in [LATENCY, EXCERPT] {
            manager.alter_table(Table::alter().table("webhook_messages").drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
