//! The rules of an ISO/IEC 27001 certification engagement: pure functions, no I/O.

#[macro_use]
mod vocabulary;

pub mod audit_time;
pub mod contacts;
pub mod dates;
pub mod deadline;
pub mod finding;
pub mod lifecycle;
pub mod people;
pub mod policy;
pub mod reminders;
pub mod revocation;
pub mod soa;
pub mod stage1;
pub mod state;
pub mod text;
pub mod verification;
pub mod webhooks;

pub use vocabulary::*;
