//! certflow's REST API: actix-web handlers over the domain in `entities`, one transaction per command.

pub mod access;
pub mod auth;
pub mod clock_events;
pub mod error;
pub mod idempotency;
pub mod openapi;
pub mod routes;
pub mod startup;
pub mod telemetry;

mod db;
mod fields;
mod lifecycle;
mod pagination;
mod reminders;

pub use startup::{AppState, Application};
