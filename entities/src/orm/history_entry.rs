//! `@generated`-style sea-orm entity: One append-only record of what happened to an engagement.

use crate::domain::state::EngagementState;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "engagement_history")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub engagement_id: Uuid,
    pub action: String,
    pub from_state: Option<EngagementState>,
    pub to_state: Option<EngagementState>,
    pub actor: String,
    pub reason: Option<String>,
    pub evidence: Json,
    pub subject_id: Option<Uuid>,
    pub occurred_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
