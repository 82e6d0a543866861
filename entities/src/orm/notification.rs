//! `@generated`-style sea-orm entity: One reminder or escalation email: a (deadline, step) claimed once.

use crate::domain::reminders::NotificationStatus;
use crate::domain::reminders::StepKind;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "notifications")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub deadline_id: Uuid,
    pub engagement_id: Uuid,
    pub step_key: String,
    pub kind: StepKind,
    pub recipients: Json,
    pub scheduled_on: Date,
    pub status: NotificationStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub queued_at: Option<DateTimeUtc>,
    pub lease_until: Option<DateTimeUtc>,
    pub last_error: Option<String>,
    pub message_id: Option<String>,
    pub created_at: DateTimeUtc,
    pub sent_at: Option<DateTimeUtc>,
    pub recipients_sent: i32,
    /// The certification body of its engagement (kept by the write path).
    pub certification_body_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
