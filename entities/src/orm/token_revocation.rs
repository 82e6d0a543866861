//! `@generated`-style sea-orm entity: a token revocation (see `domain::revocation`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "token_revocations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub token_id: Option<String>,
    pub subject: Option<String>,
    pub issued_before: Option<DateTimeUtc>,
    pub reason: Option<String>,
    pub revoked_by: String,
    pub revoked_at: DateTimeUtc,
    pub keep_until: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
