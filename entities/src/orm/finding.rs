//! `@generated`-style sea-orm entity: An audit finding: major NC, minor NC or OFI.

use crate::domain::FindingGrade;
use crate::domain::FindingStatus;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
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
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
