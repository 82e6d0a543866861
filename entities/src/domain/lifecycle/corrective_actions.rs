//! Leaving corrective actions: to the decision once every nonconformity is dealt with, or back to
//! stage 2 when the major-NC limit passed first.

use chrono::NaiveDate;

use crate::domain::dates::major_nc_limit;
use crate::domain::deadline::DeadlineStatus::{Cancelled, Met};
use crate::domain::deadline::{DeadlineChange, DeadlineKind as K};
use crate::domain::state::EngagementState as S;

use super::facts::EngagementFacts;
use super::guards::Guards;
use super::outcome::TransitionOutcome;

pub(super) fn request_decision(facts: &EngagementFacts, check: &mut Guards, out: &mut TransitionOutcome) {
    check.majors_verified(facts);
    check.minor_plans_accepted(facts);
    out.to = S::CertificationDecision;
    out.deadlines.push(DeadlineChange::Close(K::MajorNcLimit, Met));
}

pub(super) fn require_new_stage2(
    facts: &EngagementFacts,
    today: NaiveDate,
    check: &mut Guards,
    out: &mut TransitionOutcome,
) {
    let limit = facts.marks.stage2_last_day.map(major_nc_limit);
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
