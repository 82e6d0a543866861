//! A certification body's certification policy: the settings DOMAIN.md leaves to the body (with
//! its defaults), the limits each setting must stay inside, and the body's time zone, in which
//! "today" and every date rule of its engagements are reckoned.

use std::fmt;
use std::ops::RangeInclusive;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::reminders::PolicyProblem;

/// Months after the last day of stage 2 within which every major NC must be verified, or another
/// stage 2 is required (ISO/IEC 17021-1: a rule of the standard, not a setting).
pub const MAJOR_NC_LIMIT_MONTHS: u32 = 6;

/// Months after expiry within which certification can be restored (ISO/IEC 17021-1 9.6.3.2.5).
pub const RESTORE_AFTER_EXPIRY_MONTHS: u32 = 6;

/// The window every corrective-action due date must fall in, in days after the audit's last day.
pub const CAP_WINDOW_DAYS: RangeInclusive<u32> = 30..=90;

/// Days a body may give itself to verify a corrective action reported done.
pub const VERIFICATION_DAYS: RangeInclusive<u32> = 1..=60;

/// Months a stage 1 result may be set to stay valid.
pub const STAGE1_VALIDITY_MONTHS: RangeInclusive<u32> = 1..=12;

/// Months a suspension may be set to last ("in most cases would not exceed 6 months").
pub const SUSPENSION_LIMIT_MONTHS: RangeInclusive<u32> = 1..=12;

/// Days of grace the clock may be set to give before it suspends or withdraws.
pub const GRACE_DAYS: RangeInclusive<u32> = 0..=90;

/// The hour of the body's local morning from which the day's reminders go out.
pub const REMINDER_HOUR: u32 = 8;

/// Where a rule is a certification body's policy rather than a rule of the standards, its value
/// lives here. A stored policy is read with the defaults for what it does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "major_nc_due_days": 60,
    "minor_nc_due_days": 45,
    "verification_days": 14,
    "stage1_validity_months": 6,
    "suspension_limit_months": 6,
    "missed_surveillance_grace_days": 30,
    "withdrawal_grace_days": 30,
    "time_zone": "Europe/Berlin"
})))]
pub struct CertificationPolicy {
    /// Days after the audit's last day to correct a major NC (30–90; default 90).
    pub major_nc_due_days: u32,
    /// Days after the audit's last day for a minor NC's plan (30–90; default 30).
    pub minor_nc_due_days: u32,
    /// Days the body gives itself to verify a corrective action the client reported done (1–60;
    /// default 14).
    pub verification_days: u32,
    /// Months a stage 1 "ready" result stays valid for starting stage 2 (EA FAQ 49.3; 1–12,
    /// default 6).
    pub stage1_validity_months: u32,
    /// Months a suspension may last before it must be restored, the scope reduced, or the
    /// certificate withdrawn (1–12, default 6).
    pub suspension_limit_months: u32,
    /// Days a surveillance audit may be overdue before the clock suspends the certificate (cause
    /// `missed_audit`; 0–90, default 30).
    pub missed_surveillance_grace_days: u32,
    /// Days after the suspension limit before the clock withdraws a certificate that was neither
    /// restored nor reduced in scope (0–90, default 30).
    pub withdrawal_grace_days: u32,
    /// The body's time zone (an IANA name; default `UTC`): "today", every date rule and the
    /// reminders' morning are reckoned in it.
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "Europe/Berlin"))]
    pub time_zone: TimeZone,
}

impl Default for CertificationPolicy {
    fn default() -> Self {
        Self {
            major_nc_due_days: 90,
            minor_nc_due_days: 30,
            verification_days: 14,
            stage1_validity_months: 6,
            suspension_limit_months: 6,
            missed_surveillance_grace_days: 30,
            withdrawal_grace_days: 30,
            time_zone: TimeZone::default(),
        }
    }
}

