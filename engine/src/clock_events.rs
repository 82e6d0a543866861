//! Events the clock fires rather than a person, as the caller `certflow-clock`, one transaction per
//! engagement: a certificate whose expiry date passed without a new decision expires; a
//! surveillance audit overdue by the body's grace suspends the certificate (cause `missed_audit`);
//! a suspension neither restored nor reduced by its limit and the withdrawal grace after it is
//! withdrawn. Each rule counts in the engagement's body's time zone, with its body's graces.
//! Another worker, or a person, firing an event on the same engagement meanwhile is not
//! an error: the engagement is skipped.

use chrono::{DateTime, NaiveDate, Utc};
use entities::domain::deadline::{DeadlineKind, DeadlineStatus};
use entities::domain::lifecycle::EngagementCommand;
use entities::domain::policy::{CertificationPolicy, TimeZone};
use entities::domain::reminders::NotificationStatus;
use entities::domain::state::{EngagementEvent, EngagementState};
use entities::domain::text::Narrative;
use entities::domain::{CertificateStatus, SuspensionCause};
use entities::orm::{certificate, certification_policy, deadline, engagement, notification, prelude::*};
use sea_orm::sea_query::{Expr, ExprTrait, IntoIden, Order, Query, SelectStatement};
use sea_orm::{ColumnTrait, ConnectionTrait, FromQueryResult};
use uuid::Uuid;

use crate::Engine;
use crate::caller::Caller;
use crate::error::EngineError;
use crate::lifecycle::TransitionRequest;
use crate::policies::stored_certification_policy;

/// What one pass of the clock did: the engagements each event moved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClockReport {
    /// Certificates expired.
    pub expired: Vec<Uuid>,
    /// Certificates suspended for a missed surveillance audit.
    pub suspended: Vec<Uuid>,
    /// Certificates withdrawn after their suspension's limit and grace.
    pub withdrawn: Vec<Uuid>,
}

/// Fires every event the clock decides at `now`: suspensions and withdrawals first, then expiries
/// (a certificate past its expiry expires whatever else is due).
pub async fn fire_clock_events(engine: &Engine, now: DateTime<Utc>) -> Result<ClockReport, EngineError> {
    let suspended = suspend_for_missed_surveillance(engine, now).await?;
    let withdrawn = withdraw_after_suspension_limit(engine, now).await?;
    let expired = expire_lapsed_certificates(engine, now).await?;
    Ok(ClockReport { expired, suspended, withdrawn })
}

/// Expires every active or suspended certificate whose expiry date is before today (in its body's
/// time zone), in every state that allows `expire`, and returns the engagements expired. An
/// engagement whose expiry escalation is still waiting to be sent is left for a later tick:
/// expiring cancels the deadline's unsent emails, and that one must go out.
pub async fn expire_lapsed_certificates(engine: &Engine, now: DateTime<Utc>) -> Result<Vec<Uuid>, EngineError> {
    let expiring_states: Vec<_> =
        EngagementState::all().filter(|state| state.targets(EngagementEvent::Expire).is_some()).collect();
    let mut statement =
        candidates(&expiring_states, DeadlineKind::CertificateExpiry, (Certificate, certificate::Column::ExpiresOn));
    statement
        .inner_join(
            Certificate,
            Expr::col((Certificate, certificate::Column::EngagementId)).equals((Engagement, engagement::Column::Id)),
        )
        .and_where(certificate::Column::Status.is_in([CertificateStatus::Active, CertificateStatus::Suspended]))
        .and_where(certificate::Column::ExpiresOn.lt(TimeZone::latest_today(now)));
    let reason = "the certificate's expiry date passed without a new certification decision";
    let due = Candidate::all(engine, &statement)
        .await?
        .into_iter()
        .filter(|c| c.counted_from < c.policy.time_zone.today(now))
        .map(|c| (c.engagement_id, reason.to_owned()))
        .collect();
    fire_each(engine, due, EngagementCommand::Expire, "certificate expired by the clock").await
}

/// Suspends (cause `missed_audit`) the certificate of every certified engagement whose surveillance
/// audit is overdue by more than its body's grace (`missed_surveillance_grace_days`).
pub async fn suspend_for_missed_surveillance(engine: &Engine, now: DateTime<Utc>) -> Result<Vec<Uuid>, EngineError> {
    let states = [EngagementState::Certified, EngagementState::Surveillance];
    let due = overdue(engine, now, DeadlineKind::SurveillanceDue, &states, |policy| {
        let grace = policy.missed_surveillance_grace_days;
        (grace, format!("the surveillance audit was not held within {grace} days of its due date"))
    })
    .await?;
    let command = EngagementCommand::Suspend { cause: SuspensionCause::MissedAudit };
    fire_each(engine, due, command, "certificate suspended by the clock: surveillance missed").await
}

/// Withdraws the certificate of every suspended engagement whose suspension limit passed more than
/// the body's withdrawal grace ago (`withdrawal_grace_days`) without a restoration or a scope
/// reduction. The limit's own escalation goes out first (withdrawing cancels unsent emails).
pub async fn withdraw_after_suspension_limit(engine: &Engine, now: DateTime<Utc>) -> Result<Vec<Uuid>, EngineError> {
    let due = overdue(engine, now, DeadlineKind::SuspensionLimit, &[EngagementState::Suspended], |policy| {
        let grace = policy.withdrawal_grace_days;
        (grace, format!("the suspension was neither resolved nor the scope reduced within {grace} days of its limit"))
    })
    .await?;
    fire_each(engine, due, EngagementCommand::Withdraw, "certificate withdrawn by the clock").await
}

