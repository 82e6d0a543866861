//! An accepted minor NC's plan is followed up at a later audit: the finding keeps the audit that
//! followed it up, the outcome (effective / not effective) and the auditor's note.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::{string_null, text_null, uuid_null};

#[derive(DeriveMigrationName)]
pub struct Migration;

// async_trait expands `&SchemaManager` itself; naming its lifetime breaks the trait's signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        for column in [uuid_null("follow_up_audit_id"), string_null("follow_up_outcome"), text_null("follow_up_note")] {
            manager.alter_table(Table::alter().table("findings").add_column(column).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in ["follow_up_audit_id", "follow_up_outcome", "follow_up_note"] {
            manager.alter_table(Table::alter().table("findings").drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
