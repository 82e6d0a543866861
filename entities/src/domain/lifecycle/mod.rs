//! The lifecycle engine: given an engagement's facts and a command, decide the transition or refuse it.
//!
//! `decide` runs the guards every event shares, then hands the command to the rules of its phase.

mod command;
mod decide;
mod facts;
mod guards;
mod outcome;
mod refusal;

mod audits;
mod cancellation;
mod corrective_actions;
mod decision;
mod expiry;
mod selection;
mod surveillance;
mod suspension;

pub use command::EngagementCommand;
pub use decide::decide;
pub use facts::{AuditFacts, CertificateFacts, EngagementFacts, EngagementMarks};
pub use outcome::{CertificateChange, TransitionOutcome};
pub use refusal::{GuardViolation, TransitionRefusal};

#[cfg(test)]
mod tests;
