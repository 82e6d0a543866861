//! `@generated`-style sea-orm entity: one event for one endpoint, delivered with retries.

use sea_orm::entity::prelude::*;

use crate::domain::webhooks::{WebhookEventType, WebhookMessageStatus};

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "webhook_messages")]
pub struct Model {
    /// Its `webhook-id` is `msg_` and this id's 32 hex digits.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub engagement_id: Uuid,
    pub event_type: WebhookEventType,
    pub status: WebhookMessageStatus,
    pub attempts: i32,
    pub next_attempt_at: DateTimeUtc,
    pub lease_until: Option<DateTimeUtc>,
    pub last_response_status: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
