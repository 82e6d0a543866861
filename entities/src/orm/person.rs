//! `@generated`-style sea-orm entity: a person of the directory (see `domain::people`).

use sea_orm::entity::prelude::*;

use crate::domain::people::PersonRole;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "people")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Lower-cased: one person per address.
    #[sea_orm(unique)]
    pub email: String,
    pub name: String,
    pub role: PersonRole,
    pub organization_id: Option<Uuid>,
    pub certification_body_id: Option<Uuid>,
    /// Bumped to rotate the person's calendar feed addresses.
    pub calendar_generation: i32,
    pub version: i32,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
