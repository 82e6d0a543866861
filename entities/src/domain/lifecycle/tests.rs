use chrono::NaiveDate;
use claims::{assert_matches, assert_ok};

use super::{
    AuditFacts, CertificateChange, CertificateFacts, EngagementCommand, EngagementFacts, EngagementMarks,
    TransitionOutcome, TransitionRefusal, decide,
};
use crate::domain::deadline::{DeadlineChange, DeadlineKind, DeadlineOwner, DeadlineStatus, DeadlineToOpen};
use crate::domain::policy::CertificationPolicy;
use crate::domain::soa::SoaReport;
use crate::domain::stage1::Stage1Readiness;
use crate::domain::state::{EngagementEvent, EngagementState, TRANSITIONS};
use crate::domain::text::{EmailAddress, Narrative};
use crate::domain::{AuditKind, CertificateStatus, DecisionOutcome, Stage1Outcome, StandardVersion, SuspensionCause};
use EngagementCommand as C;
use EngagementEvent as E;
use EngagementState as S;

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

const TODAY: NaiveDate = NaiveDate::from_ymd_opt(2026, 11, 24).unwrap();

fn email(raw: &str) -> EmailAddress {
    EmailAddress::parse(raw).unwrap()
}

fn reason() -> Narrative {
    Narrative::parse("recorded by the test").unwrap()
}

fn ready() -> Stage1Readiness {
    Stage1Readiness::assess(
        &<crate::domain::RequiredDocument as sea_orm::Iterable>::iter().collect::<Vec<_>>(),
        SoaReport { complete: true, controls_listed: 93, ..SoaReport::default() },
    )
}

/// Facts under which `event` passes every guard in `state`.
fn facts_allowing(state: EngagementState, event: EngagementEvent) -> EngagementFacts {
    let audit_kind = event.completes_audit().unwrap_or(AuditKind::Recertification);
    let mut facts = EngagementFacts {
        state,
        standard: StandardVersion::Iso27001_2022,
        selected_cb_accredited: Some(true),
        unaccredited_cb_accepted: false,
        stage1_readiness: Some(ready()),
        audit: Some(AuditFacts {
            kind: audit_kind,
            first_day: d(2026, 11, 16),
            last_day: d(2026, 11, 20),
            major_ncs: 0,
            completed: false,
        }),
        majors_unverified: 0,
        minors_plan_pending: 0,
        auditors: vec![email("lead@cb.test")],
        certificate: None,
        marks: EngagementMarks {
            stage1_ready_on: Some(d(2026, 10, 1)),
            stage2_last_day: Some(d(2026, 11, 20)),
            ..EngagementMarks::default()
        },
    };
    let renewal = matches!(
        (state, event),
        (S::CertificationDecision | S::Stage2 | S::CorrectiveActions, E::Expire)
            | (S::Stage2, E::Suspend | E::Withdraw)
    );
    if renewal || matches!(state, S::Certified | S::Surveillance | S::Recertification | S::Suspended | S::Expired) {
        facts.certificate = Some(CertificateFacts {
            decision_on: d(2024, 6, 1),
            expires_on: d(2027, 6, 1),
            surveillances_completed: if event == E::StartSurveillance { 1 } else { 2 },
            last_surveillance_on: None,
            status: CertificateStatus::Active,
        });
    }
    match event {
        E::RequireNewStage2 => {
            facts.majors_unverified = 1;
            facts.marks.stage2_last_day = Some(d(2026, 5, 1));
        }
        E::Expire => {
            facts.certificate = facts.certificate.map(|c| CertificateFacts { expires_on: d(2026, 11, 1), ..c })
        }
        E::RestoreAfterExpiry => {
            facts.certificate = facts.certificate.map(|c| CertificateFacts { expires_on: d(2026, 10, 1), ..c });
            facts.marks.expired_on = Some(d(2026, 10, 1));
        }
        E::Restore => facts.marks.suspended_on = Some(d(2026, 10, 1)),
        E::RestartAtStage2 => {
            facts.certificate = facts.certificate.map(|c| CertificateFacts { expires_on: d(2026, 1, 1), ..c });
            facts.marks.expired_on = Some(d(2026, 1, 1));
        }
        _ => {}
    }
    facts
}

