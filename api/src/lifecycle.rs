//! The shell around the lifecycle engine: gather an engagement's facts, let `entities` decide,
//! and write everything the decision says in the caller's transaction.

use chrono::{DateTime, NaiveDate, Utc};
use entities::domain::deadline::{DeadlineChange, DeadlineOwner, DeadlineStatus, DeadlineToOpen};
use entities::domain::lifecycle::{
    AuditFacts, CertificateChange, CertificateFacts, EngagementCommand, EngagementFacts, EngagementMarks,
    TransitionOutcome, decide,
};
use entities::domain::policy::CertificationPolicy;
use entities::domain::soa::{SoaLine, check_statement_of_applicability};
use entities::domain::stage1::Stage1Readiness;
use entities::domain::state::EngagementEvent;
use entities::domain::text::{EmailAddress, Narrative};
use entities::domain::{AuditKind, CertificateStatus, FindingGrade, FindingStatus, ProposalStatus};
use entities::orm::{
    audit, certificate, certification_body, certification_decision, deadline, engagement, finding, history_entry,
    organization, prelude::*, proposal,
};
use sea_orm::sea_query::{Condition, Expr, ExprTrait, Func, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait,
    FromQueryResult, IdenStatic, IntoActiveModel, Iterable, PaginatorTrait, QueryFilter, TryGetError,
};
use uuid::Uuid;

use crate::access::Action;
use crate::auth::AuthUser;
use crate::db::{check_version, json_strings, lock_engagement, strings_of};
use crate::error::ApiError;
use crate::reminders::{cancel_pending_notifications, first_reminder_on, reminder_policy_of};
use crate::routes::engagements::open_deadlines_of;
use crate::startup::AppState;

/// A parsed lifecycle request.
#[derive(Debug, Clone)]
pub struct TransitionRequest {
    /// What to do.
    pub command: EngagementCommand,
    /// The audit the event completes, when it completes one.
    pub audit_id: Option<Uuid>,
    /// Gaps found by a stage 1 that was not ready.
    pub gaps: Vec<String>,
    /// Why.
    pub reason: Option<Narrative>,
    /// References to the evidence relied on.
    pub evidence: Vec<String>,
    /// The engagement version the caller last read (`If-Match` or `version`): another is a 412.
    pub expected_version: Option<i32>,
}

impl TransitionRequest {
    /// The "why" the history keeps: the reason, and a confirmation that an old stage 1 result is
    /// still valid, which the decision relies on.
    fn history_reason(&self) -> Option<String> {
        let reason = self.reason.as_ref().map(ToString::to_string);
        match &self.command {
            EngagementCommand::CompleteStage2 { stage1_still_valid: Some(confirmation) } => {
                let confirmation = format!("stage 1 result still valid: {confirmation}");
                Some(match reason {
                    Some(reason) => format!("{reason}\n{confirmation}"),
                    None => confirmation,
                })
            }
            _ => reason,
        }
    }
}

/// Fires `request` on engagement `id` as `user` (404 unless it sees the engagement, 403 unless it
/// may fire the event), inside `txn`; returns the updated engagement and its open deadlines.
pub async fn fire(
    txn: &DatabaseTransaction,
    app: &AppState,
    id: Uuid,
    request: &TransitionRequest,
    user: &AuthUser,
) -> Result<(engagement::Model, OpenDeadlines), ApiError> {
    fire_at(txn, app.clock.now(), &app.policy, id, request, user).await
}

/// [`fire`] at `now`, under `policy`.
pub async fn fire_at(
    txn: &DatabaseTransaction,
    now: DateTime<Utc>,
    policy: &CertificationPolicy,
    id: Uuid,
    request: &TransitionRequest,
    user: &AuthUser,
) -> Result<(engagement::Model, OpenDeadlines), ApiError> {
    let today = now.date_naive();
    let engagement = lock_engagement(txn, user, id, Action::Fire(request.command.event())).await?;
    // Checked under the lock: of two writers that read the same version, one wins.
    check_version(request.expected_version, engagement.version)?;
    let (facts, mut open_deadlines) = load_facts(txn, &engagement, request, today).await?;
    let outcome = decide(&facts, &request.command, request.reason.as_ref(), today, policy)?;
    tracing::info!(engagement_id = %id, event = %outcome.event, from = %outcome.from, to = %outcome.to, "transition");
    let engagement = apply(txn, engagement, &mut open_deadlines, &outcome, request, &user.subject, now).await?;
    Ok((engagement, open_deadlines))
}

