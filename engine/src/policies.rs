//! Each certification body's policies, read with the defaults for a body that set none and
//! replaced as a whole under their version: the certification policy (a change applies to
//! deadlines opened after it: the dates already given stand) and the reminder policy (a change
//! re-plans the open deadlines' next steps).

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use entities::domain::deadline::DeadlineStatus;
use entities::domain::policy::CertificationPolicy;
use entities::domain::reminders::ReminderPolicy;
use entities::orm::{certification_policy, deadline, engagement, prelude::*, reminder_policy};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QuerySelect,
};
use uuid::Uuid;

use crate::access::Action;
use crate::caller::Caller;
use crate::error::EngineError;
use crate::idempotency::Claim;
use crate::store::check_version;
use crate::{Engine, Target, Write};

/// Replaces the one versioned row of body `$cb_id` in a policy table (`$entity`, of module
/// `$module`: `certification_body_id`, `policy`, `version`, `updated_at`) with `$stored`, under
/// its lock, when it is still at version `$expected` (0 while there is none); evaluates to the
/// saved row.
macro_rules! replace_versioned {
    ($entity:ty, $module:ident, $txn:expr, $cb_id:expr, $stored:expr, $expected:expr, $now:expr) => {
        match <$entity>::find_by_id($cb_id).lock_exclusive().one($txn).await? {
            Some(existing) => {
                check_version($expected, existing.version)?;
                let version = existing.version;
                let mut model = existing.into_active_model();
                model.policy = Set($stored);
                model.version = Set(version + 1);
                model.updated_at = Set($now);
                model.update($txn).await?
            }
            None => {
                check_version($expected, 0)?;
                $module::ActiveModel {
                    certification_body_id: Set($cb_id),
                    policy: Set($stored),
                    version: Set(1),
                    updated_at: Set($now),
                }
                .insert($txn)
                .await?
            }
        }
    };
}

/// A body's certification policy as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCertificationPolicy {
    /// The policy (the defaults while the body set none).
    pub policy: CertificationPolicy,
    /// True while the body uses the defaults.
    pub is_default: bool,
    /// Version, for `If-Match` (0 while default).
    pub version: i32,
    /// Last changed.
    pub updated_at: Option<DateTime<Utc>>,
}

impl StoredCertificationPolicy {
    fn of(record: Option<certification_policy::Model>) -> Result<Self, EngineError> {
        Ok(match record {
            None => Self { policy: CertificationPolicy::default(), is_default: true, version: 0, updated_at: None },
            Some(record) => Self {
                policy: stored_certification_policy(Some(record.policy))?,
                is_default: false,
                version: record.version,
                updated_at: Some(record.updated_at),
            },
        })
    }
}

/// A policy as stored (the defaults for what it does not say; all of them without one).
pub fn stored_certification_policy(stored: Option<serde_json::Value>) -> Result<CertificationPolicy, EngineError> {
    match stored {
        None => Ok(CertificationPolicy::default()),
        Some(value) => serde_json::from_value(value).map_err(|e| {
            EngineError::Unexpected(anyhow::Error::new(e).context("Failed to read a stored certification policy"))
        }),
    }
}

/// The certification policy of body `cb_id` (the defaults for an engagement without one yet).
pub async fn certification_policy_of(
    conn: &impl ConnectionTrait,
    cb_id: Option<Uuid>,
) -> Result<CertificationPolicy, EngineError> {
    let Some(cb_id) = cb_id else {
        return Ok(CertificationPolicy::default());
    };
    let stored = CertificationPolicyRecord::find_by_id(cb_id).one(conn).await?;
    stored_certification_policy(stored.map(|record| record.policy))
}

/// "Today" at `now` for an engagement of body `cb_id` whose dates in question are `dates`: in the
/// body's time zone. The zones run from 12 hours behind UTC to 14 ahead, so "today" is UTC's
/// date or the day on either side of it; when none of `dates` is within a day of UTC's date, every
/// zone answers alike (nothing is due, or overdue, differently) and the policy is not read.
pub async fn today_for(
    conn: &impl ConnectionTrait,
    cb_id: Option<Uuid>,
    now: DateTime<Utc>,
    dates: impl IntoIterator<Item = NaiveDate>,
) -> Result<NaiveDate, EngineError> {
    TodayByBody::default().today_for(conn, cb_id, now, dates).await
}

/// [`today_for`] over a batch of engagements (a page): each body's policy is read at most once.
#[derive(Debug, Default)]
pub struct TodayByBody(HashMap<Uuid, NaiveDate>);

