//! Every route, registered once together with its OpenAPI description.

use actix_web::dev::{ServiceFactory, ServiceRequest};
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_actix_web::{UtoipaApp, scope};

use crate::openapi::{ApiDoc, finish};

pub mod audit_time;
pub mod audits;
pub mod certificates;
pub mod certification_bodies;
pub mod certification_policies;
pub mod corrective_actions;
pub mod documents;
pub mod engagements;
pub mod findings;
pub mod health;
pub mod notifications;
pub mod organizations;
pub mod people;
pub mod proposals;
pub mod records;
pub mod reminder_policies;
pub mod token_revocations;
pub mod webhook_endpoints;

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
    certification_policies::configure(config);
    notifications::configure(config);
    token_revocations::configure(config);
    people::configure(config);
    webhook_endpoints::configure(config);
}

/// Registers every documented route on `app`: the one list the server and the spec share.
pub fn register_routes<T>(app: UtoipaApp<T>) -> UtoipaApp<T>
where
    T: ServiceFactory<ServiceRequest, Config = (), Error = actix_web::Error, InitError = ()>,
{
    use utoipa::OpenApi;
    app.openapi(ApiDoc::openapi())
        .service(health::healthz)
        .service(health::readyz)
        .service(scope::scope("/api/v1").configure(configure))
}

/// The whole OpenAPI document, from the same registration the server uses.
pub fn document() -> utoipa::openapi::OpenApi {
    use utoipa_actix_web::AppExt;
    finish(register_routes(actix_web::App::new().into_utoipa_app()).split_for_parts().1)
}
