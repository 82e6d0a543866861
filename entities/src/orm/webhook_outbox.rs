//! `@generated`-style sea-orm entity: the outbox's queue, one row per event not yet made into
//! messages, inserted with the event by the change's own transaction and deleted by the dispatch
//! that makes its messages.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "webhook_outbox")]
pub struct Model {
    /// The event waiting (`webhook_events.id`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub event_id: Uuid,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
