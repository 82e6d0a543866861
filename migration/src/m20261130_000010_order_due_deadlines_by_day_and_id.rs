//! The scan reads due deadlines in (day, id) order, a batch after another from where the last one
//! stopped (a step not yet due in its body's time zone is passed over, not read again): the index
//! on (status, next_step_on) gains the id, so a batch is read in index order without a sort.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const OLD: &str = "ix_deadlines_status_next_step_on";
const NEW: &str = "ix_deadlines_status_next_step_on_id";

// async_trait expands `&SchemaManager` itself; naming its lifetime breaks the trait's signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create().name(NEW).table("deadlines").col("status").col("next_step_on").col("id").to_owned(),
            )
            .await?;
        manager.drop_index(Index::drop().name(OLD).table("deadlines").to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(Index::create().name(OLD).table("deadlines").col("status").col("next_step_on").to_owned())
            .await?;
        manager.drop_index(Index::drop().name(NEW).table("deadlines").to_owned()).await
    }
}
