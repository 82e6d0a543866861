//! The certification body's verification of a corrective action: what it closes, and when it is refused.

use chrono::NaiveDate;

use super::dates::{major_nc_limit, verification_due_on};
use super::deadline::DeadlineStatus;
use super::policy::CertificationPolicy;
use super::state::EngagementState;
use super::{FindingGrade, FindingStatus, VerificationStatus};

/// What the rule needs to know about the corrective action, its finding and its engagement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerificationFacts {
    /// The grade of the finding the action corrects.
    pub grade: FindingGrade,
    /// The action's verification so far.
    pub current: VerificationStatus,
    /// The engagement's current state.
    pub engagement_state: EngagementState,
    /// Last day of the engagement's latest stage-2-depth audit: anchors the major-NC limit.
    pub stage2_last_day: Option<NaiveDate>,
    /// Open major NCs of the engagement, this finding included while it is open.
    pub open_majors: u32,
    /// The client reported the action done: the body's verification is the pending step.
    pub reported_done: bool,
}

/// A decided verification: everything the shell writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerificationOutcome {
    /// The action's new verification status.
    pub verification: VerificationStatus,
    /// The finding's new status, if it changes: accepting a major's correction closes it;
    /// accepting a minor's plan leaves it to be followed up at the next audit.
    pub finding_status: Option<FindingStatus>,
    /// How to close the action's `CorrectiveActionDue` deadline, if at all.
    pub corrective_action_deadline: Option<DeadlineStatus>,
    /// How to close the engagement's `MajorNcLimit` deadline, if at all.
    pub major_nc_limit: Option<DeadlineStatus>,
    /// How to close the action's `CorrectiveActionVerification` deadline (the body's pending
    /// step once the client reported it done), if at all.
    pub verification_deadline: Option<DeadlineStatus>,
    /// Rejected after the client reported it done: the report is withdrawn and the action's own
    /// due date is the pending step again (its deadline opens again, owned by the action's owner).
    pub corrective_action_reopened: bool,
}

/// Why a verification was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerificationRefusal {
    /// An accepted corrective action is closed.
    #[error("this corrective action is already accepted")]
    AlreadyAccepted,
    /// The major NC was not verified in time: the engagement needs a new stage 2.
    #[error("the 6-month limit for verifying major NCs ended on {limit}: fire require_new_stage2")]
    MajorNcLimitPassed {
        /// The last day a major NC of the engagement could be verified.
        limit: NaiveDate,
    },
    /// `Pending` is not a verdict.
    #[error("a verification must be accepted or rejected")]
    NotAVerdict,
    /// The client already reported this action done; the body's verification is pending.
    #[error("this corrective action was already reported done: its verification is pending")]
    AlreadyReported,
}

impl VerificationRefusal {
    /// A stable slug for the refusal.
    pub fn code(&self) -> &'static str {
        match self {
            Self::AlreadyAccepted => "corrective-action-verified",
            Self::MajorNcLimitPassed { .. } => "major-nc-limit-passed",
            Self::NotAVerdict => "validation-failed",
            Self::AlreadyReported => "corrective-action-reported",
        }
    }
}

/// Decides the verification `outcome` (accepted or rejected) of a corrective action with `facts`
/// on `today`, under `policy`.
pub fn verify(
    facts: &VerificationFacts,
    outcome: VerificationStatus,
    today: NaiveDate,
) -> Result<VerificationOutcome, VerificationRefusal> {
    match outcome {
        VerificationStatus::Pending => Err(VerificationRefusal::NotAVerdict),
        _ if facts.current == VerificationStatus::Accepted => Err(VerificationRefusal::AlreadyAccepted),
        // Rejected: the client's step again; after a report of it done, the report is withdrawn.
        VerificationStatus::Rejected => Ok(VerificationOutcome {
            verification: outcome,
            finding_status: None,
            corrective_action_deadline: None,
            major_nc_limit: None,
            verification_deadline: facts.reported_done.then_some(DeadlineStatus::Met),
            corrective_action_reopened: facts.reported_done,
        }),
        VerificationStatus::Accepted => {
            let major = facts.grade == FindingGrade::MajorNc;
            // ISO/IEC 17021-1: a major NC not verified within 6 months of stage 2 needs a new stage 2,
            // so a late verification is refused while the engagement waits in corrective actions.
            match facts.stage2_last_day.map(major_nc_limit) {
                Some(limit)
                    if major && facts.engagement_state == EngagementState::CorrectiveActions && today > limit =>
                {
                    Err(VerificationRefusal::MajorNcLimitPassed { limit })
                }
                _ => Ok(VerificationOutcome {
                    verification: outcome,
                    finding_status: Some(if major { FindingStatus::Closed } else { FindingStatus::FollowUp }),
                    corrective_action_deadline: Some(DeadlineStatus::Met),
                    major_nc_limit: (major && facts.open_majors <= 1).then_some(DeadlineStatus::Met),
                    verification_deadline: Some(DeadlineStatus::Met),
                    corrective_action_reopened: false,
                }),
            }
        }
    }
}

