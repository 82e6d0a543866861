//! `@generated`-style sea-orm entity: A dated obligation with an owner.

use crate::domain::deadline::DeadlineKind;
use crate::domain::deadline::DeadlineOwner;
use crate::domain::deadline::DeadlineStatus;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "deadlines")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub engagement_id: Uuid,
    pub kind: DeadlineKind,
    pub subject_id: Option<Uuid>,
    pub due_on: Date,
    pub owner: DeadlineOwner,
    pub owner_email: String,
    pub status: DeadlineStatus,
    pub created_at: DateTimeUtc,
    pub closed_at: Option<DateTimeUtc>,
    pub next_step_on: Option<Date>,
    /// The certification body of the engagement (kept by the write path): the body's portfolio
    /// reads its deadlines from one index range.
    pub certification_body_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
