//! Who may do what. A caller's tenancy says what it can see (anything else is a 404, so nothing
//! outside its scope is revealed); its party says what it can do with what it sees (a 403).

use entities::domain::state::EngagementEvent;
use entities::orm::{audit, deadline, engagement, notification, prelude::*, proposal};
use sea_orm::sea_query::{Condition, Query};
use sea_orm::{ColumnTrait, Iterable};
use uuid::Uuid;

/// Whose resources a caller works on, from its verified token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tenancy {
    /// Every organization and certification body (the platform's admins).
    Platform,
    /// One certification body's engagements: those it was selected for, and, while no body is
    /// selected yet, those it made a proposal for.
    CertificationBody(Uuid),
    /// One organization's engagements.
    Organization(Uuid),
}

/// A caller as the permission rules see it: its role, and for a service account its side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, strum::Display, strum::EnumIter)]
#[strum(serialize_all = "snake_case")]
pub enum Party {
    /// Runs the platform: everything but a certification body's decisions.
    Admin,
    /// A certification body's coordinator: plans audits and moves the engagement along.
    Coordinator,
    /// A certification body's auditor: audits, findings, verification of corrective actions.
    Auditor,
    /// A certification body's decision panel member: grants or refuses certification.
    DecisionMaker,
    /// The organization's ISMS or engagement manager: proposals, documents, corrective actions.
    ClientManager,
    /// A service account of an organization (a GRC tool): what its client manager may do.
    ClientIntegration,
    /// A service account of a certification body (a CB portal): what its coordinator and
    /// auditors may do, but no certification decision.
    CertificationBodyIntegration,
}

/// Every write the API offers. Reads are allowed to whoever sees the resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Register an organization.
    CreateOrganization,
    /// Change an organization's details.
    UpdateOrganization,
    /// Register a certification body.
    CreateCertificationBody,
    /// Change a certification body's details.
    UpdateCertificationBody,
    /// Record whether a certification body is accredited, by whom and until when.
    RecordAccreditation,
    /// Read a certification body's reminder schedule.
    ReadReminderPolicy,
    /// Change a certification body's reminder schedule.
    UpdateReminderPolicy,
    /// Read a certification body's certification policy (CAP days, limits, graces, time zone).
    ReadCertificationPolicy,
    /// Change a certification body's certification policy.
    UpdateCertificationPolicy,
    /// Open an engagement for an organization.
    CreateEngagement,
    /// Record a certification body's proposal.
    RecordProposal,
    /// Select a proposal.
    SelectProposal,
    /// Submit a stage 1 document or the Statement of Applicability.
    SubmitDocument,
    /// Plan an audit.
    PlanAudit,
    /// Change an audit (dates, team, held).
    UpdateAudit,
    /// Record a finding.
    RecordFinding,
    /// Submit or change a corrective action plan.
    SubmitCorrectiveAction,
    /// Verify (accept or reject) a corrective action.
    VerifyCorrectiveAction,
    /// Queue a failed email again.
    RequeueNotification,
    /// Revoke tokens (one by its id, or a subject's issued up to an instant) and list revocations.
    RevokeTokens,
    /// Add, change or remove a person of the directory (whom: `domain::people::may_manage`).
    ManagePeople,
    /// Register, change, rotate the secret of, or remove the owner's webhook endpoints, and read
    /// and replay their deliveries.
    ManageWebhooks,
    /// Fire a lifecycle event.
    Fire(EngagementEvent),
}