fn command_for(event: EngagementEvent) -> EngagementCommand {
    match event {
        E::SignEngagementLetter => C::SignEngagementLetter { signed_on: TODAY, include_pre_audit: false },
        E::CompletePreAudit => C::CompletePreAudit,
        E::RecordStage1Outcome => C::RecordStage1Outcome { outcome: Stage1Outcome::Ready },
        E::RepeatStage1 => C::RepeatStage1,
        E::CompleteStage2 => C::CompleteStage2 { stage1_still_valid: None },
        E::RequestDecision => C::RequestDecision,
        E::RequireNewStage2 => C::RequireNewStage2,
        E::GrantCertification => C::GrantCertification { decision_maker: email("panel@cb.test") },
        E::RefuseCertification => {
            C::RefuseCertification { decision_maker: email("panel@cb.test"), close_engagement: false }
        }
        E::StartSurveillance => C::StartSurveillance,
        E::CompleteSurveillance => C::CompleteSurveillance,
        E::StartRecertification => C::StartRecertification,
        E::CompleteRecertification => C::CompleteRecertification,
        E::Suspend => C::Suspend { cause: SuspensionCause::Failure },
        E::Restore => C::Restore,
        E::Withdraw => C::Withdraw,
        E::AmendCertificate => C::AmendCertificate,
        E::ReduceScope => C::ReduceScope { scope: Narrative::parse("London site only").unwrap() },
        E::ChangeScope => C::ChangeScope { scope: Narrative::parse("London and Leeds sites").unwrap() },
        E::Expire => C::Expire,
        E::RestoreAfterExpiry => C::RestoreAfterExpiry,
        E::RestartAtStage2 => C::RestartAtStage2,
        E::Cancel => C::Cancel,
    }
}

fn decide_default(
    facts: &EngagementFacts,
    command: &EngagementCommand,
) -> Result<TransitionOutcome, TransitionRefusal> {
    decide(facts, command, Some(&reason()), TODAY, &CertificationPolicy::default())
}

fn violation_codes(result: Result<TransitionOutcome, TransitionRefusal>) -> Vec<&'static str> {
    match result {
        Err(TransitionRefusal::GuardFailed { violations, .. }) => violations.iter().map(|v| v.code).collect(),
        other => panic!("expected a guard refusal, got {other:?}"),
    }
}

#[test]
fn every_allowed_pair_moves_to_one_of_its_targets_and_every_other_pair_is_refused() {
    let mut allowed_pairs = 0;
    for state in EngagementState::all() {
        for event in EngagementEvent::all() {
            let result = decide_default(&facts_allowing(state, event), &command_for(event));
            match state.targets(event) {
                Some(targets) => {
                    allowed_pairs += 1;
                    let outcome = result.unwrap_or_else(|e| panic!("({state}, {event}) refused: {e}"));
                    assert!(targets.contains(&outcome.to), "({state}, {event}) went to {}", outcome.to);
                    assert_eq!((outcome.from, outcome.event), (state, event));
                }
                None => assert_eq!(
                    result,
                    Err(TransitionRefusal::NotAllowed { state, event, allowed: state.allowed_events() }),
                    "({state}, {event})"
                ),
            }
        }
    }
    assert_eq!(allowed_pairs, TRANSITIONS.len());
}

#[test]
fn the_happy_targets_of_each_event_are_the_expected_ones() {
    let cases = [
        (S::CbSelection, E::SignEngagementLetter, S::Stage1),
        (S::PreAudit, E::CompletePreAudit, S::Stage1),
        (S::Stage1, E::RecordStage1Outcome, S::Stage2),
        (S::Stage2, E::CompleteStage2, S::CertificationDecision),
        (S::CertificationDecision, E::GrantCertification, S::Certified),
        (S::CertificationDecision, E::RefuseCertification, S::Stage2),
        (S::Certified, E::Expire, S::Expired),
        (S::Expired, E::RestoreAfterExpiry, S::CertificationDecision),
    ];
    for (state, event, to) in cases {
        assert_eq!(
            decide_default(&facts_allowing(state, event), &command_for(event)).unwrap().to,
            to,
            "({state}, {event})"
        );
    }
}

#[test]
fn signing_needs_a_selected_accredited_cb_unless_unaccredited_is_accepted() {
    let mut facts = facts_allowing(S::CbSelection, E::SignEngagementLetter);
    let sign = command_for(E::SignEngagementLetter);
    facts.selected_cb_accredited = None;
    assert_eq!(violation_codes(decide_default(&facts, &sign)), ["no_selected_proposal"]);
    facts.selected_cb_accredited = Some(false);
    assert_eq!(violation_codes(decide_default(&facts, &sign)), ["certification_body_not_accredited"]);
    facts.unaccredited_cb_accepted = true;
    assert_ok!(decide_default(&facts, &sign));
    let with_pre_audit = C::SignEngagementLetter { signed_on: TODAY, include_pre_audit: true };
    assert_eq!(decide_default(&facts, &with_pre_audit).unwrap().to, S::PreAudit);
    let future = C::SignEngagementLetter { signed_on: d(2026, 12, 1), include_pre_audit: false };
    assert_eq!(violation_codes(decide_default(&facts, &future)), ["date_in_future"]);
}

