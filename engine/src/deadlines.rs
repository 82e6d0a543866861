//! An engagement's open deadlines, kept in step with every change that opens or closes one, in
//! the transaction of that change.

use chrono::{DateTime, Utc};
use entities::domain::deadline::{DeadlineChange, DeadlineKind, DeadlineOwner, DeadlineStatus, DeadlineToOpen};
use entities::domain::text::EmailAddress;
use entities::orm::{deadline, engagement, prelude::*};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Select};
use uuid::Uuid;

use crate::error::EngineError;
use crate::reminders::{cancel_pending_notifications, first_reminder_on, reminder_policy_of};
use crate::store::WriteTransaction;

/// The open deadlines of `engagements`, in no particular order. Sorting them here (`ORDER BY
/// due_on`) would lead SQLite, which has no statistics, to walk the (status, due_on) index over
/// every open deadline instead of looking up each engagement's (a test checks the plan).
pub fn open_deadlines_of(engagements: Vec<Uuid>) -> Select<Deadline> {
    Deadline::find()
        .filter(deadline::Column::EngagementId.is_in(engagements))
        .filter(deadline::Column::Status.eq(DeadlineStatus::Open))
}

/// An engagement's open deadlines, read under its lock. Every deadline change of a write goes
/// through them, so they stay what the database holds (only writers holding the lock open or
/// close a deadline), a change that touches no deadline costs no statement, and the write's
/// answer needs no second read.
#[derive(Debug, Default)]
pub struct OpenDeadlines(pub(crate) Vec<deadline::Model>);

impl OpenDeadlines {
    /// The open deadlines of engagement `engagement_id` (read under its lock).
    pub async fn of(conn: &impl ConnectionTrait, engagement_id: Uuid) -> Result<Self, EngineError> {
        Ok(Self(open_deadlines_of(vec![engagement_id]).all(conn).await?))
    }

    /// The ids of the open deadlines `closing` picks, now no longer open.
    pub(crate) fn close_where(&mut self, closing: impl Fn(&deadline::Model) -> bool) -> Vec<Uuid> {
        let (closed, open): (Vec<_>, Vec<_>) = std::mem::take(&mut self.0).into_iter().partition(|d| closing(d));
        self.0 = open;
        closed.into_iter().map(|d| d.id).collect()
    }

    /// The open deadline of `kind` opened last, if any.
    pub fn latest_of(&self, kind: DeadlineKind) -> Option<&deadline::Model> {
        self.0.iter().filter(|d| d.kind == kind).max_by_key(|d| d.created_at)
    }

    /// The open deadlines, in no particular order.
    pub fn into_models(self) -> Vec<deadline::Model> {
        self.0
    }
}

/// Applies one deadline change to the engagement's `open_deadlines` (read under its lock) and to
/// the database; `subject` names the corrective action (and its owner) a deadline concerns.
pub async fn apply_deadline_change(
    txn: &WriteTransaction,
    engagement: &engagement::Model,
    open_deadlines: &mut OpenDeadlines,
    change: DeadlineChange,
    subject: Option<(Uuid, &EmailAddress)>,
    now: DateTime<Utc>,
) -> Result<(), EngineError> {
    match change {
        DeadlineChange::Open(DeadlineToOpen { kind, due_on, owner }) => {
            let owner_email = match (owner, subject) {
                (DeadlineOwner::CorrectiveActionOwner, Some((_, email))) => email.to_string(),
                (DeadlineOwner::CbCoordinator, _) => coordinator_email(txn, engagement).await?,
                _ => engagement.manager_email.clone(),
            };
            let policy = reminder_policy_of(txn, engagement.certification_body_id).await?;
            let opened = deadline::ActiveModel {
                id: Set(Uuid::now_v7()),
                engagement_id: Set(engagement.id),
                next_step_on: Set(first_reminder_on(&policy, kind, due_on)),
                kind: Set(kind),
                subject_id: Set(subject.map(|(id, _)| id)),
                due_on: Set(due_on),
                owner: Set(owner),
                owner_email: Set(owner_email),
                status: Set(DeadlineStatus::Open),
                created_at: Set(now),
                closed_at: Set(None),
                certification_body_id: Set(engagement.certification_body_id),
            }
            .insert(txn)
            .await?;
            open_deadlines.0.push(opened);
        }
        DeadlineChange::Close(kind, status) => {
            let subject_id = subject.map(|(id, _)| id);
            let closing = open_deadlines
                .close_where(|d| d.kind == kind && subject_id.is_none_or(|subject| d.subject_id == Some(subject)));
            close_deadlines(txn, closing, status, now).await?;
        }
        DeadlineChange::CancelAll => {
            let closing = open_deadlines.close_where(|_| true);
            close_deadlines(txn, closing, DeadlineStatus::Cancelled, now).await?;
        }
    }
    Ok(())
}

/// Closes the deadlines `ids` with `status`, and cancels their emails not yet sent.
async fn close_deadlines(
    txn: &WriteTransaction,
    ids: Vec<Uuid>,
    status: DeadlineStatus,
    now: DateTime<Utc>,
) -> Result<(), EngineError> {
    if ids.is_empty() {
        return Ok(());
    }
    cancel_pending_notifications(txn, &ids).await?;
    Deadline::update_many()
        .col_expr(deadline::Column::Status, Expr::value(status))
        .col_expr(deadline::Column::ClosedAt, Expr::value(now))
        .filter(deadline::Column::Id.is_in(ids))
        .exec(txn)
        .await?;
    Ok(())
}

async fn coordinator_email(txn: &WriteTransaction, engagement: &engagement::Model) -> Result<String, EngineError> {
    let cb = match engagement.certification_body_id {
        Some(cb_id) => CertificationBody::find_by_id(cb_id).one(txn).await?,
        None => None,
    };
    Ok(cb.map_or_else(|| engagement.manager_email.clone(), |cb| cb.coordinator_email))
}
