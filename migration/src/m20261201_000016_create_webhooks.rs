//! Webhooks: the endpoints integrations register, the outbox every change writes its events to in
//! its own transaction (numbered per engagement), the messages the worker makes of them for each
//! endpoint that wants them, and the log of every attempt to deliver one.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

// async_trait expands `&SchemaManager` itself; naming its lifetime breaks the trait's signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("webhook_endpoints")
                    .col(uuid("id").primary_key())
                    .col(uuid_null("organization_id"))
                    .col(uuid_null("certification_body_id"))
                    .col(string("url"))
                    .col(string("description"))
                    .col(json("event_types"))
                    .col(boolean("enabled"))
                    .col(string_null("disabled_reason"))
                    .col(string("secret"))
                    .col(string_null("previous_secret"))
                    .col(timestamp_with_time_zone_null("previous_secret_expires_at"))
                    .col(timestamp_with_time_zone_null("failing_since"))
                    .col(integer("version"))
                    .col(string("created_by"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webhook_endpoints_organization")
                            .from("webhook_endpoints", "organization_id")
                            .to("organizations", "id"),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webhook_endpoints_certification_body")
                            .from("webhook_endpoints", "certification_body_id")
                            .to("certification_bodies", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("ix_webhook_endpoints_organization", "organization_id"),
            ("ix_webhook_endpoints_certification_body", "certification_body_id"),
        ] {
            manager
                .create_index(Index::create().name(name).table("webhook_endpoints").col(column).col("id").to_owned())
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("webhook_events")
                    .col(uuid("id").primary_key())
                    .col(uuid("engagement_id"))
                    .col(uuid("organization_id"))
                    .col(uuid_null("certification_body_id"))
                    .col(big_integer("sequence"))
                    .col(string("event_type"))
                    .col(json("data"))
                    .col(timestamp_with_time_zone("occurred_at"))
                    .col(timestamp_with_time_zone_null("dispatched_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_webhook_events_engagement_sequence")
                    .table("webhook_events")
                    .col("engagement_id")
                    .col("sequence")
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The worker's queue: the events not yet made into messages, oldest first.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE INDEX ix_webhook_events_undispatched ON webhook_events (id) WHERE dispatched_at IS NULL",
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("webhook_messages")
                    .col(uuid("id").primary_key())
                    .col(uuid("endpoint_id"))
                    .col(uuid("event_id"))
                    .col(uuid("engagement_id"))
                    .col(string("event_type"))
                    .col(string("status"))
                    .col(integer("attempts"))
                    .col(timestamp_with_time_zone("next_attempt_at"))
                    .col(timestamp_with_time_zone_null("lease_until"))
                    .col(integer_null("last_response_status"))
                    .col(string_null("last_error"))
                    .col(timestamp_with_time_zone_null("delivered_at"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webhook_messages_endpoint")
                            .from("webhook_messages", "endpoint_id")
                            .to("webhook_endpoints", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webhook_messages_event")
                            .from("webhook_messages", "event_id")
                            .to("webhook_events", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_webhook_messages_endpoint_event")
                    .table("webhook_messages")
                    .col("endpoint_id")
                    .col("event_id")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_messages_due")
                    .table("webhook_messages")
                    .col("status")
                    .col("next_attempt_at")
                    .col("id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_messages_endpoint_created")
                    .table("webhook_messages")
                    .col("endpoint_id")
                    .col("created_at")
                    .col("id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("webhook_attempts")
                    .col(uuid("id").primary_key())
                    .col(uuid("message_id"))
                    .col(uuid("endpoint_id"))
                    .col(integer("attempt"))
                    .col(timestamp_with_time_zone("attempted_at"))
                    .col(string("outcome"))
                    .col(integer_null("response_status"))
                    .col(integer("latency_ms"))
                    .col(string_null("response_excerpt"))
                    .col(string_null("error"))
                    .col(timestamp_with_time_zone_null("next_attempt_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_webhook_attempts_message")
                            .from("webhook_attempts", "message_id")
                            .to("webhook_messages", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column) in
            [("ix_webhook_attempts_endpoint", "endpoint_id"), ("ix_webhook_attempts_message", "message_id")]
        {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table("webhook_attempts")
                        .col(column)
                        .col("attempted_at")
                        .col("id")
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["webhook_attempts", "webhook_messages", "webhook_events", "webhook_endpoints"] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
