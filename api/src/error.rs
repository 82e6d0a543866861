//! The API's one error type, and the one place it becomes an HTTP response: RFC 9457
//! `application/problem+json` with a stable `type` for every kind of refusal.

use actix_web::http::StatusCode;
use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, ResponseError};
use engine::EngineError;
use entities::domain::dates::CapDueError;
use entities::domain::lifecycle::{GuardViolation, TransitionRefusal};
use entities::domain::reminders::PolicyProblem;
use entities::domain::state::{EngagementEvent, EngagementState};
use sea_orm::DbErr;
use serde::Serialize;
use utoipa::ToSchema;

/// Where problem types are documented; every `type` is this plus a slug.
pub const PROBLEM_BASE: &str = "https://certflow.dev/problems/";

/// Every problem `type` the API answers with (after [`PROBLEM_BASE`]): the spec lists them as the
/// `type` enum, and a test checks that the code uses no other.
pub const PROBLEM_SLUGS: &[&str] = &[
    "malformed-json",
    "invalid-body",
    "payload-too-large",
    "unsupported-media-type",
    "invalid-query",
    "invalid-path",
    "validation-failed",
    "corrective-action-not-applicable",
    "cap-due-date-out-of-window",
    "illegal-transition",
    "transition-guard-failed",
    "not-found",
    "version-mismatch",
    "unauthorized",
    "forbidden",
    "idempotency-key-reused",
    "idempotency-key-in-progress",
    "engagement-state-conflict",
    "audit-completed",
    "corrective-action-exists",
    "corrective-action-verified",
    "corrective-action-reported",
    "finding-not-awaiting-follow-up",
    "major-nc-limit-passed",
    "notification-not-failed",
    "value-not-storable",
    "revocation-in-future",
    "email-domain-not-registered",
    "person-exists",
    "role-does-not-fit-scope",
    "sign-in-link-refused",
    "webhook-url-malformed",
    "webhook-url-not-https",
    "webhook-url-credentials",
    "webhook-url-private-address",
    "webhook-endpoint-disabled",
    "webhook-message-sending",
    "rate-limited",
    "shutting-down",
    "service-unavailable",
    "internal-error",
];

fn problem_type_schema() -> utoipa::openapi::Object {
    use utoipa::openapi::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("A stable URI naming the kind of problem (the README's table says when each occurs)."))
        .enum_values(Some(PROBLEM_SLUGS.iter().map(|slug| format!("{PROBLEM_BASE}{slug}"))))
        .build()
}

/// A field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldProblem {
    /// The field, as spelled in the request (dotted for nested fields).
    pub field: String,
    /// What is wrong with it.
    pub detail: String,
}

impl FieldProblem {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, detail: impl ToString) -> Self {
        Self { field: field.into(), detail: detail.to_string() }
    }
}

/// Everything a request can end in other than success: what HTTP itself refuses (the body, the
/// query, the path, the token), and what the engine refuses or fails with.
#[derive(thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON, or not a JSON document at all.
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    /// The body is JSON but not of the expected shape (unknown field, wrong type, bad date, …).
    #[error("the request body does not match the expected schema: {0}")]
    InvalidBody(String),
    /// The body is larger than the limit.
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body is not `application/json`.
    #[error("the request body must be application/json")]
    UnsupportedMediaType,
    /// A query parameter could not be read.
    #[error("invalid query parameter: {0}")]
    InvalidQuery(String),
    /// A path parameter could not be read (e.g. an id that is not a UUID).
    #[error("invalid path parameter: {0}")]
    InvalidPath(String),
    /// Values that parse but break a rule.
    #[error("the request is invalid: {}", .0.iter().map(|p| format!("{}: {}", p.field, p.detail)).collect::<Vec<_>>().join("; "))]
    Validation(Vec<FieldProblem>),
    /// No valid credentials.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// The caller (or, without a token, its address) sent more requests than its rate allows.
    #[error("too many requests: try again in {retry_after} s")]
    RateLimited {
        /// Seconds until the next request is allowed (whole, rounded up).
        retry_after: u64,
    },
    /// The process is stopping (readiness, during the drain after SIGTERM).
    #[error("this instance is shutting down; send requests to another")]
    ShuttingDown,
    /// The engine refused the command (its rules, the caller's scope or role, a version) or failed.
    #[error(transparent)]
    Engine(EngineError),
}

