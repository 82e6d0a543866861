//! Each nonconformity's first deadline: its corrective-action plan is due the moment its audit
//! completes (or from its recording, on an audit already completed), whether or not the client
//! answers, dated by the body's policy for its grade.

use chrono::{DateTime, NaiveDate, Utc};
use entities::domain::dates::plan_due_on;
use entities::domain::deadline::{DeadlineChange, DeadlineKind, DeadlineOwner};
use entities::domain::policy::CertificationPolicy;
use entities::domain::text::EmailAddress;
use entities::domain::{FindingGrade, FindingStatus};
use entities::orm::{corrective_action, engagement, finding, prelude::*};
use sea_orm::sea_query::Query;
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::deadlines::{OpenDeadlines, apply_deadline_change};
use crate::error::EngineError;

/// Opens the corrective-action plan deadline of every nonconformity of audit `audit_id` that is
/// open and has no corrective action yet (the audit completes: each plan is due from now, whether
/// or not the client answers), dated by the body's `policy` for its grade.
pub async fn open_plan_deadlines_of_audit(
    txn: &DatabaseTransaction,
    engagement: &engagement::Model,
    open_deadlines: &mut OpenDeadlines,
    audit_id: Uuid,
    policy: &CertificationPolicy,
    now: DateTime<Utc>,
) -> Result<(), EngineError> {
    let Some(audit) = Audit::find_by_id(audit_id).one(txn).await? else { return Ok(()) };
    let answered = Query::select()
        .column(corrective_action::Column::FindingId)
        .from(CorrectiveAction)
        .and_where(corrective_action::Column::EngagementId.eq(engagement.id))
        .to_owned();
    let unanswered = Finding::find()
        .filter(finding::Column::AuditId.eq(audit_id))
        .filter(finding::Column::Status.eq(FindingStatus::Open))
        .filter(finding::Column::Grade.ne(FindingGrade::Ofi))
        .filter(finding::Column::Id.not_in_subquery(answered))
        .all(txn)
        .await?;
    for found in unanswered {
        open_plan_deadline(txn, engagement, open_deadlines, &found, audit.last_day, policy, now).await?;
    }
    Ok(())
}

/// Opens the corrective-action plan deadline of nonconformity `found` of an audit that ended on
/// `audit_last_day` (nothing for an OFI), owned by the engagement's manager.
pub async fn open_plan_deadline(
    txn: &DatabaseTransaction,
    engagement: &engagement::Model,
    open_deadlines: &mut OpenDeadlines,
    found: &finding::Model,
    audit_last_day: NaiveDate,
    policy: &CertificationPolicy,
    now: DateTime<Utc>,
) -> Result<(), EngineError> {
    let Some(due_on) = plan_due_on(found.grade, audit_last_day, policy) else { return Ok(()) };
    let manager = EmailAddress::parse(&engagement.manager_email).map_err(|e| EngineError::Unexpected(e.into()))?;
    let change = DeadlineChange::open(DeadlineKind::CorrectiveActionPlanDue, due_on, DeadlineOwner::EngagementManager);
    apply_deadline_change(txn, engagement, open_deadlines, change, Some((found.id, &manager)), now).await
}
