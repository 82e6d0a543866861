//! Who may do what: every operation of the OpenAPI spec, as every role, on ids inside and outside
//! the caller's scope. Two tenants (an organization with its certification body, twice) are built
//! by an admin; each case then calls the API with a role's token.

use std::collections::BTreeSet;

use api::auth::Role;
use engine::access::{Action, Party, permits};
use entities::domain::state::EngagementEvent;
use reqwest::Method;
use serde_json::{Value, json};
use strum::IntoEnumIterator;

use crate::helpers::{Backend, TestApp, day, spawn_app};
use crate::on_both_databases;

/// One tenant: an organization and its certification body, and their engagements in the states
/// the routes need.
pub(crate) struct Tenant {
    organization: String,
    certification_body: String,
    /// In stage 2, with a stage 2 audit, a minor NC and its submitted corrective action.
    engagement: String,
    audit: String,
    finding: String,
    corrective_action: String,
    /// Certified: it has a certificate and a decision.
    certified: String,
}

pub(crate) async fn tenant(app: &TestApp) -> Tenant {
    let organization = app.create_organization(120).await;
    let certification_body = app.create_certification_body(true).await;
    app.set_today(day(0));
    let certified = app.engagement_selecting(&organization, &certification_body).await;
    app.move_to_stage2(&certified).await;
    app.certify_from_stage2(&certified).await;
    app.set_today(day(0));
    let engagement = app.engagement_selecting(&organization, &certification_body).await;
    app.move_to_stage2(&engagement).await;
    let audit = app.create_audit(&engagement, "stage2", day(40), day(43)).await;
    let finding = app.record_finding(&engagement, &audit, "minor_nc", "A.8.13").await;
    app.set_today(day(44));
    let corrective_action = app.submit_corrective_action(&engagement, &finding, None).await.expect(201).str("id");
    Tenant { organization, certification_body, engagement, audit, finding, corrective_action, certified }
}

/// A token of `party` scoped to `tenant`.
fn token(app: &TestApp, party: Party, tenant: &Tenant) -> String {
    let (org, cb) = (Some(tenant.organization.as_str()), Some(tenant.certification_body.as_str()));
    match party {
        Party::Admin => app.token_for(Role::Admin, None, None),
        Party::Coordinator => app.token_for(Role::Coordinator, None, cb),
        Party::Auditor => app.token_for(Role::Auditor, None, cb),
        Party::DecisionMaker => app.token_for(Role::DecisionMaker, None, cb),
        Party::ClientManager => app.token_for(Role::ClientManager, org, None),
        Party::ClientIntegration => app.token_for(Role::Integration, org, None),
        Party::CertificationBodyIntegration => app.token_for(Role::Integration, None, cb),
    }
}

/// How an operation decides who may call it.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// Any valid token.
    Anyone,
    /// A read of something inside the caller's scope (404 outside).
    Read,
    /// A write of something inside the caller's scope (404 outside, 403 when not allowed).
    Write(Action),
    /// A write to a certification body, which everyone sees: its own people (or an admin) only.
    CertificationBody(Action),
    /// A creation with no id in the path (403 when not allowed).
    Create(Action),
    /// Adding a person to the tenant's organization: its client managers and the admins only.
    AddPerson,
    /// A person of the tenant's organization, seen by its own people and the admins (404 to
    /// anyone else); changed by its client managers and the admins (`true`), or only read.
    OrganizationPerson(bool),
    /// A webhook endpoint registered for the tenant's organization: by its client side and the
    /// admins; a body's people may not name it as the owner (403).
    CreateOrganizationWebhook,
    /// A webhook endpoint of the tenant's organization: seen by its client side and the admins
    /// only (404 to anyone else).
    OrganizationWebhook,
}

