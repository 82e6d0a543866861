//! certflow's schema, for SQLite and PostgreSQL alike.

pub use sea_orm_migration::prelude::*;

mod m20261124_000001_create_engagement_tables;
mod m20261124_000002_create_reminder_tables;
mod m20261124_000003_create_idempotency_keys;
mod m20261124_000004_index_open_deadlines_by_due_date;
mod m20261130_000005_record_suspension_cause_and_last_surveillance;
mod m20261130_000006_fix_what_a_certificate_states;
mod m20261130_000007_create_certification_policies;
mod m20261130_000008_record_corrective_actions_reported_done;
mod m20261130_000009_follow_up_minor_nonconformities;
mod m20261130_000010_order_due_deadlines_by_day_and_id;
mod m20261130_000011_create_token_revocations;
mod m20261130_000012_mail_that_exposes_no_one;
mod m20261201_000013_create_people_and_sessions;
mod m20261201_000014_deadlines_by_certification_body;
mod m20261201_000015_audits_and_notifications_by_certification_body;
mod m20261201_000016_create_webhooks;
mod m20261201_000017_webhook_messages_by_event;
mod m20261201_000018_findings_by_engagement_in_order;
mod m20261203_000019_webhook_outbox_queue;
mod m20261204_000020_webhook_log_checked_by_its_writers;
mod m20261204_000021_first_attempts_kept_in_their_messages;

/// Every migration, in order. An applied migration is never edited: add a new one.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_create_engagement_tables::Migration),
            Box::new(m20261124_000002_create_reminder_tables::Migration),
            Box::new(m20261124_000003_create_idempotency_keys::Migration),
            Box::new(m20261124_000004_index_open_deadlines_by_due_date::Migration),
            Box::new(m20261130_000005_record_suspension_cause_and_last_surveillance::Migration),
            Box::new(m20261130_000006_fix_what_a_certificate_states::Migration),
            Box::new(m20261130_000007_create_certification_policies::Migration),
            Box::new(m20261130_000008_record_corrective_actions_reported_done::Migration),
            Box::new(m20261130_000009_follow_up_minor_nonconformities::Migration),
            Box::new(m20261130_000010_order_due_deadlines_by_day_and_id::Migration),
            Box::new(m20261130_000011_create_token_revocations::Migration),
            Box::new(m20261130_000012_mail_that_exposes_no_one::Migration),
            Box::new(m20261201_000013_create_people_and_sessions::Migration),
            Box::new(m20261201_000014_deadlines_by_certification_body::Migration),
            Box::new(m20261201_000015_audits_and_notifications_by_certification_body::Migration),
            Box::new(m20261201_000016_create_webhooks::Migration),
            Box::new(m20261201_000017_webhook_messages_by_event::Migration),
            Box::new(m20261201_000018_findings_by_engagement_in_order::Migration),
            Box::new(m20261203_000019_webhook_outbox_queue::Migration),
            Box::new(m20261204_000020_webhook_log_checked_by_its_writers::Migration),
            Box::new(m20261204_000021_first_attempts_kept_in_their_messages::Migration),
        ]
    }
}