/// Is a CB accredited on `on`?
pub fn accredited_on(cb: &certification_body::Model, on: NaiveDate) -> bool {
    accreditation_valid_on(cb.accredited, cb.accreditation_expires_on, on)
}

/// Does an accreditation (`accredited`, until `expires_on` if it says) hold on `on`?
fn accreditation_valid_on(accredited: bool, expires_on: Option<NaiveDate>, on: NaiveDate) -> bool {
    accredited && expires_on.is_none_or(|expires| expires >= on)
}

/// Stage 1 readiness of an engagement: its registered documents and its SoA.
pub async fn stage1_readiness(conn: &impl ConnectionTrait, engagement_id: Uuid) -> Result<Stage1Readiness, ApiError> {
    let documents: Vec<_> = Document::find()
        .filter(entities::orm::document::Column::EngagementId.eq(engagement_id))
        .all(conn)
        .await?
        .into_iter()
        .map(|d| d.kind)
        .collect();
    let soa: Vec<SoaLine> = SoaEntry::find()
        .filter(entities::orm::soa_entry::Column::EngagementId.eq(engagement_id))
        .all(conn)
        .await?
        .into_iter()
        .map(|e| SoaLine { control: e.control, applicable: e.applicable, justification: e.justification })
        .collect();
    Ok(Stage1Readiness::assess(&documents, check_statement_of_applicability(&soa)))
}

/// Open nonconformities of `grade` in an engagement.
pub async fn count_open_findings(
    conn: &impl ConnectionTrait,
    engagement_id: Uuid,
    grade: FindingGrade,
) -> Result<u32, ApiError> {
    let count = Finding::find()
        .filter(finding::Column::EngagementId.eq(engagement_id))
        .filter(finding::Column::Grade.eq(grade))
        .filter(finding::Column::Status.eq(FindingStatus::Open))
        .count(conn)
        .await?;
    Ok(count_of(count))
}

/// What one query tells of an engagement's standing: its organization's consent to an
/// unaccredited CB, the selected CB's accreditation, its certificate, its findings counted and
/// the audit the event completes (when it names one of this engagement's audits).
#[derive(Debug, FromQueryResult)]
struct Standing {
    accepts_unaccredited_cb: bool,
    cb_accredited: Option<bool>,
    cb_accreditation_expires_on: Option<NaiveDate>,
    certificate_decision_on: Option<NaiveDate>,
    certificate_expires_on: Option<NaiveDate>,
    certificate_surveillances_completed: Option<i32>,
    majors_open: i64,
    minors_open: i64,
    audit_major_ncs: i64,
    audit_kind: Option<AuditKind>,
    audit_first_day: Option<NaiveDate>,
    audit_last_day: Option<NaiveDate>,
    audit_completed_at: Option<DateTime<Utc>>,
}

/// How the open deadlines' columns are named in the standing query's rows.
const DEADLINE_PREFIX: &str = "deadline_";