/// The rule and the success status of every secured operation.
fn rule_of(operation: &str) -> (Rule, u16) {
    use Action as A;
    use Rule::*;
    match operation {
        "get_audit_time_estimate"
        | "list_certification_bodies"
        | "get_certification_body"
        | "list_engagements"
        | "list_organizations"
        | "list_notifications"
        | "get_certification_policy" => (Anyone, 200),
        "create_organization" => (Create(A::CreateOrganization), 201),
        "create_certification_body" => (Create(A::CreateCertificationBody), 201),
        "update_certification_body" => (CertificationBody(A::UpdateCertificationBody), 200),
        "get_reminder_policy" => (CertificationBody(A::ReadReminderPolicy), 200),
        "put_reminder_policy" => (CertificationBody(A::UpdateReminderPolicy), 200),
        "put_certification_policy" => (CertificationBody(A::UpdateCertificationPolicy), 200),
        "update_organization" => (Write(A::UpdateOrganization), 200),
        "create_engagement" => (Write(A::CreateEngagement), 201),
        "create_proposal" => (Write(A::RecordProposal), 201),
        "select_proposal" => (Write(A::SelectProposal), 200),
        "put_document" | "put_statement_of_applicability" => (Write(A::SubmitDocument), 200),
        "create_audit" => (Write(A::PlanAudit), 201),
        "update_audit" => (Write(A::UpdateAudit), 200),
        "create_finding" => (Write(A::RecordFinding), 201),
        "create_corrective_action" => (Write(A::SubmitCorrectiveAction), 201),
        "update_corrective_action" => (Write(A::SubmitCorrectiveAction), 200),
        "verify_corrective_action" => (Write(A::VerifyCorrectiveAction), 200),
        "complete_corrective_action" => (Write(A::SubmitCorrectiveAction), 200),
        "follow_up_finding" => (Write(A::RecordFinding), 200),
        "post_engagement_event" => (Write(A::Fire(EngagementEvent::Cancel)), 200),
        "requeue_notification" => (Write(A::RequeueNotification), 200),
        "revoke_tokens" => (Create(A::RevokeTokens), 201),
        "list_token_revocations" => (Create(A::RevokeTokens), 200),
        "list_people" => (Anyone, 200),
        "add_person" => (AddPerson, 201),
        "get_person" => (OrganizationPerson(false), 200),
        "change_person" => (OrganizationPerson(true), 200),
        "remove_person" => (OrganizationPerson(true), 204),
        "create_webhook_endpoint" => (CreateOrganizationWebhook, 201),
        "list_webhook_endpoints" => (Create(A::ManageWebhooks), 200),
        "get_webhook_endpoint"
        | "update_webhook_endpoint"
        | "rotate_webhook_secret"
        | "list_webhook_messages"
        | "list_webhook_attempts" => (OrganizationWebhook, 200),
        "delete_webhook_endpoint" => (OrganizationWebhook, 204),
        "replay_webhook_message" | "replay_webhook_messages" => (OrganizationWebhook, 202),
        _ => (Read, 200),
    }
}

/// What `party` gets for `operation` on `own` (in scope) or on the other tenant's ids.
fn expected(operation: &str, party: Party, in_scope: bool) -> u16 {
    let (rule, success) = rule_of(operation);
    let sees = in_scope || party == Party::Admin;
    let own_body = party == Party::Admin
        || (in_scope
            && matches!(
                party,
                Party::Coordinator | Party::Auditor | Party::DecisionMaker | Party::CertificationBodyIntegration
            ));
    match rule {
        Rule::Anyone => success,
        Rule::Read => {
            if sees {
                success
            } else {
                404
            }
        }
        Rule::Write(action) if operation == "create_engagement" => {
            // The organization is in the body: not allowed is 403 first, then unseen is 404.
            if !permits(party, action) {
                403
            } else if sees {
                success
            } else {
                404
            }
        }
        Rule::Write(action) => match (sees, permits(party, action)) {
            (false, _) => 404,
            (true, true) => success,
            (true, false) => 403,
        },
        Rule::CertificationBody(action) => {
            if permits(party, action) && own_body {
                success
            } else {
                403
            }
        }
        Rule::Create(action) => {
            if permits(party, action) {
                success
            } else {
                403
            }
        }
        Rule::AddPerson => {
            if matches!(party, Party::Admin | Party::ClientManager) {
                success
            } else {
                403
            }
        }
        Rule::CreateOrganizationWebhook => match party {
            Party::Admin => success,
            // Another organization, named in the body, is unseen.
            Party::ClientManager | Party::ClientIntegration if in_scope => success,
            Party::ClientManager | Party::ClientIntegration => 404,
            _ => 403,
        },
        Rule::OrganizationWebhook => {
            let client_side = matches!(party, Party::ClientManager | Party::ClientIntegration);
            if party == Party::Admin || (in_scope && client_side) { success } else { 404 }
        }
        Rule::OrganizationPerson(changes) => {
            let sees =
                party == Party::Admin || (in_scope && matches!(party, Party::ClientManager | Party::ClientIntegration));
            if !sees {
                404
            } else if !changes || matches!(party, Party::Admin | Party::ClientManager) {
                success
            } else {
                403
            }
        }
    }
}

/// A webhook endpoint of `tenant`'s organization.
fn webhook_endpoint(tenant: &Tenant) -> Value {
    json!({
        "url": "https://hooks.example.com/certflow",
        "description": "GRC tool",
        "organization_id": tenant.organization,
    })
}

/// A client manager of `tenant`'s organization, with an address no one has yet.
fn organization_person(tenant: &Tenant) -> Value {
    json!({
        "email": format!("{}@acme.test", uuid::Uuid::now_v7()),
        "name": "Isla Manager",
        "role": "client_manager",
        "organization_id": tenant.organization
    })
}

fn cap_body() -> Value {
    json!({
        "root_cause": "no owner for restore tests",
        "correction": "restore tested",
        "corrective_action": "quarterly restore test scheduled",
        "owner_email": "sre@acme.test",
        "evidence": ["dms://evidence/restore-test.pdf"]
    })
}

