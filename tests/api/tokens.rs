//! Bearer tokens: every forged, stale, misdirected or ill-scoped token is a uniform 401.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use crate::helpers::{Backend, RS256_PRIVATE_KEY, RS256_PUBLIC_KEY, TestApp, spawn_app};
use crate::on_both_databases;

/// Claims as the server expects them, `seconds` relative to now for the times.
fn claims(role: &str, cb: Option<&str>, issued: i64, expires: i64) -> Value {
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "sub": "mallory@example.test", "role": role, "iss": "certflow", "aud": "certflow-api",
        "iat": now + issued, "nbf": now + issued, "exp": now + expires
    });
    if let Some(cb) = cb {
        claims["cb_id"] = json!(cb);
    }
    claims
}

fn hs256(claims: &Value, secret: &[u8]) -> String {
    encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret)).expect("sign")
}

fn rs256(claims: &Value) -> String {
    let pem = std::fs::read(RS256_PRIVATE_KEY).expect("the test private key");
    encode(&Header::new(Algorithm::RS256), claims, &EncodingKey::from_rsa_pem(&pem).expect("a PEM key")).expect("sign")
}

/// `header.payload.` with no signature.
fn unsigned(header: &Value, claims: &Value) -> String {
    format!("{}.{}.", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()))
}

async fn list_engagements(app: &TestApp, authorization: Option<String>) -> crate::helpers::Reply {
    let mut request = app.client.get(format!("{}/api/v1/engagements", app.address));
    if let Some(authorization) = authorization {
        request = request.header("Authorization", authorization);
    }
    app.reply(request).await
}

async fn forged_stale_or_misdirected_tokens_are_refused_with_a_uniform_401(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let secret = app.jwt_secret.as_slice();
    let cb = uuid::Uuid::now_v7().to_string();
    let valid = claims("coordinator", Some(&cb), 0, 3600);
    let signed = hs256(&valid, secret);
    let mut parts: Vec<String> = signed.split('.').map(str::to_owned).collect();
    let mut promoted = valid.clone();
    promoted["role"] = json!("admin");
    promoted.as_object_mut().unwrap().remove("cb_id");
    parts[1] = URL_SAFE_NO_PAD.encode(promoted.to_string());
    let tampered = parts.join(".");
    let public_key = std::fs::read(RS256_PUBLIC_KEY).expect("the public key");
    let mut no_expiry = valid.clone();
    no_expiry.as_object_mut().unwrap().remove("exp");
    let mut wrong_issuer = valid.clone();
    wrong_issuer["iss"] = json!("someone-else");
    let mut wrong_audience = valid.clone();
    wrong_audience["aud"] = json!("another-api");
    let mut no_issued_at = valid.clone();
    no_issued_at.as_object_mut().unwrap().remove("iat");
    let mut issued_in_the_future = valid.clone();
    issued_in_the_future["iat"] = json!(chrono::Utc::now().timestamp() + 1800);
    let cases: Vec<(&str, Option<String>)> = vec![
        ("no Authorization header", None),
        ("not a bearer token", Some(format!("Basic {}", URL_SAFE_NO_PAD.encode("admin:admin")))),
        ("malformed", Some("Bearer not.a.jwt".into())),
        ("empty bearer", Some("Bearer ".into())),
        ("expired", Some(format!("Bearer {}", hs256(&claims("coordinator", Some(&cb), -7200, -3600), secret)))),
        ("not yet valid", Some(format!("Bearer {}", hs256(&claims("coordinator", Some(&cb), 3600, 7200), secret)))),
        ("wrong signature", Some(format!("Bearer {}", hs256(&valid, b"another-secret-of-at-least-32-characters")))),
        ("wrong issuer", Some(format!("Bearer {}", hs256(&wrong_issuer, secret)))),
        ("wrong audience", Some(format!("Bearer {}", hs256(&wrong_audience, secret)))),
        ("no expiry", Some(format!("Bearer {}", hs256(&no_expiry, secret)))),
        ("no issued-at", Some(format!("Bearer {}", hs256(&no_issued_at, secret)))),
        ("issued in the future", Some(format!("Bearer {}", hs256(&issued_in_the_future, secret)))),
        (
            "living 12 hours and a minute (the maximum is 12)",
            Some(format!("Bearer {}", hs256(&claims("coordinator", Some(&cb), 0, 12 * 3600 + 60), secret))),
        ),
        (
            "a 100-year admin token",
            Some(format!("Bearer {}", hs256(&claims("admin", None, 0, 100 * 365 * 24 * 3600), secret))),
        ),
        ("an RS256 token living a day", Some(format!("Bearer {}", rs256(&claims("auditor", Some(&cb), 0, 24 * 3600))))),
        ("alg none", Some(format!("Bearer {}", unsigned(&json!({ "alg": "none", "typ": "JWT" }), &valid)))),
        ("alg None", Some(format!("Bearer {}", unsigned(&json!({ "alg": "None", "typ": "JWT" }), &valid)))),
        ("HS256 signed with the RS256 public key", Some(format!("Bearer {}", hs256(&valid, &public_key)))),
        (
            "HS512",
            Some(format!("Bearer {}", {
                encode(&Header::new(Algorithm::HS512), &valid, &EncodingKey::from_secret(secret)).unwrap()
            })),
        ),
        ("tampered role claim", Some(format!("Bearer {tampered}"))),
        ("a CB role without cb_id", Some(format!("Bearer {}", hs256(&claims("coordinator", None, 0, 3600), secret)))),
        ("an admin with a scope", Some(format!("Bearer {}", hs256(&claims("admin", Some(&cb), 0, 3600), secret)))),
        ("an unknown role", Some(format!("Bearer {}", hs256(&claims("superuser", None, 0, 3600), secret)))),
    ];

    for (description, authorization) in cases {
        // Act
        let reply = list_engagements(&app, authorization).await;
        // Assert
        assert_eq!(reply.status, 401, "{description}: {}", reply.body);
        assert_eq!(reply.problem_type(), "unauthorized", "{description}");
        assert_eq!(reply.body["detail"], "a valid bearer token is required", "{description}: one uniform answer");
    }
    let control = list_engagements(&app, Some(format!("Bearer {signed}"))).await;
    assert_eq!(control.status, 200, "the untampered token is accepted: {}", control.body);
}
on_both_databases!(forged_stale_or_misdirected_tokens_are_refused_with_a_uniform_401);

async fn a_token_signed_by_the_configured_rs256_key_is_accepted(backend: Backend) {
    // Arrange
    let app = spawn_app(backend).await;
    let cb = uuid::Uuid::now_v7().to_string();

    // Act
    let reply = list_engagements(&app, Some(format!("Bearer {}", rs256(&claims("auditor", Some(&cb), 0, 600))))).await;
    let expired =
        list_engagements(&app, Some(format!("Bearer {}", rs256(&claims("auditor", Some(&cb), -900, -600))))).await;

    // Assert
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(expired.status, 401, "RS256 tokens are checked like HS256 ones");
}
on_both_databases!(a_token_signed_by_the_configured_rs256_key_is_accepted);