impl std::fmt::Debug for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        engine::error::error_chain_fmt(self, f)
    }
}

/// The one place an engine error becomes an HTTP error; its problem is chosen in [`ApiError::kind`].
impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::Invalid { field, detail } => Self::invalid(field, detail),
            other => Self::Engine(other),
        }
    }
}

impl From<DbErr> for ApiError {
    fn from(error: DbErr) -> Self {
        EngineError::from(error).into()
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(error: anyhow::Error) -> Self {
        EngineError::Unexpected(error).into()
    }
}

impl From<TransitionRefusal> for ApiError {
    fn from(refusal: TransitionRefusal) -> Self {
        EngineError::Transition(refusal).into()
    }
}

/// A policy's problems, field by field: a 422 listing each.
impl From<Vec<PolicyProblem>> for ApiError {
    fn from(problems: Vec<PolicyProblem>) -> Self {
        Self::Validation(problems.into_iter().map(|p| FieldProblem::new(p.field, p.detail)).collect())
    }
}

impl From<CapDueError> for ApiError {
    fn from(error: CapDueError) -> Self {
        EngineError::CapDueDate(error).into()
    }
}

impl ApiError {
    /// One invalid field.
    pub fn invalid(field: impl Into<String>, detail: impl ToString) -> Self {
        Self::Validation(vec![FieldProblem::new(field, detail)])
    }

    /// A conflict with the resource's state.
    pub fn conflict(slug: &'static str, detail: impl Into<String>) -> Self {
        Self::Engine(EngineError::conflict(slug, detail))
    }

    /// The resource does not exist, or is outside the caller's scope.
    pub fn not_found(what: &'static str) -> Self {
        Self::Engine(EngineError::NotFound(what))
    }

    /// A bug or an infrastructure failure.
    pub fn unexpected(error: impl Into<anyhow::Error>) -> Self {
        Self::Engine(EngineError::Unexpected(error.into()))
    }

    /// The stable slug of the problem `type`, its title and its status: the one place an error
    /// meets HTTP.
    fn kind(&self) -> (&'static str, &'static str, StatusCode) {
        use EngineError as E;
        use StatusCode as S;
        match self {
            Self::MalformedJson(_) => ("malformed-json", "Malformed JSON", S::BAD_REQUEST),
            Self::InvalidBody(_) => ("invalid-body", "Request body does not match the schema", S::UNPROCESSABLE_ENTITY),
            Self::PayloadTooLarge { .. } => ("payload-too-large", "Payload too large", S::PAYLOAD_TOO_LARGE),
            Self::UnsupportedMediaType => {
                ("unsupported-media-type", "Unsupported media type", S::UNSUPPORTED_MEDIA_TYPE)
            }
            Self::InvalidQuery(_) => ("invalid-query", "Invalid query parameter", S::BAD_REQUEST),
            Self::InvalidPath(_) => ("invalid-path", "Invalid path parameter", S::BAD_REQUEST),
            Self::Validation(_) | Self::Engine(E::Invalid { .. }) => {
                ("validation-failed", "Validation failed", S::UNPROCESSABLE_ENTITY)
            }
            Self::Unauthorized => ("unauthorized", "Unauthorized", S::UNAUTHORIZED),
            Self::RateLimited { .. } => ("rate-limited", "Too many requests", S::TOO_MANY_REQUESTS),
            Self::ShuttingDown => ("shutting-down", "Shutting down", S::SERVICE_UNAVAILABLE),
            Self::Engine(E::CapDueDate(CapDueError::NotANonconformity)) => {
                ("corrective-action-not-applicable", "No corrective action for an OFI", S::UNPROCESSABLE_ENTITY)
            }
            Self::Engine(E::CapDueDate(CapDueError::OutsideWindow { .. })) => {
                ("cap-due-date-out-of-window", "Corrective action due date outside 30–90 days", S::UNPROCESSABLE_ENTITY)
            }
            Self::Engine(E::Transition(TransitionRefusal::NotAllowed { .. })) => {
                ("illegal-transition", "Illegal transition", S::CONFLICT)
            }
            Self::Engine(E::Transition(TransitionRefusal::GuardFailed { .. })) => {
                ("transition-guard-failed", "Transition refused by the rules", S::UNPROCESSABLE_ENTITY)
            }
            Self::Engine(E::NotFound(_)) => ("not-found", "Not found", S::NOT_FOUND),
            Self::Engine(E::Conflict { slug, .. }) => (slug, "Conflict", S::CONFLICT),
            Self::Engine(E::PreconditionFailed { .. }) => {
                ("version-mismatch", "Precondition failed", S::PRECONDITION_FAILED)
            }
            Self::Engine(E::Unprocessable { slug, .. }) => (slug, "Unprocessable request", S::UNPROCESSABLE_ENTITY),
            Self::Engine(E::Forbidden(_)) => ("forbidden", "Forbidden", S::FORBIDDEN),
            Self::Engine(E::Unavailable { .. }) => {
                ("service-unavailable", "Service unavailable", S::SERVICE_UNAVAILABLE)
            }
            Self::Engine(E::Unexpected(_)) => ("internal-error", "Internal server error", S::INTERNAL_SERVER_ERROR),
        }
    }

