//! What the rules need to know of an engagement, read under its lock: its standing (consent,
//! accreditation, certificate, findings counted, the audit an event completes) and its open
//! deadlines in one query, plus what only some events need.

use chrono::{DateTime, NaiveDate, Utc};
use entities::domain::deadline::DeadlineStatus;
use entities::domain::lifecycle::{AuditFacts, CertificateFacts, EngagementFacts, EngagementMarks};
use entities::domain::policy::CertificationPolicy;
use entities::domain::soa::{SoaLine, check_statement_of_applicability};
use entities::domain::stage1::Stage1Readiness;
use entities::domain::state::EngagementEvent;
use entities::domain::text::EmailAddress;
use entities::domain::{AuditKind, CertificateStatus, FindingGrade, FindingStatus, ProposalStatus};
use entities::orm::{
    audit, certificate, certification_body, certification_policy, corrective_action, deadline, document, engagement,
    finding, organization, prelude::*, proposal, soa_entry,
};
use sea_orm::sea_query::{Condition, Expr, ExprTrait, Func, Query, SelectStatement};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, IdenStatic, Iterable, PaginatorTrait, QueryFilter,
    QueryResult, QuerySelect, QueryTrait, TryGetError,
};
use sea_orm::{DbBackend, Statement};
use uuid::Uuid;

use super::{TransitionRequest, decision_maker};
use crate::deadlines::OpenDeadlines;
use crate::error::EngineError;
use crate::policies::stored_certification_policy;
use crate::store::strings_of;
use crate::store::{Templates, WriteTransaction};

/// Is a CB accredited on `on`?
pub fn accredited_on(cb: &certification_body::Model, on: NaiveDate) -> bool {
    accreditation_valid_on(cb.accredited, cb.accreditation_expires_on, on)
}

/// Does an accreditation (`accredited`, until `expires_on` if it says) hold on `on`?
fn accreditation_valid_on(accredited: bool, expires_on: Option<NaiveDate>, on: NaiveDate) -> bool {
    accredited && expires_on.is_none_or(|expires| expires >= on)
}

/// Stage 1 readiness of an engagement: its registered documents and its SoA.
pub async fn stage1_readiness(
    conn: &impl ConnectionTrait,
    engagement_id: Uuid,
) -> Result<Stage1Readiness, EngineError> {
    let [documents, soa] = stage1_readiness_queries(engagement_id);
    let backend = conn.get_database_backend();
    let (documents, soa) =
        (conn.query_all_raw(backend.build(&documents)).await?, conn.query_all_raw(backend.build(&soa)).await?);
    stage1_readiness_of(&documents, &soa)
}

/// The reads of stage 1 readiness: the engagement's documents, its SoA.
fn stage1_readiness_queries(engagement_id: Uuid) -> [SelectStatement; 2] {
    [documents_of(engagement_id), soa_of(engagement_id)]
}

fn documents_of(engagement_id: Uuid) -> SelectStatement {
    Document::find().filter(document::Column::EngagementId.eq(engagement_id)).into_query()
}

fn soa_of(engagement_id: Uuid) -> SelectStatement {
    SoaEntry::find().filter(soa_entry::Column::EngagementId.eq(engagement_id)).into_query()
}

/// The statements every transition reads with, built once ([`Templates`]).
static STANDING: Templates = Templates::new();
static DOCUMENTS: Templates = Templates::new();
static SOA: Templates = Templates::new();

