//! Suspending a certificate, then restoring it once its cause is resolved, reducing its scope, or
//! withdrawing it.

use chrono::NaiveDate;

use crate::domain::dates::{surveillance_due, suspension_limit};
use crate::domain::deadline::DeadlineStatus::Met;
use crate::domain::deadline::{DeadlineChange, DeadlineKind as K, DeadlineOwner as O};
use crate::domain::policy::CertificationPolicy;
use crate::domain::state::EngagementState as S;
use crate::domain::{AuditKind, CertificateStatus, SuspensionCause};

use super::facts::EngagementFacts;
use super::guards::Guards;
use super::outcome::{CertificateChange, TransitionOutcome, open};

pub(super) fn suspend(
    facts: &EngagementFacts,
    cause: SuspensionCause,
    today: NaiveDate,
    policy: &CertificationPolicy,
    check: &mut Guards,
    out: &mut TransitionOutcome,
) {
    // A stage 2 holds a certificate only when it renews one (after a refused renewal).
    check.certificate(facts);
    out.to = S::Suspended;
    out.marks.suspended_on = Some(today);
    out.marks.suspension_cause = Some(cause);
    out.certificate = Some(CertificateChange::SetStatus(CertificateStatus::Suspended));
    out.deadlines.push(open(K::SuspensionLimit, suspension_limit(today, policy), O::CbCoordinator));
    // The coordinator and the client learn of it the day it happens, not from a reminder months on.
    out.notice_with = Some(K::SuspensionLimit);
}

/// Restored when the cause is resolved (ISO/IEC 17021-1 9.6.5): a missed audit by that audit held
/// since the suspension, a failure by no major NC left open, the client's request by its reason
/// (every restoration gives one).
pub(super) fn restore(
    facts: &EngagementFacts,
    today: NaiveDate,
    policy: &CertificationPolicy,
    check: &mut Guards,
    out: &mut TransitionOutcome,
) {
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
    out.marks.suspension_cause = None;
    out.certificate = Some(CertificateChange::SetStatus(CertificateStatus::Active));
    out.deadlines.push(DeadlineChange::Close(K::SuspensionLimit, Met));
    match facts.marks.suspension_cause {
        Some(SuspensionCause::MissedAudit) => {
            check.audit(facts.audit, AuditKind::Surveillance, today);
            let held_on = facts.audit.map_or(today, |audit| audit.last_day);
            if let Some(suspended_on) = facts.marks.suspended_on {
                check.require(held_on >= suspended_on, "missed_audit_not_held", || {
                    format!("the surveillance audit named ended on {held_on}, before the suspension of {suspended_on}")
                });
            }
            out.audit_completed = true;
            out.certificate = Some(CertificateChange::RestoredWithSurveillance { held_on });
            out.deadlines.push(DeadlineChange::Close(K::SurveillanceDue, Met));
            let next =
                surveillance_due(certificate.decision_on, certificate.surveillances_completed + 1, Some(held_on));
            if let Some(due) = next {
                out.deadlines.push(open(K::SurveillanceDue, due, O::CbCoordinator));
            }
        }
        Some(SuspensionCause::Failure) => check.require(facts.majors_unverified == 0, "major_nc_unverified", || {
            format!(
                "suspended for a failure: {} major nonconformit(y/ies) still lack a verified correction",
                facts.majors_unverified
            )
        }),
        Some(SuspensionCause::ClientRequest) | None => {}
    }
}

/// ISO/IEC 17021-1 9.6.5: the body narrows the scope to what still conforms. From a suspension,
/// the narrower certificate is active again (a reduction, like a restoration, ends the suspension
/// before its limit).
pub(super) fn reduce_scope(facts: &EngagementFacts, check: &mut Guards, out: &mut TransitionOutcome) {
    check.certificate(facts);
    out.to = S::Certified;
    out.certificate = Some(CertificateChange::ScopeReduced);
    if facts.state == S::Suspended {
        out.marks.suspended_on = None;
        out.marks.suspension_cause = None;
        out.deadlines.push(DeadlineChange::Close(K::SuspensionLimit, Met));
    }
}

/// Before the decision the scope to certify is the engagement's, changed by this recorded event;
/// once a certificate states a scope (active or suspended), it moves only by a reduction.
pub(super) fn change_scope(facts: &EngagementFacts, check: &mut Guards) {
    let certified =
        facts.certificate.is_some_and(|c| matches!(c.status, CertificateStatus::Active | CertificateStatus::Suspended));
    check.require(!certified, "certified_scope_fixed", || {
        "the certificate states the certified scope: narrow it with reduce_scope".into()
    });
}

/// An amendment by the body: the certificate states the organization and the body as their
/// records stand now; nothing else changes (the state stays).
pub(super) fn amend_certificate(facts: &EngagementFacts, check: &mut Guards, out: &mut TransitionOutcome) {
    check.certificate(facts);
    out.certificate = Some(CertificateChange::Amended);
}

pub(super) fn withdraw(facts: &EngagementFacts, check: &mut Guards, out: &mut TransitionOutcome) {
    check.certificate(facts);
    out.to = S::Withdrawn;
    out.certificate = Some(CertificateChange::SetStatus(CertificateStatus::Withdrawn));
    out.deadlines.push(DeadlineChange::CancelAll);
}
