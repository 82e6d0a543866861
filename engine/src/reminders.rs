//! Where reminders meet the lifecycle: each CB's policy, a new deadline's first step, and the
//! pending emails of a deadline that closes.

use chrono::{DateTime, NaiveDate, Utc};
use entities::domain::deadline::DeadlineKind;
use entities::domain::reminders::{
    NotificationStatus, RecipientRole, ReminderPolicy, RoleHolders, StepKind, first_step_on,
};
use entities::orm::{deadline, engagement, json_strings, notification, prelude::*};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::error::EngineError;
use crate::store::WriteTransaction;

/// The reminder policy of certification body `cb_id` (the default when it set none).
pub async fn reminder_policy_of(
    conn: &impl ConnectionTrait,
    cb_id: Option<Uuid>,
) -> Result<ReminderPolicy, EngineError> {
    let Some(cb_id) = cb_id else {
        return Ok(ReminderPolicy::default());
    };
    match ReminderPolicyRecord::find_by_id(cb_id).one(conn).await? {
        None => Ok(ReminderPolicy::default()),
        Some(record) => serde_json::from_value(record.policy).map_err(|e| {
            EngineError::Unexpected(anyhow::Error::new(e).context("Failed to read a stored reminder policy"))
        }),
    }
}

/// The day the first reminder of a new deadline falls on.
pub fn first_reminder_on(policy: &ReminderPolicy, kind: DeadlineKind, due_on: NaiveDate) -> Option<NaiveDate> {
    first_step_on(&policy.schedule(kind), due_on)
}

/// Cancels the emails not yet sent of the deadlines `ids`, which are about to close: a met,
/// moved or cancelled deadline stops its reminders at once.
pub async fn cancel_pending_notifications(conn: &impl ConnectionTrait, ids: &[Uuid]) -> Result<(), EngineError> {
    Notification::update_many()
        .col_expr(notification::Column::Status, Expr::value(NotificationStatus::Cancelled))
        .filter(notification::Column::Status.eq(NotificationStatus::Pending))
        .filter(notification::Column::DeadlineId.is_in(ids.iter().copied()))
        .exec(conn)
        .await?;
    Ok(())
}

/// Who is told at once of an event: the body's coordinator, and the client's ISMS manager,
/// executive and manager of the engagement.
pub const NOTICE_TO: [RecipientRole; 4] = [
    RecipientRole::CbCoordinator,
    RecipientRole::ClientIsmsManager,
    RecipientRole::ClientExecutive,
    RecipientRole::EngagementManager,
];

/// Records a notice of an event of `engagement` on `deadline` (the deadline the event opened),
/// keyed `step_key`, to [`NOTICE_TO`]: the worker sends it at its next tick, like any claimed step.
pub async fn notify_at_once(
    txn: &WriteTransaction,
    engagement: &engagement::Model,
    deadline: &deadline::Model,
    step_key: &str,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Result<(), EngineError> {
    let organization = Organization::find_by_id(engagement.organization_id).one(txn).await?;
    let body = match engagement.certification_body_id {
        Some(id) => CertificationBody::find_by_id(id).one(txn).await?,
        None => None,
    };
    let recipients = RoleHolders {
        owner: Some(&deadline.owner_email),
        engagement_manager: Some(&engagement.manager_email),
        cb_coordinator: body.as_ref().map(|b| b.coordinator_email.as_str()),
        client_executive: organization.as_ref().map(|o| o.executive_email.as_str()),
        client_isms_manager: organization.as_ref().map(|o| o.isms_manager_email.as_str()),
    }
    .addresses(&NOTICE_TO);
    let step = NotificationStep { key: step_key.to_owned(), kind: StepKind::Notice, scheduled_on: today };
    notification_row(deadline, step, &recipients, NotificationStatus::Pending, now).insert(txn).await?;
    Ok(())
}

/// A step of a deadline, as its notification records it.
#[derive(Debug, Clone)]
pub struct NotificationStep {
    /// `reminder-14`, `escalation+7`, `notice:suspend`.
    pub key: String,
    /// Reminder, escalation or notice.
    pub kind: StepKind,
    /// The day it falls on.
    pub scheduled_on: NaiveDate,
}

/// The notification row that records `step` of `deadline` for `recipients`, claimed at `now`
/// with `status` (pending, to be sent; or skipped).
pub fn notification_row(
    deadline: &deadline::Model,
    step: NotificationStep,
    recipients: &[String],
    status: NotificationStatus,
    now: DateTime<Utc>,
) -> notification::ActiveModel {
    notification::ActiveModel {
        id: Set(Uuid::now_v7()),
        deadline_id: Set(deadline.id),
        engagement_id: Set(deadline.engagement_id),
        step_key: Set(step.key),
        kind: Set(step.kind),
        recipients: Set(json_strings(recipients)),
        scheduled_on: Set(step.scheduled_on),
        status: Set(status),
        attempts: Set(0),
        next_attempt_at: Set(now),
        queued_at: Set(None),
        lease_until: Set(None),
        last_error: Set(None),
        message_id: Set(None),
        created_at: Set(now),
        sent_at: Set(None),
        recipients_sent: Set(0),
        certification_body_id: Set(deadline.certification_body_id),
    }
}
