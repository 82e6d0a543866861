//! The scan: claim every reminder or escalation step that is due, once, in the transaction that
//! advances each deadline to its next step. Indexed on (status, next_step_on); on PostgreSQL the
//! claimed deadlines are locked with `FOR UPDATE SKIP LOCKED`, so several workers share a batch.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, NaiveDate, Utc};
use engine::policies::stored_certification_policy;
use engine::reminders::{NotificationStep, notification_row};
use entities::domain::deadline::DeadlineStatus;
use entities::domain::policy::TimeZone;
use entities::domain::reminders::{
    NotificationStatus, RecipientRole, ReminderPolicy, ReminderStep, RoleHolders, plan_steps,
};
use entities::orm::{certification_body, deadline, engagement, notification, organization, prelude::*};
use sea_orm::sea_query::{Expr, LockBehavior, LockType, OnConflict};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::error::WorkerError;
use engine::store::{WriteTransaction, Writer};

/// What one scan did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Deadlines examined.
    pub deadlines: usize,
    /// Steps claimed for sending.
    pub claimed: usize,
    /// Steps recorded as superseded.
    pub superseded: usize,
}

/// Claims every step due at `now`, `batch` deadlines per transaction, until none is left. A step
/// dated on a day is due from the morning of that day in its certification body's time zone
/// ([`TimeZone::reminder_day`]): the scan reads every deadline whose next step may be due in some
/// zone, in (day, id) order, and claims those whose own zone's morning has come.
pub async fn claim_due_steps(writer: &Writer, now: DateTime<Utc>, batch: u64) -> Result<ScanReport, WorkerError> {
    let latest = TimeZone::latest_reminder_day(now);
    let mut report = ScanReport::default();
    let mut read_up_to: Option<(NaiveDate, Uuid)> = None;
    loop {
        let txn = engine::store::begin_write(writer).await?;
        let mut query = Deadline::find()
            .filter(deadline::Column::Status.eq(DeadlineStatus::Open))
            .filter(deadline::Column::NextStepOn.lte(latest));
        if let Some((day, id)) = read_up_to {
            // Past what earlier batches read: a step not yet due in its zone is not read twice.
            query = query.filter(
                Condition::any()
                    .add(deadline::Column::NextStepOn.gt(day))
                    .add(Condition::all().add(deadline::Column::NextStepOn.eq(day)).add(deadline::Column::Id.gt(id))),
            );
        }
        let due = query
            .order_by_asc(deadline::Column::NextStepOn)
            .order_by_asc(deadline::Column::Id)
            .limit(batch)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .all(&txn)
            .await?;
        let count = due.len();
        read_up_to = due.last().and_then(|last| last.next_step_on.map(|day| (day, last.id)));
        let claimed = claim(&txn, due, now).await?;
        txn.commit().await?;
        report.deadlines += count;
        report.claimed += claimed.claimed;
        report.superseded += claimed.superseded;
        if (count as u64) < batch {
            return Ok(report);
        }
    }
}

/// The people and policies a batch of deadlines refers to.
struct Parties {
    engagements: HashMap<Uuid, engagement::Model>,
    organizations: HashMap<Uuid, organization::Model>,
    bodies: HashMap<Uuid, certification_body::Model>,
    policies: HashMap<Uuid, ReminderPolicy>,
    zones: HashMap<Uuid, TimeZone>,
}

impl Parties {
    async fn load(txn: &WriteTransaction, deadlines: &[deadline::Model]) -> Result<Self, WorkerError> {
        let engagement_ids: HashSet<Uuid> = deadlines.iter().map(|d| d.engagement_id).collect();
        let engagements: HashMap<Uuid, engagement::Model> = Engagement::find()
            .filter(engagement::Column::Id.is_in(engagement_ids))
            .all(txn)
            .await?
            .into_iter()
            .map(|e| (e.id, e))
            .collect();
        let organization_ids: HashSet<Uuid> = engagements.values().map(|e| e.organization_id).collect();
        let body_ids: HashSet<Uuid> = engagements.values().filter_map(|e| e.certification_body_id).collect();
        let organizations = Organization::find()
            .filter(organization::Column::Id.is_in(organization_ids))
            .all(txn)
            .await?
            .into_iter()
            .map(|o| (o.id, o))
            .collect();
        let bodies = CertificationBody::find()
            .filter(certification_body::Column::Id.is_in(body_ids.clone()))
            .all(txn)
            .await?
            .into_iter()
            .map(|b| (b.id, b))
            .collect();
        let mut policies = HashMap::new();
        for record in ReminderPolicyRecord::find()
            .filter(entities::orm::reminder_policy::Column::CertificationBodyId.is_in(body_ids.clone()))
            .all(txn)
            .await?
        {
            let policy: ReminderPolicy = serde_json::from_value(record.policy)
                .map_err(|e| anyhow::Error::new(e).context("Failed to read a stored reminder policy"))?;
            policies.insert(record.certification_body_id, policy);
        }
        let mut zones = HashMap::new();
        for record in CertificationPolicyRecord::find()
            .filter(entities::orm::certification_policy::Column::CertificationBodyId.is_in(body_ids))
            .all(txn)
            .await?
        {
            let policy = stored_certification_policy(Some(record.policy))?;
            zones.insert(record.certification_body_id, policy.time_zone);
        }
        Ok(Self { engagements, organizations, bodies, policies, zones })
    }

