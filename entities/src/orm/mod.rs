//! sea-orm entities, one file per table: generated shapes, no business logic.

pub mod audit;
pub mod certificate;
pub mod certification_body;
pub mod certification_decision;
pub mod corrective_action;
pub mod deadline;
pub mod document;
pub mod engagement;
pub mod finding;
pub mod history_entry;
pub mod idempotency_key;
pub mod notification;
pub mod organization;
pub mod prelude;
pub mod proposal;
pub mod reminder_policy;
pub mod soa_entry;
