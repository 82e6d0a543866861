//! Audits and notifications name the certification body of their engagement, as deadlines do
//! (migration 14): a body's planned audits and failed emails are one index range each, not a
//! membership test against every engagement of the body. Filled in from the engagements, and kept
//! by the write path from then on.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::uuid_null;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tables that gain the column, and the columns of the index that serves a body's reads.
const TABLES: [(&str, &str, [&str; 4]); 2] = [
    (
        "audits",
        "ix_audits_certification_body_open_first_day",
        ["certification_body_id", "completed_at", "first_day", "id"],
    ),
    (
        "notifications",
        "ix_notifications_certification_body_status_created_at",
        ["certification_body_id", "status", "created_at", "id"],
    ),
];

// async_trait expands `&SchemaManager` itself; naming its lifetime breaks the trait's signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, index, columns) in TABLES {
            manager
                .alter_table(Table::alter().table(table).add_column(uuid_null("certification_body_id")).to_owned())
                .await?;
            manager
                .get_connection()
                .execute_unprepared(&format!(
                    "UPDATE {table} SET certification_body_id = \
                     (SELECT certification_body_id FROM engagements WHERE engagements.id = {table}.engagement_id)"
                ))
                .await?;
            let mut create = Index::create();
            create.name(index).table(table);
            for column in columns {
                create.col(column);
            }
            manager.create_index(create.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, index, _) in TABLES {
            manager.drop_index(Index::drop().name(index).table(table).to_owned()).await?;
            manager.alter_table(Table::alter().table(table).drop_column("certification_body_id").to_owned()).await?;
        }
        Ok(())
    }
}
