//! Dated obligations: what they are, who owns them, where they stand.

use chrono::NaiveDate;

vocabulary! {
    /// The kinds of dated obligation an engagement carries.
    pub enum DeadlineKind {
        /// Stage 2 must start before a stage 1 "ready" result lapses (policy, default 6 months).
        Stage1Validity,
        /// A nonconformity's corrective-action plan is due (CB policy per grade, from the audit's
        /// last day): opened the moment its audit completes, whether or not the client answers.
        CorrectiveActionPlanDue,
        /// A corrective action is due (its plan's own date, 30–90 days after the audit).
        CorrectiveActionDue,
        /// The client reported a corrective action done: the certification body's verification is
        /// the pending step.
        CorrectiveActionVerification,
        /// Every major NC must be verified within 6 months of the audit's last day.
        MajorNcLimit,
        /// A surveillance audit is due (12 months after the decision, then yearly).
        SurveillanceDue,
        /// The certificate expires: recertification must be decided before.
        CertificateExpiry,
        /// A suspension must be resolved (policy, default 6 months).
        SuspensionLimit,
        /// Certification can be restored within 6 months of expiry.
        RestoreAfterExpiryLimit,
    }
}

vocabulary! {
    /// Where a deadline stands.
    pub enum DeadlineStatus {
        /// Still to be met: reminders and escalations run.
        Open,
        /// Met in time or closed by the event that fulfils it.
        Met,
        /// No longer applies (the engagement moved on, was cancelled, or the deadline was replaced).
        Cancelled,
    }
}

vocabulary! {
    /// Who owns a deadline, by role in the engagement.
    pub enum DeadlineOwner {
        /// The owner named on the corrective action.
        CorrectiveActionOwner,
        /// The client's manager of the engagement.
        EngagementManager,
        /// The certification body's coordinator.
        CbCoordinator,
    }
}

/// A deadline a transition opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeadlineToOpen {
    /// What is due.
    pub kind: DeadlineKind,
    /// The last day.
    pub due_on: NaiveDate,
    /// Who owns it.
    pub owner: DeadlineOwner,
}

/// A change a transition makes to the open deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineChange {
    /// Open a new deadline.
    Open(DeadlineToOpen),
    /// Close every open deadline of this kind with this status.
    Close(DeadlineKind, DeadlineStatus),
    /// Close every open deadline of the engagement (it ended, or its certificate did).
    CancelAll,
}

impl DeadlineChange {
    /// Open a deadline of `kind`, due on `due_on`, owned by `owner`.
    pub fn open(kind: DeadlineKind, due_on: NaiveDate, owner: DeadlineOwner) -> Self {
        Self::Open(DeadlineToOpen { kind, due_on, owner })
    }
}