    /// The stable code of this refusal: where the lifecycle's rules refused, the first violated
    /// rule's code (`major_nc_unverified`); otherwise the problem type's slug.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Engine(EngineError::Transition(TransitionRefusal::GuardFailed { violations, .. }))
                if !violations.is_empty() =>
            {
                violations[0].code
            }
            other => other.kind().0,
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let (slug, title, status) = self.kind();
        let status = status.as_u16();
        let detail = match self {
            Self::Engine(EngineError::Unexpected(_)) => "an unexpected error occurred; it has been logged".to_owned(),
            other => other.to_string(),
        };
        let mut problem = Problem {
            r#type: format!("{PROBLEM_BASE}{slug}"),
            title: title.to_owned(),
            status,
            detail,
            ..Problem::default()
        };
        match self {
            Self::Validation(errors) => problem.errors = Some(errors.clone()),
            Self::Engine(EngineError::Transition(TransitionRefusal::NotAllowed { state, event, allowed })) => {
                problem.state = Some(*state);
                problem.event = Some(*event);
                problem.allowed_events = Some(allowed.clone());
            }
            Self::Engine(EngineError::Transition(TransitionRefusal::GuardFailed { state, event, violations })) => {
                problem.state = Some(*state);
                problem.event = Some(*event);
                problem.allowed_events = Some(state.allowed_events());
                problem.violations = Some(violations.clone());
            }
            _ => {}
        }
        problem
    }
}

/// An RFC 9457 problem document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "https://certflow.dev/problems/illegal-transition",
    "title": "Illegal transition",
    "status": 409,
    "detail": "the event 'grant_certification' is not allowed in state 'stage1'",
    "state": "stage1",
    "event": "grant_certification",
    "allowed_events": ["record_stage1_outcome", "cancel"]
}))]
pub struct Problem {
    /// A stable URI naming the kind of problem.
    #[schema(schema_with = problem_type_schema)]
    pub r#type: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong in this occurrence.
    pub detail: String,
    /// Fields that failed validation (`validation-failed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldProblem>>,
    /// The engagement's state (transition problems).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<EngagementState>,
    /// The event refused (transition problems).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<EngagementEvent>,
    /// The events the state allows (transition problems).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allowed_events: Option<Vec<EngagementEvent>>,
    /// The rules the event broke (`transition-guard-failed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub violations: Option<Vec<GuardViolation>>,
    /// The request's id (its `X-Request-Id`), to find its log lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// The response every operation documents for its refusals: a problem document whose `type` says
/// which (listed once here instead of in each operation).
#[derive(utoipa::IntoResponses)]
#[response(status = "4XX", description = "Refused", content_type = "application/problem+json")]
pub struct Refused(#[allow(dead_code)] Problem);

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.kind().2
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        if status.is_server_error() {
            tracing::error!(error = ?self, "request failed");
        } else {
            tracing::debug!(error = %self, "request refused");
        }
        let mut response = HttpResponse::build(status);
        response.insert_header(ContentType(
            "application/problem+json".parse().expect("BUG: problem+json is a valid media type"),
        ));
        match self {
            Self::Unauthorized => {
                response.insert_header(("WWW-Authenticate", "Bearer"));
            }
            Self::Engine(EngineError::Unavailable { .. }) => {
                response.insert_header(("Retry-After", "1"));
            }
            Self::RateLimited { retry_after } => {
                response.insert_header(("Retry-After", retry_after.to_string()));
            }
            _ => {}
        }
        response.json(self.problem())
    }
}