#[test]
fn no_new_audit_or_certificate_against_iso_27001_2013() {
    let mut facts = facts_allowing(S::CbSelection, E::SignEngagementLetter);
    facts.standard = StandardVersion::Iso27001_2013;
    assert_eq!(
        violation_codes(decide_default(&facts, &command_for(E::SignEngagementLetter))),
        ["standard_version_withdrawn"]
    );
    let mut facts = facts_allowing(S::CertificationDecision, E::GrantCertification);
    facts.standard = StandardVersion::Iso27001_2013;
    assert_eq!(
        violation_codes(decide_default(&facts, &command_for(E::GrantCertification))),
        ["standard_version_withdrawn"]
    );
    let before =
        decide(&facts, &command_for(E::GrantCertification), None, d(2025, 10, 31), &CertificationPolicy::default());
    assert_ok!(before);
}

#[test]
fn stage1_ready_needs_documents_and_soa_and_not_ready_repeats_stage1() {
    let mut facts = facts_allowing(S::Stage1, E::RecordStage1Outcome);
    facts.stage1_readiness = Some(Stage1Readiness::assess(&[], SoaReport::default()));
    assert_eq!(violation_codes(decide_default(&facts, &command_for(E::RecordStage1Outcome))), ["stage1_not_ready"]);

    let not_ready = C::RecordStage1Outcome { outcome: Stage1Outcome::NotReady };
    let outcome = decide_default(&facts, &not_ready).unwrap();
    assert_eq!((outcome.to, outcome.marks.stage1_ready_on), (S::Stage1, None));
}

#[test]
fn stage1_ready_opens_the_stage1_validity_deadline_six_months_after_the_audit() {
    let facts = facts_allowing(S::Stage1, E::RecordStage1Outcome);
    let outcome = decide_default(&facts, &command_for(E::RecordStage1Outcome)).unwrap();
    assert_eq!(outcome.marks.stage1_ready_on, Some(d(2026, 11, 20)));
    assert!(outcome.deadlines.contains(&DeadlineChange::Open(DeadlineToOpen {
        kind: DeadlineKind::Stage1Validity,
        due_on: d(2027, 5, 20),
        owner: DeadlineOwner::CbCoordinator,
    })));
}

#[test]
fn audit_completing_events_need_the_right_finished_audit() {
    let event = E::CompleteStage2;
    let mut facts = facts_allowing(S::Stage2, event);
    facts.audit = None;
    assert_eq!(violation_codes(decide_default(&facts, &command_for(event))), ["audit_required"]);
    let audit =
        |kind, last_day, completed| Some(AuditFacts { kind, first_day: TODAY, last_day, major_ncs: 0, completed });
    facts.audit = audit(AuditKind::Stage1, TODAY, false);
    assert_eq!(violation_codes(decide_default(&facts, &command_for(event))), ["wrong_audit_kind"]);
    facts.audit = audit(AuditKind::Stage2, d(2026, 11, 25), false);
    assert_eq!(violation_codes(decide_default(&facts, &command_for(event))), ["audit_not_finished"]);
    facts.audit = audit(AuditKind::Stage2, TODAY, true);
    assert_eq!(violation_codes(decide_default(&facts, &command_for(event))), ["audit_already_completed"]);
    facts.audit = audit(AuditKind::Stage2, TODAY, false);
    assert!(decide_default(&facts, &command_for(event)).is_ok());
}

#[test]
fn no_audit_completes_two_events() {
    let pairs = EngagementState::all().flat_map(|state| EngagementEvent::all().map(move |event| (state, event)));
    let completing =
        pairs.filter(|(state, event)| event.completes_audit().is_some() && state.targets(*event).is_some());
    let mut checked = 0;
    for (state, event) in completing {
        let mut facts = facts_allowing(state, event);
        facts.audit.as_mut().expect("an audit").completed = true;
        let refusal = decide_default(&facts, &command_for(event));
        assert_eq!(violation_codes(refusal), ["audit_already_completed"], "({state}, {event})");
        checked += 1;
    }
    assert!(checked >= 5, "every audit-completing event was checked");
}

