//! Mail that exposes no one: each organization's registered email domains (the addresses certflow
//! may email for it; none registered means those of its own ISMS manager and executive), and how
//! many of a notification's recipients have had their own message (one message per recipient,
//! none sent twice when a later one fails and is retried).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{integer, json_null};

#[derive(DeriveMigrationName)]
pub struct Migration;

// async_trait expands `&SchemaManager` itself; naming its lifetime breaks the trait's signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table("organizations").add_column(json_null("email_domains")).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter().table("notifications").add_column(integer("recipients_sent").default(0)).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("notifications").drop_column("recipients_sent").to_owned()).await?;
        manager.alter_table(Table::alter().table("organizations").drop_column("email_domains").to_owned()).await
    }
}
