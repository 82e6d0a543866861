//! `@generated`-style sea-orm entity: an integration's webhook endpoint (see `domain::webhooks`).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, serde::Serialize, serde::Deserialize)]
#[sea_orm(table_name = "webhook_endpoints")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The owner, when an organization owns it.
    pub organization_id: Option<Uuid>,
    /// The owner, when a certification body owns it.
    pub certification_body_id: Option<Uuid>,
    pub url: String,
    pub description: String,
    /// The event types it wants, as a JSON list of their names (empty: every type).
    pub event_types: Json,
    pub enabled: bool,
    pub disabled_reason: Option<String>,
    /// `whsec_…`: never shown again after its creation or rotation.
    pub secret: String,
    /// The secret a rotation replaced, still signing until `previous_secret_expires_at`.
    pub previous_secret: Option<String>,
    pub previous_secret_expires_at: Option<DateTimeUtc>,
    /// Since when every attempt to it has failed (`None`: its last attempt succeeded).
    pub failing_since: Option<DateTimeUtc>,
    pub version: i32,
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