impl Action {
    /// Every action, events included, in a fixed order (for the role matrix).
    pub fn all() -> Vec<Action> {
        use Action as A;
        let mut all = vec![
            A::CreateOrganization,
            A::UpdateOrganization,
            A::CreateCertificationBody,
            A::UpdateCertificationBody,
            A::RecordAccreditation,
            A::ReadReminderPolicy,
            A::UpdateReminderPolicy,
            A::ReadCertificationPolicy,
            A::UpdateCertificationPolicy,
            A::CreateEngagement,
            A::RecordProposal,
            A::SelectProposal,
            A::SubmitDocument,
            A::PlanAudit,
            A::UpdateAudit,
            A::RecordFinding,
            A::SubmitCorrectiveAction,
            A::VerifyCorrectiveAction,
            A::RequeueNotification,
            A::RevokeTokens,
            A::ManagePeople,
            A::ManageWebhooks,
        ];
        all.extend(EngagementEvent::iter().map(A::Fire));
        all
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use Action as A;
        let name = match self {
            A::CreateOrganization => "create an organization",
            A::UpdateOrganization => "update an organization",
            A::CreateCertificationBody => "create a certification body",
            A::UpdateCertificationBody => "update a certification body",
            A::RecordAccreditation => "record an accreditation",
            A::ReadReminderPolicy => "read a reminder policy",
            A::UpdateReminderPolicy => "update a reminder policy",
            A::ReadCertificationPolicy => "read a certification policy",
            A::UpdateCertificationPolicy => "update a certification policy",
            A::CreateEngagement => "open an engagement",
            A::RecordProposal => "record a proposal",
            A::SelectProposal => "select a proposal",
            A::SubmitDocument => "submit stage 1 documents",
            A::PlanAudit => "plan an audit",
            A::UpdateAudit => "update an audit",
            A::RecordFinding => "record a finding",
            A::SubmitCorrectiveAction => "submit a corrective action",
            A::VerifyCorrectiveAction => "verify a corrective action",
            A::RequeueNotification => "re-queue a notification",
            A::RevokeTokens => "revoke tokens",
            A::ManagePeople => "manage people",
            A::ManageWebhooks => "manage webhook endpoints",
            A::Fire(event) => return write!(f, "fire {event}"),
        };
        f.write_str(name)
    }
}

/// May `party` do `action` (on a resource it sees)?
pub fn permits(party: Party, action: Action) -> bool {
    use Action as A;
    use EngagementEvent as E;
    use Party as P;
    let client = matches!(party, P::ClientManager | P::ClientIntegration);
    let coordination = matches!(party, P::Coordinator | P::CertificationBodyIntegration);
    let auditing = coordination || party == P::Auditor;
    let admin = party == P::Admin;
    match action {
        // A body's accreditation is the accreditation body's word, recorded by the platform: a
        // body that could declare its own would pass the accreditation guard of the letter.
        A::CreateOrganization | A::CreateCertificationBody | A::RecordAccreditation => admin,
        // Revocation is the platform's: it reaches every tenant's tokens.
        A::RevokeTokens => admin,
        // People manage the directory; service accounts do not (an integration is no person).
        A::ManagePeople => admin || matches!(party, P::Coordinator | P::ClientManager),
        A::UpdateOrganization => admin || client,
        // The people who run the integrations of each side: its manager or coordinator, and the
        // integrations themselves. The log holds receivers' answers: not for every auditor.
        A::ManageWebhooks => admin || client || coordination,
        A::UpdateCertificationBody | A::UpdateReminderPolicy | A::RequeueNotification => admin || coordination,
        A::UpdateCertificationPolicy => admin || coordination,
        // The client is held to the dates it sets: everyone reads it.
        A::ReadCertificationPolicy => true,
        A::ReadReminderPolicy => admin || auditing || party == P::DecisionMaker,
        A::CreateEngagement | A::RecordProposal | A::SelectProposal | A::SubmitDocument => admin || client,
        A::SubmitCorrectiveAction => admin || client,
        A::PlanAudit => admin || coordination,
        A::UpdateAudit | A::RecordFinding | A::VerifyCorrectiveAction => admin || auditing,
        A::Fire(event) => match event {
            // ISO/IEC 17021-1 9.5: the decision is the certification body's, by people who did not audit.
            E::GrantCertification | E::RefuseCertification => party == P::DecisionMaker,
            E::SignEngagementLetter | E::ChangeScope => admin || client || coordination,
            E::Cancel => admin || client,
            E::CompletePreAudit
            | E::RecordStage1Outcome
            | E::RepeatStage1
            | E::CompleteStage2
            | E::StartSurveillance
            | E::CompleteSurveillance
            | E::StartRecertification
            | E::CompleteRecertification => admin || auditing,
            E::RequestDecision | E::RequireNewStage2 | E::Expire | E::RestoreAfterExpiry | E::RestartAtStage2 => {
                admin || coordination
            }
            E::Suspend | E::Restore | E::Withdraw | E::ReduceScope | E::AmendCertificate => {
                admin || coordination || party == P::DecisionMaker
            }
        },
    }
}

