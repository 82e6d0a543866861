//! Each deadline names the certification body of its engagement (the body's portfolio counts and
//! lists them from one index range, not from every engagement of the body): filled in from the
//! engagements, and kept by the write path from then on. The body's engagements by state and
//! organization are counted from an index alone.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::uuid_null;

#[derive(DeriveMigrationName)]
pub struct Migration;

// async_trait expands `&SchemaManager` itself; naming its lifetime breaks the trait's signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table("deadlines").add_column(uuid_null("certification_body_id")).to_owned())
            .await?;
        manager
            .get_connection()
            .execute_unprepared(
                "UPDATE deadlines SET certification_body_id = \
                 (SELECT certification_body_id FROM engagements WHERE engagements.id = deadlines.engagement_id)",
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_deadlines_certification_body_status_kind_due_on")
                    .table("deadlines")
                    .col("certification_body_id")
                    .col("status")
                    .col("kind")
                    .col("due_on")
                    .col("id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_engagements_certification_body_state_organization")
                    .table("engagements")
                    .col("certification_body_id")
                    .col("state")
                    .col("organization_id")
                    .col("id")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_engagements_certification_body_state_organization")
                    .table("engagements")
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop().name("ix_deadlines_certification_body_status_kind_due_on").table("deadlines").to_owned(),
            )
            .await?;
        manager.alter_table(Table::alter().table("deadlines").drop_column("certification_body_id").to_owned()).await
    }
}