impl Standing {
    /// Reads the standing of `engagement` and, in the same query, its open deadlines (one row per
    /// open deadline); `audit_id` names the audit the event completes. Runs after the engagement's
    /// lock, so it sees what the writers before this one committed.
    async fn of(
        txn: &DatabaseTransaction,
        engagement: &engagement::Model,
        audit_id: Option<Uuid>,
    ) -> Result<(Self, OpenDeadlines), ApiError> {
        let findings_counted = |condition: Condition| {
            Expr::from(
                Query::select()
                    .expr(Func::count(Expr::col((Finding, finding::Column::Id))))
                    .from(Finding)
                    .cond_where(condition)
                    .to_owned(),
            )
        };
        let open_findings = |grade: FindingGrade| {
            findings_counted(
                Condition::all()
                    .add(finding::Column::EngagementId.eq(engagement.id))
                    .add(finding::Column::Grade.eq(grade))
                    .add(finding::Column::Status.eq(FindingStatus::Open)),
            )
        };
        let (audit_major_ncs, the_audit) = match audit_id {
            Some(audit_id) => (
                findings_counted(
                    Condition::all()
                        .add(finding::Column::AuditId.eq(audit_id))
                        .add(finding::Column::Grade.eq(FindingGrade::MajorNc)),
                ),
                // An audit of another engagement is not joined: refused as if it did not exist.
                Expr::col((Audit, audit::Column::Id))
                    .eq(audit_id)
                    .and(Expr::col((Audit, audit::Column::EngagementId)).eq(engagement.id)),
            ),
            // No audit named: a condition no audit meets (ids are never null).
            None => (Expr::val(0i64), Expr::col((Audit, audit::Column::Id)).is_null()),
        };
        let selected_cb = Query::select()
            .column(proposal::Column::CertificationBodyId)
            .from(Proposal)
            .and_where(proposal::Column::EngagementId.eq(engagement.id))
            .and_where(proposal::Column::Status.eq(ProposalStatus::Selected))
            .to_owned();
        let mut statement = Query::select()
            .expr_as(Expr::col((Organization, organization::Column::AcceptsUnaccreditedCb)), "accepts_unaccredited_cb")
            .expr_as(Expr::col((CertificationBody, certification_body::Column::Accredited)), "cb_accredited")
            .expr_as(
                Expr::col((CertificationBody, certification_body::Column::AccreditationExpiresOn)),
                "cb_accreditation_expires_on",
            )
            .expr_as(Expr::col((Certificate, certificate::Column::DecisionOn)), "certificate_decision_on")
            .expr_as(Expr::col((Certificate, certificate::Column::ExpiresOn)), "certificate_expires_on")
            .expr_as(
                Expr::col((Certificate, certificate::Column::SurveillancesCompleted)),
                "certificate_surveillances_completed",
            )
            .expr_as(open_findings(FindingGrade::MajorNc), "majors_open")
            .expr_as(open_findings(FindingGrade::MinorNc), "minors_open")
            .expr_as(audit_major_ncs, "audit_major_ncs")
            .expr_as(Expr::col((Audit, audit::Column::Kind)), "audit_kind")
            .expr_as(Expr::col((Audit, audit::Column::FirstDay)), "audit_first_day")
            .expr_as(Expr::col((Audit, audit::Column::LastDay)), "audit_last_day")
            .expr_as(Expr::col((Audit, audit::Column::CompletedAt)), "audit_completed_at")
            .from(Organization)
            .left_join(CertificationBody, certification_body::Column::Id.in_subquery(selected_cb))
            .left_join(Certificate, certificate::Column::EngagementId.eq(engagement.id))
            .left_join(Audit, the_audit)
            .left_join(
                Deadline,
                deadline::Column::EngagementId.eq(engagement.id).and(deadline::Column::Status.eq(DeadlineStatus::Open)),
            )
            .and_where(organization::Column::Id.eq(engagement.organization_id))
            .to_owned();
        for column in deadline::Column::iter() {
            statement.expr_as(Expr::col((Deadline, column)), format!("{DEADLINE_PREFIX}{}", column.as_str()));
        }
        let rows = txn.query_all(&statement).await?;
        let standing = Self::from_query_result(rows.first().ok_or(ApiError::NotFound("organization"))?, "")?;
        let mut open = Vec::new();
        for row in &rows {
            match deadline::Model::from_query_result_nullable(row, DEADLINE_PREFIX) {
                Ok(deadline) => open.push(deadline),
                // The row of an engagement without open deadlines.
                Err(TryGetError::Null(_)) => {}
                Err(TryGetError::DbErr(error)) => return Err(error.into()),
            }
        }
        Ok((standing, OpenDeadlines(open)))
    }
}

