//! `POST /engagements/{id}/events`: fire a lifecycle event.

use actix_web::{HttpRequest, HttpResponse, post, web};
use chrono::NaiveDate;
use entities::domain::lifecycle::EngagementCommand;
use entities::domain::text::EmailAddress;
use entities::domain::{Stage1Outcome, SuspensionCause};
use serde::{Deserialize, Deserializer};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};
use uuid::Uuid;

use engine::Write;
use engine::idempotency::Claim;
use engine::lifecycle::{TransitionRequest, Transitioned};

use super::view::EngagementView;
use crate::auth::AuthUser;
use crate::error::{ApiError, Problem, Refused};
use crate::fields::Fields;
use crate::idempotency::{IdempotencyClaim, commit};
use crate::preconditions::expected_version;
use crate::state::AppState;

/// The event and its own fields, tagged by `event`.
#[derive(Debug, Deserialize, ToSchema, strum::IntoStaticStr)]
#[serde(tag = "event", rename_all = "snake_case", deny_unknown_fields)]
#[strum(serialize_all = "snake_case")]
pub enum EventDetails {
    /// Sign the engagement letter with the selected certification body.
    SignEngagementLetter {
        /// The day it was signed.
        signed_on: NaiveDate,
        /// Hold a pre-audit before stage 1.
        #[serde(default)]
        include_pre_audit: bool,
        /// The scope to certify, as the letter states it (default: the organization's ISMS scope
        /// as it stands at signing). The certificate states this scope, whatever the organization
        /// record says later.
        scope: Option<String>,
    },
    /// The pre-audit is done.
    CompletePreAudit {
        /// The pre-audit.
        audit_id: Uuid,
    },
    /// Record the stage 1 outcome.
    RecordStage1Outcome {
        /// The stage 1 audit.
        audit_id: Uuid,
        /// Ready for stage 2, or not.
        outcome: Stage1Outcome,
        /// Gaps found (when not ready).
        #[serde(default)]
        gaps: Vec<String>,
    },
    /// Repeat stage 1 before stage 2.
    RepeatStage1 {},
    /// The stage 2 audit is done.
    CompleteStage2 {
        /// The stage 2 audit.
        audit_id: Uuid,
        /// Why a stage 1 result older than the policy allows is still valid.
        stage1_still_valid: Option<String>,
    },
    /// Ask for the certification decision.
    RequestDecision {},
    /// Six months passed with a major NC unverified: another stage 2.
    RequireNewStage2 {},
    /// Grant certification and issue the certificate.
    GrantCertification {
        /// The decision panel member: the caller, whose token's subject is the email address
        /// recorded and checked against the auditors (it must not have audited this engagement).
        /// When given, it must be the caller.
        decision_maker: Option<String>,
    },
    /// Refuse certification.
    RefuseCertification {
        /// The decision panel member: the caller (as for `grant_certification`).
        decision_maker: Option<String>,
        /// Close the engagement instead of returning to stage 2.
        #[serde(default)]
        close_engagement: bool,
    },
    /// A surveillance audit starts.
    StartSurveillance {},
    /// The surveillance audit is done.
    CompleteSurveillance {
        /// The surveillance audit.
        audit_id: Uuid,
    },
    /// The recertification audit starts.
    StartRecertification {},
    /// The recertification audit is done.
    CompleteRecertification {
        /// The recertification audit.
        audit_id: Uuid,
    },
    /// Suspend the certificate.
    Suspend {
        /// Why.
        cause: SuspensionCause,
    },
    /// Restore the suspended certificate once its cause is resolved (a suspension for a missed
    /// audit names the surveillance audit held since).
    Restore {
        /// The surveillance audit held since a suspension for a missed audit.
        audit_id: Option<Uuid>,
    },
    /// Withdraw the certificate.
    Withdraw {},
    /// Amend what the certificate states to the organization's and the body's current records
    /// (e.g. after a rename); the history keeps what it stated before.
    AmendCertificate {},
    /// Change the scope to certify, before the certification decision (the history keeps the
    /// scope it replaces).
    ChangeScope {
        /// The scope to certify from now on.
        scope: String,
    },
    /// Narrow the certified scope (the certificate keeps its number; a suspended one is active
    /// again on the narrower scope).
    ReduceScope {
        /// The scope the certificate states from now on.
        scope: String,
    },
    /// The certificate's expiry passed.
    Expire {},
    /// Restore certification within six months of expiry.
    RestoreAfterExpiry {
        /// The recertification audit, if it was completed after the expiry.
        audit_id: Option<Uuid>,
    },
    /// Past the six months after expiry, start again at stage 2 (the history is kept).
    RestartAtStage2 {},
    /// The client ends the engagement.
    Cancel {},
}

