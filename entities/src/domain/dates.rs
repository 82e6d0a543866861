//! Dates the rules compute: certificate expiry, surveillance due dates, corrective-action windows and limits.

use chrono::{Datelike, Months, NaiveDate};

use super::policy::{CAP_WINDOW_DAYS, CertificationPolicy, MAJOR_NC_LIMIT_MONTHS, RESTORE_AFTER_EXPIRY_MONTHS};
use super::{FindingGrade, StandardVersion};

/// The earliest and latest dates the API accepts anywhere: dates outside are typing mistakes.
pub const EARLIEST_DATE: NaiveDate = NaiveDate::from_ymd_opt(1990, 1, 1).expect("valid constant date");
/// See [`EARLIEST_DATE`].
pub const LATEST_DATE: NaiveDate = NaiveDate::from_ymd_opt(2200, 12, 31).expect("valid constant date");

/// IAF MD 26: the last day an initial or recertification audit against ISO/IEC 27001:2013 could be held.
pub const LAST_2013_AUDIT_DAY: NaiveDate = NaiveDate::from_ymd_opt(2024, 4, 30).expect("valid constant date");
/// IAF MD 26: every ISO/IEC 27001:2013 certificate ended on this day; none is issued after it.
pub const LAST_2013_CERTIFICATE_DAY: NaiveDate = NaiveDate::from_ymd_opt(2025, 10, 31).expect("valid constant date");

/// A certificate's term.
pub const CERTIFICATE_TERM_MONTHS: u32 = 36;

/// `date` plus `months` calendar months; a day past the target month's end lands on its last day
/// (31 January + 1 month = 28 or 29 February).
pub fn add_months(date: NaiveDate, months: u32) -> NaiveDate {
    date.checked_add_months(Months::new(months)).unwrap_or(NaiveDate::MAX)
}

/// `date` plus `days` days.
pub fn add_days(date: NaiveDate, days: u32) -> NaiveDate {
    date.checked_add_days(chrono::Days::new(u64::from(days))).unwrap_or(NaiveDate::MAX)
}

/// The expiry of a certificate granted on `decision_on`: three years from the decision, or, when it
/// renews a certificate that expires (or expired) on `previous_expiry`, three years from that date
/// (ISO/IEC 17021-1 9.6.3.2: the new term runs from the old expiry; a late recertification does
/// not extend the certificate).
pub fn certificate_expiry(decision_on: NaiveDate, previous_expiry: Option<NaiveDate>) -> NaiveDate {
    add_months(previous_expiry.unwrap_or(decision_on), CERTIFICATE_TERM_MONTHS)
}

/// The latest day the next surveillance audit may be held, `completed` surveillance audits into a
/// cycle that began with the decision of `decision_on`, the last of them held on `last_held_on`
/// (ISO/IEC 17021-1 9.6.2.2): the first no later than 12 months after the decision; then at least
/// one in each calendar year, so after one held in year Y the next by 31 December of Y + 1, and
/// never later than the end of the cycle's year 2. `None` after two: the next audit is the
/// recertification, in year 3.
pub fn surveillance_due(decision_on: NaiveDate, completed: u32, last_held_on: Option<NaiveDate>) -> Option<NaiveDate> {
    let end_of_year_two = add_months(decision_on, 24);
    match (completed, last_held_on) {
        (0, _) => Some(add_months(decision_on, 12)),
        (1, None) => Some(end_of_year_two),
        (1, Some(held_on)) => {
            let end_of_next_year = NaiveDate::from_ymd_opt(held_on.year() + 1, 12, 31).unwrap_or(NaiveDate::MAX);
            Some(end_of_next_year.min(end_of_year_two))
        }
        _ => None,
    }
}

/// The first day of a cycle's year 3, when its recertification may start (not earlier, however
/// many surveillance audits were held early).
pub fn recertification_opens_on(decision_on: NaiveDate) -> NaiveDate {
    add_months(decision_on, 24)
}

