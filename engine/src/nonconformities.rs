//! Each nonconformity's first deadline, its corrective-action plan, is due the moment its audit
//! completes (or from its recording, on an audit already completed), whether or not the client
//! answers, dated by the body's policy for its grade; and a minor's accepted plan is followed up
//! at a later audit.

use chrono::{DateTime, NaiveDate, Utc};
use entities::domain::dates::{needs_corrective_action, plan_due_on};
use entities::domain::deadline::{DeadlineChange, DeadlineKind, DeadlineOwner};
use entities::domain::finding::{FollowUpFacts, follow_up};
use entities::domain::policy::CertificationPolicy;
use entities::domain::text::EmailAddress;
use entities::domain::{FindingGrade, FindingStatus, FollowUpOutcome};
use entities::orm::{audit, corrective_action, engagement, finding, prelude::*};
use sea_orm::sea_query::Query;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter};
use uuid::Uuid;

use crate::caller::Caller;
use crate::deadlines::{OpenDeadlines, apply_deadline_change};
use crate::error::EngineError;
use crate::history::HistoryRecord;
use crate::policies::certification_policy_of;
use crate::store::WriteTransaction;
use crate::store::belongs;
use crate::{Engine, Write};

/// Opens the corrective-action plan deadline of every nonconformity of audit `audit_id` that is
/// open and has no corrective action yet (the audit completes: each plan is due from now, whether
/// or not the client answers), dated by the body's `policy` for its grade.
pub async fn open_plan_deadlines_of_audit(
    txn: &WriteTransaction,
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

/// A finding recorded on an `audit` that already completed: its plan is due from now, like the
/// audit's others (nothing while the audit runs: its completion opens them all; nothing for an
/// OFI). The body's policy and the open deadlines are read only then: an OFI reads nothing more.
pub async fn plan_due_if_audit_completed(
    txn: &WriteTransaction,
    engagement: &engagement::Model,
    audit: &audit::Model,
    found: &finding::Model,
    now: DateTime<Utc>,
) -> Result<(), EngineError> {
    if audit.completed_at.is_none() || !needs_corrective_action(found.grade) {
        return Ok(());
    }
    let policy = certification_policy_of(txn, engagement.certification_body_id).await?;
    let mut open_deadlines = OpenDeadlines::of(txn, engagement.id).await?;
    open_plan_deadline(txn, engagement, &mut open_deadlines, found, audit.last_day, &policy, now).await
}

/// Opens the corrective-action plan deadline of nonconformity `found` of an audit that ended on
/// `audit_last_day` (nothing for an OFI), owned by the engagement's manager.
async fn open_plan_deadline(
    txn: &WriteTransaction,
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

/// A follow-up of an accepted minor NC's plan, as the auditor records it at a later audit.
#[derive(Debug, Clone)]
pub struct FollowUp {
    /// The audit it is followed up at.
    pub audit_id: Uuid,
    /// Effective, or not effective (a new NC is recorded on that audit).
    pub outcome: FollowUpOutcome,
    /// What the auditor found (required when not effective, which the shell checks).
    pub note: Option<String>,
}

impl Engine {
    /// Follows up finding `finding_id` of the locked `engagement` at a later audit, in `write`:
    /// it closes; not effective records a new minor NC on that audit citing the same requirement
    /// (due from now if that audit already completed). Returns the finding and the new NC.
    pub async fn follow_up_finding(
        &self,
        write: &Write,
        caller: &Caller,
        engagement: &engagement::Model,
        finding_id: Uuid,
        follow: FollowUp,
    ) -> Result<(finding::Model, Option<finding::Model>), EngineError> {
        let (txn, now) = (write.txn(), write.now());
        let found =
            belongs(Finding::find_by_id(finding_id).one(txn).await?, |f| f.engagement_id, engagement.id, "finding")?;
        let audit =
            belongs(Audit::find_by_id(follow.audit_id).one(txn).await?, |a| a.engagement_id, engagement.id, "audit")?;
        let facts = FollowUpFacts {
            status: found.status,
            found_at: found.audit_id,
            followed_up_at: audit.id,
            audit_kind: audit.kind,
        };
        let new_nonconformity = follow_up(&facts, follow.outcome)?;
        let reference = found.reference.clone();
        let mut model = found.into_active_model();
        model.status = Set(FindingStatus::Closed);
        model.closed_at = Set(Some(now));
        model.follow_up_audit_id = Set(Some(audit.id));
        model.follow_up_outcome = Set(Some(follow.outcome));
        model.follow_up_note = Set(follow.note.clone());
        let followed = model.update(txn).await?;
        let record = HistoryRecord::change(
            engagement.id,
            format!("finding_followed_up:{}", follow.outcome),
            &caller.subject,
            Some(finding_id),
        )
        .with_reason(follow.note.clone());
        write.record_history(record).await?;
        if !new_nonconformity {
            return Ok((followed, None));
        }
        let description = format!(
            "The corrective action for finding {finding_id} was not effective: {}",
            follow.note.as_deref().unwrap_or("see the follow-up")
        );
        let recurred = finding_row(&audit, FindingGrade::MinorNc, reference, description, &caller.subject, now)
            .insert(txn)
            .await?;
        plan_due_if_audit_completed(txn, engagement, &audit, &recurred, now).await?;
        let record =
            HistoryRecord::change(engagement.id, "finding_recorded:minor_nc", &caller.subject, Some(recurred.id));
        write.record_history(record).await?;
        Ok((followed, Some(recurred)))
    }
}

/// A new finding of `audit`, as `recorded_by` records it at `now`: an NC is open until its action
/// is accepted; an OFI is noted (closed) at once.
pub fn finding_row(
    audit: &audit::Model,
    grade: FindingGrade,
    reference: String,
    description: String,
    recorded_by: &str,
    now: DateTime<Utc>,
) -> finding::ActiveModel {
    // An OFI needs no corrective action: it is noted, closed as it is recorded.
    let noted = !needs_corrective_action(grade);
    finding::ActiveModel {
        id: Set(Uuid::now_v7()),
        engagement_id: Set(audit.engagement_id),
        audit_id: Set(audit.id),
        grade: Set(grade),
        reference: Set(reference),
        description: Set(description),
        status: Set(if noted { FindingStatus::Closed } else { FindingStatus::Open }),
        created_by: Set(recorded_by.to_owned()),
        created_at: Set(now),
        closed_at: Set(noted.then_some(now)),
        follow_up_audit_id: Set(None),
        follow_up_outcome: Set(None),
        follow_up_note: Set(None),
    }
}