#[test]
fn stage2_past_the_stage1_validity_needs_a_confirmation() {
    let mut facts = facts_allowing(S::Stage2, E::CompleteStage2);
    facts.marks.stage1_ready_on = Some(d(2026, 5, 15));
    assert_eq!(violation_codes(decide_default(&facts, &command_for(E::CompleteStage2))), ["stage1_validity_lapsed"]);
    let confirmed = C::CompleteStage2 { stage1_still_valid: Some(reason()) };
    assert_ok!(decide_default(&facts, &confirmed));
    facts.marks.stage1_ready_on = Some(d(2026, 5, 16));
    assert_ok!(decide_default(&facts, &command_for(E::CompleteStage2)), "stage 2 began on the last valid day");
}

#[test]
fn stage2_with_nonconformities_goes_to_corrective_actions_and_opens_the_major_limit() {
    let mut facts = facts_allowing(S::Stage2, E::CompleteStage2);
    facts.majors_unverified = 1;
    let outcome = decide_default(&facts, &command_for(E::CompleteStage2)).unwrap();
    assert_eq!(outcome.to, S::CorrectiveActions);
    assert_eq!(outcome.marks.stage2_last_day, Some(d(2026, 11, 20)));
    assert!(outcome.deadlines.contains(&DeadlineChange::Open(DeadlineToOpen {
        kind: DeadlineKind::MajorNcLimit,
        due_on: d(2027, 5, 20),
        owner: DeadlineOwner::EngagementManager,
    })));
    facts.majors_unverified = 0;
    facts.minors_plan_pending = 2;
    let outcome = decide_default(&facts, &command_for(E::CompleteStage2)).unwrap();
    assert_eq!(outcome.to, S::CorrectiveActions);
    assert!(
        !outcome.deadlines.iter().any(|c| matches!(c, DeadlineChange::Open(o) if o.kind == DeadlineKind::MajorNcLimit))
    );
}

#[test]
fn the_decision_waits_for_every_major_verified_and_every_minor_plan_accepted() {
    let mut facts = facts_allowing(S::CorrectiveActions, E::RequestDecision);
    facts.majors_unverified = 2;
    facts.minors_plan_pending = 1;
    assert_eq!(
        violation_codes(decide_default(&facts, &command_for(E::RequestDecision))),
        ["major_nc_unverified", "minor_nc_plan_pending"]
    );
    let mut facts = facts_allowing(S::CertificationDecision, E::GrantCertification);
    facts.majors_unverified = 1;
    assert_eq!(violation_codes(decide_default(&facts, &command_for(E::GrantCertification))), ["major_nc_unverified"]);
}

#[test]
fn a_new_stage2_is_required_only_after_six_months_with_a_major_unverified() {
    let mut facts = facts_allowing(S::CorrectiveActions, E::RequireNewStage2);
    assert_eq!(decide_default(&facts, &C::RequireNewStage2).unwrap().to, S::Stage2);
    facts.marks.stage2_last_day = Some(d(2026, 5, 24));
    assert_eq!(violation_codes(decide_default(&facts, &C::RequireNewStage2)), ["major_nc_limit_not_passed"]);
    facts.marks.stage2_last_day = Some(d(2026, 5, 23));
    facts.majors_unverified = 0;
    assert_eq!(violation_codes(decide_default(&facts, &C::RequireNewStage2)), ["no_unverified_major_nc"]);
}

#[test]
fn a_decision_maker_who_audited_the_engagement_cannot_decide() {
    let facts = facts_allowing(S::CertificationDecision, E::GrantCertification);
    let grant = C::GrantCertification { decision_maker: email("LEAD@cb.test") };
    assert_eq!(violation_codes(decide_default(&facts, &grant)), ["decision_maker_not_impartial"]);
    let refuse = C::RefuseCertification { decision_maker: email("lead@cb.test"), close_engagement: true };
    assert_eq!(violation_codes(decide_default(&facts, &refuse)), ["decision_maker_not_impartial"]);
}

#[test]
fn granting_issues_a_three_year_certificate_and_opens_surveillance_and_expiry_deadlines() {
    let facts = facts_allowing(S::CertificationDecision, E::GrantCertification);
    let outcome = decide_default(&facts, &command_for(E::GrantCertification)).unwrap();
    assert_eq!(outcome.certificate, Some(CertificateChange::Issue { decision_on: TODAY, expires_on: d(2029, 11, 24) }));
    assert_eq!(outcome.decision, Some(DecisionOutcome::Granted));
    let opened: Vec<(DeadlineKind, NaiveDate)> = outcome
        .deadlines
        .iter()
        .filter_map(|c| match c {
            DeadlineChange::Open(o) => Some((o.kind, o.due_on)),
            _ => None,
        })
        .collect();
    assert_eq!(
        opened,
        [(DeadlineKind::SurveillanceDue, d(2027, 11, 24)), (DeadlineKind::CertificateExpiry, d(2029, 11, 24))]
    );
}

