//! Every route, registered once together with its OpenAPI description.

use utoipa_actix_web::service_config::ServiceConfig;

pub mod audit_time;
pub mod audits;
pub mod certificates;
pub mod certification_bodies;
pub mod corrective_actions;
pub mod documents;
pub mod engagements;
pub mod findings;
pub mod health;
pub mod notifications;
pub mod organizations;
pub mod proposals;
pub mod records;
pub mod reminder_policies;

/// Registers the `/api/v1` routes.
pub fn configure(config: &mut ServiceConfig<'_>) {
    organizations::configure(config);
    certification_bodies::configure(config);
    engagements::configure(config);
    proposals::configure(config);
    audits::configure(config);
    documents::configure(config);
    findings::configure(config);
    corrective_actions::configure(config);
    certificates::configure(config);
    records::configure(config);
    audit_time::configure(config);
    reminder_policies::configure(config);
    notifications::configure(config);
}
