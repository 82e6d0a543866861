//! Corrective actions: the certification body's verification, decided by the domain
//! (`entities::domain::verification`) on the facts loaded here, and written in the caller's write.

use entities::domain::deadline::{DeadlineChange, DeadlineKind, DeadlineOwner, DeadlineStatus};
use entities::domain::text::EmailAddress;
use entities::domain::verification::{VerificationFacts, report_done, verify};
use entities::domain::webhooks::WebhookEventType;
use entities::domain::{FindingGrade, FindingStatus, VerificationStatus};
use entities::orm::{corrective_action, engagement, finding, prelude::*};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait, IntoActiveModel};
use uuid::Uuid;

use crate::caller::Caller;
use crate::deadlines::{OpenDeadlines, apply_deadline_change};
use crate::error::EngineError;
use crate::history::HistoryRecord;
use crate::lifecycle::count_open_findings;
use crate::store::WriteTransaction;
use crate::store::{belongs, json_strings, strings_of};
use crate::webhooks::data::{corrective_action_data, event_of};
use crate::{Engine, Write};

/// A verification as the certification body records it.
#[derive(Debug, Clone)]
pub struct Verification {
    /// Accepted or rejected.
    pub outcome: VerificationStatus,
    /// Why (required for a rejection, which the shell checks).
    pub note: Option<String>,
}

impl Engine {
    /// Verifies corrective action `action_id` of the locked `engagement` in `write`: accepted
    /// closes its finding and meets its deadline (and the major-NC limit with the last major);
    /// rejected leaves both open. Returns the corrective action as it now is.
    pub async fn verify_corrective_action(
        &self,
        write: &mut Write,
        caller: &Caller,
        engagement: &engagement::Model,
        action_id: Uuid,
        verification: Verification,
    ) -> Result<corrective_action::Model, EngineError> {
        write.certification_policy_of(engagement).await?;
        let (txn, now) = (write.txn(), write.now());
        let (action, found) = action_and_finding(txn, engagement, action_id).await?;
        let open_majors = match found.grade {
            FindingGrade::MajorNc => count_open_findings(txn, engagement.id, FindingGrade::MajorNc).await?,
            _ => 0,
        };
        let facts = VerificationFacts {
            grade: found.grade,
            current: action.verification,
            engagement_state: engagement.state,
            stage2_last_day: engagement.stage2_last_day,
            open_majors,
            reported_done: action.reported_done_at.is_some(),
        };
        let outcome = verify(&facts, verification.outcome, write.today())?;
        if let Some(status) = outcome.finding_status {
            let mut finding = found.into_active_model();
            finding.status = Set(status);
            finding.closed_at = Set((status == FindingStatus::Closed).then_some(now));
            finding.update(txn).await?;
        }
        let mut open_deadlines = OpenDeadlines::of(txn, engagement.id).await?;
        let owner = EmailAddress::parse(&action.owner_email).map_err(|e| EngineError::Unexpected(e.into()))?;
        let subject = Some((action.id, &owner));
        if let Some(status) = outcome.corrective_action_deadline {
            let change = DeadlineChange::Close(DeadlineKind::CorrectiveActionDue, status);
            apply_deadline_change(txn, engagement, &mut open_deadlines, change, subject, now).await?;
        }
        if let Some(status) = outcome.verification_deadline {
            let change = DeadlineChange::Close(DeadlineKind::CorrectiveActionVerification, status);
            apply_deadline_change(txn, engagement, &mut open_deadlines, change, subject, now).await?;
        }
        if outcome.corrective_action_reopened {
            let change = DeadlineChange::open(
                DeadlineKind::CorrectiveActionDue,
                action.due_on,
                DeadlineOwner::CorrectiveActionOwner,
            );
            apply_deadline_change(txn, engagement, &mut open_deadlines, change, subject, now).await?;
        }
        if let Some(status) = outcome.major_nc_limit {
            let change = DeadlineChange::Close(DeadlineKind::MajorNcLimit, status);
            apply_deadline_change(txn, engagement, &mut open_deadlines, change, None, now).await?;
        }
        let version = action.version;
        let mut model = action.into_active_model();
        model.verification = Set(outcome.verification);
        model.verification_note = Set(verification.note);
        model.verified_by = Set(Some(caller.subject.clone()));
        model.verified_at = Set(Some(now));
        if outcome.corrective_action_reopened {
            model.reported_done_at = Set(None);
        }
        model.version = Set(version + 1);
        model.updated_at = Set(now);
        let updated = model.update(txn).await?;
        let record = HistoryRecord::change(
            engagement.id,
            format!("corrective_action_{}", outcome.verification),
            &caller.subject,
            Some(action_id),
        )
        .with_reason(updated.verification_note.clone());
        write.record_history(record).await?;
        let verified = corrective_action_data(&updated);
        write.emit(event_of(WebhookEventType::CorrectiveActionVerified, engagement, verified));
        Ok(updated)
    }