/// The request of `operation` on `tenant`'s resources; resources a success would use up (a
/// proposal selected, an engagement cancelled, a corrective action verified) are made afresh.
pub(crate) async fn request_for(app: &TestApp, operation: &str, tenant: &Tenant) -> (Method, String, Option<Value>) {
    let e = &tenant.engagement;
    let organization = json!({
        "legal_name": "Acme Data Ltd",
        "isms_scope": "SaaS platform operations, London",
        "persons": 120,
        "sites": ["London"],
        "isms_manager_email": "isms@acme.test",
        "executive_email": "ceo@acme.test"
    });
    let certification_body = json!({
        "name": "Trusted Certification Ltd",
        "accredited": true,
        "accreditation_body": "UKAS",
        "coordinator_email": "coordinator@cb.test"
    });
    let audit = json!({
        "kind": "stage2", "first_day": day(40), "last_day": day(43),
        "lead_auditor": "lead@cb.test", "audit_team": ["auditor@cb.test"]
    });
    let fresh_selection = || app.engagement_with_proposal(&tenant.organization, &tenant.certification_body);
    let fresh_finding = || app.record_finding(e, &tenant.audit, "minor_nc", "A.5.1");
    let path = |rest: &str| format!("/api/v1{rest}");
    match operation {
        "get_audit_time_estimate" => (Method::GET, path("/audit-time-estimate?persons=120"), None),
        "list_certification_bodies" => (Method::GET, path("/certification-bodies"), None),
        "create_certification_body" => (Method::POST, path("/certification-bodies"), Some(certification_body)),
        "get_certification_body" => {
            (Method::GET, path(&format!("/certification-bodies/{}", tenant.certification_body)), None)
        }
        "update_certification_body" => (
            Method::PUT,
            path(&format!("/certification-bodies/{}", tenant.certification_body)),
            Some(certification_body),
        ),
        "get_reminder_policy" | "put_reminder_policy" | "get_certification_policy" | "put_certification_policy" => {
            let policy = operation.trim_start_matches("get_").trim_start_matches("put_").replace('_', "-");
            let at = path(&format!("/certification-bodies/{}/{policy}", tenant.certification_body));
            if operation.starts_with("get_") {
                (Method::GET, at, None)
            } else {
                let policy = app.get(&at).await.expect(200).body["policy"].clone();
                (Method::PUT, at, Some(policy))
            }
        }
        "list_organizations" => (Method::GET, path("/organizations"), None),
        "create_organization" => (Method::POST, path("/organizations"), Some(organization)),
        "get_organization" => (Method::GET, path(&format!("/organizations/{}", tenant.organization)), None),
        "update_organization" => {
            (Method::PUT, path(&format!("/organizations/{}", tenant.organization)), Some(organization))
        }
        "list_engagements" => (Method::GET, path("/engagements"), None),
        "create_engagement" => (
            Method::POST,
            path("/engagements"),
            Some(json!({ "organization_id": tenant.organization, "manager_email": "isms@acme.test" })),
        ),
        "get_engagement" => (Method::GET, path(&format!("/engagements/{e}")), None),
        "list_audits" => (Method::GET, path(&format!("/engagements/{e}/audits")), None),
        "create_audit" => (Method::POST, path(&format!("/engagements/{e}/audits")), Some(audit)),
        "get_audit" => (Method::GET, path(&format!("/engagements/{e}/audits/{}", tenant.audit)), None),
        "update_audit" => (Method::PUT, path(&format!("/engagements/{e}/audits/{}", tenant.audit)), Some(audit)),
        "create_finding" => (
            Method::POST,
            path(&format!("/engagements/{e}/audits/{}/findings", tenant.audit)),
            Some(json!({ "grade": "ofi", "reference": "A.5.2", "description": "could be clearer" })),
        ),
        "get_engagement_certificate" => {
            (Method::GET, path(&format!("/engagements/{}/certificate", tenant.certified)), None)
        }
        "list_corrective_actions" => (Method::GET, path(&format!("/engagements/{e}/corrective-actions")), None),
        "update_corrective_action" => (
            Method::PUT,
            path(&format!("/engagements/{e}/corrective-actions/{}", tenant.corrective_action)),
            Some(cap_body()),
        ),
        "verify_corrective_action" => {
            let finding = fresh_finding().await;
            let action = app.submit_corrective_action(e, &finding, None).await.expect(201).str("id");
            (
                Method::POST,
                path(&format!("/engagements/{e}/corrective-actions/{action}/verification")),
                Some(json!({ "outcome": "accepted", "note": "reviewed the evidence" })),
            )
        }
        "follow_up_finding" => {
            // An accepted minor, followed up at a later stage 2 audit.
            let finding = fresh_finding().await;
            let action = app.submit_corrective_action(e, &finding, None).await.expect(201).str("id");
            app.verify_corrective_action(e, &action, "accepted").await.expect(200);
            let later = app.create_audit(e, "stage2", day(50), day(51)).await;
            (
                Method::POST,
                path(&format!("/engagements/{e}/findings/{finding}/follow-up")),
                Some(json!({ "audit_id": later, "outcome": "effective" })),
            )
        }
        "list_audit_follow_ups" => {
            (Method::GET, path(&format!("/engagements/{e}/audits/{}/follow-ups", tenant.audit)), None)
        }
        "complete_corrective_action" => {
            let finding = fresh_finding().await;
            let action = app.submit_corrective_action(e, &finding, None).await.expect(201).str("id");
            (
                Method::POST,
                path(&format!("/engagements/{e}/corrective-actions/{action}/completion")),
                Some(json!({ "evidence": ["dms://evidence/done.pdf"] })),
            )
        }
        "create_corrective_action" => {
            let finding = fresh_finding().await;
            (Method::POST, path(&format!("/engagements/{e}/findings/{finding}/corrective-action")), Some(cap_body()))
        }
        "list_engagement_deadlines" => (Method::GET, path(&format!("/engagements/{e}/deadlines")), None),
        "list_certification_decisions" => {
            (Method::GET, path(&format!("/engagements/{}/decisions", tenant.certified)), None)
        }
        "list_documents" => (Method::GET, path(&format!("/engagements/{e}/documents")), None),
        "put_document" => (
            Method::PUT,
            path(&format!("/engagements/{e}/documents/internal_audit")),
            Some(json!({ "reference": "dms://internal_audit-v2" })),
        ),
        "post_engagement_event" => {
            let (engagement, _) = fresh_selection().await;
            (
                Method::POST,
                path(&format!("/engagements/{engagement}/events")),
                Some(json!({ "event": "cancel", "reason": "the client chose to wait a year" })),
            )
        }
        "list_findings" => (Method::GET, path(&format!("/engagements/{e}/findings")), None),
        "get_finding" => (Method::GET, path(&format!("/engagements/{e}/findings/{}", tenant.finding)), None),
        "get_engagement_history" => (Method::GET, path(&format!("/engagements/{e}/history")), None),
        "list_proposals" => (Method::GET, path(&format!("/engagements/{e}/proposals")), None),
        "create_proposal" => {
            let (engagement, _) = fresh_selection().await;
            (
                Method::POST,
                path(&format!("/engagements/{engagement}/proposals")),
                Some(
                    json!({ "certification_body_id": tenant.certification_body, "price_minor": 1_200_000, "currency": "GBP", "audit_days": 11.0 }),
                ),
            )
        }
        "select_proposal" => {
            let (engagement, proposal) = fresh_selection().await;
            (Method::POST, path(&format!("/engagements/{engagement}/proposals/{proposal}/selection")), Some(json!({})))
        }
        "get_stage1_readiness" => (Method::GET, path(&format!("/engagements/{e}/stage1-readiness")), None),
        "get_statement_of_applicability" => {
            (Method::GET, path(&format!("/engagements/{e}/statement-of-applicability")), None)
        }
        "put_statement_of_applicability" => {
            let soa = app.get(&path(&format!("/engagements/{e}/statement-of-applicability"))).await.expect(200);
            let entries = soa.body["entries"].clone();
            (
                Method::PUT,
                path(&format!("/engagements/{e}/statement-of-applicability")),
                Some(json!({ "entries": entries })),
            )
        }
        "list_notifications" => (Method::GET, path("/notifications"), None),
        "requeue_notification" => {
            let notification = app.insert_failed_notification(e).await;
            (Method::POST, path(&format!("/notifications/{notification}/requeue")), Some(json!({})))
        }
        "revoke_tokens" => {
            (Method::POST, path("/token-revocations"), Some(json!({ "token_id": uuid::Uuid::now_v7().to_string() })))
        }
        "list_token_revocations" => (Method::GET, path("/token-revocations"), None),
        "list_people" => (Method::GET, path("/people"), None),
        "add_person" => (Method::POST, path("/people"), Some(organization_person(tenant))),
        "get_person" | "change_person" | "remove_person" => {
            let person = organization_person(tenant);
            let id = app.post(&path("/people"), &person).await.expect(201).str("id");
            match operation {
                "get_person" => (Method::GET, path(&format!("/people/{id}")), None),
                "change_person" => (Method::PUT, path(&format!("/people/{id}")), Some(person)),
                _ => (Method::DELETE, path(&format!("/people/{id}")), None),
            }
        }
        "create_webhook_endpoint" => (Method::POST, path("/webhook-endpoints"), Some(webhook_endpoint(tenant))),
        "list_webhook_endpoints" => (Method::GET, path("/webhook-endpoints"), None),
        "get_webhook_endpoint"
        | "update_webhook_endpoint"
        | "delete_webhook_endpoint"
        | "rotate_webhook_secret"
        | "list_webhook_messages"
        | "list_webhook_attempts"
        | "replay_webhook_message"
        | "replay_webhook_messages" => {
            let id = app.post(&path("/webhook-endpoints"), &webhook_endpoint(tenant)).await.expect(201).str("id");
            let endpoint = path(&format!("/webhook-endpoints/{id}"));
            match operation {
                "get_webhook_endpoint" => (Method::GET, endpoint, None),
                "update_webhook_endpoint" => {
                    (Method::PUT, endpoint, Some(json!({ "url": "https://hooks.example.com/moved" })))
                }
                "delete_webhook_endpoint" => (Method::DELETE, endpoint, None),
                "rotate_webhook_secret" => (Method::POST, format!("{endpoint}/secret-rotation"), Some(json!({}))),
                "list_webhook_messages" => (Method::GET, format!("{endpoint}/messages"), None),
                "list_webhook_attempts" => (Method::GET, format!("{endpoint}/attempts"), None),
                "replay_webhook_message" => {
                    let message = crate::webhooks::insert_failed_message(app, &id, &tenant.engagement).await;
                    (Method::POST, format!("{endpoint}/messages/{message}/replay"), Some(json!({})))
                }
                _ => (Method::POST, format!("{endpoint}/replay"), Some(json!({ "since": "2020-01-01T00:00:00Z" }))),
            }
        }
        other => panic!("no request for {other}: add it to the access matrix"),
    }
}

