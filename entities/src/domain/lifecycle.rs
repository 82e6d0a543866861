//! The lifecycle engine: given an engagement's facts and a command, decide the transition or refuse it.

use chrono::NaiveDate;
use serde::Serialize;

use super::dates::{
    add_months, certificate_expiry, major_nc_limit, restore_after_expiry_limit, stage1_valid_until,
    standard_accepted_for_audit, standard_accepted_for_certificate, surveillance_due, suspension_limit,
};
use super::deadline::{DeadlineChange, DeadlineKind, DeadlineOwner, DeadlineStatus, DeadlineToOpen};
use super::policy::CertificationPolicy;
use super::stage1::Stage1Readiness;
use super::state::{EngagementEvent, EngagementState};
use super::text::{EmailAddress, Narrative};
use super::{AuditKind, CertificateStatus, DecisionOutcome, Stage1Outcome, StandardVersion, SuspensionCause};

use EngagementState as S;

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
        /// Why.
        cause: SuspensionCause,
    },
    /// See [`EngagementEvent::Restore`].
    Restore,
    /// See [`EngagementEvent::Withdraw`].
    Withdraw,
    /// See [`EngagementEvent::Expire`].
    Expire,
    /// See [`EngagementEvent::RestoreAfterExpiry`].
    RestoreAfterExpiry,
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
            Self::Expire => E::Expire,
            Self::RestoreAfterExpiry => E::RestoreAfterExpiry,
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
                | Self::RestoreAfterExpiry
                | Self::Cancel
        )
    }
}

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
    /// Everyone who audited this engagement (lead auditors and team members).
    pub auditors: Vec<EmailAddress>,
    /// The certificate, once issued.
    pub certificate: Option<CertificateFacts>,
    /// Remembered dates.
    pub marks: EngagementMarks,
}

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
    /// Count one more surveillance audit in the cycle.
    SurveillanceCompleted,
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
}

/// Why a guard refused a command: a stable `code` and a sentence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct GuardViolation {
    /// Stable, snake_case.
    pub code: &'static str,
    /// What is wrong and what would make it right.
    pub detail: String,
}