/// The expiry of a certificate against `standard` granted on `decision_on` (see
/// [`certificate_expiry`]), cut at IAF MD 26's end of ISO/IEC 27001:2013 certificates.
pub fn certificate_expiry_for(
    standard: StandardVersion,
    decision_on: NaiveDate,
    previous_expiry: Option<NaiveDate>,
) -> NaiveDate {
    let expiry = certificate_expiry(decision_on, previous_expiry);
    match standard {
        StandardVersion::Iso27001_2013 => expiry.min(LAST_2013_CERTIFICATE_DAY),
        _ => expiry,
    }
}

/// The last day a stage 1 "ready" result of `ready_on` is valid for stage 2 without confirmation.
pub fn stage1_valid_until(ready_on: NaiveDate, policy: &CertificationPolicy) -> NaiveDate {
    add_months(ready_on, policy.stage1_validity_months)
}

/// The last day to verify every major NC of an audit that ended on `audit_last_day`.
pub fn major_nc_limit(audit_last_day: NaiveDate) -> NaiveDate {
    add_months(audit_last_day, MAJOR_NC_LIMIT_MONTHS)
}

/// The last day a suspension that began on `suspended_on` may last.
pub fn suspension_limit(suspended_on: NaiveDate, policy: &CertificationPolicy) -> NaiveDate {
    add_months(suspended_on, policy.suspension_limit_months)
}

/// The last day certification that expired on `expired_on` can be restored.
pub fn restore_after_expiry_limit(expired_on: NaiveDate) -> NaiveDate {
    add_months(expired_on, RESTORE_AFTER_EXPIRY_MONTHS)
}

/// The day a nonconformity's corrective-action plan is due: the body's days for its grade after
/// the last day of the audit that found it (none for an OFI, which needs no action).
pub fn plan_due_on(grade: FindingGrade, audit_last_day: NaiveDate, policy: &CertificationPolicy) -> Option<NaiveDate> {
    corrective_action_due(grade, audit_last_day, None, policy).ok()
}

/// Whether a finding of `grade` needs a corrective action, and so a plan due (a nonconformity,
/// major or minor); an OFI needs none, whatever the body's policy.
pub const fn needs_corrective_action(grade: FindingGrade) -> bool {
    !matches!(grade, FindingGrade::Ofi)
}

/// The day the body's verification of a corrective action the client reported done on
/// `reported_on` is due.
pub fn verification_due_on(reported_on: NaiveDate, policy: &CertificationPolicy) -> NaiveDate {
    add_days(reported_on, policy.verification_days)
}

/// Why a corrective-action due date was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapDueError {
    /// An opportunity for improvement needs no corrective action.
    #[error("an opportunity for improvement (OFI) needs no corrective action")]
    NotANonconformity,
    /// The date falls outside the 30–90 day window after the audit's last day.
    #[error(
        "the due date {requested} is outside the window {earliest} to {latest} (30 to 90 days after the audit's last day, {audit_last_day})"
    )]
    OutsideWindow {
        /// The date asked for.
        requested: NaiveDate,
        /// The audit's last day, the anchor of the window.
        audit_last_day: NaiveDate,
        /// 30 days after the anchor.
        earliest: NaiveDate,
        /// 90 days after the anchor.
        latest: NaiveDate,
    },
}

/// The due date of the corrective action for a finding of `grade` from an audit that ended on
/// `audit_last_day`: `requested` when it falls in the 30–90 day window, else the policy default.
pub fn corrective_action_due(
    grade: FindingGrade,
    audit_last_day: NaiveDate,
    requested: Option<NaiveDate>,
    policy: &CertificationPolicy,
) -> Result<NaiveDate, CapDueError> {
    let default_days = match grade {
        FindingGrade::MajorNc => policy.major_nc_due_days,
        FindingGrade::MinorNc => policy.minor_nc_due_days,
        FindingGrade::Ofi => return Err(CapDueError::NotANonconformity),
    };
    let earliest = add_days(audit_last_day, *CAP_WINDOW_DAYS.start());
    let latest = add_days(audit_last_day, *CAP_WINDOW_DAYS.end());
    let due = requested.unwrap_or_else(|| add_days(audit_last_day, default_days));
    if due < earliest || due > latest {
        return Err(CapDueError::OutsideWindow { requested: due, audit_last_day, earliest, latest });
    }
    Ok(due)
}

