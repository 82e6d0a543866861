//! The commands the engine decides, and what each event asks of its command.

use chrono::NaiveDate;

use crate::domain::state::EngagementEvent;
use crate::domain::text::{EmailAddress, Narrative};
use crate::domain::{AuditKind, Stage1Outcome, SuspensionCause};

/// A lifecycle command: an event with the facts only the caller can give.
#[derive(Debug, Clone, PartialEq)]
pub enum EngagementCommand {
    /// See [`EngagementEvent::SignEngagementLetter`].
    SignEngagementLetter {
        /// The day the letter was signed.
        signed_on: NaiveDate,
        /// Hold a pre-audit (gap assessment) before stage 1.
        include_pre_audit: bool,
    },
    /// See [`EngagementEvent::CompletePreAudit`].
    CompletePreAudit,
    /// See [`EngagementEvent::RecordStage1Outcome`].
    RecordStage1Outcome {
        /// Ready for stage 2, or not.
        outcome: Stage1Outcome,
    },
    /// See [`EngagementEvent::RepeatStage1`].
    RepeatStage1,
    /// See [`EngagementEvent::CompleteStage2`].
    CompleteStage2 {
        /// The coordinator's confirmation that a stage 1 result older than the policy allows is
        /// still valid, with the reason.
        stage1_still_valid: Option<Narrative>,
    },
    /// See [`EngagementEvent::RequestDecision`].
    RequestDecision,
    /// See [`EngagementEvent::RequireNewStage2`].
    RequireNewStage2,
    /// See [`EngagementEvent::GrantCertification`].
    GrantCertification {
        /// The decision panel member deciding.
        decision_maker: EmailAddress,
    },
    /// See [`EngagementEvent::RefuseCertification`].
    RefuseCertification {
        /// The decision panel member deciding.
        decision_maker: EmailAddress,
        /// Close the engagement instead of returning to stage 2.
        close_engagement: bool,
    },
    /// See [`EngagementEvent::StartSurveillance`].
    StartSurveillance,
    /// See [`EngagementEvent::CompleteSurveillance`].
    CompleteSurveillance,
    /// See [`EngagementEvent::StartRecertification`].
    StartRecertification,
    /// See [`EngagementEvent::CompleteRecertification`].
    CompleteRecertification,
    /// See [`EngagementEvent::Suspend`].
    Suspend {
        /// The cause: a missed audit, a failure of the ISMS, or the client's request.
        cause: SuspensionCause,
    },
    /// See [`EngagementEvent::Restore`].
    Restore,
    /// See [`EngagementEvent::Withdraw`].
    Withdraw,
    /// See [`EngagementEvent::AmendCertificate`].
    AmendCertificate,
    /// See [`EngagementEvent::ChangeScope`].
    ChangeScope {
        /// The scope to certify from now on.
        scope: Narrative,
    },
    /// See [`EngagementEvent::ReduceScope`].
    ReduceScope {
        /// The narrower scope the certificate states from now on.
        scope: Narrative,
    },
    /// See [`EngagementEvent::Expire`].
    Expire,
    /// See [`EngagementEvent::RestoreAfterExpiry`].
    RestoreAfterExpiry,
    /// See [`EngagementEvent::RestartAtStage2`].
    RestartAtStage2,
    /// See [`EngagementEvent::Cancel`].
    Cancel,
}

impl EngagementCommand {
    /// The event this command fires.
    pub fn event(&self) -> EngagementEvent {
        use EngagementEvent as E;
        match self {
            Self::SignEngagementLetter { .. } => E::SignEngagementLetter,
            Self::CompletePreAudit => E::CompletePreAudit,
            Self::RecordStage1Outcome { .. } => E::RecordStage1Outcome,
            Self::RepeatStage1 => E::RepeatStage1,
            Self::CompleteStage2 { .. } => E::CompleteStage2,
            Self::RequestDecision => E::RequestDecision,
            Self::RequireNewStage2 => E::RequireNewStage2,
            Self::GrantCertification { .. } => E::GrantCertification,
            Self::RefuseCertification { .. } => E::RefuseCertification,
            Self::StartSurveillance => E::StartSurveillance,
            Self::CompleteSurveillance => E::CompleteSurveillance,
            Self::StartRecertification => E::StartRecertification,
            Self::CompleteRecertification => E::CompleteRecertification,
            Self::Suspend { .. } => E::Suspend,
            Self::Restore => E::Restore,
            Self::Withdraw => E::Withdraw,
            Self::ReduceScope { .. } => E::ReduceScope,
            Self::ChangeScope { .. } => E::ChangeScope,
            Self::AmendCertificate => E::AmendCertificate,
            Self::Expire => E::Expire,
            Self::RestoreAfterExpiry => E::RestoreAfterExpiry,
            Self::RestartAtStage2 => E::RestartAtStage2,
            Self::Cancel => E::Cancel,
        }
    }
}

impl EngagementEvent {
    /// The audit this event completes, which the command must name.
    pub fn completes_audit(self) -> Option<AuditKind> {
        match self {
            Self::CompletePreAudit => Some(AuditKind::PreAudit),
            Self::RecordStage1Outcome => Some(AuditKind::Stage1),
            Self::CompleteStage2 => Some(AuditKind::Stage2),
            Self::CompleteSurveillance => Some(AuditKind::Surveillance),
            Self::CompleteRecertification => Some(AuditKind::Recertification),
            _ => None,
        }
    }

    /// Events that must say why.
    pub fn requires_reason(self) -> bool {
        matches!(
            self,
            Self::RepeatStage1
                | Self::RequireNewStage2
                | Self::RefuseCertification
                | Self::Suspend
                | Self::Restore
                | Self::Withdraw
                | Self::ReduceScope
                | Self::ChangeScope
                | Self::AmendCertificate
                | Self::RestoreAfterExpiry
                | Self::RestartAtStage2
                | Self::Cancel
        )
    }
}