impl GuardViolation {
    fn new(code: &'static str, detail: impl Into<String>) -> Self {
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

/// Decides `command` for an engagement with `facts` on `today`, under `policy`.
pub fn decide(
    facts: &EngagementFacts,
    command: &EngagementCommand,
    reason: Option<&Narrative>,
    today: NaiveDate,
    policy: &CertificationPolicy,
) -> Result<TransitionOutcome, TransitionRefusal> {
    let event = command.event();
    let state = facts.state;
    if state.targets(event).is_none() {
        return Err(TransitionRefusal::NotAllowed { state, event, allowed: state.allowed_events() });
    }
    let mut check = Guards::default();
    if event.requires_reason() && reason.is_none() {
        check.fail("reason_required", format!("'{event}' must say why: give a reason"));
    }
    if let Some(kind) = event.completes_audit() {
        check.audit(facts.audit, kind, today);
    }
    let mut outcome = TransitionOutcome {
        from: state,
        to: state,
        event,
        marks: facts.marks,
        deadlines: Vec::new(),
        certificate: None,
        decision: None,
    };
    apply(facts, command, today, policy, &mut check, &mut outcome);
    if check.violations.is_empty() {
        debug_assert!(state.targets(event).is_some_and(|to| to.contains(&outcome.to)));
        Ok(outcome)
    } else {
        Err(TransitionRefusal::GuardFailed { state, event, violations: check.violations })
    }
}

#[derive(Default)]
struct Guards {
    violations: Vec<GuardViolation>,
}

impl Guards {
    fn fail(&mut self, code: &'static str, detail: impl Into<String>) {
        self.violations.push(GuardViolation::new(code, detail));
    }

    fn require(&mut self, ok: bool, code: &'static str, detail: impl FnOnce() -> String) {
        if !ok {
            self.fail(code, detail());
        }
    }

    fn audit(&mut self, audit: Option<AuditFacts>, kind: AuditKind, today: NaiveDate) {
        match audit {
            None => self.fail("audit_required", format!("name the {kind} audit this event completes (audit_id)")),
            Some(audit) if audit.kind != kind => {
                self.fail("wrong_audit_kind", format!("the audit named is a {} audit, not a {kind} audit", audit.kind))
            }
            Some(audit) if audit.completed => self.fail(
                "audit_already_completed",
                format!("the {kind} audit named was already completed by an earlier event: plan and hold a new one"),
            ),
            Some(audit) => self.require(audit.last_day <= today, "audit_not_finished", || {
                format!("the {kind} audit ends on {}: it can be completed from that day", audit.last_day)
            }),
        }
    }

    fn certificate(&mut self, facts: &EngagementFacts) -> CertificateFacts {
        match facts.certificate {
            Some(certificate) => certificate,
            None => {
                self.fail("no_certificate", "the engagement has no certificate");
                CertificateFacts { decision_on: NaiveDate::MIN, expires_on: NaiveDate::MIN, surveillances_completed: 0 }
            }
        }
    }

    fn impartial(&mut self, facts: &EngagementFacts, decision_maker: &EmailAddress) {
        self.require(!facts.auditors.contains(decision_maker), "decision_maker_not_impartial", || {
            format!("{decision_maker} audited this engagement and cannot sit on its decision panel")
        });
    }

    /// A renewal decided after the certificate's expiry: only as the restoration of an expired
    /// certificate (17021-1 9.6.3.2.5), within its window. A recertification not decided before
    /// the expiry date does not extend the certificate: it expires first, with a gap.
    fn renewal_decided_in_time(
        &mut self,
        facts: &EngagementFacts,
        certificate: CertificateFacts,
        today: NaiveDate,
        policy: &CertificationPolicy,
    ) {
        match facts.marks.expired_on {
            Some(expired_on) => {
                let limit = restore_after_expiry_limit(expired_on, policy);
                self.require(today <= limit, "restore_window_passed", || {
                    format!("certification could be restored until {limit}: a new stage 2 is needed")
                });
            }
            None => self.require(today <= certificate.expires_on, "certificate_expired", || {
                format!(
                    "the certificate expired on {} before this decision: fire expire, then restore_after_expiry",
                    certificate.expires_on
                )
            }),
        }
    }

    fn majors_verified(&mut self, facts: &EngagementFacts) {
        self.require(facts.majors_unverified == 0, "major_nc_unverified", || {
            format!("{} major nonconformit(y/ies) lack a verified correction", facts.majors_unverified)
        });
    }
}

fn open(kind: DeadlineKind, due_on: NaiveDate, owner: DeadlineOwner) -> DeadlineChange {
    DeadlineChange::Open(DeadlineToOpen { kind, due_on, owner })
}

fn apply(
    facts: &EngagementFacts,
    command: &EngagementCommand,
    today: NaiveDate,
    policy: &CertificationPolicy,
    check: &mut Guards,
    out: &mut TransitionOutcome,
) {
    use DeadlineKind as K;
    use DeadlineOwner as O;
    use DeadlineStatus::{Cancelled, Met};
    use EngagementCommand as C;
    let audit = facts.audit;
    match command {
        C::SignEngagementLetter { signed_on, include_pre_audit } => {
            match facts.selected_cb_accredited {
                None => check.fail("no_selected_proposal", "select a certification body's proposal first"),
                Some(accredited) => check.require(
                    accredited || facts.unaccredited_cb_accepted,
                    "certification_body_not_accredited",
                    || "the selected certification body is not accredited and the organization has not accepted an unaccredited one".into(),
                ),
            }
            check.require(standard_accepted_for_audit(facts.standard, today), "standard_version_withdrawn", || {
                format!("no audit against ISO/IEC 27001:{} is allowed after 2024-04-30 (IAF MD 26)", facts.standard)
            });
            check.require(*signed_on <= today, "date_in_future", || {
                format!("the engagement letter cannot be signed in the future ({signed_on})")
            });
            out.to = if *include_pre_audit { S::PreAudit } else { S::Stage1 };
        }
        C::CompletePreAudit => out.to = S::Stage1,
        C::RecordStage1Outcome { outcome } => {
            out.deadlines.push(DeadlineChange::Close(K::Stage1Validity, Cancelled));
            match outcome {
                Stage1Outcome::NotReady => {
                    out.to = S::Stage1;
                    out.marks.stage1_ready_on = None;
                }
                Stage1Outcome::Ready => {
                    if let Some(readiness) = facts.stage1_readiness.as_ref().filter(|r| !r.ready) {
                        check.fail(
                            "stage1_not_ready",
                            format!("not ready for stage 2: {}", readiness.gaps().join("; ")),
                        );
                    }
                    out.to = S::Stage2;
                    if let Some(audit) = audit {
                        out.marks.stage1_ready_on = Some(audit.last_day);
                        out.deadlines.push(open(
                            K::Stage1Validity,
                            stage1_valid_until(audit.last_day, policy),
                            O::CbCoordinator,
                        ));
                    }
                }
            }
        }
        C::RepeatStage1 => {
            out.to = S::Stage1;
            out.marks.stage1_ready_on = None;
            out.deadlines.push(DeadlineChange::Close(K::Stage1Validity, Cancelled));
        }
        C::CompleteStage2 { stage1_still_valid } => {
            if let (Some(audit), Some(ready_on), None) = (audit, facts.marks.stage1_ready_on, facts.certificate) {
                let valid_until = stage1_valid_until(ready_on, policy);
                check.require(audit.first_day <= valid_until || stage1_still_valid.is_some(), "stage1_validity_lapsed", || {
                    format!(
                        "stage 2 began on {} but the stage 1 result of {ready_on} was valid until {valid_until}: confirm it is still valid (stage1_still_valid) or repeat stage 1",
                        audit.first_day
                    )
                });
            }
            out.deadlines.push(DeadlineChange::Close(K::Stage1Validity, Met));
            out.to = if facts.majors_unverified + facts.minors_plan_pending > 0 {
                S::CorrectiveActions
            } else {
                S::CertificationDecision
            };
            if let Some(audit) = audit {
                out.marks.stage2_last_day = Some(audit.last_day);
                if facts.majors_unverified > 0 {
                    out.deadlines.push(open(
                        K::MajorNcLimit,
                        major_nc_limit(audit.last_day, policy),
                        O::EngagementManager,
                    ));
                }
            }
        }
        C::RequestDecision => {
            check.majors_verified(facts);
            check.require(facts.minors_plan_pending == 0, "minor_nc_plan_pending", || {
                format!("{} minor nonconformit(y/ies) lack an accepted plan", facts.minors_plan_pending)
            });
            out.to = S::CertificationDecision;
            out.deadlines.push(DeadlineChange::Close(K::MajorNcLimit, Met));
        }
        C::RequireNewStage2 => {
            let limit = facts.marks.stage2_last_day.map(|day| major_nc_limit(day, policy));
            check.require(facts.majors_unverified > 0, "no_unverified_major_nc", || {
                "every major nonconformity is verified: request the decision instead".into()
            });
            check.require(limit.is_some_and(|limit| today > limit), "major_nc_limit_not_passed", || match limit {
                Some(limit) => {
                    format!("the 6-month limit for verifying major NCs runs until {limit}")
                }
                None => "no stage 2 has been completed".into(),
            });
            out.to = S::Stage2;
            out.deadlines.push(DeadlineChange::Close(K::MajorNcLimit, Cancelled));
        }
        C::GrantCertification { decision_maker } => {
            check.impartial(facts, decision_maker);
            check.majors_verified(facts);
            check.require(
                standard_accepted_for_certificate(facts.standard, today),
                "standard_version_withdrawn",
                || {
                    format!(
                        "no ISO/IEC 27001:{} certificate may be issued after 2025-10-31 (IAF MD 26)",
                        facts.standard
                    )
                },
            );
            if let Some(certificate) = facts.certificate {
                check.renewal_decided_in_time(facts, certificate, today, policy);
            }
            let previous_expiry = facts.certificate.map(|c| c.expires_on);
            let expires_on = certificate_expiry(today, previous_expiry);
            out.to = S::Certified;
            out.marks.suspended_on = None;
            out.marks.expired_on = None;
            out.certificate = Some(CertificateChange::Issue { decision_on: today, expires_on });
            out.decision = Some(DecisionOutcome::Granted);
            out.deadlines.extend([
                DeadlineChange::Close(K::MajorNcLimit, Met),
                DeadlineChange::Close(K::CertificateExpiry, Met),
                DeadlineChange::Close(K::RestoreAfterExpiryLimit, Met),
                DeadlineChange::Close(K::SurveillanceDue, Cancelled),
            ]);
            if let Some(due) = surveillance_due(today, 0) {
                out.deadlines.push(open(K::SurveillanceDue, due, O::CbCoordinator));
            }
            out.deadlines.push(open(K::CertificateExpiry, expires_on, O::EngagementManager));
        }
        C::RefuseCertification { decision_maker, close_engagement } => {
            check.impartial(facts, decision_maker);
            out.decision = Some(DecisionOutcome::Refused);
            if *close_engagement {
                cancel(facts, out);
            } else {
                out.to = S::Stage2;
            }
        }
        C::StartSurveillance => {
            let certificate = check.certificate(facts);
            check.require(certificate.surveillances_completed < 2, "surveillance_cycle_complete", || {
                "both surveillance audits of this cycle are done: start the recertification".into()
            });
            // One surveillance audit in each of years 1 and 2: the second waits for year 2.
            let year_two = add_months(certificate.decision_on, 12);
            check.require(
                certificate.surveillances_completed != 1 || today >= year_two,
                "surveillance_not_due",
                || format!("the second surveillance audit of the cycle is held in its year 2, from {year_two}"),
            );
            check.require(today <= certificate.expires_on, "certificate_expired", || {
                format!("the certificate expired on {}", certificate.expires_on)
            });
            out.to = S::Surveillance;
        }
        C::CompleteSurveillance => {
            let certificate = check.certificate(facts);
            out.to = S::Certified;
            out.certificate = Some(CertificateChange::SurveillanceCompleted);
            out.deadlines.push(DeadlineChange::Close(K::SurveillanceDue, Met));
            if let Some(due) = surveillance_due(certificate.decision_on, certificate.surveillances_completed + 1) {
                out.deadlines.push(open(K::SurveillanceDue, due, O::CbCoordinator));
            }
            if let Some(audit) = audit.filter(|a| a.major_ncs > 0) {
                out.deadlines.push(open(K::MajorNcLimit, major_nc_limit(audit.last_day, policy), O::EngagementManager));
            }
        }
        C::StartRecertification => {
            let certificate = check.certificate(facts);
            let year_three = add_months(certificate.decision_on, 24);
            check.require(
                certificate.surveillances_completed >= 2 || today >= year_three,
                "recertification_not_due",
                || format!("recertification starts in year 3 ({year_three}) or after both surveillance audits"),
            );
            check.require(today <= certificate.expires_on, "certificate_expired", || {
                format!("the certificate expired on {}", certificate.expires_on)
            });
            check.require(standard_accepted_for_audit(facts.standard, today), "standard_version_withdrawn", || {
                format!("no recertification against ISO/IEC 27001:{} after 2024-04-30 (IAF MD 26)", facts.standard)
            });
            out.to = S::Recertification;
        }
        C::CompleteRecertification => {
            out.to = S::CertificationDecision;
            if let Some(audit) = audit {
                out.marks.stage2_last_day = Some(audit.last_day);
                if audit.major_ncs > 0 {
                    out.deadlines.push(open(
                        K::MajorNcLimit,
                        major_nc_limit(audit.last_day, policy),
                        O::EngagementManager,
                    ));
                }
            }
        }
        C::Suspend { cause: _ } => {
            out.to = S::Suspended;
            out.marks.suspended_on = Some(today);
            out.certificate = Some(CertificateChange::SetStatus(CertificateStatus::Suspended));
            out.deadlines.push(open(K::SuspensionLimit, suspension_limit(today, policy), O::CbCoordinator));
        }
        C::Restore => {
            let certificate = check.certificate(facts);
            if let Some(limit) = facts.marks.suspended_on.map(|on| suspension_limit(on, policy)) {
                check.require(today <= limit, "suspension_limit_passed", || {
                    format!("the suspension could be resolved until {limit}: withdraw the certificate instead")
                });
            }
            check.require(today <= certificate.expires_on, "certificate_expired", || {
                format!("the certificate expired on {}", certificate.expires_on)
            });
            out.to = S::Certified;
            out.marks.suspended_on = None;
            out.certificate = Some(CertificateChange::SetStatus(CertificateStatus::Active));
            out.deadlines.push(DeadlineChange::Close(K::SuspensionLimit, Met));
        }
        C::Withdraw => {
            out.to = S::Withdrawn;
            out.certificate = Some(CertificateChange::SetStatus(CertificateStatus::Withdrawn));
            out.deadlines.push(DeadlineChange::CancelAll);
        }
        C::Expire => {
            let certificate = check.certificate(facts);
            check.require(today > certificate.expires_on, "certificate_not_expired", || {
                format!("the certificate is valid until {}", certificate.expires_on)
            });
            check.require(facts.marks.expired_on.is_none(), "certificate_already_expired", || {
                format!("the certificate already expired on {}: this decision restores it", certificate.expires_on)
            });
            out.to = S::Expired;
            out.marks.expired_on = Some(certificate.expires_on);
            out.certificate = Some(CertificateChange::SetStatus(CertificateStatus::Expired));
            out.deadlines.push(DeadlineChange::CancelAll);
            out.deadlines.push(open(
                K::RestoreAfterExpiryLimit,
                restore_after_expiry_limit(certificate.expires_on, policy),
                O::CbCoordinator,
            ));
        }
        C::RestoreAfterExpiry => {
            let certificate = check.certificate(facts);
            let expired_on = facts.marks.expired_on.unwrap_or(certificate.expires_on);
            let limit = restore_after_expiry_limit(expired_on, policy);
            check.require(today <= limit, "restore_window_passed", || {
                format!("certification could be restored until {limit}: a new stage 2 is needed")
            });
            let audited_on = audit
                .filter(|a| a.kind == AuditKind::Recertification && a.last_day <= today)
                .map(|a| a.last_day)
                .or(facts.marks.stage2_last_day)
                .filter(|day| *day > certificate.decision_on);
            check.require(audited_on.is_some(), "recertification_outstanding", || {
                "complete the recertification audit (name it with audit_id) before restoring".into()
            });
            out.to = S::CertificationDecision;
            out.marks.stage2_last_day = audited_on.or(facts.marks.stage2_last_day);
        }
        C::Cancel => cancel(facts, out),
    }
}

fn cancel(facts: &EngagementFacts, out: &mut TransitionOutcome) {
    out.to = S::Cancelled;
    out.deadlines.push(DeadlineChange::CancelAll);
    if facts.certificate.is_some() {
        out.certificate = Some(CertificateChange::SetStatus(CertificateStatus::Cancelled));
    }
}

#[cfg(test)]
#[path = "lifecycle_tests.rs"]
mod tests;