/// The client reports a corrective action done on `today`: its own due date is met and the
/// body's verification becomes the pending step, due `policy.verification_days` later. Refused
/// once accepted, or when already reported.
pub fn report_done(
    facts: &VerificationFacts,
    today: NaiveDate,
    policy: &CertificationPolicy,
) -> Result<NaiveDate, VerificationRefusal> {
    match facts.current {
        VerificationStatus::Accepted => Err(VerificationRefusal::AlreadyAccepted),
        _ if facts.reported_done => Err(VerificationRefusal::AlreadyReported),
        _ => Ok(verification_due_on(today, policy)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use claims::{assert_err_eq, assert_ok};

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    const STAGE2_LAST_DAY: NaiveDate = NaiveDate::from_ymd_opt(2026, 5, 20).unwrap();
    const LIMIT: NaiveDate = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    const TODAY: NaiveDate = NaiveDate::from_ymd_opt(2026, 8, 1).unwrap();

    fn facts(grade: FindingGrade) -> VerificationFacts {
        VerificationFacts {
            grade,
            current: VerificationStatus::Pending,
            engagement_state: EngagementState::CorrectiveActions,
            stage2_last_day: Some(STAGE2_LAST_DAY),
            open_majors: 1,
            reported_done: false,
        }
    }

    fn verify_on(
        facts: &VerificationFacts,
        outcome: VerificationStatus,
        today: NaiveDate,
    ) -> Result<VerificationOutcome, VerificationRefusal> {
        verify(facts, outcome, today)
    }

    fn accept(facts: &VerificationFacts, today: NaiveDate) -> Result<VerificationOutcome, VerificationRefusal> {
        verify_on(facts, VerificationStatus::Accepted, today)
    }

    #[test]
    fn accepting_a_minor_s_plan_leaves_it_to_the_next_audit_and_meets_its_deadline() {
        let outcome = assert_ok!(accept(&facts(FindingGrade::MinorNc), TODAY));
        assert_eq!(
            outcome,
            VerificationOutcome {
                verification: VerificationStatus::Accepted,
                finding_status: Some(FindingStatus::FollowUp),
                corrective_action_deadline: Some(DeadlineStatus::Met),
                major_nc_limit: None,
                verification_deadline: Some(DeadlineStatus::Met),
                corrective_action_reopened: false,
            }
        );
    }

    #[test]
    fn accepting_the_last_major_also_meets_the_major_nc_limit() {
        let outcome = assert_ok!(accept(&facts(FindingGrade::MajorNc), TODAY));
        assert_eq!(outcome.finding_status, Some(FindingStatus::Closed), "a major's correction is verified");
        assert_eq!(outcome.corrective_action_deadline, Some(DeadlineStatus::Met));
        assert_eq!(outcome.major_nc_limit, Some(DeadlineStatus::Met));
    }

    #[test]
    fn accepting_one_of_two_majors_leaves_the_limit_open() {
        let two_open = VerificationFacts { open_majors: 2, ..facts(FindingGrade::MajorNc) };
        let outcome = assert_ok!(accept(&two_open, TODAY));
        assert_eq!(outcome.finding_status, Some(FindingStatus::Closed));
        assert_eq!(outcome.major_nc_limit, None);
    }

    #[test]
    fn a_rejection_closes_nothing() {
        for grade in [FindingGrade::MajorNc, FindingGrade::MinorNc] {
            let outcome = assert_ok!(verify_on(&facts(grade), VerificationStatus::Rejected, TODAY));
            assert_eq!(
                outcome,
                VerificationOutcome {
                    verification: VerificationStatus::Rejected,
                    finding_status: None,
                    corrective_action_deadline: None,
                    major_nc_limit: None,
                    verification_deadline: None,
                    corrective_action_reopened: false,
                },
                "{grade}"
            );
        }
    }

    #[test]
    fn a_rejection_after_the_client_reported_it_done_hands_it_back_to_the_client() {
        let reported = VerificationFacts { reported_done: true, ..facts(FindingGrade::MajorNc) };
        let outcome = assert_ok!(verify_on(&reported, VerificationStatus::Rejected, TODAY));
        assert_eq!(outcome.verification_deadline, Some(DeadlineStatus::Met), "the body did its step");
        assert!(outcome.corrective_action_reopened, "the action's own due date is pending again");
        assert_eq!(outcome.finding_status, None);
    }

    #[test]
    fn a_rejection_before_any_report_leaves_the_client_s_step_as_it_is() {
        let outcome = assert_ok!(verify_on(&facts(FindingGrade::MajorNc), VerificationStatus::Rejected, TODAY));
        assert_eq!((outcome.verification_deadline, outcome.corrective_action_reopened), (None, false));
    }

    #[test]
    fn an_acceptance_meets_the_pending_verification_too() {
        let reported = VerificationFacts { reported_done: true, ..facts(FindingGrade::MajorNc) };
        let outcome = assert_ok!(accept(&reported, TODAY));
        assert_eq!(outcome.verification_deadline, Some(DeadlineStatus::Met));
        assert!(!outcome.corrective_action_reopened);
    }

    #[test]
    fn a_report_of_done_makes_the_verification_due_after_the_body_s_days_once() {
        let policy = CertificationPolicy { verification_days: 10, ..CertificationPolicy::default() };
        assert_eq!(report_done(&facts(FindingGrade::MajorNc), d(2027, 2, 25), &policy), Ok(d(2027, 3, 7)));
        let reported = VerificationFacts { reported_done: true, ..facts(FindingGrade::MajorNc) };
        assert_err_eq!(report_done(&reported, TODAY, &policy), VerificationRefusal::AlreadyReported);
        let accepted = VerificationFacts { current: VerificationStatus::Accepted, ..facts(FindingGrade::MinorNc) };
        assert_err_eq!(report_done(&accepted, TODAY, &policy), VerificationRefusal::AlreadyAccepted);
        assert_eq!(VerificationRefusal::AlreadyReported.code(), "corrective-action-reported");
    }

    #[test]
    fn a_rejection_after_the_limit_is_not_refused() {
        let outcome = verify_on(&facts(FindingGrade::MajorNc), VerificationStatus::Rejected, d(2027, 1, 1));
        assert_ok!(outcome);
    }

    #[test]
    fn an_accepted_action_cannot_be_verified_again() {
        let accepted = VerificationFacts { current: VerificationStatus::Accepted, ..facts(FindingGrade::MinorNc) };
        for outcome in [VerificationStatus::Accepted, VerificationStatus::Rejected] {
            assert_err_eq!(verify_on(&accepted, outcome, TODAY), VerificationRefusal::AlreadyAccepted, "{outcome}");
        }
        let rejected = VerificationFacts { current: VerificationStatus::Rejected, ..facts(FindingGrade::MinorNc) };
        assert_ok!(accept(&rejected, TODAY), "a rejected action is verified again once revised");
    }

    #[test]
    fn a_major_accepted_after_the_six_month_limit_in_corrective_actions_is_refused() {
        let major = facts(FindingGrade::MajorNc);
        assert_err_eq!(accept(&major, d(2026, 11, 21)), VerificationRefusal::MajorNcLimitPassed { limit: LIMIT });
        assert_ok!(accept(&major, LIMIT), "on the limit day it is accepted");
    }

    #[test]
    fn a_major_after_the_limit_in_another_state_or_without_stage2_is_accepted() {
        let late = d(2027, 1, 1);
        let cases = [
            (
                VerificationFacts { engagement_state: EngagementState::Surveillance, ..facts(FindingGrade::MajorNc) },
                "surveillance",
            ),
            (
                VerificationFacts { engagement_state: EngagementState::Stage2, ..facts(FindingGrade::MajorNc) },
                "stage 2",
            ),
            (VerificationFacts { stage2_last_day: None, ..facts(FindingGrade::MajorNc) }, "no stage 2 yet"),
        ];
        for (facts, case) in cases {
            assert_ok!(accept(&facts, late), "{case}");
        }
    }

    #[test]
    fn a_minor_after_the_limit_is_accepted() {
        assert_ok!(accept(&facts(FindingGrade::MinorNc), d(2027, 1, 1)));
    }

    #[test]
    fn pending_is_not_a_verdict() {
        assert_err_eq!(
            verify_on(&facts(FindingGrade::MinorNc), VerificationStatus::Pending, TODAY),
            VerificationRefusal::NotAVerdict
        );
    }

    #[test]
    fn refusals_carry_stable_codes_and_sentences() {
        let cases = [
            (
                VerificationRefusal::AlreadyAccepted,
                "corrective-action-verified",
                "this corrective action is already accepted",
            ),
            (
                VerificationRefusal::MajorNcLimitPassed { limit: LIMIT },
                "major-nc-limit-passed",
                "the 6-month limit for verifying major NCs ended on 2026-11-20: fire require_new_stage2",
            ),
            (VerificationRefusal::NotAVerdict, "validation-failed", "a verification must be accepted or rejected"),
        ];
        for (refusal, code, message) in cases {
            assert_eq!((refusal.code(), refusal.to_string().as_str()), (code, message));
        }
    }
}
