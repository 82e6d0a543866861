//! Who runs a command: a person or a service account with a verified token, or the clock.

use uuid::Uuid;

use crate::access::{Action, Party, Tenancy, permits};
use crate::error::EngineError;

/// Who the history names for the events the clock fires.
pub const CLOCK_ACTOR: &str = "certflow-clock";

/// The caller of a command, as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// Who (the token's `sub`): the actor the history records.
    pub subject: String,
    /// What the caller may do.
    pub party: Party,
    /// What the caller sees.
    pub tenancy: Tenancy,
}

impl Caller {
    /// The clock, as the caller of the events it fires: it sees every engagement.
    pub fn clock() -> Self {
        Self { subject: CLOCK_ACTOR.to_owned(), party: Party::Admin, tenancy: Tenancy::Platform }
    }

    /// The whole caller, as one string: its role, what it sees, and who it is. Two tokens that
    /// share a subject but differ in role or scope are two callers (their idempotency keys, for
    /// one, are apart).
    pub fn identity(&self) -> String {
        let tenancy = match self.tenancy {
            Tenancy::Platform => "platform".to_owned(),
            Tenancy::CertificationBody(id) => format!("certification_body:{id}"),
            Tenancy::Organization(id) => format!("organization:{id}"),
        };
        format!("{}|{tenancy}|{}", self.party, self.subject)
    }

    /// Refuses (403) an action the caller's role may not take.
    pub fn may(&self, action: Action) -> Result<(), EngineError> {
        if permits(self.party, action) {
            Ok(())
        } else {
            tracing::debug!(subject = %self.subject, party = %self.party, %action, "forbidden");
            Err(EngineError::Forbidden(format!("a {} may not {action}", self.party)))
        }
    }

    /// Refuses (403) an action on certification body `id` unless the caller's role may take it
    /// and the caller is that body's (or the platform's).
    pub fn may_for_certification_body(&self, action: Action, id: Uuid) -> Result<(), EngineError> {
        self.may(action)?;
        match self.tenancy {
            Tenancy::Platform => Ok(()),
            Tenancy::CertificationBody(own) if own == id => Ok(()),
            _ => Err(EngineError::Forbidden(format!("only that certification body's people may {action}"))),
        }
    }
}
