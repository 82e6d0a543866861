//! Bad input gets a clear problem+json with a stable type, and loses nothing.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, day, spawn_app};
use crate::on_both_databases;

/// How a bad request is sent.
enum Body {
    Json(Value),
    Raw(&'static str, &'static str),
    None,
}

struct Case {
    description: &'static str,
    method: Method,
    path: String,
    body: Body,
    token: bool,
    status: u16,
    problem_type: &'static str,
}

fn case(
    description: &'static str,
    method: Method,
    path: String,
    body: Body,
    status: u16,
    problem_type: &'static str,
) -> Case {
    Case { description, method, path, body, token: true, status, problem_type }
}

async fn send(app: &TestApp, case: &Case) -> crate::helpers::Reply {
    let mut request = app.client.request(case.method.clone(), format!("{}{}", app.address, case.path));
    if case.token {
        request = request.bearer_auth(&app.token);
    }
    request = match &case.body {
        Body::Json(value) => request.json(value),
        Body::Raw(content_type, text) => request.header("content-type", *content_type).body(*text),
        Body::None => request,
    };
    app.reply(request).await
}

/// Everything about an engagement that a refused request must leave unchanged.
async fn snapshot(app: &TestApp, engagement: &str) -> Vec<Value> {
    let mut parts = Vec::new();
    for path in ["", "/history", "/deadlines", "/findings", "/corrective-actions", "/proposals", "/audits"] {
        parts.push(app.get(&format!("/api/v1/engagements/{engagement}{path}")).await.expect(200).body);
    }
    parts
}

