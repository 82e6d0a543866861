//! Suspending a certificate, then restoring or withdrawing it.

use chrono::NaiveDate;

use crate::domain::CertificateStatus;
use crate::domain::dates::suspension_limit;
use crate::domain::deadline::DeadlineStatus::Met;
use crate::domain::deadline::{DeadlineChange, DeadlineKind as K, DeadlineOwner as O};
use crate::domain::policy::CertificationPolicy;
use crate::domain::state::EngagementState as S;

use super::facts::EngagementFacts;
use super::guards::Guards;
use super::outcome::{CertificateChange, TransitionOutcome, open};

pub(super) fn suspend(today: NaiveDate, policy: &CertificationPolicy, out: &mut TransitionOutcome) {
    out.to = S::Suspended;
    out.marks.suspended_on = Some(today);
    out.certificate = Some(CertificateChange::SetStatus(CertificateStatus::Suspended));
    out.deadlines.push(open(K::SuspensionLimit, suspension_limit(today, policy), O::CbCoordinator));
}

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
    out.certificate = Some(CertificateChange::SetStatus(CertificateStatus::Active));
    out.deadlines.push(DeadlineChange::Close(K::SuspensionLimit, Met));
}

pub(super) fn withdraw(out: &mut TransitionOutcome) {
    out.to = S::Withdrawn;
    out.certificate = Some(CertificateChange::SetStatus(CertificateStatus::Withdrawn));
    out.deadlines.push(DeadlineChange::CancelAll);
}
