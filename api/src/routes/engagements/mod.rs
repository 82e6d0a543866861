//! Engagements: create, read, list, and move through the lifecycle.

use utoipa_actix_web::service_config::ServiceConfig;

mod create;
mod events;
mod get;
mod list;
mod view;

pub use create::EngagementRequest;
pub use events::{EventDetails, EventRequest, count_transition, fire_request};
pub use list::EngagementListQuery;
pub use view::{DeadlineView, EngagementView};

/// Registers the routes.
pub fn configure(config: &mut ServiceConfig<'_>) {
    config
        .service(create::create_engagement)
        .service(list::list_engagements)
        .service(get::get_engagement)
        .service(events::post_engagement_event);
}
