//! The corrective action plan: one corrective action per nonconformity, due 30–90 days after the
//! audit, verified by the certification body.

use utoipa_actix_web::service_config::ServiceConfig;

mod complete;
mod create;
mod list;
mod plan;
mod update;
mod verify;

pub use create::submit_corrective_action;
pub use plan::{CorrectiveActionRequest, CorrectiveActionView, VerificationRequest};

/// Registers the routes.
pub fn configure(config: &mut ServiceConfig<'_>) {
    config
        .service(create::create_corrective_action)
        .service(list::list_corrective_actions)
        .service(update::update_corrective_action)
        .service(verify::verify_corrective_action)
        .service(complete::complete_corrective_action);
}
