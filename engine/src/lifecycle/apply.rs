//! Writing what a transition's outcome says: deadlines, the certificate, the decision, the
//! completed audit, the history and the engagement itself.

use entities::domain::AuditKind;
use entities::domain::lifecycle::{EngagementCommand, TransitionOutcome};
use entities::domain::policy::CertificationPolicy;
use entities::domain::webhooks::{EventSubject, TransitionData, WebhookEventType};
use entities::orm::{audit, certification_decision, engagement, prelude::*};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryTrait,
    TryIntoModel,
};
use uuid::Uuid;

use super::certificate::apply_certificate_change;
use super::standing::find_certificate;
use super::{TransitionRequest, decision_maker};
use crate::Write;
use crate::deadlines::{OpenDeadlines, apply_deadline_change};
use crate::error::EngineError;
use crate::history::HistoryRecord;
use crate::nonconformities::open_plan_deadlines_of_audit;
use crate::reminders::notify_at_once;
use crate::store::json_strings;
use crate::webhooks::data::{certificate_data, engagement_data, event_of};

pub(super) async fn apply(
    write: &mut Write,
    engagement: engagement::Model,
    open_deadlines: &mut OpenDeadlines,
    outcome: &TransitionOutcome,
    request: &TransitionRequest,
    actor: &str,
    policy: &CertificationPolicy,
) -> Result<engagement::Model, EngineError> {
    let (now, today) = (write.now(), write.today());
    let txn = write.txn();
    for change in &outcome.deadlines {
        apply_deadline_change(txn, &engagement, open_deadlines, *change, None, now).await?;
    }
    if let Some(deadline) = outcome.notice_with.and_then(|kind| open_deadlines.latest_of(kind)) {
        notify_at_once(txn, &engagement, deadline, &format!("notice:{}", outcome.event), today, now).await?;
    }
    let (new_scope, mut replaced) = match &request.command {
        EngagementCommand::ReduceScope { scope } => (Some(scope.to_string()), None),
        // Before the decision: the engagement's scope; the history keeps the one it replaces.
        EngagementCommand::ChangeScope { scope } => {
            (Some(scope.to_string()), Some(format!("scope was: {}", engagement.scope.as_deref().unwrap_or("(none)"))))
        }
        _ => (None, None),
    };
    if let Some(change) = outcome.certificate {
        replaced = apply_certificate_change(txn, &engagement, change, new_scope.as_deref(), now).await?;
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
    if let (Some(audit_id), true) = (request.audit_id, outcome.audit_completed) {
        let mut completed = Audit::update_many()
            .col_expr(audit::Column::CompletedAt, Expr::value(now))
            .col_expr(audit::Column::UpdatedAt, Expr::value(now))
            .filter(audit::Column::Id.eq(audit_id));
        if let EngagementCommand::RecordStage1Outcome { outcome } = &request.command {
            completed = completed
                .col_expr(audit::Column::Stage1Outcome, Expr::value(*outcome))
                .col_expr(audit::Column::Gaps, Expr::value(json_strings(&request.gaps)));
        }
        txn.defer(&completed.into_query());
        // Each of its nonconformities' plans is due from now, whether or not the client answers
        // (only a certifying audit records nonconformities).
        if request.command.event().completes_audit().is_some_and(AuditKind::records_nonconformities) {
            open_plan_deadlines_of_audit(txn, &engagement, open_deadlines, audit_id, policy, now).await?;
        }
    }
    write
        .record_history(HistoryRecord {
            engagement_id: engagement.id,
            action: outcome.event.to_string(),
            from_state: Some(outcome.from),
            to_state: Some(outcome.to),
            actor,
            // A scope reduction or an amendment keeps what the certificate stated before.
            reason: match (request.history_reason(), replaced) {
                (Some(reason), Some(was)) => Some(format!("{reason}\n{was}")),
                (reason, was) => reason.or(was),
            },
            evidence: &request.evidence,
            subject_id: request.audit_id,
        })
        .await?;
    let (signed_on, scope) = match &request.command {
        EngagementCommand::SignEngagementLetter { signed_on, .. } => {
            let scope = match &request.scope {
                Some(scope) => scope.clone(),
                None => {
                    Organization::find_by_id(engagement.organization_id)
                        .one(txn)
                        .await?
                        .ok_or(EngineError::NotFound("organization"))?
                        .isms_scope
                }
            };
            (Some(*signed_on), Some(scope))
        }
        _ => (engagement.engagement_letter_signed_on, new_scope.or_else(|| engagement.scope.clone())),
    };
    let version = engagement.version;
    let mut model = engagement.into_active_model();
    model.state = Set(outcome.to);
    model.stage1_ready_on = Set(outcome.marks.stage1_ready_on);
    model.stage2_last_day = Set(outcome.marks.stage2_last_day);
    model.suspended_on = Set(outcome.marks.suspended_on);
    model.expired_on = Set(outcome.marks.expired_on);
    model.suspension_cause = Set(outcome.marks.suspension_cause);
    model.engagement_letter_signed_on = Set(signed_on);
    model.scope = Set(scope);
    model.version = Set(version + 1);
    model.updated_at = Set(now);
    // Under the lock the row is there: the update goes with the write's next statement.
    let engagement = model.clone().try_into_model()?;
    txn.defer(&Engagement::update_many().set(model).filter(engagement::Column::Id.eq(engagement.id)).into_query());
    let certificate = match outcome.certificate.and_then(WebhookEventType::of_certificate_change) {
        Some(event_type) => find_certificate(txn, engagement.id).await?.map(|c| (event_type, c)),
        None => None,
    };
    let transition = TransitionData {
        from: outcome.from,
        to: outcome.to,
        event: outcome.event,
        actor: actor.to_owned(),
        reason: request.reason.as_ref().map(ToString::to_string),
        engagement: engagement_data(&engagement),
    };
    write.emit(event_of(WebhookEventType::EngagementTransitioned, &engagement, EventSubject::Transition(transition)));
    if let Some((event_type, certificate)) = certificate {
        write.emit(event_of(event_type, &engagement, certificate_data(&certificate)));
    }
    Ok(engagement)
}
