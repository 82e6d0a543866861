//! Writing what a transition's outcome says: deadlines, the certificate, the decision, the
//! completed audit, the history and the engagement itself.

use chrono::{DateTime, NaiveDate, Utc};
use entities::domain::CertificateStatus;
use entities::domain::lifecycle::{CertificateChange, EngagementCommand, TransitionOutcome};
use entities::orm::{audit, certificate, certification_decision, engagement, prelude::*};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter,
};
use uuid::Uuid;

use super::standing::find_certificate;
use super::{TransitionRequest, decision_maker};
use crate::Write;
use crate::deadlines::{OpenDeadlines, apply_deadline_change};
use crate::error::EngineError;
use crate::history::HistoryRecord;
use crate::store::json_strings;

pub(super) async fn apply(
    write: &Write,
    engagement: engagement::Model,
    open_deadlines: &mut OpenDeadlines,
    outcome: &TransitionOutcome,
    request: &TransitionRequest,
    actor: &str,
) -> Result<engagement::Model, EngineError> {
    let (txn, now, today) = (write.txn(), write.now(), write.today());
    for change in &outcome.deadlines {
        apply_deadline_change(txn, &engagement, open_deadlines, *change, None, now).await?;
    }
    if let Some(change) = outcome.certificate {
        apply_certificate_change(txn, &engagement, change, now).await?;
    }
    if let (Some(outcome_of_decision), Some(decided_by)) = (outcome.decision, decision_maker(&request.command)) {
        certification_decision::ActiveModel {
            id: Set(Uuid::now_v7()),
            engagement_id: Set(engagement.id),
            outcome: Set(outcome_of_decision),
            decided_by: Set(decided_by.to_string()),
            decided_on: Set(today),
            reason: Set(request.reason.as_ref().map(ToString::to_string)),
            created_at: Set(now),
        }
        .insert(txn)
        .await?;
    }
    if let (Some(audit_id), Some(_)) = (request.audit_id, outcome.event.completes_audit()) {
        let mut completed = Audit::update_many()
            .col_expr(audit::Column::CompletedAt, Expr::value(now))
            .col_expr(audit::Column::UpdatedAt, Expr::value(now))
            .filter(audit::Column::Id.eq(audit_id));
        if let EngagementCommand::RecordStage1Outcome { outcome } = &request.command {
            completed = completed
                .col_expr(audit::Column::Stage1Outcome, Expr::value(*outcome))
                .col_expr(audit::Column::Gaps, Expr::value(json_strings(&request.gaps)));
        }
        completed.exec(txn).await?;
    }
    write
        .record_history(HistoryRecord {
            engagement_id: engagement.id,
            action: outcome.event.to_string(),
            from_state: Some(outcome.from),
            to_state: Some(outcome.to),
            actor,
            reason: request.history_reason(),
            evidence: &request.evidence,
            subject_id: request.audit_id,
        })
        .await?;
    let signed_on = match request.command {
        EngagementCommand::SignEngagementLetter { signed_on, .. } => Some(signed_on),
        _ => engagement.engagement_letter_signed_on,
    };
    let version = engagement.version;
    let mut model = engagement.into_active_model();
    model.state = Set(outcome.to);
    model.stage1_ready_on = Set(outcome.marks.stage1_ready_on);
    model.stage2_last_day = Set(outcome.marks.stage2_last_day);
    model.suspended_on = Set(outcome.marks.suspended_on);
    model.expired_on = Set(outcome.marks.expired_on);
    model.engagement_letter_signed_on = Set(signed_on);
    model.version = Set(version + 1);
    model.updated_at = Set(now);
    Ok(model.update(txn).await?)
}

async fn apply_certificate_change(
    txn: &DatabaseTransaction,
    engagement: &engagement::Model,
    change: CertificateChange,
    now: DateTime<Utc>,
) -> Result<(), EngineError> {
    let existing = find_certificate(txn, engagement.id).await?;
    let mut model = match (change, existing) {
        (CertificateChange::Issue { decision_on, expires_on }, None) => {
            let organization = Organization::find_by_id(engagement.organization_id)
                .one(txn)
                .await?
                .ok_or(EngineError::NotFound("organization"))?;
            let id = Uuid::now_v7();
            certificate::ActiveModel {
                id: Set(id),
                engagement_id: Set(engagement.id),
                number: Set(certificate_number(id, decision_on)),
                scope: Set(organization.isms_scope),
                standard: Set(engagement.standard),
                issued_on: Set(decision_on),
                decision_on: Set(decision_on),
                expires_on: Set(expires_on),
                status: Set(CertificateStatus::Active),
                surveillances_completed: Set(0),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(txn)
            .await?;
            return Ok(());
        }
        (_, None) => {
            return Err(anyhow::anyhow!("BUG: certificate change without a certificate").into());
        }
        (change, Some(existing)) => {
            let surveillances = existing.surveillances_completed;
            let mut model = existing.into_active_model();
            match change {
                CertificateChange::Issue { decision_on, expires_on } => {
                    model.issued_on = Set(decision_on);
                    model.decision_on = Set(decision_on);
                    model.expires_on = Set(expires_on);
                    model.status = Set(CertificateStatus::Active);
                    model.surveillances_completed = Set(0);
                }
                CertificateChange::SetStatus(status) => model.status = Set(status),
                CertificateChange::SurveillanceCompleted => model.surveillances_completed = Set(surveillances + 1),
            }
            model
        }
    };
    model.updated_at = Set(now);
    model.update(txn).await?;
    Ok(())
}

/// A certificate number: unique (from the certificate's id), readable, and dated by its first decision.
fn certificate_number(id: Uuid, decision_on: NaiveDate) -> String {
    let simple = id.simple().to_string().to_uppercase();
    let tail = &simple[simple.len() - 10..];
    format!("CF-{}-{tail}", decision_on.format("%Y"))
}