/// The secured operations of the checked-in spec (the public ones need no token).
pub(crate) fn secured_operations() -> Vec<String> {
    let spec: Value = serde_json::from_str(include_str!("../../openapi/openapi.json")).expect("the spec");
    let mut operations = Vec::new();
    for (_, item) in spec["paths"].as_object().expect("paths") {
        for (_, operation) in item.as_object().expect("operations") {
            if operation.get("security").is_some() {
                operations.push(operation["operationId"].as_str().expect("an operation id").to_owned());
            }
        }
    }
    operations.sort();
    operations
}

async fn every_operation_answers_every_role_as_the_matrix_says_inside_and_outside_its_scope(backend: Backend) {
    // Arrange: two tenants, built by the admin.
    let app = spawn_app(backend).await;
    let own = tenant(&app).await;
    let other = tenant(&app).await;
    let operations = secured_operations();
    assert!(operations.len() >= 38, "the spec lists {} secured operations", operations.len());

    let mut mismatches = Vec::new();
    let mut cases = 0;
    for operation in &operations {
        let (rule, _) = rule_of(operation);
        // Act: with no token, then as each party on its own tenant and on the other one.
        let (method, path, body) = request_for(&app, operation, &own).await;
        let anonymous = app.client.request(method.clone(), format!("{}{path}", app.address));
        let anonymous = app.reply(if let Some(body) = &body { anonymous.json(body) } else { anonymous }).await;
        if anonymous.status != 401 || anonymous.problem_type() != "unauthorized" {
            mismatches.push(format!("{operation} with no token: {} {}", anonymous.status, anonymous.body));
        }
        for party in Party::iter() {
            for in_scope in [true, false] {
                if !in_scope && matches!(rule, Rule::Anyone | Rule::Create(_) | Rule::AddPerson) {
                    continue;
                }
                let (method, path, body) = request_for(&app, operation, if in_scope { &own } else { &other }).await;
                let reply = app.send_as(&token(&app, party, &own), method.clone(), &path, body.as_ref()).await;
                cases += 1;
                let want = expected(operation, party, in_scope);
                let problem_ok = reply.status < 400 || reply.content_type().starts_with("application/problem+json");
                if reply.status != want || !problem_ok {
                    mismatches.push(format!(
                        "{operation} as {party} {}: {} (expected {want}) {method} {path} {}",
                        if in_scope { "in scope" } else { "out of scope" },
                        reply.status,
                        reply.body
                    ));
                }
            }
        }
    }

    // Assert
    assert!(mismatches.is_empty(), "{} of {cases} cases differ:\n{}", mismatches.len(), mismatches.join("\n"));
    assert!(cases > 400, "only {cases} cases ran");
}
on_both_databases!(every_operation_answers_every_role_as_the_matrix_says_inside_and_outside_its_scope);

