//! The client ends the engagement before certification; a refusal that closes the engagement ends
//! it the same way.

use crate::domain::CertificateStatus;
use crate::domain::deadline::DeadlineChange;
use crate::domain::state::EngagementState as S;

use super::facts::EngagementFacts;
use super::outcome::{CertificateChange, TransitionOutcome};

pub(super) fn cancel(facts: &EngagementFacts, out: &mut TransitionOutcome) {
    out.to = S::Cancelled;
    out.deadlines.push(DeadlineChange::CancelAll);
    if facts.certificate.is_some() {
        out.certificate = Some(CertificateChange::SetStatus(CertificateStatus::Cancelled));
    }
}