/// The day `days` days before `today`: a deadline due before it is overdue by more than `days`.
fn days_before(today: NaiveDate, days: u32) -> NaiveDate {
    today.checked_sub_days(chrono::Days::new(u64::from(days))).unwrap_or(NaiveDate::MIN)
}

/// An engagement a clock event may move: the date its rule counts from, and its body's policy.
#[derive(Debug)]
struct Candidate {
    engagement_id: Uuid,
    counted_from: NaiveDate,
    policy: CertificationPolicy,
}

#[derive(Debug, FromQueryResult)]
struct CandidateRow {
    engagement_id: Uuid,
    counted_from: NaiveDate,
    certification_policy: Option<serde_json::Value>,
}

impl Candidate {
    /// The candidates `statement` (from [`candidates`]) reads, each engagement once.
    async fn all(engine: &Engine, statement: &SelectStatement) -> Result<Vec<Self>, EngineError> {
        let mut found: Vec<Self> = Vec::new();
        for row in engine.db.query_all(statement).await? {
            let row = CandidateRow::from_query_result(&row, "")?;
            if found.last().is_some_and(|last| last.engagement_id == row.engagement_id) {
                continue;
            }
            let policy = stored_certification_policy(row.certification_policy)?;
            found.push(Self { engagement_id: row.engagement_id, counted_from: row.counted_from, policy });
        }
        Ok(found)
    }
}

/// The engagements in `states` with what a rule counts from (`counted_from`, a column of a table
/// the caller joins) and their body's certification policy, leaving out those with an email of a
/// deadline of `kind` not yet sent; in engagement order.
fn candidates(
    states: &[EngagementState],
    kind: DeadlineKind,
    counted_from: (impl IntoIden, impl IntoIden),
) -> SelectStatement {
    Query::select()
        .expr_as(Expr::col((Engagement, engagement::Column::Id)), "engagement_id")
        .expr_as(Expr::col(counted_from), "counted_from")
        .expr_as(Expr::col((CertificationPolicyRecord, certification_policy::Column::Policy)), "certification_policy")
        .from(Engagement)
        .left_join(
            CertificationPolicyRecord,
            Expr::col((CertificationPolicyRecord, certification_policy::Column::CertificationBodyId))
                .equals((Engagement, engagement::Column::CertificationBodyId)),
        )
        .and_where(engagement::Column::State.is_in(states.iter().copied()))
        .and_where(engagement::Column::Id.not_in_subquery(escalation_unsent(kind)))
        .order_by((Engagement, engagement::Column::Id), Order::Asc)
        .to_owned()
}

/// Engagements in `states` with an open deadline of `kind` overdue by more than the grace `grace`
/// gives under their body's policy (with the reason to record), whose escalations of that
/// deadline have all been sent.
async fn overdue(
    engine: &Engine,
    now: DateTime<Utc>,
    kind: DeadlineKind,
    states: &[EngagementState],
    grace: impl Fn(&CertificationPolicy) -> (u32, String),
) -> Result<Vec<(Uuid, String)>, EngineError> {
    let mut statement = candidates(states, kind, (Deadline, deadline::Column::DueOn));
    statement
        .inner_join(
            Deadline,
            Expr::col((Deadline, deadline::Column::EngagementId)).equals((Engagement, engagement::Column::Id)),
        )
        .and_where(deadline::Column::Kind.eq(kind))
        .and_where(deadline::Column::Status.eq(DeadlineStatus::Open))
        .and_where(deadline::Column::DueOn.lt(TimeZone::latest_today(now)));
    Ok(Candidate::all(engine, &statement)
        .await?
        .into_iter()
        .filter_map(|c| {
            let (days, reason) = grace(&c.policy);
            (c.counted_from < days_before(c.policy.time_zone.today(now), days)).then_some((c.engagement_id, reason))
        })
        .collect())
}

/// The engagements with an email of a deadline of `kind` not yet sent.
fn escalation_unsent(kind: DeadlineKind) -> SelectStatement {
    Query::select()
        .column((Deadline, deadline::Column::EngagementId))
        .from(Deadline)
        .inner_join(
            Notification,
            Expr::col((Notification, notification::Column::DeadlineId)).equals((Deadline, deadline::Column::Id)),
        )
        .and_where(deadline::Column::Kind.eq(kind))
        .and_where(notification::Column::Status.is_in([NotificationStatus::Pending, NotificationStatus::Sending]))
        .to_owned()
}

/// Fires `command` on each engagement of `due` as the clock, one transaction each; returns those
/// it moved.
async fn fire_each(
    engine: &Engine,
    due: Vec<(Uuid, String)>,
    command: EngagementCommand,
    what: &'static str,
) -> Result<Vec<Uuid>, EngineError> {
    let clock = Caller::clock();
    let mut moved = Vec::new();
    for (id, reason) in due {
        let request = TransitionRequest {
            command: command.clone(),
            audit_id: None,
            gaps: Vec::new(),
            reason: Narrative::parse(&reason).ok(),
            evidence: Vec::new(),
            expected_version: None,
            scope: None,
        };
        match engine.fire(&clock, id, &request, None).await {
            Ok((write, _)) => {
                write.commit(None).await?;
                tracing::info!(engagement_id = %id, "{what}");
                moved.push(id);
            }
            // Decided, restored, withdrawn or expired by someone else between the query and the lock.
            Err(EngineError::Transition(refusal)) => {
                tracing::info!(engagement_id = %id, %refusal, "not moved by the clock: the engagement changed meanwhile");
            }
            Err(error) => return Err(error),
        }
    }
    Ok(moved)
}
