//! `@generated`-style sea-orm entity: A CB's proposal for an engagement.

use crate::domain::ProposalStatus;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "proposals")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub engagement_id: Uuid,
    pub certification_body_id: Uuid,
    pub price_minor: i64,
    pub currency: String,
    pub audit_days: f64,
    pub proposed_start_on: Option<Date>,
    pub status: ProposalStatus,
    pub notes: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
