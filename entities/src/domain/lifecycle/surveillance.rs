//! The certification cycle: two surveillance audits, then the recertification.

use chrono::NaiveDate;

use crate::domain::dates::{
    add_months, major_nc_limit, recertification_opens_on, standard_accepted_for_audit, surveillance_due,
};
use crate::domain::deadline::DeadlineStatus::Met;
use crate::domain::deadline::{DeadlineChange, DeadlineKind as K, DeadlineOwner as O};
use crate::domain::state::EngagementState as S;

use super::facts::EngagementFacts;
use super::guards::Guards;
use super::outcome::{CertificateChange, TransitionOutcome, open};

pub(super) fn start_surveillance(
    facts: &EngagementFacts,
    today: NaiveDate,
    check: &mut Guards,
    out: &mut TransitionOutcome,
) {
    let certificate = check.certificate(facts);
    check.require(certificate.surveillances_completed < 2, "surveillance_cycle_complete", || {
        "both surveillance audits of this cycle are done: start the recertification".into()
    });
    // One surveillance audit in each of years 1 and 2: the second waits for year 2.
    let year_two = add_months(certificate.decision_on, 12);
    check.require(certificate.surveillances_completed != 1 || today >= year_two, "surveillance_not_due", || {
        format!("the second surveillance audit of the cycle is held in its year 2, from {year_two}")
    });
    check.require(today <= certificate.expires_on, "certificate_expired", || {
        format!("the certificate expired on {}", certificate.expires_on)
    });
    out.to = S::Surveillance;
}

pub(super) fn complete_surveillance(
    facts: &EngagementFacts,
    today: NaiveDate,
    check: &mut Guards,
    out: &mut TransitionOutcome,
) {
    let certificate = check.certificate(facts);
    let held_on = facts.audit.map_or(today, |audit| audit.last_day);
    out.to = S::Certified;
    out.certificate = Some(CertificateChange::SurveillanceCompleted { held_on });
    out.deadlines.push(DeadlineChange::Close(K::SurveillanceDue, Met));
    if let Some(due) = surveillance_due(certificate.decision_on, certificate.surveillances_completed + 1, Some(held_on))
    {
        out.deadlines.push(open(K::SurveillanceDue, due, O::CbCoordinator));
    }
    if let Some(audit) = facts.audit.filter(|a| a.major_ncs > 0) {
        out.deadlines.push(open(K::MajorNcLimit, major_nc_limit(audit.last_day), O::EngagementManager));
    }
}

pub(super) fn start_recertification(
    facts: &EngagementFacts,
    today: NaiveDate,
    check: &mut Guards,
    out: &mut TransitionOutcome,
) {
    let certificate = check.certificate(facts);
    // In year 3 only, however many surveillance audits were held early: a renewal's term runs
    // from the old expiry, so an earlier one would make the next cycle longer than the standard's.
    let year_three = recertification_opens_on(certificate.decision_on);
    check.require(today >= year_three, "recertification_not_due", || {
        format!("recertification starts in the cycle's year 3, from {year_three}")
    });
    check.require(today <= certificate.expires_on, "certificate_expired", || {
        format!("the certificate expired on {}", certificate.expires_on)
    });
    check.require(standard_accepted_for_audit(facts.standard, today), "standard_version_withdrawn", || {
        format!("no recertification against ISO/IEC 27001:{} after 2024-04-30 (IAF MD 26)", facts.standard)
    });
    out.to = S::Recertification;
}

pub(super) fn complete_recertification(facts: &EngagementFacts, out: &mut TransitionOutcome) {
    out.to = S::CertificationDecision;
    if let Some(audit) = facts.audit {
        out.marks.stage2_last_day = Some(audit.last_day);
        if audit.major_ncs > 0 {
            out.deadlines.push(open(K::MajorNcLimit, major_nc_limit(audit.last_day), O::EngagementManager));
        }
    }
}