/// What a party of a body that has only bid gets for `operation` on the engagement it bid for:
/// the engagement, its organization and its own proposal are read; every other record of the
/// engagement is a 404 (as if unseen); every write is refused; the rest as for its own tenant.
fn expected_of_bidder(operation: &str, party: Party) -> Vec<u16> {
    match rule_of(operation).0 {
        Rule::Read if matches!(operation, "get_engagement" | "list_proposals" | "get_organization") => vec![200],
        Rule::Read => vec![404],
        // 403 where it sees the target (the engagement: only the selected body writes), 404 where
        // the target is a record it does not read (an email, another engagement made afresh).
        Rule::Write(_) => vec![403, 404],
        _ => vec![expected(operation, party, true)],
    }
}

/// The request of `operation` for a bidder: as [`request_for`], except that the writes to a
/// finding or a corrective action name those of another engagement (none can exist on one that
/// has no selected body yet): the bidder is refused before they are looked up.
async fn bidder_request_for(app: &TestApp, operation: &str, bidder: &Tenant) -> (Method, String, Option<Value>) {
    let (e, finding, action) = (&bidder.engagement, &bidder.finding, &bidder.corrective_action);
    let path = |p: &str| format!("/api/v1{p}");
    match operation {
        "verify_corrective_action" => (
            Method::POST,
            path(&format!("/engagements/{e}/corrective-actions/{action}/verification")),
            Some(json!({ "outcome": "accepted", "note": "reviewed the evidence" })),
        ),
        "follow_up_finding" => (
            Method::POST,
            path(&format!("/engagements/{e}/findings/{finding}/follow-up")),
            Some(json!({ "audit_id": bidder.audit, "outcome": "effective" })),
        ),
        "complete_corrective_action" => (
            Method::POST,
            path(&format!("/engagements/{e}/corrective-actions/{action}/completion")),
            Some(json!({ "evidence": ["dms://evidence/done.pdf"] })),
        ),
        "create_corrective_action" => {
            (Method::POST, path(&format!("/engagements/{e}/findings/{finding}/corrective-action")), Some(cap_body()))
        }
        other => request_for(app, other, bidder).await,
    }
}