#[test]
fn recertification_in_time_runs_the_new_term_from_the_old_expiry() {
    let mut facts = facts_allowing(S::CertificationDecision, E::GrantCertification);
    facts.certificate = Some(CertificateFacts {
        decision_on: d(2023, 12, 20),
        expires_on: d(2026, 12, 20),
        surveillances_completed: 2,
        last_surveillance_on: None,
        status: CertificateStatus::Active,
    });
    let outcome = decide_default(&facts, &command_for(E::GrantCertification)).unwrap();
    assert_eq!(outcome.certificate, Some(CertificateChange::Issue { decision_on: TODAY, expires_on: d(2029, 12, 20) }));
}

#[test]
fn a_renewal_not_decided_before_expiry_expires_and_is_granted_only_as_a_restoration() {
    let mut facts = facts_allowing(S::CertificationDecision, E::GrantCertification);
    let expired_term = CertificateFacts {
        decision_on: d(2023, 11, 1),
        expires_on: d(2026, 11, 1),
        surveillances_completed: 2,
        last_surveillance_on: None,
        status: CertificateStatus::Active,
    };
    facts.certificate = Some(expired_term);
    assert_eq!(violation_codes(decide_default(&facts, &command_for(E::GrantCertification))), ["certificate_expired"]);

    // The clock expires it while the decision is pending.
    let expiry = decide_default(&facts, &C::Expire).unwrap();
    assert_eq!(expiry.to, S::Expired);
    assert_eq!(expiry.marks.expired_on, Some(d(2026, 11, 1)));

    // Restored: the new term still runs from the old expiry (17021-1 9.6.3.2.5), from today's decision.
    facts.marks.expired_on = Some(d(2026, 11, 1));
    assert_eq!(violation_codes(decide_default(&facts, &C::Expire)), ["certificate_already_expired"]);
    let restored = decide_default(&facts, &command_for(E::GrantCertification)).unwrap();
    assert_eq!(restored.certificate, Some(CertificateChange::Issue { decision_on: TODAY, expires_on: d(2029, 11, 1) }));
    assert_eq!(restored.marks.expired_on, None);

    // Past the six-month window the restoration is refused too.
    facts.marks.expired_on = Some(d(2026, 5, 23));
    facts.certificate = Some(CertificateFacts { expires_on: d(2026, 5, 23), ..expired_term });
    assert_eq!(violation_codes(decide_default(&facts, &command_for(E::GrantCertification))), ["restore_window_passed"]);

    // A first certification has no certificate to expire.
    let initial = facts_allowing(S::CertificationDecision, E::GrantCertification);
    assert_eq!(violation_codes(decide_default(&initial, &C::Expire)), ["no_certificate"]);
}

#[test]
fn surveillance_is_limited_to_two_per_cycle_and_each_opens_the_next_due_date() {
    let mut facts = facts_allowing(S::Certified, E::StartSurveillance);
    facts.certificate = facts.certificate.map(|c| CertificateFacts { surveillances_completed: 2, ..c });
    assert_eq!(violation_codes(decide_default(&facts, &C::StartSurveillance)), ["surveillance_cycle_complete"]);

    // The second waits for year 2 of the cycle (decided on TODAY - 11 months: still year 1).
    let year_one = CertificateFacts {
        decision_on: d(2025, 12, 24),
        expires_on: d(2028, 12, 24),
        surveillances_completed: 1,
        last_surveillance_on: None,
        status: CertificateStatus::Active,
    };
    facts.certificate = Some(year_one);
    assert_eq!(violation_codes(decide_default(&facts, &C::StartSurveillance)), ["surveillance_not_due"]);
    facts.certificate = Some(CertificateFacts { decision_on: d(2025, 11, 24), ..year_one });
    assert_ok!(decide_default(&facts, &C::StartSurveillance), "year 2 begins on the anniversary");
    facts.certificate = Some(CertificateFacts { surveillances_completed: 0, ..year_one });
    assert_ok!(decide_default(&facts, &C::StartSurveillance), "the first may be held any time in year 1");

    let mut facts = facts_allowing(S::Surveillance, E::CompleteSurveillance);
    facts.certificate = facts.certificate.map(|c| CertificateFacts { surveillances_completed: 0, ..c });
    let outcome = decide_default(&facts, &C::CompleteSurveillance).unwrap();
    assert_eq!(outcome.certificate, Some(CertificateChange::SurveillanceCompleted { held_on: d(2026, 11, 20) }));
    assert!(outcome.deadlines.iter().any(
        |c| matches!(c, DeadlineChange::Open(o) if o.kind == DeadlineKind::SurveillanceDue && o.due_on == d(2026, 6, 1))
    ));
}

