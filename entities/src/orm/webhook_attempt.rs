//! `@generated`-style sea-orm entity: one attempt to deliver a message, as the delivery log shows it.

use sea_orm::entity::prelude::*;

use crate::domain::webhooks::WebhookAttemptOutcome;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "webhook_attempts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub message_id: Uuid,
    pub endpoint_id: Uuid,
    /// 1 for the message's first attempt.
    pub attempt: i32,
    pub attempted_at: DateTimeUtc,
    pub outcome: WebhookAttemptOutcome,
    /// The receiver's HTTP status (`None`: no answer).
    pub response_status: Option<i32>,
    pub latency_ms: i32,
    /// The start of the receiver's answer, at most 1,024 bytes of it.
    pub response_excerpt: Option<String>,
    /// Why no answer came (a refused address, a timeout, a connection error).
    pub error: Option<String>,
    /// When the message is tried next, if it is.
    pub next_attempt_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
