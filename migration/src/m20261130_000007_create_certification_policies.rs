//! Each certification body's certification policy (CAP days per grade, stage 1 validity,
//! suspension limit, the clock's graces, its time zone): data, like its reminder policy. A body
//! without a row uses the defaults.

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
                    .table("certification_policies")
                    .col(uuid("certification_body_id").primary_key())
                    .col(json("policy"))
                    .col(integer("version"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_certification_policies_certification_body_id")
                            .from("certification_policies", "certification_body_id")
                            .to("certification_bodies", "id"),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("certification_policies").to_owned()).await
    }
}
