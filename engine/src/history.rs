//! The append-only history of an engagement: every transition and every change, with who, why
//! and the evidence relied on.

use chrono::{DateTime, Utc};
use entities::domain::state::EngagementState;
use entities::orm::{history_entry, prelude::*};
use sea_orm::{ActiveValue::Set, EntityTrait, QueryTrait};
use uuid::Uuid;

use crate::error::EngineError;
use crate::store::WriteTransaction;
use crate::store::json_strings;

/// One row of the append-only history.
pub struct HistoryRecord<'a> {
    /// The engagement.
    pub engagement_id: Uuid,
    /// The event fired, or the change made (e.g. `finding_recorded`).
    pub action: String,
    /// State before (transitions only).
    pub from_state: Option<EngagementState>,
    /// State after (transitions only).
    pub to_state: Option<EngagementState>,
    /// The caller's subject (or `certflow-clock`).
    pub actor: &'a str,
    /// The reason given, if any.
    pub reason: Option<String>,
    /// Evidence relied on.
    pub evidence: &'a [String],
    /// The audit, finding or corrective action concerned.
    pub subject_id: Option<Uuid>,
}

impl<'a> HistoryRecord<'a> {
    /// A change that is not a transition: a proposal selected, a finding recorded, a corrective
    /// action submitted or verified.
    pub fn change(engagement_id: Uuid, action: impl Into<String>, actor: &'a str, subject_id: Option<Uuid>) -> Self {
        Self {
            engagement_id,
            action: action.into(),
            from_state: None,
            to_state: None,
            actor,
            reason: None,
            evidence: &[],
            subject_id,
        }
    }

    /// With the evidence relied on.
    pub fn with_evidence(self, evidence: &'a [String]) -> Self {
        Self { evidence, ..self }
    }

    /// With the reason given.
    pub fn with_reason(self, reason: Option<String>) -> Self {
        Self { reason, ..self }
    }
}

/// Appends a history row.
pub async fn record_history(
    txn: &WriteTransaction,
    record: HistoryRecord<'_>,
    now: DateTime<Utc>,
) -> Result<(), EngineError> {
    let entry = history_entry::ActiveModel {
        id: Set(Uuid::now_v7()),
        engagement_id: Set(record.engagement_id),
        action: Set(record.action),
        from_state: Set(record.from_state),
        to_state: Set(record.to_state),
        actor: Set(record.actor.to_owned()),
        reason: Set(record.reason),
        evidence: Set(json_strings(record.evidence)),
        subject_id: Set(record.subject_id),
        occurred_at: Set(now),
    };
    // Nothing in a write reads its own history: the entry goes with the write's next statement.
    txn.defer(&HistoryEntry::insert(entry).into_query());
    Ok(())
}
