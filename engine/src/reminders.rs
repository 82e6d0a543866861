//! Where reminders meet the lifecycle: each CB's policy, a new deadline's first step, and the
//! pending emails of a deadline that closes.

use chrono::NaiveDate;
use entities::domain::deadline::DeadlineKind;
use entities::domain::reminders::{NotificationStatus, ReminderPolicy, first_step_on};
use entities::orm::{notification, prelude::*};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::error::EngineError;

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
