//! `@generated`-style sea-orm entity: A certification body's reminder and escalation schedules.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "reminder_policies")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub certification_body_id: Uuid,
    pub policy: Json,
    pub version: i32,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
