//! An engagement's open deadlines, in due-date order, from one index: (engagement_id, status,
//! due_on) replaces (engagement_id, status). Without statistics SQLite preferred the
//! (status, due_on) index for "open deadlines of these engagements by due date", which walks every
//! open deadline of every engagement: reads and transitions slowed down as the data grew.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const OLD: &str = "ix_deadlines_engagement_id_status";
const NEW: &str = "ix_deadlines_engagement_id_status_due_on";

// async_trait expands `&SchemaManager` itself; naming its lifetime breaks the trait's signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let index =
            Index::create().name(NEW).table("deadlines").col("engagement_id").col("status").col("due_on").to_owned();
        manager.create_index(index).await?;
        manager.drop_index(Index::drop().name(OLD).table("deadlines").to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let index = Index::create().name(OLD).table("deadlines").col("engagement_id").col("status").to_owned();
        manager.create_index(index).await?;
        manager.drop_index(Index::drop().name(NEW).table("deadlines").to_owned()).await
    }
}
