//! `@generated`-style sea-orm entity: The certificate of an engagement, renewed for each term.

use crate::domain::CertificateStatus;
use crate::domain::StandardVersion;
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "certificates")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub engagement_id: Uuid,
    pub number: String,
    pub scope: String,
    pub standard: StandardVersion,
    pub issued_on: Date,
    pub decision_on: Date,
    pub expires_on: Date,
    pub status: CertificateStatus,
    pub surveillances_completed: i32,
    pub last_surveillance_on: Option<Date>,
    pub organization_name: Option<String>,
    pub certification_body_name: Option<String>,
    pub accreditation_body: Option<String>,
    pub first_issued_on: Option<Date>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