#[test]
fn recertification_starts_in_year_three_only_however_many_surveillances_were_held() {
    let mut facts = facts_allowing(S::Certified, E::StartRecertification);
    let both_held_early = CertificateFacts {
        decision_on: d(2025, 1, 10),
        expires_on: d(2028, 1, 10),
        surveillances_completed: 2,
        last_surveillance_on: Some(d(2026, 3, 1)),
        status: CertificateStatus::Active,
    };
    facts.certificate = Some(both_held_early);
    assert_eq!(violation_codes(decide_default(&facts, &C::StartRecertification)), ["recertification_not_due"]);
    facts.certificate =
        Some(CertificateFacts { decision_on: d(2024, 11, 24), expires_on: d(2027, 11, 24), ..both_held_early });
    assert_ok!(decide_default(&facts, &C::StartRecertification), "year 3 begins on the second anniversary");
}

#[test]
fn after_a_surveillance_the_next_is_due_by_the_end_of_the_following_calendar_year() {
    let mut facts = facts_allowing(S::Surveillance, E::CompleteSurveillance);
    facts.certificate = Some(CertificateFacts {
        decision_on: d(2026, 3, 2),
        expires_on: d(2029, 3, 2),
        surveillances_completed: 0,
        last_surveillance_on: None,
        status: CertificateStatus::Active,
    });
    let outcome = decide_default(&facts, &C::CompleteSurveillance).unwrap();
    // Held in November 2026 (the audit's last day): 2027 must have one, not only March 2028.
    assert!(outcome.deadlines.iter().any(
        |c| matches!(c, DeadlineChange::Open(o) if o.kind == DeadlineKind::SurveillanceDue && o.due_on == d(2027, 12, 31))
    ), "{:?}", outcome.deadlines);
}

/// The notice a command's outcome asks for.
fn notice_of(facts: &EngagementFacts, command: &EngagementCommand) -> Option<DeadlineKind> {
    decide_default(facts, command).unwrap().notice_with
}

#[test]
fn a_suspension_keeps_its_cause_and_a_restoration_needs_it_resolved() {
    let suspended =
        decide_default(&facts_allowing(S::Certified, E::Suspend), &C::Suspend { cause: SuspensionCause::Failure })
            .unwrap();
    assert_eq!(suspended.marks.suspension_cause, Some(SuspensionCause::Failure));
    // The parties are told at once, with the day the suspension must be resolved by.
    assert_eq!(suspended.notice_with, Some(DeadlineKind::SuspensionLimit));
    assert_eq!(notice_of(&facts_allowing(S::Certified, E::Withdraw), &C::Withdraw), None);

    // A failure: restored once no major NC is left open.
    let mut facts = facts_allowing(S::Suspended, E::Restore);
    facts.marks.suspension_cause = Some(SuspensionCause::Failure);
    facts.majors_unverified = 1;
    assert_eq!(violation_codes(decide_default(&facts, &C::Restore)), ["major_nc_unverified"]);
    facts.majors_unverified = 0;
    let restored = decide_default(&facts, &C::Restore).unwrap();
    assert_eq!(restored.marks.suspension_cause, None);

    // A missed audit: restored by the surveillance audit held since the suspension, which counts.
    let mut facts = facts_allowing(S::Suspended, E::Restore);
    facts.marks.suspension_cause = Some(SuspensionCause::MissedAudit);
    facts.audit = None;
    assert_eq!(violation_codes(decide_default(&facts, &C::Restore)), ["audit_required"]);
    facts.audit = Some(AuditFacts {
        kind: AuditKind::Surveillance,
        first_day: d(2026, 9, 1),
        last_day: d(2026, 9, 2),
        major_ncs: 0,
        completed: false,
    });
    assert_eq!(violation_codes(decide_default(&facts, &C::Restore)), ["missed_audit_not_held"], "held before it");
    facts.audit = facts.audit.map(|a| AuditFacts { first_day: d(2026, 11, 2), last_day: d(2026, 11, 3), ..a });
    let restored = decide_default(&facts, &C::Restore).unwrap();
    assert_eq!(restored.certificate, Some(CertificateChange::RestoredWithSurveillance { held_on: d(2026, 11, 3) }));
    assert!(restored.audit_completed, "the audit held is completed by the restoration");
}