/// A lifecycle event: `event` and its fields, plus `reason` and `evidence` for the history.
#[derive(Debug)]
pub struct EventRequest {
    /// The event.
    pub details: EventDetails,
    /// Why (required by events that end, refuse, suspend, restore or repeat).
    pub reason: Option<String>,
    /// References to the evidence relied on.
    pub evidence: Vec<String>,
    /// The engagement version last read (instead of `If-Match`).
    pub version: Option<i32>,
}

impl<'de> Deserialize<'de> for EventRequest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut object = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let reason = object.remove("reason").map(serde_json::from_value::<Option<String>>).transpose();
        let evidence = object.remove("evidence").map(serde_json::from_value::<Vec<String>>).transpose();
        let version = object.remove("version").map(serde_json::from_value::<Option<i32>>).transpose();
        let version = version.map_err(|e| D::Error::custom(format!("version: {e}")))?.flatten();
        let reason = reason.map_err(|e| D::Error::custom(format!("reason: {e}")))?.flatten();
        let evidence = evidence.map_err(|e| D::Error::custom(format!("evidence: {e}")))?.unwrap_or_default();
        let details = EventDetails::deserialize(serde_json::Value::Object(object)).map_err(D::Error::custom)?;
        Ok(Self { details, reason, evidence, version })
    }
}

impl PartialSchema for EventRequest {
    /// One object per event (`event` names it), each with the fields every event shares: a flat
    /// `oneOf` that client generators turn into one type per event.
    fn schema() -> RefOr<Schema> {
        let shared: [(&str, RefOr<Schema>); 3] = [
            (
                "reason",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .max_length(Some(4000))
                    .description(Some("Why (required by events that end, refuse, suspend, restore or repeat)"))
                    .into(),
            ),
            (
                "evidence",
                ArrayBuilder::new()
                    .items(ObjectBuilder::new().schema_type(Type::String))
                    .max_items(Some(100))
                    .description(Some("References to the evidence relied on"))
                    .into(),
            ),
            (
                "version",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .description(Some(
                        "The engagement version last read: the event is refused (412) if it changed (or use If-Match)",
                    ))
                    .into(),
            ),
        ];
        let mut events = OneOfBuilder::new();
        if let RefOr::T(Schema::OneOf(variants)) = EventDetails::schema() {
            for variant in variants.items {
                match variant {
                    RefOr::T(Schema::Object(mut object)) => {
                        // A title per event (`SignEngagementLetterEvent`) names the generated types.
                        let event = object.properties.get("event").and_then(|event| match event {
                            RefOr::T(Schema::Object(tag)) => {
                                tag.enum_values.as_ref()?.first()?.as_str().map(str::to_owned)
                            }
                            _ => None,
                        });
                        if let Some(event) = event {
                            let words: String =
                                event.split('_').map(|word| word[..1].to_uppercase() + &word[1..]).collect();
                            object.title = Some(format!("{words}Event"));
                        }
                        for (name, schema) in &shared {
                            object.properties.insert((*name).to_owned(), schema.clone());
                        }
                        events = events.item(object);
                    }
                    other => events = events.item(other),
                }
            }
        }
        events
            .examples([serde_json::json!({ "event": "sign_engagement_letter", "signed_on": "2026-11-02", "reason": "letter countersigned", "evidence": ["dms://contracts/acme-2026.pdf"] })])
            .into()
    }
}

