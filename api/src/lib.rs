//! certflow's REST API: actix-web handlers that parse requests into domain types and go through
//! the engine (`engine`) for every read of scope and every write.

pub mod auth;
pub mod error;
pub mod idempotency;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod rate_limit;
pub mod request_id;
pub mod revocations;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;

mod fields;
mod pagination;
mod preconditions;

pub use startup::Application;
pub use state::AppState;
