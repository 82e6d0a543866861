//! Events the clock fires rather than a person, as the caller `certflow-clock`, one transaction per
//! engagement: a certificate whose expiry date passed without a new decision expires; a
//! surveillance audit overdue by the body's grace suspends the certificate (cause `missed_audit`);
//! a suspension neither restored nor reduced by its limit and the withdrawal grace after it is
//! withdrawn. Another worker, or a person, firing an event on the same engagement meanwhile is not
//! an error: the engagement is skipped.

use chrono::{DateTime, NaiveDate, Utc};
use entities::domain::deadline::{DeadlineKind, DeadlineStatus};
use entities::domain::lifecycle::EngagementCommand;
use entities::domain::reminders::NotificationStatus;
use entities::domain::state::{EngagementEvent, EngagementState};
use entities::domain::text::Narrative;
use entities::domain::{CertificateStatus, SuspensionCause};
use entities::orm::{certificate, deadline, engagement, notification, prelude::*};
use sea_orm::sea_query::{Expr, ExprTrait, Query, SelectStatement};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::Engine;
use crate::caller::Caller;
use crate::error::EngineError;
use crate::lifecycle::TransitionRequest;

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

/// Expires every active or suspended certificate whose expiry date is before `now`'s day, in every
/// state that allows `expire`, and returns the engagements expired. An engagement whose expiry
/// escalation is still waiting to be sent is left for a later tick: expiring cancels the
/// deadline's unsent emails, and that one must go out.
pub async fn expire_lapsed_certificates(engine: &Engine, now: DateTime<Utc>) -> Result<Vec<Uuid>, EngineError> {
    let today = now.date_naive();
    let lapsed = Query::select()
        .column(certificate::Column::EngagementId)
        .from(Certificate)
        .and_where(certificate::Column::Status.is_in([CertificateStatus::Active, CertificateStatus::Suspended]))
        .and_where(certificate::Column::ExpiresOn.lt(today))
        .to_owned();
    let expiring_states: Vec<_> =
        EngagementState::all().filter(|state| state.targets(EngagementEvent::Expire).is_some()).collect();
    let due: Vec<Uuid> = Engagement::find()
        .select_only()
        .column(engagement::Column::Id)
        .filter(engagement::Column::State.is_in(expiring_states))
        .filter(engagement::Column::Id.in_subquery(lapsed))
        .filter(engagement::Column::Id.not_in_subquery(escalation_unsent(DeadlineKind::CertificateExpiry)))
        .order_by_asc(engagement::Column::Id)
        .into_tuple()
        .all(&engine.db)
        .await?;
    let reason = "the certificate's expiry date passed without a new certification decision";
    fire_each(engine, due, EngagementCommand::Expire, reason.to_owned(), "certificate expired by the clock").await
}

/// Suspends (cause `missed_audit`) the certificate of every certified engagement whose surveillance
/// audit is overdue by more than its body's grace (`missed_surveillance_grace_days`).
pub async fn suspend_for_missed_surveillance(engine: &Engine, now: DateTime<Utc>) -> Result<Vec<Uuid>, EngineError> {
    let grace = engine.policy.missed_surveillance_grace_days;
    let overdue_before = days_before(now.date_naive(), grace);
    let due = engagements_with_overdue(
        engine,
        DeadlineKind::SurveillanceDue,
        overdue_before,
        &[EngagementState::Certified, EngagementState::Surveillance],
    )
    .await?;
    let reason = format!("the surveillance audit was not held within {grace} days of its due date");
    let command = EngagementCommand::Suspend { cause: SuspensionCause::MissedAudit };
    fire_each(engine, due, command, reason, "certificate suspended by the clock: surveillance missed").await
}

/// Withdraws the certificate of every suspended engagement whose suspension limit passed more than
/// the body's withdrawal grace ago (`withdrawal_grace_days`) without a restoration or a scope
/// reduction. The limit's own escalation goes out first (withdrawing cancels unsent emails).
pub async fn withdraw_after_suspension_limit(engine: &Engine, now: DateTime<Utc>) -> Result<Vec<Uuid>, EngineError> {
    let grace = engine.policy.withdrawal_grace_days;
    let overdue_before = days_before(now.date_naive(), grace);
    let due =
        engagements_with_overdue(engine, DeadlineKind::SuspensionLimit, overdue_before, &[EngagementState::Suspended])
            .await?;
    let reason = format!("the suspension was neither resolved nor the scope reduced within {grace} days of its limit");
    fire_each(engine, due, EngagementCommand::Withdraw, reason, "certificate withdrawn by the clock").await
}

/// The day `days` days before `today`: a deadline due before it is overdue by more than `days`.
fn days_before(today: NaiveDate, days: u32) -> NaiveDate {
    today.checked_sub_days(chrono::Days::new(u64::from(days))).unwrap_or(NaiveDate::MIN)
}

/// Engagements in `states` with an open deadline of `kind` due before `due_before`, whose
/// escalations of that deadline have all been sent.
async fn engagements_with_overdue(
    engine: &Engine,
    kind: DeadlineKind,
    due_before: NaiveDate,
    states: &[EngagementState],
) -> Result<Vec<Uuid>, EngineError> {
    let overdue = Query::select()
        .column(deadline::Column::EngagementId)
        .from(Deadline)
        .and_where(deadline::Column::Kind.eq(kind))
        .and_where(deadline::Column::Status.eq(DeadlineStatus::Open))
        .and_where(deadline::Column::DueOn.lt(due_before))
        .to_owned();
    Ok(Engagement::find()
        .select_only()
        .column(engagement::Column::Id)
        .filter(engagement::Column::State.is_in(states.iter().copied()))
        .filter(engagement::Column::Id.in_subquery(overdue))
        .filter(engagement::Column::Id.not_in_subquery(escalation_unsent(kind)))
        .order_by_asc(engagement::Column::Id)
        .into_tuple()
        .all(&engine.db)
        .await?)
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
    due: Vec<Uuid>,
    command: EngagementCommand,
    reason: String,
    what: &'static str,
) -> Result<Vec<Uuid>, EngineError> {
    let clock = Caller::clock();
    let request = TransitionRequest {
        command,
        audit_id: None,
        gaps: Vec::new(),
        reason: Narrative::parse(&reason).ok(),
        evidence: Vec::new(),
        expected_version: None,
        scope: None,
    };
    let mut moved = Vec::new();
    for id in due {
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
