//! Why the engine refused a command.

use serde::Serialize;

use crate::domain::state::{EngagementEvent, EngagementState};

/// Why a guard refused a command: a stable `code` and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GuardViolation {
    /// Stable, snake_case.
    pub code: &'static str,
    /// What is wrong and what would make it right.
    pub detail: String,
}

impl GuardViolation {
    pub(super) fn new(code: &'static str, detail: impl Into<String>) -> Self {
        Self { code, detail: detail.into() }
    }
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionRefusal {
    /// The current state does not allow the event.
    #[error("the event '{event}' is not allowed in state '{state}'")]
    NotAllowed {
        /// Current state.
        state: EngagementState,
        /// The event refused.
        event: EngagementEvent,
        /// What the state allows.
        allowed: Vec<EngagementEvent>,
    },
    /// The state allows the event, but the facts do not.
    #[error("the event '{event}' is refused in state '{state}': {}", violations.iter().map(|v| v.detail.as_str()).collect::<Vec<_>>().join("; "))]
    GuardFailed {
        /// Current state.
        state: EngagementState,
        /// The event refused.
        event: EngagementEvent,
        /// Every rule the facts break.
        violations: Vec<GuardViolation>,
    },
}