/// Maps actix's JSON body errors to problems.
pub fn json_error(error: actix_web::error::JsonPayloadError, _: &actix_web::HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    match error {
        E::OverflowKnownLength { limit, .. } | E::Overflow { limit } => ApiError::PayloadTooLarge { limit },
        E::ContentType => ApiError::UnsupportedMediaType,
        E::Deserialize(e) if e.is_data() => ApiError::InvalidBody(e.to_string()),
        E::Deserialize(e) => ApiError::MalformedJson(e.to_string()),
        other => ApiError::MalformedJson(other.to_string()),
    }
    .into()
}

/// Maps actix's query-string errors to problems.
pub fn query_error(error: actix_web::error::QueryPayloadError, _: &actix_web::HttpRequest) -> actix_web::Error {
    ApiError::InvalidQuery(error.to_string()).into()
}

/// Maps actix's path errors to problems.
pub fn path_error(error: actix_web::error::PathError, _: &actix_web::HttpRequest) -> actix_web::Error {
    ApiError::InvalidPath(error.to_string()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;
    use engine::store::Unavailability;
    use serde_json::{Value, json};

    async fn body_of(error: ApiError) -> (u16, String, Value) {
        let response = error.error_response();
        let status = response.status().as_u16();
        let content_type = response.headers().get("content-type").unwrap().to_str().unwrap().to_owned();
        let bytes = to_bytes(response.into_body()).await.unwrap();
        (status, content_type, serde_json::from_slice(&bytes).unwrap())
    }

    #[actix_web::test]
    async fn an_unavailable_database_is_a_503_problem_naming_the_reason_with_retry_after() {
        let error = ApiError::from(EngineError::Unavailable {
            reason: Unavailability::StorageFull,
            source: anyhow::anyhow!("disk"),
        });
        let response = error.error_response();
        assert_eq!(response.headers().get("retry-after").unwrap(), "1");
        let (status, content_type, body) = body_of(error).await;
        assert_eq!((status, content_type.as_str()), (503, "application/problem+json"));
        assert_eq!(body["type"], "https://certflow.dev/problems/service-unavailable");
        assert!(body["detail"].as_str().unwrap().contains("disk is full"), "{body}");
    }

    #[actix_web::test]
    async fn an_illegal_transition_names_the_state_and_the_allowed_events() {
        let refusal = TransitionRefusal::NotAllowed {
            state: EngagementState::Stage1,
            event: EngagementEvent::GrantCertification,
            allowed: EngagementState::Stage1.allowed_events(),
        };
        let (status, content_type, body) = body_of(refusal.into()).await;
        assert_eq!((status, content_type.as_str()), (409, "application/problem+json"));
        assert_eq!(body["type"], "https://certflow.dev/problems/illegal-transition");
        assert_eq!(body["state"], "stage1");
        assert_eq!(body["allowed_events"], json!(["change_scope", "record_stage1_outcome", "cancel"]));
    }

    #[actix_web::test]
    async fn a_guard_refusal_lists_its_violations() {
        let refusal = TransitionRefusal::GuardFailed {
            state: EngagementState::CorrectiveActions,
            event: EngagementEvent::RequestDecision,
            violations: vec![GuardViolation { code: "major_nc_unverified", detail: "1 major".into() }],
        };
        let (status, _, body) = body_of(refusal.into()).await;
        assert_eq!(status, 422);
        assert_eq!(body["type"], "https://certflow.dev/problems/transition-guard-failed");
        assert_eq!(body["violations"][0]["code"], "major_nc_unverified");
    }

    #[actix_web::test]
    async fn each_client_error_has_its_status_and_stable_type() {
        let cases: Vec<(ApiError, u16, &str)> = vec![
            (ApiError::MalformedJson("x".into()), 400, "malformed-json"),
            (ApiError::InvalidBody("x".into()), 422, "invalid-body"),
            (ApiError::PayloadTooLarge { limit: 1 }, 413, "payload-too-large"),
            (ApiError::UnsupportedMediaType, 415, "unsupported-media-type"),
            (ApiError::InvalidQuery("x".into()), 400, "invalid-query"),
            (ApiError::InvalidPath("x".into()), 400, "invalid-path"),
            (ApiError::invalid("name", "must not be empty"), 422, "validation-failed"),
            (ApiError::not_found("engagement"), 404, "not-found"),
            (ApiError::conflict("engagement-state-conflict", "closed"), 409, "engagement-state-conflict"),
            (ApiError::Unauthorized, 401, "unauthorized"),
            (ApiError::RateLimited { retry_after: 3 }, 429, "rate-limited"),
            (EngineError::Forbidden("no".into()).into(), 403, "forbidden"),
            (EngineError::PreconditionFailed { expected: 1, current: 2 }.into(), 412, "version-mismatch"),
            (EngineError::Invalid { field: "outcome", detail: "x".into() }.into(), 422, "validation-failed"),
            (CapDueError::NotANonconformity.into(), 422, "corrective-action-not-applicable"),
        ];
        for (error, status, slug) in cases {
            let (got_status, _, body) = body_of(error).await;
            assert_eq!(got_status, status, "{slug}");
            assert_eq!(body["type"], format!("{PROBLEM_BASE}{slug}"), "{slug}");
            assert_eq!(body["status"], status, "{slug}");
        }
    }

    #[test]
    fn every_problem_type_the_code_uses_is_listed_in_the_spec() {
        let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut files = vec![crates.join("api/src"), crates.join("engine/src")];
        let mut used = std::collections::BTreeSet::new();
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|entry| entry.unwrap().path()));
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap().replace(char::is_whitespace, "");
            for marker in ["conflict(\"", "slug:\"", "=>(\"", "=>{(\""] {
                for piece in text.split(marker).skip(1) {
                    used.insert(piece.split('"').next().unwrap().to_owned());
                }
            }
        }
        used.retain(|slug| slug.chars().all(|c| c.is_ascii_lowercase() || c == '-') && slug.contains('-'));
        for slug in &used {
            assert!(
                PROBLEM_SLUGS.contains(&slug.as_str()),
                "the code answers with `{slug}`, which the spec does not list"
            );
        }
        assert!(used.len() >= 20, "found only {used:?}");
    }

    #[test]
    fn every_refusal_code_of_the_domain_is_listed_in_the_spec() {
        use entities::domain::AuditKind;
        use entities::domain::finding::FollowUpRefusal;
        use entities::domain::verification::VerificationRefusal;
        let limit = chrono::NaiveDate::MIN;
        let codes = [
            VerificationRefusal::AlreadyAccepted.code(),
            VerificationRefusal::MajorNcLimitPassed { limit }.code(),
            VerificationRefusal::NotAVerdict.code(),
            VerificationRefusal::AlreadyReported.code(),
            FollowUpRefusal::NotAwaitingFollowUp.code(),
            FollowUpRefusal::SameAudit.code(),
            FollowUpRefusal::NotACertifyingAudit(AuditKind::Stage1).code(),
            entities::domain::revocation::RevocationRefusal::IssuedBeforeInFuture.code(),
            entities::domain::webhooks::UrlRefusal::Malformed.code(),
            entities::domain::webhooks::UrlRefusal::NotHttps.code(),
            entities::domain::webhooks::UrlRefusal::Credentials.code(),
            entities::domain::webhooks::UrlRefusal::PrivateAddress.code(),
            entities::domain::contacts::check_contact("a@b.test", &[], &[]).unwrap_err().code(),
            entities::domain::people::PersonRole::Admin
                .fits(entities::domain::people::PersonScope::Organization(uuid::Uuid::nil()))
                .unwrap_err()
                .code(),
        ];
        for code in codes {
            assert!(PROBLEM_SLUGS.contains(&code), "the domain refuses with `{code}`, which the spec does not list");
        }
    }

    #[actix_web::test]
    async fn a_500_names_no_internals() {
        let (status, _, body) = body_of(anyhow::anyhow!("password=hunter2 at db.internal").into()).await;
        assert_eq!(status, 500);
        assert!(!body.to_string().contains("hunter2"), "{body}");
    }
}