/// IAF MD 26: may an initial or recertification audit against `standard` be held on `on`?
pub fn standard_accepted_for_audit(standard: StandardVersion, on: NaiveDate) -> bool {
    standard == StandardVersion::Iso27001_2022 || on <= LAST_2013_AUDIT_DAY
}

/// IAF MD 26: may a certificate against `standard` be issued on `on`?
pub fn standard_accepted_for_certificate(standard: StandardVersion, on: NaiveDate) -> bool {
    standard == StandardVersion::Iso27001_2022 || on <= LAST_2013_CERTIFICATE_DAY
}

#[cfg(test)]
mod tests {
    use super::*;
    use claims::{assert_err, assert_ok_eq};

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn each_nonconformity_s_plan_is_due_by_the_body_s_days_for_its_grade_from_the_audit_s_last_day() {
        let policy =
            CertificationPolicy { major_nc_due_days: 60, minor_nc_due_days: 45, ..CertificationPolicy::default() };
        // Anchored on the audit's last day, across a month end and a leap day.
        assert_eq!(plan_due_on(FindingGrade::MajorNc, d(2028, 1, 31), &policy), Some(d(2028, 3, 31)));
        assert_eq!(plan_due_on(FindingGrade::MinorNc, d(2028, 1, 31), &policy), Some(d(2028, 3, 16)));
        assert_eq!(
            plan_due_on(FindingGrade::MinorNc, d(2028, 2, 14), &CertificationPolicy::default()),
            Some(d(2028, 3, 15))
        );
        assert_eq!(plan_due_on(FindingGrade::Ofi, d(2028, 1, 31), &policy), None, "an OFI needs no action");
    }

    #[test]
    fn certificate_runs_three_years_from_the_decision_or_from_the_old_expiry() {
        let cases = [
            (d(2026, 3, 15), None, d(2029, 3, 15), "initial"),
            (d(2024, 2, 29), None, d(2027, 2, 28), "leap day decision"),
            (d(2029, 1, 10), Some(d(2029, 3, 15)), d(2032, 3, 15), "recertified in time"),
            (d(2029, 5, 1), Some(d(2029, 3, 15)), d(2032, 3, 15), "restored after expiry"),
        ];
        for (decision, previous, expected, case) in cases {
            assert_eq!(certificate_expiry(decision, previous), expected, "{case}");
        }
    }

    #[test]
    fn the_first_surveillance_is_due_within_12_months_of_the_decision() {
        assert_eq!(surveillance_due(d(2026, 1, 31), 0, None), Some(d(2027, 1, 31)));
        assert_eq!(surveillance_due(d(2024, 2, 29), 0, None), Some(d(2025, 2, 28)), "leap day decision");
    }

    #[test]
    fn after_a_surveillance_in_one_calendar_year_the_next_is_due_by_the_end_of_the_next_year() {
        let decision = d(2026, 3, 15);
        // Held early, in the decision's own year: the next by the end of 2027, not March 2028.
        assert_eq!(surveillance_due(decision, 1, Some(d(2026, 11, 20))), Some(d(2027, 12, 31)));
        // Held in 2027: the end of 2028 would leave the cycle's year 2, which ends first.
        assert_eq!(surveillance_due(decision, 1, Some(d(2027, 2, 1))), Some(d(2028, 3, 15)));
        assert_eq!(surveillance_due(decision, 1, None), Some(d(2028, 3, 15)), "no date known: the end of year 2");
    }

    #[test]
    fn no_surveillance_is_due_after_two_the_next_audit_is_the_recertification() {
        assert_eq!(surveillance_due(d(2026, 1, 31), 2, Some(d(2027, 6, 1))), None);
    }