impl TodayByBody {
    /// See [`today_for`].
    pub async fn today_for(
        &mut self,
        conn: &impl ConnectionTrait,
        cb_id: Option<Uuid>,
        now: DateTime<Utc>,
        dates: impl IntoIterator<Item = NaiveDate>,
    ) -> Result<NaiveDate, EngineError> {
        let utc = now.date_naive();
        let near = |date: NaiveDate| (date - utc).num_days().abs() <= 1;
        let Some(cb_id) = cb_id.filter(|_| dates.into_iter().any(near)) else {
            return Ok(utc);
        };
        if let Some(today) = self.0.get(&cb_id) {
            return Ok(*today);
        }
        let today = certification_policy_of(conn, Some(cb_id)).await?.time_zone.today(now);
        self.0.insert(cb_id, today);
        Ok(today)
    }
}

impl Write {
    /// The certification policy of `engagement`'s body, with the write's day reckoned in the
    /// body's time zone.
    pub async fn certification_policy_of(
        &mut self,
        engagement: &engagement::Model,
    ) -> Result<CertificationPolicy, EngineError> {
        let policy = certification_policy_of(self.txn(), engagement.certification_body_id).await?;
        self.reckon_in(policy.time_zone);
        Ok(policy)
    }
}

impl Engine {
    /// Body `cb_id`'s certification policy: everyone sees the bodies, and the clients are held to
    /// the dates their policy sets, so everyone reads it.
    pub async fn certification_policy(
        &self,
        caller: &Caller,
        cb_id: Uuid,
    ) -> Result<StoredCertificationPolicy, EngineError> {
        CertificationBody::find_by_id(cb_id).one(&self.db).await?.ok_or(EngineError::NotFound("certification body"))?;
        caller.may(Action::ReadCertificationPolicy)?;
        StoredCertificationPolicy::of(CertificationPolicyRecord::find_by_id(cb_id).one(&self.db).await?)
    }

    /// Replaces body `cb_id`'s certification policy with `policy` (validated by the caller) when
    /// it is still at `expected` (412 otherwise). The caller commits the returned write.
    pub async fn replace_certification_policy(
        &self,
        caller: &Caller,
        cb_id: Uuid,
        policy: CertificationPolicy,
        expected: Option<i32>,
        claim: Option<Claim>,
    ) -> Result<(Write, StoredCertificationPolicy), EngineError> {
        let action = Action::UpdateCertificationPolicy;
        let write = self.begin(caller, Target::CertificationBody(cb_id), action, claim).await?;
        let (txn, now) = (write.txn(), write.now());
        let stored = serde_json::to_value(policy).map_err(|e| EngineError::Unexpected(e.into()))?;
        let saved =
            replace_versioned!(CertificationPolicyRecord, certification_policy, txn, cb_id, stored, expected, now);
        let saved = StoredCertificationPolicy::of(Some(saved))?;
        Ok((write, saved))
    }
}

impl Engine {
    /// Replaces body `cb_id`'s reminder policy with `policy` (validated by the caller) when it is
    /// still at `expected` (412 otherwise), and re-plans the open deadlines of the body's
    /// engagements at the worker's next scan. Returns the write to commit, the saved version and
    /// when it was saved.
    pub async fn replace_reminder_policy(
        &self,
        caller: &Caller,
        cb_id: Uuid,
        policy: &ReminderPolicy,
        expected: Option<i32>,
    ) -> Result<(Write, i32, DateTime<Utc>), EngineError> {
        let write = self.begin(caller, Target::CertificationBody(cb_id), Action::UpdateReminderPolicy, None).await?;
        let (txn, now) = (write.txn(), write.now());
        let stored = serde_json::to_value(policy).map_err(|e| EngineError::Unexpected(e.into()))?;
        let saved = replace_versioned!(ReminderPolicyRecord, reminder_policy, txn, cb_id, stored, expected, now);
        let engagements = Query::select()
            .column(engagement::Column::Id)
            .from(Engagement)
            .and_where(engagement::Column::CertificationBodyId.eq(cb_id))
            .to_owned();
        Deadline::update_many()
            .col_expr(deadline::Column::NextStepOn, Expr::value(now.date_naive()))
            .filter(deadline::Column::Status.eq(DeadlineStatus::Open))
            .filter(deadline::Column::EngagementId.in_subquery(engagements))
            .exec(txn)
            .await?;
        Ok((write, saved.version, saved.updated_at))
    }
}
