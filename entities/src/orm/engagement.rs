//! `@generated`-style sea-orm entity: One certification engagement between an organization and a CB.

use crate::domain::state::EngagementState;
use crate::domain::{StandardVersion, SuspensionCause};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "engagements")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub organization_id: Uuid,
    pub certification_body_id: Option<Uuid>,
    pub standard: StandardVersion,
    pub state: EngagementState,
    pub manager_email: String,
    pub engagement_letter_signed_on: Option<Date>,
    pub stage1_ready_on: Option<Date>,
    pub stage2_last_day: Option<Date>,
    pub suspended_on: Option<Date>,
    pub expired_on: Option<Date>,
    pub suspension_cause: Option<SuspensionCause>,
    pub scope: Option<String>,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