    fn policy(&self, engagement: &engagement::Model) -> ReminderPolicy {
        engagement.certification_body_id.and_then(|cb| self.policies.get(&cb).cloned()).unwrap_or_default()
    }

    /// The latest day whose steps are due at `now` for `engagement`, in its body's time zone.
    fn reminder_day(&self, engagement: &engagement::Model, now: DateTime<Utc>) -> NaiveDate {
        let zone = engagement.certification_body_id.and_then(|cb| self.zones.get(&cb).copied()).unwrap_or_default();
        zone.reminder_day(now)
    }

    /// The addresses of `roles` for a deadline, each once, in order.
    fn recipients(&self, deadline: &deadline::Model, roles: &[RecipientRole]) -> Vec<String> {
        let engagement = self.engagements.get(&deadline.engagement_id);
        let organization = engagement.and_then(|e| self.organizations.get(&e.organization_id));
        let body = engagement.and_then(|e| e.certification_body_id).and_then(|cb| self.bodies.get(&cb));
        RoleHolders {
            owner: Some(&deadline.owner_email),
            engagement_manager: engagement.map(|e| e.manager_email.as_str()),
            cb_coordinator: body.map(|b| b.coordinator_email.as_str()),
            client_executive: organization.map(|o| o.executive_email.as_str()),
            client_isms_manager: organization.map(|o| o.isms_manager_email.as_str()),
        }
        .addresses(roles)
    }
}

async fn claim(
    txn: &WriteTransaction,
    due: Vec<deadline::Model>,
    now: DateTime<Utc>,
) -> Result<ScanReport, WorkerError> {
    let mut report = ScanReport::default();
    if due.is_empty() {
        return Ok(report);
    }
    let parties = Parties::load(txn, &due).await?;
    let ids: Vec<Uuid> = due.iter().map(|d| d.id).collect();
    let mut recorded: HashMap<Uuid, HashSet<String>> = HashMap::new();
    for (deadline_id, key) in Notification::find()
        .select_only()
        .column(notification::Column::DeadlineId)
        .column(notification::Column::StepKey)
        .filter(notification::Column::DeadlineId.is_in(ids))
        .into_tuple::<(Uuid, String)>()
        .all(txn)
        .await?
    {
        recorded.entry(deadline_id).or_default().insert(key);
    }
    let mut rows = Vec::new();
    let mut next_steps: HashMap<Option<NaiveDate>, Vec<Uuid>> = HashMap::new();
    for deadline in &due {
        let Some(engagement) = parties.engagements.get(&deadline.engagement_id) else { continue };
        let today = parties.reminder_day(engagement, now);
        if deadline.next_step_on.is_none_or(|next| next > today) {
            continue; // Not yet morning there.
        }
        let schedule = parties.policy(engagement).schedule(deadline.kind);
        let plan = plan_steps(&schedule, deadline.due_on, today, recorded.get(&deadline.id).unwrap_or(&HashSet::new()));
        let row = |step: &ReminderStep, status: NotificationStatus| {
            let recorded =
                NotificationStep { key: step.key(), kind: step.kind, scheduled_on: step.date(deadline.due_on) };
            notification_row(deadline, recorded, &parties.recipients(deadline, &step.recipients), status, now)
        };
        for step in &plan.send {
            rows.push(row(step, NotificationStatus::Pending));
        }
        for step in &plan.superseded {
            rows.push(row(step, NotificationStatus::Skipped));
        }
        report.claimed += plan.send.len();
        report.superseded += plan.superseded.len();
        next_steps.entry(plan.next_step_on).or_default().push(deadline.id);
    }
    for chunk in rows.chunks(500) {
        Notification::insert_many(chunk.to_vec())
            .on_conflict(
                OnConflict::columns([notification::Column::DeadlineId, notification::Column::StepKey])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
    }
    for (next_step_on, ids) in next_steps {
        for chunk in ids.chunks(500) {
            Deadline::update_many()
                .col_expr(deadline::Column::NextStepOn, Expr::value(next_step_on))
                .filter(deadline::Column::Id.is_in(chunk.to_vec()))
                .exec(txn)
                .await?;
        }
    }
    Ok(report)
}
