//! Whom certflow may email for an engagement: the organization's registered email domains and,
//! once one is selected, the certification body's coordinator (its registered address, not its
//! domain).

use entities::domain::contacts::{ContactRefusal, check_contact, registered_domains};
use entities::orm::{certification_body, engagement, organization, prelude::*, strings_of};
use sea_orm::{ConnectionTrait, EntityTrait, QuerySelect};

use crate::error::EngineError;

/// The domains certflow may email for `organization`.
pub fn organization_domains(organization: &organization::Model) -> Vec<String> {
    let explicit = organization.email_domains.as_ref().map(strings_of).unwrap_or_default();
    registered_domains(&explicit, &organization.isms_manager_email, &organization.executive_email)
}

/// The refusal of `field`'s address, as the engine's error.
pub fn refused(field: &str, refusal: &ContactRefusal) -> EngineError {
    EngineError::Unprocessable { slug: refusal.code(), detail: format!("{field}: {refusal}") }
}

/// Refuses `address` (the value of `field`) unless certflow may email it for `engagement`.
pub async fn check_engagement_contact(
    db: &impl ConnectionTrait,
    engagement: &engagement::Model,
    field: &str,
    address: &str,
) -> Result<(), EngineError> {
    let organization = Organization::find_by_id(engagement.organization_id)
        .one(db)
        .await?
        .ok_or(EngineError::NotFound("organization"))?;
    let body_people = match engagement.certification_body_id {
        Some(id) => CertificationBody::find_by_id(id)
            .select_only()
            .column(certification_body::Column::CoordinatorEmail)
            .into_tuple::<String>()
            .one(db)
            .await?
            .into_iter()
            .collect(),
        None => Vec::new(),
    };
    check_contact(address, &organization_domains(&organization), &body_people).map_err(|r| refused(field, &r))
}

/// Refuses `address` (the value of `field`) unless it is on organization `id`'s domains (no body
/// is selected yet).
pub async fn check_organization_contact(
    db: &impl ConnectionTrait,
    id: uuid::Uuid,
    field: &str,
    address: &str,
) -> Result<(), EngineError> {
    let organization = Organization::find_by_id(id).one(db).await?.ok_or(EngineError::NotFound("organization"))?;
    check_contact(address, &organization_domains(&organization), &[]).map_err(|r| refused(field, &r))
}
