//! What the engine is told about an engagement.

use chrono::NaiveDate;
use serde::Serialize;

use crate::domain::stage1::Stage1Readiness;
use crate::domain::state::EngagementState;
use crate::domain::text::EmailAddress;
use crate::domain::{AuditKind, CertificateStatus, StandardVersion, SuspensionCause};

/// The audit a command names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditFacts {
    /// Its kind.
    pub kind: AuditKind,
    /// First day on site (or remote).
    pub first_day: NaiveDate,
    /// Last day: anchors corrective-action windows and limits.
    pub last_day: NaiveDate,
    /// Major NCs it found.
    pub major_ncs: u32,
    /// An event already completed it: it cannot complete another (a new audit is held instead).
    pub completed: bool,
}

/// The engagement's certificate, when it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertificateFacts {
    /// The decision that started the current cycle.
    pub decision_on: NaiveDate,
    /// Expiry of the current term.
    pub expires_on: NaiveDate,
    /// Surveillance audits completed in the current cycle.
    pub surveillances_completed: u32,
    /// The last day of the latest of them.
    pub last_surveillance_on: Option<NaiveDate>,
    /// Its status.
    pub status: CertificateStatus,
}

/// Dates the engagement remembers between events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EngagementMarks {
    /// Last day of the stage 1 audit that found the organization ready.
    pub stage1_ready_on: Option<NaiveDate>,
    /// Last day of the latest stage-2-depth audit (stage 2 or recertification).
    pub stage2_last_day: Option<NaiveDate>,
    /// When the current suspension began.
    pub suspended_on: Option<NaiveDate>,
    /// When the certificate expired.
    pub expired_on: Option<NaiveDate>,
    /// Why the certificate is suspended, while it is (the history keeps it after).
    pub suspension_cause: Option<SuspensionCause>,
}

/// What the engine needs to know about an engagement to decide a command.
#[derive(Debug, Clone, PartialEq)]
pub struct EngagementFacts {
    /// Current state.
    pub state: EngagementState,
    /// The standard certified against.
    pub standard: StandardVersion,
    /// The selected proposal's certification body is accredited (`None`: no proposal selected).
    pub selected_cb_accredited: Option<bool>,
    /// The organization explicitly accepts an unaccredited certification body.
    pub unaccredited_cb_accepted: bool,
    /// Stage 1 readiness (needed by `record_stage1_outcome`).
    pub stage1_readiness: Option<Stage1Readiness>,
    /// The audit the command names.
    pub audit: Option<AuditFacts>,
    /// Major NCs whose correction the CB has not verified.
    pub majors_unverified: u32,
    /// Minor NCs without an accepted plan.
    pub minors_plan_pending: u32,
    /// Everyone who took part in the engagement's audit work: its audits' lead auditors and team
    /// members, who recorded its findings and who verified its corrective actions.
    pub auditors: Vec<EmailAddress>,
    /// The certificate, once issued.
    pub certificate: Option<CertificateFacts>,
    /// Remembered dates.
    pub marks: EngagementMarks,
}
