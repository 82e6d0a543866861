//! `@generated`-style sea-orm entity: the events, one row per event, written by the change's own
//! transaction and never updated (the queue of those not yet dispatched is `webhook_outbox`).

use sea_orm::entity::prelude::*;

use crate::domain::webhooks::WebhookEventType;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "webhook_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub engagement_id: Uuid,
    pub organization_id: Uuid,
    pub certification_body_id: Option<Uuid>,
    /// The event's place in its engagement's order, from 1.
    pub sequence: i64,
    pub event_type: WebhookEventType,
    /// The subject (`domain::webhooks::EventSubject`), as JSON.
    pub data: Json,
    pub occurred_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
