//! What a client submits and the certification body verifies, and how a corrective action is shown.

use chrono::{DateTime, NaiveDate, Utc};
use engine::EngineError;
use engine::store::{belongs, strings_of};
use entities::domain::VerificationStatus;
use entities::domain::deadline::{DeadlineChange, DeadlineKind, DeadlineOwner, DeadlineToOpen};
use entities::domain::text::EmailAddress;
use entities::orm::{corrective_action, finding, prelude::*};
use sea_orm::EntityTrait;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;
use crate::fields::Fields;
use engine::store::WriteTransaction;

/// A corrective action as the client submits it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "root_cause": "Restore tests were never scheduled after the backup tool changed.",
    "correction": "Full restore of the production database tested on 2027-02-03.",
    "corrective_action": "Quarterly restore test added to the operations calendar, owned by the SRE lead.",
    "owner_email": "sre.lead@acme.example",
    "due_on": "2027-04-15",
    "evidence": ["dms://isms/evidence/restore-test-2027-02-03.pdf"]
}))]
pub struct CorrectiveActionRequest {
    /// Why the nonconformity happened.
    pub root_cause: String,
    /// The immediate fix.
    pub correction: String,
    /// What prevents it from happening again.
    pub corrective_action: String,
    /// Who is responsible.
    pub owner_email: String,
    /// Due date, 30–90 days after the audit's last day (default: the CB policy for the grade).
    pub due_on: Option<NaiveDate>,
    /// References to evidence.
    #[serde(default)]
    pub evidence: Vec<String>,
    /// On an update: the version last read; the write is refused (412) if it changed. `If-Match`
    /// says the same.
    #[serde(default)]
    pub version: Option<i32>,
}

/// The certification body's verification.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "outcome": "accepted", "note": "Restore test report reviewed." }))]
pub struct VerificationRequest {
    /// Accepted (major: correction verified; minor: plan accepted) or rejected.
    pub outcome: VerificationStatus,
    /// Why; required when rejected.
    pub note: Option<String>,
}

/// A corrective action.
#[derive(Debug, Serialize, ToSchema)]
pub struct CorrectiveActionView {
    /// Id.
    pub id: Uuid,
    /// The engagement.
    pub engagement_id: Uuid,
    /// The nonconformity it answers.
    pub finding_id: Uuid,
    /// Root cause.
    pub root_cause: String,
    /// Correction.
    pub correction: String,
    /// Corrective action.
    pub corrective_action: String,
    /// Owner.
    pub owner_email: String,
    /// Due date.
    pub due_on: NaiveDate,
    /// Not yet accepted and past its due date.
    pub overdue: bool,
    /// Evidence references.
    pub evidence: Vec<String>,
    /// Pending, accepted or rejected.
    pub verification: VerificationStatus,
    /// The CB's note.
    pub verification_note: Option<String>,
    /// Who verified.
    pub verified_by: Option<String>,
    /// When.
    pub verified_at: Option<DateTime<Utc>>,
    /// When the client reported it done (the body's verification is then the pending step).
    pub reported_done_at: Option<DateTime<Utc>>,
    /// Version, for `If-Match`.
    pub version: i32,
    /// Submitted.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl CorrectiveActionView {
    /// The view of `m` on `today`.
    pub fn new(m: corrective_action::Model, today: NaiveDate) -> Self {
        Self {
            id: m.id,
            engagement_id: m.engagement_id,
            finding_id: m.finding_id,
            overdue: m.verification != VerificationStatus::Accepted && m.due_on < today,
            evidence: strings_of(&m.evidence),
            root_cause: m.root_cause,
            correction: m.correction,
            corrective_action: m.corrective_action,
            owner_email: m.owner_email,
            due_on: m.due_on,
            verification: m.verification,
            verification_note: m.verification_note,
            verified_by: m.verified_by,
            verified_at: m.verified_at,
            reported_done_at: m.reported_done_at,
            version: m.version,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

pub(super) struct PlanFields {
    pub(super) root_cause: String,
    pub(super) correction: String,
    pub(super) corrective_action: String,
    pub(super) owner: EmailAddress,
    pub(super) due_on: Option<NaiveDate>,
    pub(super) evidence: Vec<String>,
}

impl TryFrom<CorrectiveActionRequest> for PlanFields {
    type Error = ApiError;

    fn try_from(request: CorrectiveActionRequest) -> Result<Self, ApiError> {
        let mut f = Fields::default();
        let root_cause = f.text::<4000>("root_cause", &request.root_cause);
        let correction = f.text::<4000>("correction", &request.correction);
        let corrective_action = f.text::<4000>("corrective_action", &request.corrective_action);
        let owner = f.email("owner_email", &request.owner_email);
        let due_on = request.due_on.map(|d| f.date("due_on", d));
        let evidence = f.references("evidence", &request.evidence, 100);
        let parsed = (|| Some((root_cause?, correction?, corrective_action?, owner?, evidence?)))();
        let (root_cause, correction, corrective_action, owner, evidence) = f.finish(parsed)?;
        Ok(Self {
            root_cause: root_cause.into_inner(),
            correction: correction.into_inner(),
            corrective_action: corrective_action.into_inner(),
            owner,
            due_on: due_on.flatten(),
            evidence,
        })
    }
}

/// The finding's grade and its audit's last day: the anchor of the due-date window.
pub(super) async fn finding_and_anchor(
    txn: &WriteTransaction,
    engagement_id: Uuid,
    finding_id: Uuid,
) -> Result<(finding::Model, NaiveDate), EngineError> {
    let found =
        belongs(Finding::find_by_id(finding_id).one(txn).await?, |f| f.engagement_id, engagement_id, "finding")?;
    let audit = Audit::find_by_id(found.audit_id).one(txn).await?.ok_or(EngineError::NotFound("audit"))?;
    Ok((found, audit.last_day))
}

pub(super) fn due_deadline(due_on: NaiveDate) -> DeadlineChange {
    DeadlineChange::Open(DeadlineToOpen {
        kind: DeadlineKind::CorrectiveActionDue,
        due_on,
        owner: DeadlineOwner::CorrectiveActionOwner,
    })
}