async fn each_bad_input_gets_its_problem_type_and_leaves_the_data_unchanged(backend: Backend) {
    // Arrange: an engagement in stage 2 with a stage 2 audit and a minor NC.
    let app = spawn_app(backend).await;
    let (engagement, audit, finding) = app.stage2_with_finding("minor_nc", "A.5.15").await;
    let events = format!("/api/v1/engagements/{engagement}/events");
    let huge = "x".repeat(300 * 1024);
    let huge: &'static str = Box::leak(format!("{{\"event\":\"cancel\",\"reason\":\"{huge}\"}}").into_boxed_str());
    let nested: &'static str = Box::leak(
        format!("{{\"event\":\"cancel\",\"evidence\":{}{}}}", "[".repeat(5000), "]".repeat(5000)).into_boxed_str(),
    );
    let before = snapshot(&app, &engagement).await;

    let cases = vec![
        case(
            "malformed JSON",
            Method::POST,
            events.clone(),
            Body::Raw("application/json", "{\"event\": "),
            400,
            "malformed-json",
        ),
        case(
            "not JSON at all",
            Method::POST,
            events.clone(),
            Body::Raw("application/json", "hello"),
            400,
            "malformed-json",
        ),
        case(
            "wrong content type",
            Method::POST,
            events.clone(),
            Body::Raw("text/plain", "{}"),
            415,
            "unsupported-media-type",
        ),
        case(
            "body over the limit",
            Method::POST,
            events.clone(),
            Body::Raw("application/json", huge),
            413,
            "payload-too-large",
        ),
        case(
            "JSON nested 5,000 deep",
            Method::POST,
            events.clone(),
            Body::Raw("application/json", nested),
            400,
            "malformed-json",
        ),
        case(
            "a name with a line break (a mail header injection)",
            Method::POST,
            "/api/v1/organizations".into(),
            Body::Json(json!({
                "legal_name": "Acme\r\nBcc: eve@evil.test", "isms_scope": "all", "persons": 10, "sites": ["London"],
                "isms_manager_email": "isms@acme.test", "executive_email": "ceo@acme.test"
            })),
            422,
            "validation-failed",
        ),
        case(
            "unknown event",
            Method::POST,
            events.clone(),
            Body::Json(json!({ "event": "certify_now" })),
            422,
            "invalid-body",
        ),
        case("missing event", Method::POST, events.clone(), Body::Json(json!({ "reason": "x" })), 422, "invalid-body"),
        case(
            "unknown field on an event",
            Method::POST,
            events.clone(),
            Body::Json(json!({ "event": "complete_stage2", "audit_id": audit, "force": true })),
            422,
            "invalid-body",
        ),
        case(
            "impossible date",
            Method::POST,
            events.clone(),
            Body::Json(json!({ "event": "complete_stage2", "audit_id": audit, "stage1_still_valid": 5 })),
            422,
            "invalid-body",
        ),
        case(
            "illegal transition",
            Method::POST,
            events.clone(),
            Body::Json(json!({ "event": "start_surveillance" })),
            409,
            "illegal-transition",
        ),
        case(
            "audit of another kind",
            Method::POST,
            events.clone(),
            Body::Json(json!({ "event": "complete_stage2", "audit_id": uuid::Uuid::now_v7() })),
            404,
            "not-found",
        ),
        case(
            "unknown engagement",
            Method::GET,
            format!("/api/v1/engagements/{}", uuid::Uuid::now_v7()),
            Body::None,
            404,
            "not-found",
        ),
        case("id that is not a UUID", Method::GET, "/api/v1/engagements/42".into(), Body::None, 400, "invalid-path"),
        case("unknown route", Method::GET, "/api/v1/nothing-here".into(), Body::None, 404, "not-found"),
        case("limit out of range", Method::GET, "/api/v1/engagements?limit=0".into(), Body::None, 400, "invalid-query"),
        case(
            "unknown state filter",
            Method::GET,
            "/api/v1/engagements?state=certifiable".into(),
            Body::None,
            400,
            "invalid-query",
        ),
        case("forged cursor", Method::GET, "/api/v1/engagements?cursor=abc".into(), Body::None, 400, "invalid-query"),
        case(
            "CAP due date beyond 90 days",
            Method::POST,
            format!("/api/v1/engagements/{engagement}/findings/{finding}/corrective-action"),
            Body::Json(json!({
                "root_cause": "r", "correction": "c", "corrective_action": "a",
                "owner_email": "sre@acme.test", "due_on": day(200)
            })),
            422,
            "cap-due-date-out-of-window",
        ),
        case(
            "CAP due date that is not a date",
            Method::POST,
            format!("/api/v1/engagements/{engagement}/findings/{finding}/corrective-action"),
            Body::Json(json!({
                "root_cause": "r", "correction": "c", "corrective_action": "a",
                "owner_email": "sre@acme.test", "due_on": "2026-13-45"
            })),
            422,
            "invalid-body",
        ),
        case(
            "owner email with a header injection",
            Method::POST,
            format!("/api/v1/engagements/{engagement}/findings/{finding}/corrective-action"),
            Body::Json(json!({
                "root_cause": "r", "correction": "c", "corrective_action": "a",
                "owner_email": "sre@acme.test\r\nBcc: eve@evil.test"
            })),
            422,
            "validation-failed",
        ),
        case(
            "finding citing no requirement",
            Method::POST,
            format!("/api/v1/engagements/{engagement}/audits/{audit}/findings"),
            Body::Json(json!({ "grade": "major_nc", "reference": "A.9.9", "description": "x" })),
            422,
            "validation-failed",
        ),
        case(
            "audit ending before it starts",
            Method::POST,
            format!("/api/v1/engagements/{engagement}/audits"),
            Body::Json(
                json!({ "kind": "stage2", "first_day": day(50), "last_day": day(49), "lead_auditor": "lead@cb.test" }),
            ),
            422,
            "validation-failed",
        ),
        case(
            "proposal outside cb_selection",
            Method::POST,
            format!("/api/v1/engagements/{engagement}/proposals"),
            Body::Json(
                json!({ "certification_body_id": uuid::Uuid::now_v7(), "price_minor": 1, "currency": "EUR", "audit_days": 1.0 }),
            ),
            409,
            "engagement-state-conflict",
        ),
        case(
            "document reference of the wrong type",
            Method::PUT,
            format!("/api/v1/engagements/{engagement}/documents/internal_audit"),
            Body::Json(json!({ "reference": 7 })),
            422,
            "invalid-body",
        ),
        // Values PostgreSQL cannot hold (it answered these with a 500 once).
        case(
            "a due date before PostgreSQL's calendar",
            Method::GET,
            "/api/v1/engagements?due_before=-5000-01-01".into(),
            Body::None,
            400,
            "invalid-query",
        ),
        case(
            "a NUL character in a Statement of Applicability",
            Method::PUT,
            format!("/api/v1/engagements/{engagement}/statement-of-applicability"),
            Body::Json(json!({ "entries": [{ "control": "5.1\u{0}", "applicable": true }] })),
            422,
            "validation-failed",
        ),
        Case {
            token: false,
            ..case(
                "a NUL character in a certificate number",
                Method::GET,
                "/api/v1/certificates/CF%00/verification".into(),
                Body::None,
                404,
                "not-found",
            )
        },
        Case {
            token: false,
            ..case(
                "no token",
                Method::GET,
                format!("/api/v1/engagements/{engagement}"),
                Body::None,
                401,
                "unauthorized",
            )
        },
    ];

    // Act / Assert
    for case in &cases {
        let reply = send(&app, case).await;
        assert_eq!(reply.status, case.status, "{}: {}", case.description, reply.body);
        assert_eq!(reply.content_type(), "application/problem+json", "{}", case.description);
        assert_eq!(reply.problem_type(), case.problem_type, "{}: {}", case.description, reply.body);
        assert_eq!(reply.body["status"], case.status, "{}", case.description);
        assert!(reply.body["title"].is_string() && reply.body["detail"].is_string(), "{}", case.description);
    }
    let named = |description: &str| cases.iter().find(|c| c.description == description).expect("a case");
    let illegal = send(&app, named("illegal transition")).await;
    assert_eq!(illegal.body["state"], "stage2");
    // What the state allows; suspend, withdraw and expire are for the stage 2 of a renewal (refused
    // by their guards without a certificate).
    assert_eq!(
        illegal.body["allowed_events"],
        json!(["change_scope", "complete_stage2", "repeat_stage1", "cancel", "suspend", "withdraw", "expire"])
    );
    let invalid_email = send(&app, named("owner email with a header injection")).await;
    assert_eq!(invalid_email.body["errors"][0]["field"], "owner_email");
    assert_eq!(snapshot(&app, &engagement).await, before, "a refused request changed the engagement");
}
on_both_databases!(each_bad_input_gets_its_problem_type_and_leaves_the_data_unchanged);

async fn an_update_with_a_stale_if_match_is_refused_with_412(backend: Backend) {
    let app = spawn_app(backend).await;
    let engagement = app.engagement_with_selected_proposal().await;
    let version = app.engagement(&engagement).await.body["version"].as_i64().unwrap();
    let request = app
        .client
        .post(format!("{}/api/v1/engagements/{engagement}/events", app.address))
        .bearer_auth(&app.token)
        .header("If-Match", format!("\"{}\"", version - 1))
        .json(&json!({ "event": "sign_engagement_letter", "signed_on": day(0) }));
    let stale = app.reply(request).await.expect(412);
    assert_eq!(stale.problem_type(), "version-mismatch");
    assert_eq!(app.engagement(&engagement).await.str("state"), "cb_selection");
    let request = app
        .client
        .post(format!("{}/api/v1/engagements/{engagement}/events", app.address))
        .bearer_auth(&app.token)
        .header("If-Match", format!("\"{version}\""))
        .json(&json!({ "event": "sign_engagement_letter", "signed_on": day(0) }));
    app.reply(request).await.expect(200);
}
on_both_databases!(an_update_with_a_stale_if_match_is_refused_with_412);