impl CertificationPolicy {
    /// Checks every setting is inside its limits (the time zone was checked when it was read).
    pub fn validate(&self) -> Result<(), Vec<PolicyProblem>> {
        let checks: [(&str, u32, RangeInclusive<u32>, &str); 7] = [
            ("major_nc_due_days", self.major_nc_due_days, CAP_WINDOW_DAYS, "days"),
            ("minor_nc_due_days", self.minor_nc_due_days, CAP_WINDOW_DAYS, "days"),
            ("verification_days", self.verification_days, VERIFICATION_DAYS, "days"),
            ("stage1_validity_months", self.stage1_validity_months, STAGE1_VALIDITY_MONTHS, "months"),
            ("suspension_limit_months", self.suspension_limit_months, SUSPENSION_LIMIT_MONTHS, "months"),
            ("missed_surveillance_grace_days", self.missed_surveillance_grace_days, GRACE_DAYS, "days"),
            ("withdrawal_grace_days", self.withdrawal_grace_days, GRACE_DAYS, "days"),
        ];
        let problems: Vec<PolicyProblem> = checks
            .into_iter()
            .filter(|(_, value, limits, _)| !limits.contains(value))
            .map(|(field, _, limits, unit)| PolicyProblem {
                field: field.to_owned(),
                detail: format!("must be from {} to {} {unit}", limits.start(), limits.end()),
            })
            .collect();
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}

/// A time zone by its IANA name (`Europe/Berlin`, `America/New_York`, `UTC`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TimeZone(chrono_tz::Tz);

impl Default for TimeZone {
    fn default() -> Self {
        Self(chrono_tz::Tz::UTC)
    }
}

impl TimeZone {
    /// The zone named `name` (IANA, as spelled there).
    pub fn parse(name: &str) -> Result<Self, String> {
        name.parse::<chrono_tz::Tz>()
            .map(Self)
            .map_err(|_| format!("'{name}' is not an IANA time zone name (e.g. Europe/Berlin, America/New_York, UTC)"))
    }

    /// Its IANA name.
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// `at` as people of this zone read it: its date, hours and minutes, and the zone's
    /// abbreviation (`2027-01-04 13:00 CET`).
    pub fn local_time(self, at: DateTime<Utc>) -> String {
        at.with_timezone(&self.0).format("%Y-%m-%d %H:%M %Z").to_string()
    }

    /// The date in this zone at `now`.
    pub fn today(self, now: DateTime<Utc>) -> NaiveDate {
        now.with_timezone(&self.0).date_naive()
    }

    /// The latest day whose reminders are due at `now`: a step dated on a day goes out from
    /// [`REMINDER_HOUR`] o'clock of that day in this zone.
    pub fn reminder_day(self, now: DateTime<Utc>) -> NaiveDate {
        self.today(now - TimeDelta::hours(i64::from(REMINDER_HOUR)))
    }

    /// The latest day whose reminders are due at `now` in any zone (the zones run up to 14
    /// hours ahead of UTC): a scan reads the steps up to this day, then keeps each one whose own
    /// zone's [`TimeZone::reminder_day`] has come.
    pub fn latest_reminder_day(now: DateTime<Utc>) -> NaiveDate {
        (now + TimeDelta::hours(14 - i64::from(REMINDER_HOUR))).date_naive()
    }

    /// The latest date it is anywhere at `now`: a rule that waits for a date to pass everywhere
    /// reads its candidates up to this day, then checks each in its own zone.
    pub fn latest_today(now: DateTime<Utc>) -> NaiveDate {
        (now + TimeDelta::hours(14)).date_naive()
    }
}

impl fmt::Debug for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for TimeZone {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::parse(&name).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rfc3339: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(rfc3339).unwrap().to_utc()
    }

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn the_defaults_are_domain_md_s_and_inside_every_limit() {
        let policy = CertificationPolicy::default();
        assert_eq!((policy.major_nc_due_days, policy.minor_nc_due_days), (90, 30));
        assert_eq!((policy.stage1_validity_months, policy.suspension_limit_months), (6, 6));
        assert_eq!((policy.missed_surveillance_grace_days, policy.withdrawal_grace_days), (30, 30));
        assert_eq!(policy.time_zone.name(), "UTC");
        let winter = DateTime::parse_from_rfc3339("2027-01-04T12:00:00Z").unwrap().to_utc();
        assert_eq!(TimeZone::parse("Europe/Berlin").unwrap().local_time(winter), "2027-01-04 13:00 CET");
        assert_eq!(policy.time_zone.local_time(winter), "2027-01-04 12:00 UTC");
        assert_eq!(policy.validate(), Ok(()));
    }

