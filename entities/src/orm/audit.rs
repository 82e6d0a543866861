//! `@generated`-style sea-orm entity: An audit of an engagement (pre-audit, stage 1, stage 2, surveillance, recertification).

use crate::domain::AuditKind;
use crate::domain::Stage1Outcome;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "audits")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub engagement_id: Uuid,
    pub kind: AuditKind,
    pub first_day: Date,
    pub last_day: Date,
    pub lead_auditor: String,
    pub audit_team: Json,
    pub stage1_outcome: Option<Stage1Outcome>,
    pub gaps: Json,
    pub completed_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// The certification body of its engagement (kept by the write path).
    pub certification_body_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
