//! Reminders and escalations: each deadline's next step, the certification bodies' reminder
//! policies, and one notification row per (deadline, step): the record that it was claimed, once.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

// async_trait expands `&SchemaManager` itself; naming its lifetime breaks the trait's signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.alter_table(Table::alter().table("deadlines").add_column(date_null("next_step_on")).to_owned()).await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_deadlines_status_next_step_on")
                    .table("deadlines")
                    .col("status")
                    .col("next_step_on")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("reminder_policies")
                    .col(uuid("certification_body_id").primary_key())
                    .col(json("policy"))
                    .col(integer("version"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_reminder_policies_certification_body_id")
                            .from("reminder_policies", "certification_body_id")
                            .to("certification_bodies", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("notifications")
                    .col(pk_uuid("id"))
                    .col(uuid("deadline_id"))
                    .col(uuid("engagement_id"))
                    .col(string("step_key"))
                    .col(string("kind"))
                    .col(json("recipients"))
                    .col(date("scheduled_on"))
                    .col(string("status"))
                    .col(integer("attempts"))
                    .col(timestamp_with_time_zone("next_attempt_at"))
                    .col(timestamp_with_time_zone_null("queued_at"))
                    .col(timestamp_with_time_zone_null("lease_until"))
                    .col(text_null("last_error"))
                    .col(string_null("message_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("sent_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_notifications_deadline_id")
                            .from("notifications", "deadline_id")
                            .to("deadlines", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, columns, unique) in [
            ("uq_notifications_deadline_id_step_key", &["deadline_id", "step_key"][..], true),
            ("ix_notifications_status_next_attempt_at", &["status", "next_attempt_at"][..], false),
            ("ix_notifications_engagement_id", &["engagement_id"][..], false),
        ] {
            let mut index = Index::create();
            index.name(name).table("notifications");
            for column in columns {
                index.col(*column);
            }
            if unique {
                index.unique();
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("notifications").to_owned()).await?;
        manager.drop_table(Table::drop().table("reminder_policies").to_owned()).await?;
        manager
            .drop_index(Index::drop().name("ix_deadlines_status_next_step_on").table("deadlines").to_owned())
            .await?;
        manager.alter_table(Table::alter().table("deadlines").drop_column("next_step_on").to_owned()).await
    }
}
