//! Reminder and escalation schedules: which emails a deadline produces, when, and to whom.
//! Schedules are data (a certification body may change them); these functions decide, given a
//! deadline's due date and today, which steps are due, which are superseded, and when to look again.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::dates::add_days;
use super::deadline::DeadlineKind;

vocabulary! {
    /// Who receives a step, by role in the engagement.
    pub enum RecipientRole {
        /// The deadline's owner (e.g. the corrective action's owner).
        DeadlineOwner,
        /// The client's manager of the engagement.
        EngagementManager,
        /// The certification body's coordinator.
        CbCoordinator,
        /// The client's executive.
        ClientExecutive,
        /// The client's ISMS manager.
        ClientIsmsManager,
    }
}

/// Who holds each role of a deadline's engagement (absent when the engagement has no body yet).
#[derive(Debug, Clone, Copy, Default)]
pub struct RoleHolders<'a> {
    /// The deadline's owner.
    pub owner: Option<&'a str>,
    /// The client's manager of the engagement.
    pub engagement_manager: Option<&'a str>,
    /// The certification body's coordinator.
    pub cb_coordinator: Option<&'a str>,
    /// The client's executive.
    pub client_executive: Option<&'a str>,
    /// The client's ISMS manager.
    pub client_isms_manager: Option<&'a str>,
}

impl RoleHolders<'_> {
    /// The addresses of `roles`, each once, in the order of the roles.
    pub fn addresses(&self, roles: &[RecipientRole]) -> Vec<String> {
        let mut addresses: Vec<String> = Vec::new();
        for role in roles {
            let address = match role {
                RecipientRole::DeadlineOwner => self.owner,
                RecipientRole::EngagementManager => self.engagement_manager,
                RecipientRole::CbCoordinator => self.cb_coordinator,
                RecipientRole::ClientExecutive => self.client_executive,
                RecipientRole::ClientIsmsManager => self.client_isms_manager,
            };
            if let Some(address) = address.filter(|a| !addresses.iter().any(|known| known == a)) {
                addresses.push(address.to_owned());
            }
        }
        addresses
    }
}

vocabulary! {
    /// A reminder (before or on the due date) or an escalation (on or after it).
    pub enum StepKind {
        /// Tells the recipients a deadline approaches.
        Reminder,
        /// Tells people up the chain a deadline is due or missed.
        Escalation,
        /// Tells the parties of an event as it happens (a suspension), with the deadline it
        /// opened; sent at once, never part of a schedule.
        Notice,
    }
}

vocabulary! {
    /// Where one reminder or escalation email stands.
    pub enum NotificationStatus {
        /// Claimed, waiting to be sent (or to be retried).
        Pending,
        /// A delivery job holds it (until its lease ends).
        Sending,
        /// Accepted by the mail server.
        Sent,
        /// Every try failed; an admin can re-queue it.
        Failed,
        /// Due while a later step was also due: recorded, never sent.
        Skipped,
        /// Its deadline was met, moved or cancelled first.
        Cancelled,
    }
}

/// One step of a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReminderStep {
    /// Days relative to the due date: negative before, 0 on the day, positive after.
    pub offset_days: i32,
    /// Reminder or escalation.
    pub kind: StepKind,
    /// Who receives it.
    pub recipients: Vec<RecipientRole>,
}

impl ReminderStep {
    fn new(offset_days: i32, kind: StepKind, recipients: &[RecipientRole]) -> Self {
        Self { offset_days, kind, recipients: recipients.to_vec() }
    }

    /// The stable key of this step within a deadline: `reminder-14`, `escalation+0`.
    pub fn key(&self) -> String {
        format!("{}{:+}", self.kind, self.offset_days)
    }

    /// The day this step falls on for a deadline due on `due_on`.
    pub fn date(&self, due_on: NaiveDate) -> NaiveDate {
        let days = self.offset_days.unsigned_abs();
        if self.offset_days < 0 {
            due_on.checked_sub_days(chrono::Days::new(u64::from(days))).unwrap_or(NaiveDate::MIN)
        } else {
            add_days(due_on, days)
        }
    }
}

/// A schedule per deadline kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReminderPolicy {
    /// The steps of each kind of deadline, in date order.
    pub schedules: BTreeMap<DeadlineKind, Vec<ReminderStep>>,
}

/// The longest a step may stand from its due date, in days.
pub const MAX_OFFSET_DAYS: i32 = 400;
/// The most steps one schedule may have.
pub const MAX_STEPS: usize = 12;