impl ToSchema for EventRequest {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        <EventDetails as ToSchema>::schemas(schemas);
    }
}

impl EventRequest {
    /// The transition this request asks for, on `caller`'s behalf.
    pub fn parse(self, caller: &AuthUser) -> Result<TransitionRequest, ApiError> {
        let request = self;
        use EngagementCommand as C;
        use EventDetails as D;
        let mut f = Fields::default();
        let reason = f.optional_text::<4000>("reason", request.reason.as_deref());
        let evidence = f.references("evidence", &request.evidence, 100);
        let mut gaps = Vec::new();
        let mut audit_id = None;
        let mut scope = None;
        let command = match request.details {
            D::SignEngagementLetter { signed_on, include_pre_audit, scope: stated } => {
                scope = f.optional_text::<4000>("scope", stated.as_deref()).flatten().map(|s| s.into_inner());
                f.date("signed_on", signed_on).map(|signed_on| C::SignEngagementLetter { signed_on, include_pre_audit })
            }
            D::CompletePreAudit { audit_id: id } => {
                audit_id = Some(id);
                Some(C::CompletePreAudit)
            }
            D::RecordStage1Outcome { audit_id: id, outcome, gaps: listed } => {
                audit_id = Some(id);
                gaps = f.references("gaps", &listed, 200).unwrap_or_default();
                Some(C::RecordStage1Outcome { outcome })
            }
            D::RepeatStage1 {} => Some(C::RepeatStage1),
            D::CompleteStage2 { audit_id: id, stage1_still_valid } => {
                audit_id = Some(id);
                f.optional_text::<4000>("stage1_still_valid", stage1_still_valid.as_deref())
                    .map(|stage1_still_valid| C::CompleteStage2 { stage1_still_valid })
            }
            D::RequestDecision {} => Some(C::RequestDecision),
            D::RequireNewStage2 {} => Some(C::RequireNewStage2),
            D::GrantCertification { decision_maker: named } => decision_maker(&mut f, named.as_deref(), caller)
                .map(|decision_maker| C::GrantCertification { decision_maker }),
            D::RefuseCertification { decision_maker: named, close_engagement } => {
                decision_maker(&mut f, named.as_deref(), caller)
                    .map(|decision_maker| C::RefuseCertification { decision_maker, close_engagement })
            }
            D::StartSurveillance {} => Some(C::StartSurveillance),
            D::CompleteSurveillance { audit_id: id } => {
                audit_id = Some(id);
                Some(C::CompleteSurveillance)
            }
            D::StartRecertification {} => Some(C::StartRecertification),
            D::CompleteRecertification { audit_id: id } => {
                audit_id = Some(id);
                Some(C::CompleteRecertification)
            }
            D::Suspend { cause } => Some(C::Suspend { cause }),
            D::Restore { audit_id: id } => {
                audit_id = id;
                Some(C::Restore)
            }
            D::Withdraw {} => Some(C::Withdraw),
            D::AmendCertificate {} => Some(C::AmendCertificate),
            D::ReduceScope { scope } => f.text::<4000>("scope", &scope).map(|scope| C::ReduceScope { scope }),
            D::ChangeScope { scope } => f.text::<4000>("scope", &scope).map(|scope| C::ChangeScope { scope }),
            D::Expire {} => Some(C::Expire),
            D::RestoreAfterExpiry { audit_id: id } => {
                audit_id = id;
                Some(C::RestoreAfterExpiry)
            }
            D::RestartAtStage2 {} => Some(C::RestartAtStage2),
            D::Cancel {} => Some(C::Cancel),
        };
        let parsed = (|| Some((command?, reason?, evidence?)))();
        let (command, reason, evidence) = f.finish(parsed)?;
        Ok(TransitionRequest { command, audit_id, gaps, reason, evidence, expected_version: request.version, scope })
    }
}

