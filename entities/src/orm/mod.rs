//! sea-orm entities, one file per table: generated shapes, no business logic.

pub mod organization;
pub mod certification_body;
pub mod engagement;
pub mod proposal;
pub mod audit;
pub mod document;
pub mod soa_entry;
pub mod finding;
pub mod corrective_action;
pub mod certification_decision;
pub mod certificate;
pub mod history_entry;
pub mod deadline;
pub mod prelude;