#[test]
fn a_certificate_expires_by_its_date_while_suspended_or_in_a_renewals_stage2() {
    for state in [S::Suspended, S::Stage2, S::Surveillance, S::CorrectiveActions] {
        let outcome = decide_default(&facts_allowing(state, E::Expire), &C::Expire).unwrap();
        assert_eq!(outcome.to, S::Expired, "{state}");
        assert_eq!(outcome.certificate, Some(CertificateChange::SetStatus(CertificateStatus::Expired)), "{state}");
    }
    // A stage 2 of a first certification holds no certificate to suspend or expire.
    let mut facts = facts_allowing(S::Stage2, E::Suspend);
    facts.certificate = None;
    let suspend = C::Suspend { cause: SuspensionCause::ClientRequest };
    assert_eq!(violation_codes(decide_default(&facts, &suspend)), ["no_certificate"]);
}

#[test]
fn no_stage2_or_recertification_audit_against_2013_counts_after_april_2024() {
    let mut facts = facts_allowing(S::Stage2, E::CompleteStage2);
    facts.standard = StandardVersion::Iso27001_2013;
    assert_eq!(
        violation_codes(decide_default(&facts, &C::CompleteStage2 { stage1_still_valid: None })),
        ["standard_version_withdrawn"]
    );
    facts.audit = facts.audit.map(|a| AuditFacts { first_day: d(2024, 4, 29), last_day: d(2024, 4, 30), ..a });
    facts.marks.stage1_ready_on = Some(d(2024, 4, 1));
    let held_in_time = decide(
        &facts,
        &C::CompleteStage2 { stage1_still_valid: None },
        None,
        d(2024, 5, 2),
        &CertificationPolicy::default(),
    );
    assert_ok!(held_in_time);
}

#[test]
fn a_scope_reduction_keeps_the_certificate_and_ends_a_suspension() {
    let reduce = command_for(E::ReduceScope);
    let mut facts = facts_allowing(S::Suspended, E::ReduceScope);
    facts.marks.suspended_on = Some(d(2026, 10, 1));
    facts.marks.suspension_cause = Some(SuspensionCause::Failure);
    let outcome = decide_default(&facts, &reduce).unwrap();
    assert_eq!((outcome.to, outcome.certificate), (S::Certified, Some(CertificateChange::ScopeReduced)));
    assert_eq!((outcome.marks.suspended_on, outcome.marks.suspension_cause), (None, None));
    assert!(outcome.deadlines.contains(&DeadlineChange::Close(DeadlineKind::SuspensionLimit, DeadlineStatus::Met)));
    let from_certified = decide_default(&facts_allowing(S::Certified, E::ReduceScope), &reduce).unwrap();
    assert_eq!(from_certified.to, S::Certified);
    assert!(from_certified.deadlines.is_empty(), "nothing else changes");
}

#[test]
fn past_the_restoration_window_an_expired_engagement_starts_again_at_stage2_and_is_certified_anew() {
    let mut facts = facts_allowing(S::Expired, E::RestartAtStage2);
    facts.marks.expired_on = Some(d(2026, 6, 1));
    assert_eq!(violation_codes(decide_default(&facts, &C::RestartAtStage2)), ["restore_window_open"]);
    facts.marks.expired_on = Some(d(2026, 5, 23));
    let restarted = decide_default(&facts, &C::RestartAtStage2).unwrap();
    assert_eq!((restarted.to, restarted.marks.expired_on), (S::Stage2, None));

    // Its next grant certifies anew: three years from the decision, not a late renewal.
    let mut facts = facts_allowing(S::CertificationDecision, E::GrantCertification);
    facts.certificate = Some(CertificateFacts {
        decision_on: d(2022, 5, 1),
        expires_on: d(2025, 5, 1),
        surveillances_completed: 2,
        last_surveillance_on: None,
        status: CertificateStatus::Expired,
    });
    let grant = C::GrantCertification { decision_maker: email("panel@cb.test") };
    let granted = decide_default(&facts, &grant).unwrap();
    assert_eq!(granted.certificate, Some(CertificateChange::Issue { decision_on: TODAY, expires_on: d(2029, 11, 24) }));
}

#[test]
fn before_the_decision_the_scope_changes_by_a_recorded_event_and_nothing_else_moves() {
    let change = command_for(E::ChangeScope);
    for state in [S::PreAudit, S::Stage1, S::Stage2, S::CorrectiveActions, S::CertificationDecision] {
        let outcome = decide_default(&facts_allowing(state, E::ChangeScope), &change).unwrap();
        assert_eq!((outcome.to, outcome.certificate), (state, None), "{state}");
        assert!(outcome.deadlines.is_empty(), "{state}");
    }
    // Once a certificate states the scope (a renewal's stage 2), only a reduction moves it.
    let mut renewal = facts_allowing(S::Stage2, E::ChangeScope);
    renewal.certificate = facts_allowing(S::Certified, E::ReduceScope).certificate;
    assert_eq!(violation_codes(decide_default(&renewal, &change)), ["certified_scope_fixed"]);
    // After certification the event is not allowed at all.
    assert!(decide_default(&facts_allowing(S::Certified, E::ChangeScope), &change).is_err());
}