impl Default for ReminderPolicy {
    /// The defaults of DOMAIN.md, with an escalation on the due day wherever DOMAIN.md names none,
    /// so that no deadline passes silently.
    fn default() -> Self {
        use DeadlineKind as K;
        use RecipientRole::*;
        use StepKind::{Escalation as E, Reminder as R};
        let step = ReminderStep::new;
        let schedules = BTreeMap::from([
            (
                K::CorrectiveActionPlanDue,
                vec![
                    step(-14, R, &[DeadlineOwner]),
                    step(-7, R, &[DeadlineOwner]),
                    step(-1, R, &[DeadlineOwner]),
                    step(0, E, &[DeadlineOwner, CbCoordinator]),
                    step(7, E, &[DeadlineOwner, CbCoordinator, ClientExecutive]),
                ],
            ),
            (
                K::CorrectiveActionVerification,
                vec![
                    step(-7, R, &[DeadlineOwner]),
                    step(-1, R, &[DeadlineOwner]),
                    step(0, E, &[DeadlineOwner, EngagementManager]),
                    step(7, E, &[DeadlineOwner, EngagementManager, ClientExecutive]),
                ],
            ),
            (
                K::CorrectiveActionDue,
                vec![
                    step(-14, R, &[DeadlineOwner]),
                    step(-7, R, &[DeadlineOwner]),
                    step(-1, R, &[DeadlineOwner]),
                    step(0, E, &[DeadlineOwner, EngagementManager]),
                    step(7, E, &[DeadlineOwner, EngagementManager, CbCoordinator, ClientExecutive]),
                ],
            ),
            (
                K::MajorNcLimit,
                vec![
                    step(-60, R, &[DeadlineOwner, CbCoordinator]),
                    step(-30, R, &[DeadlineOwner, CbCoordinator]),
                    step(0, E, &[DeadlineOwner, CbCoordinator, ClientExecutive]),
                ],
            ),
            (
                K::SurveillanceDue,
                vec![
                    step(-90, R, &[CbCoordinator, ClientIsmsManager]),
                    step(-60, R, &[CbCoordinator, ClientIsmsManager]),
                    step(-30, R, &[CbCoordinator, ClientIsmsManager]),
                    step(0, E, &[CbCoordinator, ClientIsmsManager, ClientExecutive]),
                ],
            ),
            (
                K::CertificateExpiry,
                vec![
                    step(-180, R, &[DeadlineOwner, CbCoordinator]),
                    step(-90, R, &[DeadlineOwner, CbCoordinator]),
                    step(-30, R, &[DeadlineOwner, CbCoordinator]),
                    step(0, E, &[DeadlineOwner, CbCoordinator, ClientExecutive]),
                ],
            ),
            (
                K::Stage1Validity,
                vec![
                    step(-30, R, &[DeadlineOwner, EngagementManager]),
                    step(0, E, &[DeadlineOwner, EngagementManager]),
                ],
            ),
            (
                K::SuspensionLimit,
                vec![
                    step(-30, R, &[DeadlineOwner, EngagementManager]),
                    step(0, E, &[DeadlineOwner, EngagementManager, ClientExecutive]),
                ],
            ),
            (
                K::RestoreAfterExpiryLimit,
                vec![
                    step(-30, R, &[DeadlineOwner, EngagementManager]),
                    step(0, E, &[DeadlineOwner, EngagementManager, ClientExecutive]),
                ],
            ),
        ]);
        Self { schedules }
    }
}

/// What is wrong with a policy, by field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyProblem {
    /// `schedules.<kind>[<i>]...`
    pub field: String,
    /// What is wrong.
    pub detail: String,
}

