//! `@generated`-style sea-orm entity: An audit finding: major NC, minor NC or OFI.

use crate::domain::FindingGrade;
use crate::domain::FindingStatus;
use crate::domain::FollowUpOutcome;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "findings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub engagement_id: Uuid,
    pub audit_id: Uuid,
    pub grade: FindingGrade,
    pub reference: String,
    pub description: String,
    pub status: FindingStatus,
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub closed_at: Option<DateTimeUtc>,
    pub follow_up_audit_id: Option<Uuid>,
    pub follow_up_outcome: Option<FollowUpOutcome>,
    pub follow_up_note: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
