//! A certificate's expiry, its restoration within the window after it, and a new start at stage 2
//! once that window has passed.

use chrono::NaiveDate;

use crate::domain::dates::restore_after_expiry_limit;
use crate::domain::deadline::DeadlineStatus::Cancelled;
use crate::domain::deadline::{DeadlineChange, DeadlineKind as K, DeadlineOwner as O};
use crate::domain::state::EngagementState as S;
use crate::domain::{AuditKind, CertificateStatus};

use super::facts::{CertificateFacts, EngagementFacts};
use super::guards::Guards;
use super::outcome::{CertificateChange, TransitionOutcome, open};

pub(super) fn expire(facts: &EngagementFacts, today: NaiveDate, check: &mut Guards, out: &mut TransitionOutcome) {
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
        restore_after_expiry_limit(certificate.expires_on),
        O::CbCoordinator,
    ));
}

pub(super) fn restore_after_expiry(
    facts: &EngagementFacts,
    today: NaiveDate,
    check: &mut Guards,
    out: &mut TransitionOutcome,
) {
    let (certificate, limit) = restoration_window(facts, check);
    check.require(today <= limit, "restore_window_passed", || {
        format!("certification could be restored until {limit}: a new stage 2 is needed")
    });
    let audited_on = facts
        .audit
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

/// Past the restoration window, an expired engagement starts again at stage 2 (ISO/IEC 17021-1
/// 9.6.3.2.5: at least a stage 2 is needed), keeping its history. The expiry mark is cleared: the
/// next grant certifies anew, three years from its decision.
pub(super) fn restart_at_stage2(
    facts: &EngagementFacts,
    today: NaiveDate,
    check: &mut Guards,
    out: &mut TransitionOutcome,
) {
    let (_, limit) = restoration_window(facts, check);
    check.require(today > limit, "restore_window_open", || {
        format!("certification can still be restored until {limit}: fire restore_after_expiry instead")
    });
    out.to = S::Stage2;
    out.marks.expired_on = None;
    out.marks.stage2_last_day = None;
    out.deadlines.push(DeadlineChange::Close(K::RestoreAfterExpiryLimit, Cancelled));
}

/// The expired certificate, and the last day it can be restored (6 months after its expiry).
fn restoration_window(facts: &EngagementFacts, check: &mut Guards) -> (CertificateFacts, NaiveDate) {
    let certificate = check.certificate(facts);
    let expired_on = facts.marks.expired_on.unwrap_or(certificate.expires_on);
    (certificate, restore_after_expiry_limit(expired_on))
}