#[test]
fn an_amendment_changes_what_the_certificate_states_and_nothing_else() {
    for state in [S::Certified, S::Suspended] {
        let outcome = decide_default(&facts_allowing(state, E::AmendCertificate), &C::AmendCertificate).unwrap();
        assert_eq!((outcome.to, outcome.certificate), (state, Some(CertificateChange::Amended)), "{state}");
        assert!(outcome.deadlines.is_empty(), "{state}");
    }
}

#[test]
fn a_renewal_is_granted_only_with_every_minor_nc_plan_accepted() {
    let mut facts = facts_allowing(S::CertificationDecision, E::GrantCertification);
    facts.minors_plan_pending = 1;
    let grant = C::GrantCertification { decision_maker: email("panel@cb.test") };
    assert_eq!(violation_codes(decide_default(&facts, &grant)), ["minor_nc_plan_pending"]);
}

#[test]
fn a_2013_certificate_granted_in_2024_ends_on_31_october_2025() {
    let mut facts = facts_allowing(S::CertificationDecision, E::GrantCertification);
    facts.standard = StandardVersion::Iso27001_2013;
    let grant = C::GrantCertification { decision_maker: email("panel@cb.test") };
    let outcome = decide(&facts, &grant, None, d(2024, 6, 3), &CertificationPolicy::default()).unwrap();
    assert_eq!(
        outcome.certificate,
        Some(CertificateChange::Issue { decision_on: d(2024, 6, 3), expires_on: d(2025, 10, 31) })
    );
}

#[test]
fn suspension_is_restorable_within_its_limit_and_expiry_within_six_months() {
    let mut facts = facts_allowing(S::Suspended, E::Restore);
    facts.marks.suspended_on = Some(d(2026, 5, 23));
    assert_eq!(violation_codes(decide_default(&facts, &C::Restore)), ["suspension_limit_passed"]);
    facts.marks.suspended_on = Some(d(2026, 5, 24));
    assert_eq!(
        decide_default(&facts, &C::Restore).unwrap().certificate,
        Some(CertificateChange::SetStatus(CertificateStatus::Active))
    );

    let mut facts = facts_allowing(S::Expired, E::RestoreAfterExpiry);
    facts.marks.expired_on = Some(d(2026, 5, 23));
    assert_eq!(violation_codes(decide_default(&facts, &C::RestoreAfterExpiry)), ["restore_window_passed"]);
    let mut facts = facts_allowing(S::Expired, E::RestoreAfterExpiry);
    facts.marks.stage2_last_day = Some(d(2024, 1, 1));
    facts.audit = None;
    assert_eq!(violation_codes(decide_default(&facts, &C::RestoreAfterExpiry)), ["recertification_outstanding"]);
}

#[test]
fn expiry_waits_for_the_expiry_date() {
    let mut facts = facts_allowing(S::Certified, E::Expire);
    facts.certificate = facts.certificate.map(|c| CertificateFacts { expires_on: TODAY, ..c });
    assert_eq!(violation_codes(decide_default(&facts, &C::Expire)), ["certificate_not_expired"]);
}

#[test]
fn events_that_end_or_refuse_must_give_a_reason() {
    for event in EngagementEvent::all().filter(|e| e.requires_reason()) {
        let (state, ..) = TRANSITIONS.iter().find(|(_, e, _)| *e == event).unwrap();
        let facts = facts_allowing(*state, event);
        let result = decide(&facts, &command_for(event), None, TODAY, &CertificationPolicy::default());
        assert_eq!(violation_codes(result), ["reason_required"], "{event}");
    }
}

#[test]
fn ending_events_cancel_every_deadline_and_set_the_certificate_status() {
    let cases = [
        (S::Certified, E::Withdraw, Some(CertificateStatus::Withdrawn)),
        (S::Stage2, E::Cancel, None),
        (S::Certified, E::Suspend, Some(CertificateStatus::Suspended)),
    ];
    for (state, event, status) in cases {
        let outcome = decide_default(&facts_allowing(state, event), &command_for(event)).unwrap();
        assert_eq!(outcome.certificate, status.map(CertificateChange::SetStatus), "({state}, {event})");
        if event != E::Suspend {
            assert_matches!(outcome.deadlines.as_slice(), [DeadlineChange::CancelAll], "({state}, {event})");
        }
    }
}