    /// The client reports corrective action `action_id` of the locked `engagement` done, with
    /// `evidence`: its own due date is met and the body's verification becomes the pending step
    /// (a deadline owned by the body's coordinator, due after its policy's verification days).
    pub async fn report_corrective_action_done(
        &self,
        write: &mut Write,
        caller: &Caller,
        engagement: &engagement::Model,
        action_id: Uuid,
        evidence: &[String],
    ) -> Result<corrective_action::Model, EngineError> {
        let policy = write.certification_policy_of(engagement).await?;
        let (txn, now, today) = (write.txn(), write.now(), write.today());
        let (action, found) = action_and_finding(txn, engagement, action_id).await?;
        let facts = VerificationFacts {
            grade: found.grade,
            current: action.verification,
            engagement_state: engagement.state,
            stage2_last_day: engagement.stage2_last_day,
            open_majors: 0,
            reported_done: action.reported_done_at.is_some(),
        };
        let verification_due = report_done(&facts, today, &policy)?;
        let mut open_deadlines = OpenDeadlines::of(txn, engagement.id).await?;
        let owner = EmailAddress::parse(&action.owner_email).map_err(|e| EngineError::Unexpected(e.into()))?;
        let subject = Some((action.id, &owner));
        let met = DeadlineChange::Close(DeadlineKind::CorrectiveActionDue, DeadlineStatus::Met);
        apply_deadline_change(txn, engagement, &mut open_deadlines, met, subject, now).await?;
        let verification = DeadlineChange::open(
            DeadlineKind::CorrectiveActionVerification,
            verification_due,
            DeadlineOwner::CbCoordinator,
        );
        apply_deadline_change(txn, engagement, &mut open_deadlines, verification, subject, now).await?;
        let mut all_evidence = strings_of(&action.evidence);
        all_evidence.extend(evidence.iter().cloned());
        let version = action.version;
        let mut model = action.into_active_model();
        model.reported_done_at = Set(Some(now));
        model.evidence = Set(json_strings(&all_evidence));
        model.version = Set(version + 1);
        model.updated_at = Set(now);
        let updated = model.update(txn).await?;
        let record =
            HistoryRecord::change(engagement.id, "corrective_action_reported_done", &caller.subject, Some(action_id))
                .with_evidence(evidence);
        write.record_history(record).await?;
        let reported = corrective_action_data(&updated);
        write.emit(event_of(WebhookEventType::CorrectiveActionSubmitted, engagement, reported));
        Ok(updated)
    }
}

/// Corrective action `action_id` of `engagement` (404 otherwise) and the finding it answers.
async fn action_and_finding(
    txn: &WriteTransaction,
    engagement: &engagement::Model,
    action_id: Uuid,
) -> Result<(corrective_action::Model, finding::Model), EngineError> {
    let action = belongs(
        CorrectiveAction::find_by_id(action_id).one(txn).await?,
        |a| a.engagement_id,
        engagement.id,
        "corrective action",
    )?;
    let found = Finding::find_by_id(action.finding_id).one(txn).await?.ok_or(EngineError::NotFound("finding"))?;
    Ok((action, found))
}