async fn a_body_that_has_only_bid_reads_the_engagement_and_its_proposal_and_writes_nothing(backend: Backend) {
    // Arrange: an engagement of the tenant's organization with proposals from its body and from
    // a bidder, none selected; the bidder's tenant is that engagement with the bidder's body.
    let app = spawn_app(backend).await;
    let own = tenant(&app).await;
    let bidder_body = app.create_certification_body(true).await;
    let (bidding, _) = app.engagement_with_proposal(&own.organization, &own.certification_body).await;
    app.propose(&bidding, &bidder_body).await;
    let bidder = Tenant {
        organization: own.organization.clone(),
        certification_body: bidder_body,
        engagement: bidding.clone(),
        audit: own.audit.clone(),
        finding: own.finding.clone(),
        corrective_action: own.corrective_action.clone(),
        certified: bidding.clone(),
    };
    let history_before = app.history_actions(&bidding).await;
    let body_parties = [Party::Coordinator, Party::Auditor, Party::DecisionMaker, Party::CertificationBodyIntegration];

    // Act: every operation, as each of the bidder's people, on the engagement it bid for.
    let mut mismatches = Vec::new();
    let mut cases = 0;
    for operation in &secured_operations() {
        for party in body_parties {
            let (method, path, body) = bidder_request_for(&app, operation, &bidder).await;
            let reply = app.send_as(&token(&app, party, &bidder), method.clone(), &path, body.as_ref()).await;
            cases += 1;
            let want = expected_of_bidder(operation, party);
            let problem_ok = reply.status < 400 || reply.content_type().starts_with("application/problem+json");
            if !want.contains(&reply.status) || !problem_ok {
                mismatches.push(format!(
                    "{operation} as the bidder's {party}: {} (expected {want:?}) {method} {path} {}",
                    reply.status, reply.body
                ));
            }
        }
    }

    // Assert: as the matrix says, and nothing was written to the engagement.
    assert!(mismatches.is_empty(), "{} of {cases} cases differ:\n{}", mismatches.len(), mismatches.join("\n"));
    let view = app.engagement(&bidding).await.expect(200);
    assert_eq!(view.body["state"], "cb_selection");
    assert_eq!(view.body["certification_body_id"], Value::Null);
    assert_eq!(app.history_actions(&bidding).await, history_before, "no write reached the engagement");
    let audits = app.get(&format!("/api/v1/engagements/{bidding}/audits")).await.expect(200);
    assert_eq!(audits.body["items"], json!([]));
}
on_both_databases!(a_body_that_has_only_bid_reads_the_engagement_and_its_proposal_and_writes_nothing);

