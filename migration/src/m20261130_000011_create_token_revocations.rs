//! Token revocations: one token by its id, or every token of a subject issued up to an instant.
//! Each row is kept until every token it covers has expired (`keep_until`); the worker purges the
//! rest, so every API process can hold the whole table in memory.

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
                    .table("token_revocations")
                    .col(uuid("id").primary_key())
                    .col(string_null("token_id"))
                    .col(string_null("subject"))
                    .col(timestamp_with_time_zone_null("issued_before"))
                    .col(text_null("reason"))
                    .col(string("revoked_by"))
                    .col(timestamp_with_time_zone("revoked_at"))
                    .col(timestamp_with_time_zone("keep_until"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_token_revocations_keep_until")
                    .table("token_revocations")
                    .col("keep_until")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("token_revocations").to_owned()).await
    }
}
