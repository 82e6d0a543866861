//! Idempotency keys: the stored response of each POST an integration sent with an
//! `Idempotency-Key`, so a retried request gets the same answer instead of a second write.

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
                    .table("idempotency_keys")
                    .col(string("subject"))
                    .col(string("idempotency_key"))
                    .col(string("request_fingerprint"))
                    .col(integer_null("response_status"))
                    .col(json_null("response_headers"))
                    .col(blob_null("response_body"))
                    .col(timestamp_with_time_zone("created_at"))
                    .primary_key(Index::create().col("subject").col("idempotency_key"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_idempotency_keys_created_at")
                    .table("idempotency_keys")
                    .col("created_at")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("idempotency_keys").to_owned()).await
    }
}