    #[test]
    fn recertification_opens_with_the_cycles_third_year() {
        assert_eq!(recertification_opens_on(d(2026, 3, 15)), d(2028, 3, 15));
        assert_eq!(recertification_opens_on(d(2024, 2, 29)), d(2026, 2, 28));
    }

    #[test]
    fn no_iso_27001_2013_certificate_runs_past_2025_10_31() {
        let s2013 = StandardVersion::Iso27001_2013;
        assert_eq!(certificate_expiry_for(s2013, d(2023, 5, 1), None), d(2025, 10, 31));
        assert_eq!(certificate_expiry_for(s2013, d(2022, 5, 1), None), d(2025, 5, 1), "ends before the cut");
        assert_eq!(certificate_expiry_for(StandardVersion::Iso27001_2022, d(2023, 5, 1), None), d(2026, 5, 1));
    }

    #[test]
    fn a_nonconformity_needs_a_corrective_action_and_an_ofi_none() {
        let policy = CertificationPolicy::default();
        for grade in [FindingGrade::MajorNc, FindingGrade::MinorNc, FindingGrade::Ofi] {
            assert_eq!(
                needs_corrective_action(grade),
                plan_due_on(grade, d(2026, 6, 30), &policy).is_some(),
                "{grade:?}"
            );
        }
        assert!(!needs_corrective_action(FindingGrade::Ofi));
    }

    #[test]
    fn corrective_action_due_dates_default_by_grade_and_stay_in_the_window() {
        let policy = CertificationPolicy::default();
        let last_day = d(2026, 6, 30);
        assert_ok_eq!(corrective_action_due(FindingGrade::MajorNc, last_day, None, &policy), d(2026, 9, 28));
        assert_ok_eq!(corrective_action_due(FindingGrade::MinorNc, last_day, None, &policy), d(2026, 7, 30));
        assert_ok_eq!(
            corrective_action_due(FindingGrade::MinorNc, last_day, Some(d(2026, 7, 30)), &policy),
            d(2026, 7, 30)
        );
        assert_ok_eq!(
            corrective_action_due(FindingGrade::MajorNc, last_day, Some(d(2026, 9, 28)), &policy),
            d(2026, 9, 28)
        );
        for (requested, case) in [(d(2026, 7, 29), "29 days"), (d(2026, 9, 29), "91 days"), (d(2026, 6, 1), "before")] {
            assert_err!(corrective_action_due(FindingGrade::MajorNc, last_day, Some(requested), &policy), "{case}");
        }
        assert_eq!(
            corrective_action_due(FindingGrade::Ofi, last_day, None, &policy),
            Err(CapDueError::NotANonconformity)
        );
    }

    #[test]
    fn limits_follow_the_policy_months() {
        let policy = CertificationPolicy::default();
        assert_eq!(major_nc_limit(d(2026, 8, 31)), d(2027, 2, 28));
        assert_eq!(stage1_valid_until(d(2026, 1, 15), &policy), d(2026, 7, 15));
        assert_eq!(suspension_limit(d(2026, 1, 15), &policy), d(2026, 7, 15));
        assert_eq!(restore_after_expiry_limit(d(2026, 1, 15)), d(2026, 7, 15));
        let strict = CertificationPolicy { stage1_validity_months: 3, ..policy };
        assert_eq!(stage1_valid_until(d(2026, 1, 15), &strict), d(2026, 4, 15));
    }

    #[test]
    fn iso_27001_2013_is_refused_after_the_iaf_md_26_dates() {
        let v2013 = StandardVersion::Iso27001_2013;
        assert!(standard_accepted_for_audit(v2013, d(2024, 4, 30)));
        assert!(!standard_accepted_for_audit(v2013, d(2024, 5, 1)));
        assert!(standard_accepted_for_certificate(v2013, d(2025, 10, 31)));
        assert!(!standard_accepted_for_certificate(v2013, d(2025, 11, 1)));
        assert!(standard_accepted_for_certificate(StandardVersion::Iso27001_2022, d(2030, 1, 1)));
    }
}
