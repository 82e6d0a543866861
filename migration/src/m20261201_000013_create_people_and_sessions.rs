//! The directory of people and the console's sign-in: people (one per email address), emailed
//! single-use sign-in links and sessions, each stored as its token's hash only.

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
                    .table("people")
                    .col(uuid("id").primary_key())
                    .col(string("email").unique_key())
                    .col(string("name"))
                    .col(string("role"))
                    .col(uuid_null("organization_id"))
                    .col(uuid_null("certification_body_id"))
                    .col(integer("calendar_generation").default(0))
                    .col(integer("version"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_people_organization")
                            .from("people", "organization_id")
                            .to("organizations", "id"),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_people_certification_body")
                            .from("people", "certification_body_id")
                            .to("certification_bodies", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column) in
            [("ix_people_organization", "organization_id"), ("ix_people_certification_body", "certification_body_id")]
        {
            manager.create_index(Index::create().name(name).table("people").col(column).to_owned()).await?;
        }
        for table in ["sign_in_links", "sessions"] {
            let mut create = Table::create();
            create
                .table(table)
                .col(uuid("id").primary_key())
                .col(string("token_hash").unique_key())
                .col(uuid("person_id"))
                .col(timestamp_with_time_zone("created_at"))
                .col(timestamp_with_time_zone("expires_at"))
                .foreign_key(
                    ForeignKey::create()
                        .name(format!("fk_{table}_person"))
                        .from(table, "person_id")
                        .to("people", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                );
            if table == "sign_in_links" {
                create.col(string("next")).col(timestamp_with_time_zone_null("used_at"));
            }
            manager.create_table(create.to_owned()).await?;
            manager
                .create_index(
                    Index::create().name(format!("ix_{table}_person")).table(table).col("person_id").to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create().name(format!("ix_{table}_expires_at")).table(table).col("expires_at").to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["sessions", "sign_in_links", "people"] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