async fn lists_show_each_caller_only_its_own_tenants_records(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let own = tenant(&app).await;
    let other = tenant(&app).await;
    app.insert_failed_notification(&own.engagement).await;
    app.insert_failed_notification(&other.engagement).await;
    let ids = |reply: &crate::helpers::Reply, field: &str| -> BTreeSet<String> {
        reply.body["items"].as_array().unwrap().iter().map(|item| item[field].as_str().unwrap().to_owned()).collect()
    };

    for party in Party::iter().filter(|p| *p != Party::Admin) {
        let token = token(&app, party, &own);
        // Act
        let engagements = app.send_as(&token, Method::GET, "/api/v1/engagements?limit=200", None).await.expect(200);
        let organizations = app.send_as(&token, Method::GET, "/api/v1/organizations?limit=200", None).await.expect(200);
        let notifications = app.send_as(&token, Method::GET, "/api/v1/notifications?limit=200", None).await.expect(200);

        // Assert
        let seen = ids(&engagements, "id");
        assert!(seen.contains(&own.engagement) && seen.contains(&own.certified), "{party} sees its engagements");
        assert!(!seen.contains(&other.engagement) && !seen.contains(&other.certified), "{party} sees another's");
        assert_eq!(ids(&organizations, "id"), BTreeSet::from([own.organization.clone()]), "{party}'s organizations");
        assert_eq!(ids(&notifications, "engagement_id"), BTreeSet::from([own.engagement.clone()]), "{party}'s emails");
    }
    let admin = app.get("/api/v1/engagements?limit=200").await.expect(200);
    assert!(ids(&admin, "id").contains(&other.engagement), "the admin sees every tenant");
}
on_both_databases!(lists_show_each_caller_only_its_own_tenants_records);