    #[test]
    fn cap_days_outside_30_to_90_and_other_settings_past_their_limits_are_refused_by_field() {
        let policy = CertificationPolicy {
            major_nc_due_days: 91,
            minor_nc_due_days: 29,
            stage1_validity_months: 0,
            suspension_limit_months: 13,
            missed_surveillance_grace_days: 91,
            withdrawal_grace_days: 90,
            ..CertificationPolicy::default()
        };
        let problems = policy.validate().unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "major_nc_due_days",
                "minor_nc_due_days",
                "stage1_validity_months",
                "suspension_limit_months",
                "missed_surveillance_grace_days"
            ]
        );
        assert_eq!(problems[0].detail, "must be from 30 to 90 days");
    }

    #[test]
    fn a_stored_policy_reads_with_defaults_for_what_it_does_not_say_and_refuses_unknown_zones() {
        let stored: CertificationPolicy =
            serde_json::from_value(serde_json::json!({ "minor_nc_due_days": 45, "time_zone": "Asia/Tokyo" })).unwrap();
        assert_eq!(stored.minor_nc_due_days, 45);
        assert_eq!(stored.major_nc_due_days, 90);
        assert_eq!(serde_json::to_value(stored).unwrap()["time_zone"], "Asia/Tokyo");
        let unknown = serde_json::from_value::<CertificationPolicy>(serde_json::json!({ "time_zone": "Mars/Olympus" }));
        assert!(unknown.unwrap_err().to_string().contains("'Mars/Olympus' is not an IANA time zone name"));
    }

    #[test]
    fn today_is_the_date_in_the_body_s_zone() {
        // 23:30 in UTC on 31 December is already New Year's Day in Berlin, still 31 December in New York.
        let now = at("2026-12-31T23:30:00Z");
        assert_eq!(TimeZone::parse("Europe/Berlin").unwrap().today(now), date(2027, 1, 1));
        assert_eq!(TimeZone::parse("America/New_York").unwrap().today(now), date(2026, 12, 31));
        assert_eq!(TimeZone::default().today(now), date(2026, 12, 31));
    }

    #[test]
    fn a_day_s_reminders_go_out_from_eight_in_the_morning_of_the_zone() {
        let tokyo = TimeZone::parse("Asia/Tokyo").unwrap();
        // 22:59 UTC on 28 Feb is 07:59 on 1 March in Tokyo: still 28 February's reminders.
        assert_eq!(tokyo.reminder_day(at("2027-02-28T22:59:00Z")), date(2027, 2, 28));
        assert_eq!(tokyo.reminder_day(at("2027-02-28T23:00:00Z")), date(2027, 3, 1));
        // Leap day, in UTC.
        assert_eq!(TimeZone::default().reminder_day(at("2028-02-29T08:00:00Z")), date(2028, 2, 29));
        assert_eq!(TimeZone::default().reminder_day(at("2028-02-29T07:59:59Z")), date(2028, 2, 28));
    }

    #[test]
    fn the_latest_days_cover_the_zone_furthest_ahead() {
        let kiritimati = TimeZone::parse("Pacific/Kiritimati").unwrap();
        let now = at("2026-06-30T18:00:00Z");
        assert!(kiritimati.reminder_day(now) <= TimeZone::latest_reminder_day(now));
        assert!(kiritimati.today(now) <= TimeZone::latest_today(now));
        assert_eq!(TimeZone::latest_today(now), date(2026, 7, 1));
    }

    #[test]
    fn an_unknown_zone_name_is_refused_with_what_a_name_looks_like() {
        assert!(TimeZone::parse("Europe/Berlin").is_ok());
        assert!(TimeZone::parse("CET+1").unwrap_err().contains("is not an IANA time zone name"));
    }
}