impl ReminderPolicy {
    /// Checks the policy: every kind of deadline has a schedule; steps are in strictly increasing
    /// date order; reminders fall before or on the due date and escalations on or after it (so no
    /// reminder follows an escalation); each step has recipients, none twice.
    pub fn validate(&self) -> Result<(), Vec<PolicyProblem>> {
        let mut problems = Vec::new();
        let mut problem =
            |field: String, detail: &str| problems.push(PolicyProblem { field, detail: detail.to_owned() });
        for kind in <DeadlineKind as sea_orm::Iterable>::iter() {
            match self.schedules.get(&kind) {
                None => problem(format!("schedules.{kind}"), "every kind of deadline needs a schedule"),
                Some(steps) if steps.is_empty() => problem(format!("schedules.{kind}"), "needs at least one step"),
                Some(steps) if steps.len() > MAX_STEPS => problem(format!("schedules.{kind}"), "at most 12 steps"),
                Some(steps) => {
                    for (i, step) in steps.iter().enumerate() {
                        let field = format!("schedules.{kind}[{i}]");
                        if step.offset_days.unsigned_abs() > MAX_OFFSET_DAYS.unsigned_abs() {
                            problem(format!("{field}.offset_days"), "at most 400 days from the due date");
                        }
                        match step.kind {
                            StepKind::Reminder if step.offset_days > 0 => problem(
                                format!("{field}.offset_days"),
                                "a reminder comes before or on the due date (offset <= 0)",
                            ),
                            StepKind::Escalation if step.offset_days < 0 => problem(
                                format!("{field}.offset_days"),
                                "an escalation comes on or after the due date (offset >= 0)",
                            ),
                            StepKind::Notice => problem(
                                format!("{field}.kind"),
                                "a schedule holds reminders and escalations; a notice goes out with its event",
                            ),
                            _ => {}
                        }
                        if i > 0 && steps[i - 1].offset_days >= step.offset_days {
                            problem(format!("{field}.offset_days"), "steps must be sorted by offset, each offset once");
                        }
                        if step.recipients.is_empty() {
                            problem(format!("{field}.recipients"), "needs at least one recipient");
                        }
                        if step.recipients.iter().collect::<BTreeSet<_>>().len() != step.recipients.len() {
                            problem(format!("{field}.recipients"), "names a role twice");
                        }
                    }
                }
            }
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    /// The schedule for `kind` (the default one when this policy has none).
    pub fn schedule(&self, kind: DeadlineKind) -> Vec<ReminderStep> {
        self.schedules
            .get(&kind)
            .cloned()
            .unwrap_or_else(|| Self::default().schedules.remove(&kind).unwrap_or_default())
    }
}

/// The day the first step of `schedule` falls on, for a deadline due on `due_on`.
pub fn first_step_on(schedule: &[ReminderStep], due_on: NaiveDate) -> Option<NaiveDate> {
    schedule.iter().map(|s| s.date(due_on)).min()
}

/// What a scan does with one deadline today.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepPlan {
    /// Steps to send now, in date order.
    pub send: Vec<ReminderStep>,
    /// Due steps a later due step makes pointless (an old reminder when a newer one or an
    /// escalation is also due): recorded, never sent.
    pub superseded: Vec<ReminderStep>,
    /// When a step falls next after today, if any.
    pub next_step_on: Option<NaiveDate>,
}

/// Plans the steps of a deadline due on `due_on`, on `today`, given the keys of the steps already
/// recorded for it. Every escalation that is due is sent; a due reminder is sent only when no later
/// step is also due.
pub fn plan_steps(
    schedule: &[ReminderStep],
    due_on: NaiveDate,
    today: NaiveDate,
    recorded: &HashSet<String>,
) -> StepPlan {
    let mut steps: Vec<&ReminderStep> = schedule.iter().collect();
    steps.sort_by_key(|s| s.offset_days);
    let due: Vec<&ReminderStep> = steps.iter().copied().filter(|s| s.date(due_on) <= today).collect();
    let latest_due = due.iter().map(|s| s.offset_days).max();
    let mut plan = StepPlan { send: Vec::new(), superseded: Vec::new(), next_step_on: None };
    for step in due.into_iter().filter(|s| !recorded.contains(&s.key())) {
        let is_latest = Some(step.offset_days) == latest_due;
        if step.kind == StepKind::Escalation || is_latest {
            plan.send.push(step.clone());
        } else {
            plan.superseded.push(step.clone());
        }
    }
    plan.next_step_on = steps.iter().map(|s| s.date(due_on)).filter(|d| *d > today).min();
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn keys(steps: &[ReminderStep]) -> Vec<String> {
        steps.iter().map(ReminderStep::key).collect()
    }

    fn cap() -> Vec<ReminderStep> {
        ReminderPolicy::default().schedule(DeadlineKind::CorrectiveActionDue)
    }

    #[test]
    fn the_default_policy_is_valid_and_covers_every_kind_of_deadline() {
        assert_eq!(ReminderPolicy::default().validate(), Ok(()));
        assert_eq!(keys(&cap()), ["reminder-14", "reminder-7", "reminder-1", "escalation+0", "escalation+7"]);
    }

    #[test]
    fn walking_day_by_day_sends_each_step_once_on_its_day() {
        let due = d(2026, 3, 20);
        let mut recorded = HashSet::new();
        let mut sent = Vec::new();
        let mut today = d(2026, 3, 1);
        while today <= d(2026, 4, 10) {
            let plan = plan_steps(&cap(), due, today, &recorded);
            assert!(plan.superseded.is_empty(), "{today}");
            for step in plan.send {
                sent.push((step.key(), today));
                recorded.insert(step.key());
            }
            today = today.succ_opt().unwrap();
        }
        let expected = [
            ("reminder-14", d(2026, 3, 6)),
            ("reminder-7", d(2026, 3, 13)),
            ("reminder-1", d(2026, 3, 19)),
            ("escalation+0", d(2026, 3, 20)),
            ("escalation+7", d(2026, 3, 27)),
        ];
        let expected: Vec<(String, NaiveDate)> = expected.iter().map(|(k, day)| ((*k).to_owned(), *day)).collect();
        assert_eq!(sent, expected);
    }

    #[test]
    fn after_an_outage_old_reminders_are_superseded_but_every_escalation_is_sent() {
        let due = d(2026, 3, 20);
        let plan = plan_steps(&cap(), due, d(2026, 3, 28), &HashSet::new());
        assert_eq!(keys(&plan.send), ["escalation+0", "escalation+7"]);
        assert_eq!(keys(&plan.superseded), ["reminder-14", "reminder-7", "reminder-1"]);
        assert_eq!(plan.next_step_on, None);

        let plan = plan_steps(&cap(), due, d(2026, 3, 15), &HashSet::new());
        assert_eq!(keys(&plan.send), ["reminder-7"]);
        assert_eq!(keys(&plan.superseded), ["reminder-14"]);
        assert_eq!(plan.next_step_on, Some(d(2026, 3, 19)));
    }

    #[test]
    fn recorded_steps_are_never_planned_again() {
        let due = d(2026, 3, 20);
        let recorded: HashSet<String> = ["reminder-14".to_owned()].into();
        let plan = plan_steps(&cap(), due, d(2026, 3, 6), &recorded);
        assert!(plan.send.is_empty() && plan.superseded.is_empty());
        assert_eq!(plan.next_step_on, Some(d(2026, 3, 13)));
        assert_eq!(first_step_on(&cap(), due), Some(d(2026, 3, 6)));
    }

    #[test]
    fn invalid_policies_name_each_problem() {
        let mut policy = ReminderPolicy::default();
        policy.schedules.remove(&DeadlineKind::SurveillanceDue);
        policy.schedules.insert(
            DeadlineKind::CorrectiveActionDue,
            vec![
                ReminderStep::new(-7, StepKind::Reminder, &[RecipientRole::DeadlineOwner]),
                ReminderStep::new(-14, StepKind::Reminder, &[]),
                ReminderStep::new(
                    -3,
                    StepKind::Escalation,
                    &[RecipientRole::CbCoordinator, RecipientRole::CbCoordinator],
                ),
                ReminderStep::new(2, StepKind::Reminder, &[RecipientRole::DeadlineOwner]),
            ],
        );
        let fields: Vec<String> = policy.validate().unwrap_err().into_iter().map(|p| p.field).collect();
        assert_eq!(
            fields,
            [
                "schedules.corrective_action_due[1].offset_days",
                "schedules.corrective_action_due[1].recipients",
                "schedules.corrective_action_due[2].offset_days",
                "schedules.corrective_action_due[2].recipients",
                "schedules.corrective_action_due[3].offset_days",
                "schedules.surveillance_due",
            ]
        );
    }

    #[test]
    fn offsets_beyond_400_days_are_refused_down_to_the_smallest_integer() {
        for offset_days in [i32::MIN, -401, 401, i32::MAX] {
            let mut policy = ReminderPolicy::default();
            let kind = if offset_days < 0 { StepKind::Reminder } else { StepKind::Escalation };
            let step = ReminderStep::new(offset_days, kind, &[RecipientRole::DeadlineOwner]);
            policy.schedules.insert(DeadlineKind::CorrectiveActionDue, vec![step]);
            let fields: Vec<String> = policy.validate().unwrap_err().into_iter().map(|p| p.field).collect();
            assert_eq!(fields, ["schedules.corrective_action_due[0].offset_days"], "{offset_days}");
        }
    }

    #[test]
    fn step_keys_and_dates_are_stable() {
        let step = ReminderStep::new(-14, StepKind::Reminder, &[RecipientRole::DeadlineOwner]);
        assert_eq!(step.key(), "reminder-14");
        assert_eq!(step.date(d(2026, 3, 1)), d(2026, 2, 15));
        assert_eq!(ReminderStep::new(0, StepKind::Escalation, &[]).key(), "escalation+0");
    }
}
