//! The certification decision: grant (issue or renew the certificate) or refuse.

use chrono::NaiveDate;

use crate::domain::dates::{certificate_expiry_for, standard_accepted_for_certificate, surveillance_due};
use crate::domain::deadline::DeadlineStatus::{Cancelled, Met};
use crate::domain::deadline::{DeadlineChange, DeadlineKind as K, DeadlineOwner as O};
use crate::domain::state::EngagementState as S;
use crate::domain::text::EmailAddress;
use crate::domain::{CertificateStatus, DecisionOutcome};

use super::cancellation::cancel;
use super::facts::EngagementFacts;
use super::guards::Guards;
use super::outcome::{CertificateChange, TransitionOutcome, open};

pub(super) fn grant_certification(
    facts: &EngagementFacts,
    decision_maker: &EmailAddress,
    today: NaiveDate,
    check: &mut Guards,
    out: &mut TransitionOutcome,
) {
    check.impartial(facts, decision_maker);
    // A renewal comes from its recertification audit straight to the decision: its findings are
    // dealt with here (every major verified, every minor's plan accepted), before the expiry.
    check.majors_verified(facts);
    check.minor_plans_accepted(facts);
    check.require(standard_accepted_for_certificate(facts.standard, today), "standard_version_withdrawn", || {
        format!("no ISO/IEC 27001:{} certificate may be issued after 2025-10-31 (IAF MD 26)", facts.standard)
    });
    // An expired certificate whose engagement restarted at stage 2 (its expiry mark cleared)
    // ended its cycle: this grant certifies anew, from its own date.
    let lapsed =
        facts.certificate.is_some_and(|c| c.status == CertificateStatus::Expired && facts.marks.expired_on.is_none());
    let renewed = facts.certificate.filter(|_| !lapsed);
    if let Some(certificate) = renewed {
        check.renewal_decided_in_time(facts, certificate, today);
    }
    let previous_expiry = renewed.map(|c| c.expires_on);
    let expires_on = certificate_expiry_for(facts.standard, today, previous_expiry);
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
    if let Some(due) = surveillance_due(today, 0, None) {
        out.deadlines.push(open(K::SurveillanceDue, due, O::CbCoordinator));
    }
    out.deadlines.push(open(K::CertificateExpiry, expires_on, O::EngagementManager));
}

pub(super) fn refuse_certification(
    facts: &EngagementFacts,
    decision_maker: &EmailAddress,
    close_engagement: bool,
    check: &mut Guards,
    out: &mut TransitionOutcome,
) {
    check.impartial(facts, decision_maker);
    out.decision = Some(DecisionOutcome::Refused);
    if close_engagement {
        cancel(facts, out);
    } else {
        out.to = S::Stage2;
    }
}