/// An engagement's open deadlines, read under its lock. Every deadline change of a write goes
/// through them, so they stay what the database holds (only writers holding the lock open or
/// close a deadline), a change that touches no deadline costs no statement, and the write's
/// answer needs no second read.
#[derive(Debug, Default)]
pub struct OpenDeadlines(Vec<deadline::Model>);

impl OpenDeadlines {
    /// The open deadlines of engagement `engagement_id` (read under its lock).
    pub async fn of(conn: &impl ConnectionTrait, engagement_id: Uuid) -> Result<Self, ApiError> {
        Ok(Self(open_deadlines_of(vec![engagement_id]).all(conn).await?))
    }

    /// The ids of the open deadlines `closing` picks, now no longer open.
    fn close_where(&mut self, closing: impl Fn(&deadline::Model) -> bool) -> Vec<Uuid> {
        let (closed, open): (Vec<_>, Vec<_>) = std::mem::take(&mut self.0).into_iter().partition(|d| closing(d));
        self.0 = open;
        closed.into_iter().map(|d| d.id).collect()
    }

    /// The open deadlines, in no particular order.
    pub fn into_models(self) -> Vec<deadline::Model> {
        self.0
    }
}

/// A count as the rules take it.
fn count_of(count: impl TryInto<u32>) -> u32 {
    count.try_into().unwrap_or(u32::MAX)
}

/// The facts the rules need: the engagement's [`Standing`] with its open deadlines in one query,
/// plus its documents and SoA for a stage 1 outcome, and its audit teams for a certification
/// decision (the only rule that reads them: a decision maker must not have audited).
async fn load_facts(
    txn: &DatabaseTransaction,
    engagement: &engagement::Model,
    request: &TransitionRequest,
    today: NaiveDate,
) -> Result<(EngagementFacts, OpenDeadlines), ApiError> {
    let (standing, open_deadlines) = Standing::of(txn, engagement, request.audit_id).await?;
    let stage1_readiness = match request.command.event() {
        EngagementEvent::RecordStage1Outcome => Some(stage1_readiness(txn, engagement.id).await?),
        _ => None,
    };
    let auditors = match decision_maker(&request.command) {
        None => Vec::new(),
        Some(_) => Audit::find()
            .filter(audit::Column::EngagementId.eq(engagement.id))
            .all(txn)
            .await?
            .iter()
            .flat_map(|a| std::iter::once(a.lead_auditor.clone()).chain(strings_of(&a.audit_team)))
            .filter_map(|email| EmailAddress::parse(&email).ok())
            .collect(),
    };
    let audit = match (request.audit_id, standing.audit_kind, standing.audit_first_day, standing.audit_last_day) {
        (None, ..) => None,
        (Some(_), Some(kind), Some(first_day), Some(last_day)) => Some(AuditFacts {
            kind,
            first_day,
            last_day,
            major_ncs: count_of(standing.audit_major_ncs),
            completed: standing.audit_completed_at.is_some(),
        }),
        (Some(_), ..) => return Err(ApiError::NotFound("audit")),
    };
    let certificate = match (standing.certificate_decision_on, standing.certificate_expires_on) {
        (Some(decision_on), Some(expires_on)) => Some(CertificateFacts {
            decision_on,
            expires_on,
            surveillances_completed: u32::try_from(standing.certificate_surveillances_completed.unwrap_or(0))
                .unwrap_or(0),
        }),
        _ => None,
    };
    let facts = EngagementFacts {
        state: engagement.state,
        standard: engagement.standard,
        selected_cb_accredited: standing
            .cb_accredited
            .map(|accredited| accreditation_valid_on(accredited, standing.cb_accreditation_expires_on, today)),
        unaccredited_cb_accepted: standing.accepts_unaccredited_cb,
        stage1_readiness,
        audit,
        majors_unverified: count_of(standing.majors_open),
        minors_plan_pending: count_of(standing.minors_open),
        auditors,
        certificate,
        marks: EngagementMarks {
            stage1_ready_on: engagement.stage1_ready_on,
            stage2_last_day: engagement.stage2_last_day,
            suspended_on: engagement.suspended_on,
            expired_on: engagement.expired_on,
        },
    };
    Ok((facts, open_deadlines))
}

