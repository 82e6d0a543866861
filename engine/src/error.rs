//! The engine's one error type: every way a command can be refused or fail, in the domain's
//! words. The API maps it to a problem in one `From`; the worker logs it.

use entities::domain::dates::CapDueError;
use entities::domain::finding::FollowUpRefusal;
use entities::domain::lifecycle::TransitionRefusal;
use entities::domain::verification::VerificationRefusal;
use sea_orm::DbErr;

use crate::fault::{StorageFault, Unavailability};

/// Everything a command can end in other than success.
#[derive(thiserror::Error)]
pub enum EngineError {
    /// The resource does not exist, or is outside the caller's scope (never told apart).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The caller sees the resource but its role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// One value of the command breaks a rule that needs the stored facts to check.
    #[error("{field}: {detail}")]
    Invalid {
        /// The field, as the caller spelled it.
        field: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// The command conflicts with the resource's current state.
    #[error("{detail}")]
    Conflict {
        /// Stable slug of the conflict.
        slug: &'static str,
        /// What conflicts.
        detail: String,
    },
    /// The caller expected another version of the resource than the current one.
    #[error("the resource is at version {current}, not {expected}: reload it and try again")]
    PreconditionFailed {
        /// The version the caller expected.
        expected: i32,
        /// The current version.
        current: i32,
    },
    /// The command is well formed but cannot be carried out as sent (a stable slug says why).
    #[error("{detail}")]
    Unprocessable {
        /// Stable slug.
        slug: &'static str,
        /// What is wrong.
        detail: String,
    },
    /// A corrective action's due date outside the 30–90 day window.
    #[error(transparent)]
    CapDueDate(#[from] CapDueError),
    /// The lifecycle refused an event.
    #[error(transparent)]
    Transition(#[from] TransitionRefusal),
    /// The database cannot serve the command now (down, busy, or its storage refuses writes).
    #[error("{reason}")]
    Unavailable {
        /// Why, in the words the caller reads.
        reason: Unavailability,
        /// The database's own error.
        #[source]
        source: anyhow::Error,
    },
    /// Anything else: a bug or an infrastructure failure.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl std::fmt::Debug for EngineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        error_chain_fmt(self, f)
    }
}

/// An error and every cause under it, one a line: what the logs of a 5xx or a failed job need.
pub fn error_chain_fmt(error: &dyn std::error::Error, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    writeln!(f, "{error}")?;
    for cause in std::iter::successors(error.source(), |cause| cause.source()) {
        writeln!(f, "Caused by: {cause}")?;
    }
    Ok(())
}

impl EngineError {
    /// A conflict with the resource's state.
    pub fn conflict(slug: &'static str, detail: impl Into<String>) -> Self {
        Self::Conflict { slug, detail: detail.into() }
    }

    /// The database does not answer at all (whatever the error says).
    pub fn unreachable(error: DbErr) -> Self {
        Self::Unavailable { reason: Unavailability::Unreachable, source: error.into() }
    }
}

impl From<DbErr> for EngineError {
    fn from(error: DbErr) -> Self {
        match StorageFault::of(&error) {
            Some(StorageFault::Unavailable(reason)) => Self::Unavailable { reason, source: error.into() },
            // The database's own words stay in the log: a problem never echoes them.
            Some(StorageFault::ValueNotStorable(message)) => {
                tracing::warn!(%message, "the database refused a value");
                Self::Unprocessable {
                    slug: "value-not-storable",
                    detail: "a value in the request cannot be stored (e.g. a NUL character in a text, or a date the \
                             database cannot hold); nothing was written"
                        .into(),
                }
            }
            None => Self::Unexpected(anyhow::Error::new(error).context("Failed to query the database")),
        }
    }
}

impl From<VerificationRefusal> for EngineError {
    fn from(refusal: VerificationRefusal) -> Self {
        match refusal {
            VerificationRefusal::NotAVerdict => Self::Invalid { field: "outcome", detail: refusal.to_string() },
            _ => Self::Conflict { slug: refusal.code(), detail: refusal.to_string() },
        }
    }
}

impl From<FollowUpRefusal> for EngineError {
    fn from(refusal: FollowUpRefusal) -> Self {
        match refusal {
            FollowUpRefusal::NotAwaitingFollowUp => {
                Self::Conflict { slug: refusal.code(), detail: refusal.to_string() }
            }
            _ => Self::Invalid { field: "audit_id", detail: refusal.to_string() },
        }
    }
}
