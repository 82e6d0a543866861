//! The audits before certification: pre-audit, stage 1 and stage 2.

use crate::domain::Stage1Outcome;
use crate::domain::dates::{major_nc_limit, stage1_valid_until};
use crate::domain::deadline::DeadlineStatus::{Cancelled, Met};
use crate::domain::deadline::{DeadlineChange, DeadlineKind as K, DeadlineOwner as O};
use crate::domain::policy::CertificationPolicy;
use crate::domain::state::EngagementState as S;
use crate::domain::text::Narrative;

use super::facts::EngagementFacts;
use super::guards::Guards;
use super::outcome::{TransitionOutcome, open};

pub(super) fn complete_pre_audit(out: &mut TransitionOutcome) {
    out.to = S::Stage1;
}

pub(super) fn record_stage1_outcome(
    facts: &EngagementFacts,
    outcome: Stage1Outcome,
    policy: &CertificationPolicy,
    check: &mut Guards,
    out: &mut TransitionOutcome,
) {
    out.deadlines.push(DeadlineChange::Close(K::Stage1Validity, Cancelled));
    match outcome {
        Stage1Outcome::NotReady => {
            out.to = S::Stage1;
            out.marks.stage1_ready_on = None;
        }
        Stage1Outcome::Ready => {
            if let Some(readiness) = facts.stage1_readiness.as_ref().filter(|r| !r.ready) {
                check.fail("stage1_not_ready", format!("not ready for stage 2: {}", readiness.gaps().join("; ")));
            }
            out.to = S::Stage2;
            if let Some(audit) = facts.audit {
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

pub(super) fn repeat_stage1(out: &mut TransitionOutcome) {
    out.to = S::Stage1;
    out.marks.stage1_ready_on = None;
    out.deadlines.push(DeadlineChange::Close(K::Stage1Validity, Cancelled));
}

pub(super) fn complete_stage2(
    facts: &EngagementFacts,
    stage1_still_valid: Option<&Narrative>,
    policy: &CertificationPolicy,
    check: &mut Guards,
    out: &mut TransitionOutcome,
) {
    let audit = facts.audit;
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
            out.deadlines.push(open(K::MajorNcLimit, major_nc_limit(audit.last_day), O::EngagementManager));
        }
    }
}