async fn every_event_is_refused_with_403_to_the_roles_that_may_not_fire_it(backend: Backend) {
    // Arrange: each event is fired where it is illegal (on the stage 2 engagement the events of a
    // certified one, and the other way round): a permitted role gets 409 or 422 from the
    // lifecycle, a forbidden one 403 before the lifecycle is asked.
    let app = spawn_app(backend).await;
    let own = tenant(&app).await;
    let audits = app.get(&format!("/api/v1/engagements/{}/audits", own.certified)).await.expect(200).items();
    let certified_audit = audits.body[0]["id"].as_str().expect("the certified engagement's audit").to_owned();
    let legal_when_certified =
        |event: EngagementEvent| entities::domain::state::EngagementState::Certified.targets(event).is_some();
    let mut mismatches = Vec::new();
    for event in EngagementEvent::all() {
        let (engagement, audit) = if legal_when_certified(event) {
            (&own.engagement, &own.audit)
        } else {
            (&own.certified, &certified_audit)
        };
        let body = match event {
            EngagementEvent::SignEngagementLetter => json!({ "event": event, "signed_on": day(0) }),
            EngagementEvent::CompletePreAudit
            | EngagementEvent::CompleteStage2
            | EngagementEvent::CompleteSurveillance
            | EngagementEvent::CompleteRecertification => json!({ "event": event, "audit_id": audit }),
            EngagementEvent::RecordStage1Outcome => json!({ "event": event, "audit_id": audit, "outcome": "ready" }),
            EngagementEvent::GrantCertification => json!({ "event": event }),
            EngagementEvent::RefuseCertification => json!({ "event": event, "reason": "not yet" }),
            EngagementEvent::Suspend => json!({ "event": event, "cause": "client_request", "reason": "asked" }),
            EngagementEvent::ReduceScope | EngagementEvent::ChangeScope => {
                json!({ "event": event, "scope": "London only", "reason": "site closed" })
            }
            _ => json!({ "event": event, "reason": "as recorded" }),
        };
        let path = format!("/api/v1/engagements/{engagement}/events");
        for party in Party::iter() {
            // Act
            let reply = app.send_as(&token(&app, party, &own), Method::POST, &path, Some(&body)).await;
            // Assert
            let allowed = permits(party, Action::Fire(event));
            let fine = if allowed { [409, 422].contains(&reply.status) } else { reply.status == 403 };
            if !fine {
                mismatches.push(format!("{event} as {party}: {} {}", reply.status, reply.body));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert_eq!(app.engagement(&own.engagement).await.str("state"), "stage2", "no event moved the engagement");
    assert_eq!(app.engagement(&own.certified).await.str("state"), "certified", "no event moved the engagement");
}
on_both_databases!(every_event_is_refused_with_403_to_the_roles_that_may_not_fire_it);

async fn a_certification_body_sees_only_its_own_bid_and_cannot_declare_its_own_accreditation(backend: Backend) {
    // Arrange: two bodies bid for one engagement; neither is selected yet.
    let app = spawn_app(backend).await;
    let organization = app.create_organization(120).await;
    let ours = app.create_certification_body(true).await;
    let theirs = app.create_certification_body(true).await;
    let (engagement, our_bid) = app.engagement_with_proposal(&organization, &ours).await;
    let their_bid = app.propose(&engagement, &theirs).await;
    let coordinator = app.token_for(Role::Coordinator, None, Some(&ours));
    let bids = |reply: &crate::helpers::Reply| -> BTreeSet<String> {
        reply.body["proposals"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect()
    };
    let proposals = format!("/api/v1/engagements/{engagement}/proposals");

    // Act / Assert: the body sees its own bid, the client both.
    let seen_by_body = app.send_as(&coordinator, Method::GET, &proposals, None).await.expect(200);
    assert_eq!(bids(&seen_by_body), BTreeSet::from([our_bid.clone()]));
    let seen_by_client = app.get(&proposals).await.expect(200);
    assert_eq!(bids(&seen_by_client), BTreeSet::from([our_bid, their_bid]));

    // Its coordinator may rename the body but not record its accreditation; the admin may.
    let body = app.get(&format!("/api/v1/certification-bodies/{ours}")).await.expect(200).body;
    let path = format!("/api/v1/certification-bodies/{ours}");
    let details = |name: &str, expires_on: Option<&str>| {
        json!({
            "name": name, "accredited": true, "accreditation_body": "UKAS",
            "accreditation_expires_on": expires_on, "coordinator_email": body["coordinator_email"]
        })
    };
    let renamed = app.send_as(&coordinator, Method::PUT, &path, Some(&details("Renamed CB", None))).await.expect(200);
    assert_eq!(renamed.str("name"), "Renamed CB");
    let extended = details("Renamed CB", Some("2099-01-01"));
    let refused = app.send_as(&coordinator, Method::PUT, &path, Some(&extended)).await.expect(403);
    assert_eq!(refused.problem_type(), "forbidden");
    assert!(app.get(&path).await.expect(200).body["accreditation_expires_on"].is_null(), "nothing was written");
    let recorded = app.put(&path, &extended).await.expect(200);
    assert_eq!(recorded.str("accreditation_expires_on"), "2099-01-01");
}
on_both_databases!(a_certification_body_sees_only_its_own_bid_and_cannot_declare_its_own_accreditation);

async fn an_ended_engagement_takes_no_new_finding_or_corrective_action(backend: Backend) {
    // Arrange: a stage 2 audit with a minor NC, then the client cancels.
    let app = spawn_app(backend).await;
    let (engagement, audit, finding) = app.stage2_with_finding("minor_nc", "A.5.15").await;
    app.set_today(day(44));
    app.fire(&engagement, json!({ "event": "cancel", "reason": "the client stops" })).await.expect(200);

    // Act / Assert: nothing new is recorded, and no deadline opens.
    let finding_body = json!({ "grade": "minor_nc", "reference": "A.5.16", "description": "late" });
    let findings = format!("/api/v1/engagements/{engagement}/audits/{audit}/findings");
    let refused = app.post(&findings, &finding_body).await.expect(409);
    assert_eq!(refused.problem_type(), "engagement-state-conflict");
    let plan = app.submit_corrective_action(&engagement, &finding, None).await.expect(409);
    assert_eq!(plan.problem_type(), "engagement-state-conflict");
    assert_eq!(app.engagement(&engagement).await.body["open_deadlines"], json!([]));
}
on_both_databases!(an_ended_engagement_takes_no_new_finding_or_corrective_action);

async fn the_overdue_and_due_before_filters_see_only_the_caller_s_engagements(backend: Backend) {
    // Arrange: two organizations, each with a certified engagement whose surveillance is due on
    // the same day; the clock a day past it.
    let app = spawn_app(backend).await;
    let (own, other) = (tenant(&app).await, tenant(&app).await);
    let view = app.engagement(&own.certified).await.expect(200);
    let due = view.body["open_deadlines"].as_array().unwrap().iter().find(|d| d["kind"] == "surveillance_due").unwrap()
        ["due_on"]
        .as_str()
        .unwrap()
        .parse::<chrono::NaiveDate>()
        .unwrap();
    app.set_today(due.succ_opt().unwrap());
    let client = app.token_for(api::auth::Role::ClientManager, Some(&own.organization), None);
    let ids = |token: String, query: String| {
        let app = &app;
        async move {
            let page = app.send_as(&token, Method::GET, &format!("/api/v1/engagements?{query}&limit=100"), None).await;
            let mut ids: Vec<String> = page.expect(200).body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_str().unwrap().to_owned())
                .collect();
            ids.sort();
            ids
        }
    };
    let before = format!("due_before={}", due.succ_opt().unwrap());

    // Act / Assert: the client sees its own overdue engagements only (both are: the stage 2 one's
    // corrective action is long due); the admin sees the other tenant's too.
    let mut own_both = vec![own.certified.clone(), own.engagement.clone()];
    own_both.sort();
    assert_eq!(ids(client.clone(), "overdue=true".into()).await, own_both);
    assert_eq!(ids(client.clone(), before.clone()).await, own_both);
    let everyone = ids(app.token.clone(), "overdue=true".into()).await;
    assert!(everyone.contains(&other.certified) && everyone.contains(&own.certified), "{everyone:?}");
    assert!(!ids(client, "overdue=false".into()).await.contains(&own.certified));
}
on_both_databases!(the_overdue_and_due_before_filters_see_only_the_caller_s_engagements);