/// Stage 1 readiness from the rows of [`stage1_readiness_queries`].
fn stage1_readiness_of(documents: &[QueryResult], soa: &[QueryResult]) -> Result<Stage1Readiness, EngineError> {
    let documents = documents
        .iter()
        .map(|row| document::Model::from_query_result(row, "").map(|d| d.kind))
        .collect::<Result<Vec<_>, _>>()?;
    let soa = soa
        .iter()
        .map(|row| {
            soa_entry::Model::from_query_result(row, "").map(|e| SoaLine {
                control: e.control,
                applicable: e.applicable,
                justification: e.justification,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Stage1Readiness::assess(&documents, check_statement_of_applicability(&soa)))
}

/// Open nonconformities of `grade` in an engagement.
pub async fn count_open_findings(
    conn: &impl ConnectionTrait,
    engagement_id: Uuid,
    grade: FindingGrade,
) -> Result<u32, EngineError> {
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
    certificate_last_surveillance_on: Option<NaiveDate>,
    certificate_status: Option<CertificateStatus>,
    majors_open: i64,
    minors_open: i64,
    audit_major_ncs: i64,
    audit_kind: Option<AuditKind>,
    audit_first_day: Option<NaiveDate>,
    audit_last_day: Option<NaiveDate>,
    audit_completed_at: Option<DateTime<Utc>>,
    certification_policy: Option<serde_json::Value>,
}

/// How the open deadlines' columns are named in the standing query's rows.
const DEADLINE_PREFIX: &str = "deadline_";

impl Standing {
    /// The query of the standing of `engagement` and, in the same rows, its open deadlines (one row
    /// per open deadline); `audit_id` names the audit the event completes. Runs after the
    /// engagement's lock, so it sees what the writers before this one committed.
    fn query(engagement_id: Uuid, audit_id: Option<Uuid>) -> SelectStatement {
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
                    .add(finding::Column::EngagementId.eq(engagement_id))
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
                    .and(Expr::col((Audit, audit::Column::EngagementId)).eq(engagement_id)),
            ),
            // No audit named: a condition no audit meets (ids are never null).
            None => (Expr::val(0i64), Expr::col((Audit, audit::Column::Id)).is_null()),
        };
        let selected_cb = Query::select()
            .column(proposal::Column::CertificationBodyId)
            .from(Proposal)
            .and_where(proposal::Column::EngagementId.eq(engagement_id))
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
            .expr_as(
                Expr::col((Certificate, certificate::Column::LastSurveillanceOn)),
                "certificate_last_surveillance_on",
            )
            .expr_as(Expr::col((Certificate, certificate::Column::Status)), "certificate_status")
            .expr_as(open_findings(FindingGrade::MajorNc), "majors_open")
            .expr_as(open_findings(FindingGrade::MinorNc), "minors_open")
            .expr_as(audit_major_ncs, "audit_major_ncs")
            .expr_as(Expr::col((Audit, audit::Column::Kind)), "audit_kind")
            .expr_as(Expr::col((Audit, audit::Column::FirstDay)), "audit_first_day")
            .expr_as(Expr::col((Audit, audit::Column::LastDay)), "audit_last_day")
            .expr_as(Expr::col((Audit, audit::Column::CompletedAt)), "audit_completed_at")
            .expr_as(
                Expr::col((CertificationPolicyRecord, certification_policy::Column::Policy)),
                "certification_policy",
            )
            .from(Organization)
            .left_join(CertificationBody, certification_body::Column::Id.in_subquery(selected_cb))
            .left_join(
                CertificationPolicyRecord,
                Expr::col((CertificationPolicyRecord, certification_policy::Column::CertificationBodyId))
                    .equals((CertificationBody, certification_body::Column::Id)),
            )
            .left_join(Certificate, certificate::Column::EngagementId.eq(engagement_id))
            .left_join(Audit, the_audit)
            .left_join(
                Deadline,
                deadline::Column::EngagementId.eq(engagement_id).and(deadline::Column::Status.eq(DeadlineStatus::Open)),
            )
            .and_where(
                organization::Column::Id.in_subquery(
                    Query::select()
                        .column(engagement::Column::OrganizationId)
                        .from(Engagement)
                        .and_where(engagement::Column::Id.eq(engagement_id))
                        .to_owned(),
                ),
            )
            .to_owned();
        for column in deadline::Column::iter() {
            statement.expr_as(Expr::col((Deadline, column)), format!("{DEADLINE_PREFIX}{}", column.as_str()));
        }
        statement
    }

    /// The standing and the open deadlines from the rows of [`Standing::query`].
    fn of(rows: &[QueryResult]) -> Result<(Self, OpenDeadlines), EngineError> {
        let standing = Self::from_query_result(rows.first().ok_or(EngineError::NotFound("organization"))?, "")?;
        let mut open = Vec::new();
        for row in rows {
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

/// A count as the rules take it.
fn count_of(count: impl TryInto<u32>) -> u32 {
    count.try_into().unwrap_or(u32::MAX)
}

/// The reads of the facts the rules need (see [`load_facts`]), run under the engagement's lock:
/// the engagement's [`Standing`] with its open deadlines and its body's certification policy in
/// one query, plus its documents and SoA for a stage 1 outcome.
pub(super) fn facts_queries(backend: DbBackend, engagement_id: Uuid, request: &TransitionRequest) -> Vec<Statement> {
    // The shape: whether an audit is named (its id or the nil one, unused, as the second id).
    let audit = request.audit_id;
    let ids = [engagement_id, audit.unwrap_or_default()];
    let standing = STANDING
        .statement(backend, u64::from(audit.is_some()), &ids, |ids| Standing::query(ids[0], audit.map(|_| ids[1])));
    let mut queries = vec![standing];
    if request.command.event() == EngagementEvent::RecordStage1Outcome {
        let ids = [engagement_id];
        queries.push(DOCUMENTS.statement(backend, 0, &ids, |ids| documents_of(ids[0])));
        queries.push(SOA.statement(backend, 0, &ids, |ids| soa_of(ids[0])));
    }
    queries
}

/// The facts the rules need, from the `answers` of [`facts_queries`], plus the audit teams for a
/// certification decision (the only rule that reads them: a decision maker must not have
/// audited). Dates are reckoned in the body's time zone.
pub(super) async fn load_facts(
    txn: &WriteTransaction,
    engagement: &engagement::Model,
    answers: Vec<Vec<QueryResult>>,
    request: &TransitionRequest,
    now: DateTime<Utc>,
) -> Result<(EngagementFacts, OpenDeadlines, CertificationPolicy), EngineError> {
    let (mut standing, open_deadlines) = Standing::of(answers.first().map_or(&[][..], Vec::as_slice))?;
    let stage1_readiness = match answers.get(1..3) {
        Some([documents, soa]) => Some(stage1_readiness_of(documents, soa)?),
        _ => None,
    };
    let policy = stored_certification_policy(standing.certification_policy.take())?;
    let today = policy.time_zone.today(now);
    let auditors = match decision_maker(&request.command) {
        None => Vec::new(),
        Some(_) => audit_work_of(txn, engagement.id).await?,
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
        (Some(_), ..) => return Err(EngineError::NotFound("audit")),
    };
    let certificate = match (standing.certificate_decision_on, standing.certificate_expires_on) {
        (Some(decision_on), Some(expires_on)) => Some(CertificateFacts {
            decision_on,
            expires_on,
            surveillances_completed: u32::try_from(standing.certificate_surveillances_completed.unwrap_or(0))
                .unwrap_or(0),
            last_surveillance_on: standing.certificate_last_surveillance_on,
            status: standing.certificate_status.unwrap_or(CertificateStatus::Active),
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
            suspension_cause: engagement.suspension_cause,
        },
    };
    Ok((facts, open_deadlines, policy))
}

/// Everyone who took part in the engagement's audit work (ISO/IEC 17021-1 9.5.1.2: none of them
/// may decide): the lead auditor and team of every audit, who recorded each finding, and who
/// verified each corrective action.
async fn audit_work_of(txn: &WriteTransaction, engagement_id: Uuid) -> Result<Vec<EmailAddress>, EngineError> {
    let audits = Audit::find().filter(audit::Column::EngagementId.eq(engagement_id)).all(txn).await?;
    let recorded: Vec<String> = Finding::find()
        .select_only()
        .column(finding::Column::CreatedBy)
        .filter(finding::Column::EngagementId.eq(engagement_id))
        .into_tuple()
        .all(txn)
        .await?;
    let verified: Vec<Option<String>> = CorrectiveAction::find()
        .select_only()
        .column(corrective_action::Column::VerifiedBy)
        .filter(corrective_action::Column::EngagementId.eq(engagement_id))
        .into_tuple()
        .all(txn)
        .await?;
    let mut people: Vec<EmailAddress> = audits
        .iter()
        .flat_map(|a| std::iter::once(a.lead_auditor.clone()).chain(strings_of(&a.audit_team)))
        .chain(recorded)
        .chain(verified.into_iter().flatten())
        .filter_map(|email| EmailAddress::parse(&email).ok())
        .collect();
    people.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    people.dedup();
    Ok(people)
}

/// The engagement's certificate, if one was ever issued.
pub async fn find_certificate(
    conn: &impl ConnectionTrait,
    engagement_id: Uuid,
) -> Result<Option<certificate::Model>, EngineError> {
    Ok(Certificate::find().filter(certificate::Column::EngagementId.eq(engagement_id)).one(conn).await?)
}
