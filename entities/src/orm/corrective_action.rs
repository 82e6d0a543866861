//! `@generated`-style sea-orm entity: The corrective action for one nonconformity.

use crate::domain::VerificationStatus;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "corrective_actions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub engagement_id: Uuid,
    pub finding_id: Uuid,
    pub root_cause: String,
    pub correction: String,
    pub corrective_action: String,
    pub owner_email: String,
    pub due_on: Date,
    pub evidence: Json,
    pub verification: VerificationStatus,
    pub verification_note: Option<String>,
    pub verified_by: Option<String>,
    pub verified_at: Option<DateTimeUtc>,
    pub reported_done_at: Option<DateTimeUtc>,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