/// The engagement's certificate, if one was ever issued.
pub async fn find_certificate(
    conn: &impl ConnectionTrait,
    engagement_id: Uuid,
) -> Result<Option<certificate::Model>, ApiError> {
    Ok(Certificate::find().filter(certificate::Column::EngagementId.eq(engagement_id)).one(conn).await?)
}

async fn apply(
    txn: &DatabaseTransaction,
    engagement: engagement::Model,
    open_deadlines: &mut OpenDeadlines,
    outcome: &TransitionOutcome,
    request: &TransitionRequest,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<engagement::Model, ApiError> {
    let today = now.date_naive();
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
    record_history(
        txn,
        HistoryRecord {
            engagement_id: engagement.id,
            action: outcome.event.to_string(),
            from_state: Some(outcome.from),
            to_state: Some(outcome.to),
            actor,
            reason: request.history_reason(),
            evidence: &request.evidence,
            subject_id: request.audit_id,
        },
        now,
    )
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

fn decision_maker(command: &EngagementCommand) -> Option<&EmailAddress> {
    match command {
        EngagementCommand::GrantCertification { decision_maker }
        | EngagementCommand::RefuseCertification { decision_maker, .. } => Some(decision_maker),
        _ => None,
    }
}

/// One row of the append-only history.
pub struct HistoryRecord<'a> {
    /// The engagement.
    pub engagement_id: Uuid,
    /// The event fired, or the change made (e.g. `finding_recorded`).
    pub action: String,
    /// State before (transitions only).
    pub from_state: Option<entities::domain::state::EngagementState>,
    /// State after (transitions only).
    pub to_state: Option<entities::domain::state::EngagementState>,
    /// Who.
    pub actor: &'a str,
    /// Why.
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
    txn: &DatabaseTransaction,
    record: HistoryRecord<'_>,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
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
    HistoryEntry::insert(entry).exec_without_returning(txn).await?;
    Ok(())
}

/// Applies one deadline change to the engagement's `open_deadlines` (read under its lock) and to
/// the database; `subject` names the corrective action (and its owner) a deadline concerns.
pub async fn apply_deadline_change(
    txn: &DatabaseTransaction,
    engagement: &engagement::Model,
    open_deadlines: &mut OpenDeadlines,
    change: DeadlineChange,
    subject: Option<(Uuid, &EmailAddress)>,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
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
    txn: &DatabaseTransaction,
    ids: Vec<Uuid>,
    status: DeadlineStatus,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
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

async fn coordinator_email(txn: &DatabaseTransaction, engagement: &engagement::Model) -> Result<String, ApiError> {
    let cb = match engagement.certification_body_id {
        Some(cb_id) => CertificationBody::find_by_id(cb_id).one(txn).await?,
        None => None,
    };
    Ok(cb.map_or_else(|| engagement.manager_email.clone(), |cb| cb.coordinator_email))
}

async fn apply_certificate_change(
    txn: &DatabaseTransaction,
    engagement: &engagement::Model,
    change: CertificateChange,
    now: DateTime<Utc>,
) -> Result<(), ApiError> {
    let existing = find_certificate(txn, engagement.id).await?;
    let mut model = match (change, existing) {
        (CertificateChange::Issue { decision_on, expires_on }, None) => {
            let organization = Organization::find_by_id(engagement.organization_id)
                .one(txn)
                .await?
                .ok_or(ApiError::NotFound("organization"))?;
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
            return Err(ApiError::Unexpected(anyhow::anyhow!("BUG: certificate change without a certificate")));
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
