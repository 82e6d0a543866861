//! A decided transition: the new state, the dates remembered, and the changes to write.

use chrono::NaiveDate;

use crate::domain::deadline::{DeadlineChange, DeadlineKind, DeadlineOwner};
use crate::domain::state::{EngagementEvent, EngagementState};
use crate::domain::{CertificateStatus, DecisionOutcome};

use super::facts::EngagementMarks;

/// A change to the engagement's certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateChange {
    /// Issue the certificate, or renew it for a new term.
    Issue {
        /// The decision date: the new cycle starts here.
        decision_on: NaiveDate,
        /// Expiry of the new term.
        expires_on: NaiveDate,
    },
    /// Change its status.
    SetStatus(CertificateStatus),
    /// Count one more surveillance audit in the cycle, held until `held_on`.
    SurveillanceCompleted {
        /// The audit's last day.
        held_on: NaiveDate,
    },
    /// The certified scope narrowed (to the command's scope); active, also after a suspension.
    ScopeReduced,
    /// What it states of the organization and the body amended to their records as they stand.
    Amended,
    /// Active again after a suspension for a missed audit, counting the surveillance audit that
    /// was missed, held until `held_on`.
    RestoredWithSurveillance {
        /// The audit's last day.
        held_on: NaiveDate,
    },
}

/// A decided transition: everything the shell writes in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct TransitionOutcome {
    /// The state before.
    pub from: EngagementState,
    /// The state after.
    pub to: EngagementState,
    /// The event fired.
    pub event: EngagementEvent,
    /// The engagement's remembered dates after the transition.
    pub marks: EngagementMarks,
    /// Deadlines to open and close, in order.
    pub deadlines: Vec<DeadlineChange>,
    /// The change to the certificate, if any.
    pub certificate: Option<CertificateChange>,
    /// The certification decision to record, if any.
    pub decision: Option<DecisionOutcome>,
    /// The audit the command names is completed by this transition.
    pub audit_completed: bool,
    /// The parties are told at once (a notice, not a reminder), with the deadline of this kind
    /// the transition opened: a suspension names the day it must be resolved by.
    pub notice_with: Option<DeadlineKind>,
}

pub(super) fn open(kind: DeadlineKind, due_on: NaiveDate, owner: DeadlineOwner) -> DeadlineChange {
    DeadlineChange::open(kind, due_on, owner)
}