/// Who decides: the caller, by the email address its token names; a decision maker `named` in
/// the request must be the caller. A decision recorded under a name the caller typed would let
/// an auditor decide as a colleague and pass the impartiality check (ISO/IEC 17021-1 9.5).
fn decision_maker(f: &mut Fields, named: Option<&str>, caller: &AuthUser) -> Option<EmailAddress> {
    let Ok(caller_address) = EmailAddress::parse(&caller.subject) else {
        let detail = format!(
            "a certification decision is recorded under its maker's email address, and the caller's token names '{}'",
            caller.subject
        );
        f.problem("decision_maker", detail);
        return None;
    };
    match named.map(|named| f.email("decision_maker", named)) {
        Some(None) => None,
        Some(Some(named)) if named != caller_address => {
            f.problem("decision_maker", format!("must be the caller ({caller_address}), who makes the decision"));
            None
        }
        _ => Some(caller_address),
    }
}

/// Fires a lifecycle event. The response shows the new state, the events now allowed and the
/// open deadlines. `If-Match: "<version>"` refuses the event if the engagement changed meanwhile.
#[utoipa::path(
    tag = "engagements",
    operation_id = "post_engagement_event",
    params(("id" = Uuid, Path, description = "Engagement id"), ("If-Match" = Option<String>, Header, description = "The version last read")),
    request_body = EventRequest,
    responses(
        (status = 200, description = "The engagement after the transition", body = EngagementView),
        (status = 409, description = "The current state does not allow the event (names the state and the allowed events)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The rules refuse the event (lists the violations), or the body is invalid", body = Problem, content_type = "application/problem+json"),
        Refused,
    ),
    security(("bearer" = []))
)]
#[post("/engagements/{id}/events")]
pub async fn post_engagement_event(
    app: web::Data<AppState>,
    user: AuthUser,
    claim: IdempotencyClaim,
    http: HttpRequest,
    id: web::Path<Uuid>,
    body: web::Json<EventRequest>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let event: &'static str = (&body.details).into();
    let outcome = fire_event(&app, &user, claim, &http, *id, body).await;
    count_transition(event, outcome.as_ref().err());
    outcome
}

async fn fire_event(
    app: &AppState,
    user: &AuthUser,
    claim: IdempotencyClaim,
    http: &HttpRequest,
    id: Uuid,
    body: EventRequest,
) -> Result<HttpResponse, ApiError> {
    let expected = expected_version(http, body.version)?;
    let (write, transitioned) = fire_request(app, user, claim.claim(), id, body, expected).await?;
    let view = EngagementView::with_open_deadlines(
        transitioned.engagement,
        transitioned.open_deadlines.into_models(),
        write.today(),
    );
    commit(write, HttpResponse::Ok().json(view)).await
}

/// Fires the event `body` asks for on engagement `id` (the API's and the console's one way), with
/// `expected` the version the caller last read; the write is left for the caller to commit.
pub async fn fire_request(
    app: &AppState,
    user: &AuthUser,
    claim: Option<Claim>,
    id: Uuid,
    body: EventRequest,
    expected: Option<i32>,
) -> Result<(Write, Transitioned), ApiError> {
    let mut request = body.parse(user)?;
    request.expected_version = expected;
    Ok(app.fire(user, id, &request, claim).await?)
}

/// `certflow_transitions_total{event, outcome[, code]}`: fired, or refused with the problem's code
/// (a refusal by the rules with its first violation's code, e.g. `major_nc_unverified`).
pub fn count_transition(event: &'static str, refusal: Option<&ApiError>) {
    match refusal {
        None => metrics::counter!("certflow_transitions_total", "event" => event, "outcome" => "fired").increment(1),
        Some(error) => {
            metrics::counter!("certflow_transitions_total", "event" => event, "outcome" => "refused", "code" => error.code())
                .increment(1);
        }
    }
}
