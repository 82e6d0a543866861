//! `decide`: the checks every event shares, then the rules of the command's phase.

use chrono::NaiveDate;

use crate::domain::AuditKind;
use crate::domain::policy::CertificationPolicy;
use crate::domain::text::Narrative;

use super::command::EngagementCommand;
use super::facts::EngagementFacts;
use super::guards::Guards;
use super::outcome::TransitionOutcome;
use super::refusal::TransitionRefusal;
use super::{audits, cancellation, corrective_actions, decision, expiry, selection, surveillance, suspension};

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
        if matches!(kind, AuditKind::Stage1 | AuditKind::Stage2 | AuditKind::Recertification) {
            check.audit_against_current_standard(facts);
        }
    }
    let mut outcome = TransitionOutcome {
        from: state,
        to: state,
        event,
        marks: facts.marks,
        deadlines: Vec::new(),
        certificate: None,
        decision: None,
        audit_completed: event.completes_audit().is_some(),
        notice_with: None,
    };
    apply(facts, command, today, policy, &mut check, &mut outcome);
    if check.violations.is_empty() {
        debug_assert!(state.targets(event).is_some_and(|to| to.contains(&outcome.to)));
        Ok(outcome)
    } else {
        Err(TransitionRefusal::GuardFailed { state, event, violations: check.violations })
    }
}

fn apply(
    facts: &EngagementFacts,
    command: &EngagementCommand,
    today: NaiveDate,
    policy: &CertificationPolicy,
    check: &mut Guards,
    out: &mut TransitionOutcome,
) {
    use EngagementCommand as C;
    match command {
        C::SignEngagementLetter { signed_on, include_pre_audit } => {
            selection::sign_engagement_letter(facts, *signed_on, *include_pre_audit, today, check, out)
        }
        C::CompletePreAudit => audits::complete_pre_audit(out),
        C::RecordStage1Outcome { outcome } => audits::record_stage1_outcome(facts, *outcome, policy, check, out),
        C::RepeatStage1 => audits::repeat_stage1(out),
        C::CompleteStage2 { stage1_still_valid } => {
            audits::complete_stage2(facts, stage1_still_valid.as_ref(), policy, check, out)
        }
        C::RequestDecision => corrective_actions::request_decision(facts, check, out),
        C::RequireNewStage2 => corrective_actions::require_new_stage2(facts, today, check, out),
        C::GrantCertification { decision_maker } => {
            decision::grant_certification(facts, decision_maker, today, check, out)
        }
        C::RefuseCertification { decision_maker, close_engagement } => {
            decision::refuse_certification(facts, decision_maker, *close_engagement, check, out)
        }
        C::StartSurveillance => surveillance::start_surveillance(facts, today, check, out),
        C::CompleteSurveillance => surveillance::complete_surveillance(facts, today, check, out),
        C::StartRecertification => surveillance::start_recertification(facts, today, check, out),
        C::CompleteRecertification => surveillance::complete_recertification(facts, out),
        C::Suspend { cause } => suspension::suspend(facts, *cause, today, policy, check, out),
        C::Restore => suspension::restore(facts, today, policy, check, out),
        C::Withdraw => suspension::withdraw(facts, check, out),
        C::ReduceScope { .. } => suspension::reduce_scope(facts, check, out),
        C::ChangeScope { .. } => suspension::change_scope(facts, check),
        C::AmendCertificate => suspension::amend_certificate(facts, check, out),
        C::Expire => expiry::expire(facts, today, check, out),
        C::RestoreAfterExpiry => expiry::restore_after_expiry(facts, today, check, out),
        C::RestartAtStage2 => expiry::restart_at_stage2(facts, today, check, out),
        C::Cancel => cancellation::cancel(facts, out),
    }
}
