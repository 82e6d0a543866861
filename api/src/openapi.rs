//! The OpenAPI document: described once by the handlers, served at `/api-docs/openapi.json` and
//! written to `openapi/openapi.json` by the `openapi` crate.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The document's header: title, version, tags and security scheme.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "certflow",
        description = "Runs the ISO/IEC 27001 certification engagement between an organization and its certification body: CB selection, stage 1 and 2 audits, findings and corrective actions, the certification decision, the certificate, surveillance and recertification. Every error is RFC 9457 application/problem+json with a stable `type`.",
        license(name = "Apache-2.0")
    ),
    modifiers(&BearerAuth),
    components(schemas(crate::auth::Role, entities::domain::webhooks::WebhookPayload)),
    tags(
        (name = "health", description = "Liveness and readiness"),
        (name = "organizations", description = "Organizations seeking certification"),
        (name = "certification_bodies", description = "Certification bodies and their accreditation"),
        (name = "engagements", description = "Engagements, their lifecycle events, history and deadlines"),
        (name = "proposals", description = "CB selection: proposals and the audit-time estimate"),
        (name = "audits", description = "Audits: pre-audit, stage 1, stage 2, surveillance, recertification"),
        (name = "stage1", description = "Required documents, the Statement of Applicability, readiness"),
        (name = "findings", description = "Audit findings: major NC, minor NC, OFI"),
        (name = "corrective_actions", description = "The corrective action plan and its verification"),
        (name = "certificates", description = "Certificates and their public verification"),
        (name = "notifications", description = "Reminder and escalation emails"),
        (name = "people", description = "The directory of people who sign in to the console"),
        (name = "webhooks", description = "Webhook endpoints, their delivery log and replay; the events are under `webhooks`"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT signed with HS256 (the server's JWT_SECRET) or RS256 (JWT_PUBLIC_KEY_FILE), with \
                         `sub`, `role` (see the Role schema), `iss`, `aud`, `nbf`, `exp`, and the scope the role \
                         needs: `cb_id` for coordinator, auditor and decision_maker; `org_id` for \
                         client_manager; one of them for integration; none for admin. Outside its scope a \
                         caller gets 404; a role not allowed to do something it sees gets 403.",
                    ))
                    .build(),
            ),
        );
    }
}

/// What the routes cannot say of themselves: the version, and the `Idempotency-Key` header that
/// every POST accepts (see [`crate::idempotency`]).
pub fn finish(mut document: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    for item in document.paths.paths.values_mut() {
        if let Some(post) = item.post.as_mut() {
            let header = ParameterBuilder::new()
                .name(crate::idempotency::IDEMPOTENCY_KEY)
                .parameter_in(ParameterIn::Header)
                .required(utoipa::openapi::Required::False)
                .description(Some(
                    "Makes a retry safe: the same key with the same request returns the stored response \
                     (with `Idempotency-Replayed: true`); with another request it is a 422 \
                     (`idempotency-key-reused`); while the first request runs, a 409 \
                     (`idempotency-key-in-progress`). Keys are the caller's own and kept 24 hours.",
                ))
                .schema(Some(
                    utoipa::openapi::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::Type::String)
                        .max_length(Some(255)),
                ))
                .build();
            post.parameters.get_or_insert_with(Vec::new).push(header.into());
        }
    }
    document.webhooks = Some(webhooks());
    document
}

/// The `webhooks` section: one entry per event type, each a POST of a `WebhookPayload` signed as
/// Standard Webhooks have it.
fn webhooks() -> utoipa::openapi::Paths {
    use entities::domain::webhooks::WebhookEventType;
    use sea_orm::Iterable;
    use utoipa::openapi::content::ContentBuilder;
    use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn, PathItem};
    use utoipa::openapi::request_body::RequestBodyBuilder;
    use utoipa::openapi::response::ResponseBuilder;
    use utoipa::openapi::{ObjectBuilder, Ref, Required, Type};
    let header = |name: &str, description: &str| {
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Header)
            .required(Required::True)
            .description(Some(description))
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .build()
    };
    let mut paths = utoipa::openapi::PathsBuilder::new();
    for event_type in WebhookEventType::iter() {
        let operation = OperationBuilder::new()
            .operation_id(Some(format!("webhook_{}", event_type.to_string().replace('.', "_"))))
            .tag("webhooks")
            .summary(Some(format!("{event_type}")))
            .description(Some(format!(
                "Posted to every enabled endpoint that wants `{event_type}` and whose owner reads the engagement's \
                 records. The body's `type` is `{event_type}`; `data.sequence` orders the engagement's events. \
                 Verify `webhook-signature` with the endpoint's secret (any Standard Webhooks library); answer 2xx. \
                 Anything else is retried (5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h, with jitter; 429 \
                 and 503 may ask for longer with Retry-After); 410 disables the endpoint."
            )))
            .parameter(header("webhook-id", "The message's id (`msg_…`), the same on every retry: deduplicate by it"))
            .parameter(header("webhook-timestamp", "Seconds since the epoch of this attempt"))
            .parameter(header(
                "webhook-signature",
                "`v1,<base64 HMAC-SHA256 of id.timestamp.body>`, space-separated when a rotated secret also signs",
            ))
            .request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content(
                        "application/json",
                        ContentBuilder::new().schema(Some(Ref::from_schema_name("WebhookPayload"))).build(),
                    )
                    .build(),
            ))
            .response("200", ResponseBuilder::new().description("Received (any 2xx)").build())
            .response("410", ResponseBuilder::new().description("Gone: the endpoint is disabled").build())
            .build();
        paths = paths.path(event_type.to_string(), PathItem::new(HttpMethod::Post, operation));
    }
    paths.build()
}