/// The engagements `tenancy` sees, as a filter on the engagement table.
pub fn engagements_in(tenancy: Tenancy) -> Condition {
    match tenancy {
        Tenancy::Platform => Condition::all(),
        Tenancy::Organization(id) => Condition::all().add(engagement::Column::OrganizationId.eq(id)),
        Tenancy::CertificationBody(id) => {
            let proposed_to = Query::select()
                .column(proposal::Column::EngagementId)
                .from(Proposal)
                .and_where(proposal::Column::CertificationBodyId.eq(id))
                .to_owned();
            Condition::any().add(engagement::Column::CertificationBodyId.eq(id)).add(
                Condition::all()
                    .add(engagement::Column::CertificationBodyId.is_null())
                    .add(engagement::Column::Id.in_subquery(proposed_to)),
            )
        }
    }
}

/// The engagements whose records (audits, findings, corrective actions, documents, history,
/// decisions, deadlines, certificate, emails) `tenancy` reads: those it sees, except that a
/// certification body that has only bid reads none of them (it sees the engagement and its own
/// proposal, nothing of the client's dealings with anyone else).
pub fn engagement_records_in(tenancy: Tenancy) -> Condition {
    match tenancy {
        Tenancy::CertificationBody(id) => Condition::all().add(engagement::Column::CertificationBodyId.eq(id)),
        other => engagements_in(other),
    }
}

/// Rows of a table that hangs off engagements (its `engagement_column`) whose records `tenancy`
/// reads ([`engagement_records_in`]); no filter at all for the platform.
pub fn of_engagements_in(tenancy: Tenancy, engagement_column: impl ColumnTrait) -> Condition {
    match tenancy {
        Tenancy::Platform => Condition::all(),
        _ => Condition::all().add(in_engagements(
            engagement_column,
            engagement::Column::Id,
            engagement_records_in(tenancy),
        )),
    }
}

/// The deadlines `tenancy` reads: a body's by the body each deadline names (the write path keeps it
/// the engagement's), so a body's deadlines are one index range; anyone else's by the engagements
/// it reads ([`of_engagements_in`]).
pub fn deadlines_in(tenancy: Tenancy) -> Condition {
    named_body_or_engagements_in(tenancy, deadline::Column::CertificationBodyId, deadline::Column::EngagementId)
}

/// The audits `tenancy` reads, as [`deadlines_in`] (each audit names its engagement's body).
pub fn audits_in(tenancy: Tenancy) -> Condition {
    named_body_or_engagements_in(tenancy, audit::Column::CertificationBodyId, audit::Column::EngagementId)
}

/// The notifications `tenancy` reads, as [`deadlines_in`] (each names its engagement's body).
pub fn notifications_in(tenancy: Tenancy) -> Condition {
    named_body_or_engagements_in(tenancy, notification::Column::CertificationBodyId, notification::Column::EngagementId)
}

/// Rows of a table that names its engagement's body (`body_column`) and its engagement
/// (`engagement_column`): a body's by the body named, anyone else's by the engagements it reads.
fn named_body_or_engagements_in(
    tenancy: Tenancy,
    body_column: impl ColumnTrait,
    engagement_column: impl ColumnTrait,
) -> Condition {
    match tenancy {
        Tenancy::CertificationBody(id) => Condition::all().add(body_column.eq(id)),
        other => of_engagements_in(other, engagement_column),
    }
}

/// The ids of the organizations `tenancy` sees: its own, or those a certification body has an
/// engagement with.
pub fn organizations_in(tenancy: Tenancy, id_column: impl ColumnTrait) -> Condition {
    match tenancy {
        Tenancy::Platform => Condition::all(),
        Tenancy::Organization(id) => Condition::all().add(id_column.eq(id)),
        Tenancy::CertificationBody(_) => {
            Condition::all().add(in_engagements(id_column, engagement::Column::OrganizationId, engagements_in(tenancy)))
        }
    }
}

