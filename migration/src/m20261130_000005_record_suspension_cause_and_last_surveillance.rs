//! Two facts the cycle's rules need: why an engagement's certificate is suspended (restoring it
//! checks that this cause is resolved), and when its latest surveillance audit was held (the next
//! is due by the end of the following calendar year).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{date_null, string_null};

#[derive(DeriveMigrationName)]
pub struct Migration;

// async_trait expands `&SchemaManager` itself; naming its lifetime breaks the trait's signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        manager
            .alter_table(Table::alter().table("engagements").add_column(string_null("suspension_cause")).to_owned())
            .await?;
        manager
            .alter_table(Table::alter().table("certificates").add_column(date_null("last_surveillance_on")).to_owned())
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table("certificates").drop_column("last_surveillance_on").to_owned())
            .await?;
        manager.alter_table(Table::alter().table("engagements").drop_column("suspension_cause").to_owned()).await
    }
}
