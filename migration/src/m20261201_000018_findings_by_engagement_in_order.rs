//! An engagement's findings in the order their list pages them: the index on `engagement_id`
//! becomes one on `(engagement_id, id)`. A page of 10 (`ORDER BY id LIMIT 11`) then reads 11 index
//! entries; before, SQLite read every finding of the engagement and sorted them, so the list
//! slowed down and its memory grew with each finding recorded (1,000 findings: a sort of 1,000
//! rows a page). The counts of open findings by engagement use the same index's prefix, and a
//! finding's insert maintains as many index entries as before.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const OLD: &str = "ix_findings_engagement_id";
const NEW: &str = "ix_findings_engagement_id_id";

fn index(name: &str, columns: &[&'static str]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table("findings");
    for column in columns {
        index.col(*column);
    }
    index.to_owned()
}

// async_trait expands `&SchemaManager` itself; naming its lifetime breaks the trait's signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_index(index(NEW, &["engagement_id", "id"])).await?;
        manager.drop_index(Index::drop().name(OLD).table("findings").to_owned()).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.create_index(index(OLD, &["engagement_id"])).await?;
        manager.drop_index(Index::drop().name(NEW).table("findings").to_owned()).await
    }
}