/// `column` is one of the values of `engagement_column` among the engagements that meet `which`.
fn in_engagements(
    column: impl ColumnTrait,
    engagement_column: engagement::Column,
    which: Condition,
) -> sea_orm::sea_query::SimpleExpr {
    column.in_subquery(Query::select().column(engagement_column).from(Engagement).cond_where(which).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use strum::IntoEnumIterator;

    /// The README's role matrix, rendered from [`permits`].
    fn role_matrix() -> String {
        let parties: Vec<Party> = Party::iter().collect();
        let mut table = String::from("| action |");
        for party in &parties {
            table.push_str(&format!(" {party} |"));
        }
        table.push_str("\n|---|");
        table.push_str(&"---|".repeat(parties.len()));
        for action in Action::all() {
            table.push_str(&format!("\n| {action} |"));
            for party in &parties {
                table.push_str(if permits(*party, action) { " yes |" } else { " – |" });
            }
        }
        table
    }

    #[test]
    fn the_readme_shows_the_role_matrix_the_api_enforces() {
        let readme = include_str!("../../README.md");
        let matrix = role_matrix();
        assert!(readme.contains(&matrix), "README.md's role matrix is stale; it should read:\n\n{matrix}\n");
    }

    #[test]
    fn only_a_decision_maker_grants_or_refuses_certification() {
        for party in Party::iter() {
            for event in [EngagementEvent::GrantCertification, EngagementEvent::RefuseCertification] {
                assert_eq!(permits(party, Action::Fire(event)), party == Party::DecisionMaker, "{party} {event}");
            }
        }
    }

    #[test]
    fn only_the_client_side_or_an_admin_submits_corrective_actions_and_documents() {
        for party in Party::iter() {
            let client = matches!(party, Party::ClientManager | Party::ClientIntegration | Party::Admin);
            for action in [Action::SubmitCorrectiveAction, Action::SubmitDocument, Action::RecordProposal] {
                assert_eq!(permits(party, action), client, "{party} {action}");
            }
        }
    }

    #[test]
    fn only_the_certification_body_side_or_an_admin_verifies_corrective_actions_and_records_findings() {
        for party in Party::iter() {
            let body = matches!(
                party,
                Party::Coordinator | Party::Auditor | Party::CertificationBodyIntegration | Party::Admin
            );
            for action in [Action::VerifyCorrectiveAction, Action::RecordFinding] {
                assert_eq!(permits(party, action), body, "{party} {action}");
            }
        }
    }

    #[test]
    fn every_event_is_fired_by_someone_and_no_event_by_everyone() {
        for event in EngagementEvent::iter() {
            let firing: Vec<Party> = Party::iter().filter(|p| permits(*p, Action::Fire(event))).collect();
            assert!(!firing.is_empty(), "nobody fires {event}");
            assert!(firing.len() < Party::iter().count(), "everybody fires {event}");
        }
    }

    #[test]
    fn only_admins_register_organizations_and_certification_bodies() {
        for party in Party::iter() {
            for action in [Action::CreateOrganization, Action::CreateCertificationBody] {
                assert_eq!(permits(party, action), party == Party::Admin, "{party} {action}");
            }
        }
    }

    #[test]
    fn a_client_never_acts_for_the_certification_body() {
        for party in [Party::ClientManager, Party::ClientIntegration] {
            for action in [
                Action::PlanAudit,
                Action::UpdateAudit,
                Action::ReadReminderPolicy,
                Action::UpdateReminderPolicy,
                Action::UpdateCertificationPolicy,
                Action::RequeueNotification,
                Action::Fire(EngagementEvent::CompleteStage2),
                Action::Fire(EngagementEvent::Suspend),
                Action::Fire(EngagementEvent::Withdraw),
            ] {
                assert!(!permits(party, action), "{party} {action}");
            }
        }
    }
}
