//! `Idempotency-Key` on POST: the first request with a key runs and its response is stored; a
//! retry with the same key and the same request gets the stored response (`Idempotency-Replayed:
//! true`), the same key with another request is a 422, and a retry while the first still runs is
//! a 409. Keys belong to the caller (its token's subject) and are kept for 24 hours.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use entities::orm::{idempotency_key, prelude::*};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use sha2::{Digest, Sha256};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::startup::{AppState, JSON_BODY_LIMIT};

/// The request header.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// Set on a replayed response.
pub const IDEMPOTENCY_REPLAYED: &str = "Idempotency-Replayed";
/// How long a key is remembered.
const RETENTION: Duration = Duration::hours(24);
/// A request still running after this long is taken to have died with its process.
const ABANDONED_AFTER: Duration = Duration::minutes(5);
/// The response headers kept with the body.
const KEPT_HEADERS: [&str; 3] = ["content-type", "location", "etag"];

/// The middleware: does nothing unless the request is a POST with an `Idempotency-Key`.
pub async fn idempotency(
    mut request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(key) = request.headers().get(IDEMPOTENCY_KEY).cloned() else {
        return Ok(next.call(request).await?.map_into_boxed_body());
    };
    if request.method() != Method::POST {
        return Ok(next.call(request).await?.map_into_boxed_body());
    }
    let key =
        match key.to_str().ok().filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic())) {
            Some(key) => key.to_owned(),
            None => {
                let refusal = ApiError::invalid(IDEMPOTENCY_KEY, "must be 1 to 255 visible ASCII characters");
                return Ok(request.error_response(refusal).map_into_boxed_body());
            }
        };
    // An unauthenticated request is refused by its handler; there is no caller to keep a key for.
    let Ok(user) = AuthUser::extract(request.request()).await else {
        return Ok(next.call(request).await?.map_into_boxed_body());
    };
    let Some(app) = request.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(next.call(request).await?.map_into_boxed_body());
    };
    let body = match request.extract::<web::Bytes>().await {
        Ok(body) if body.len() <= JSON_BODY_LIMIT => body,
        _ => {
            let refusal = ApiError::PayloadTooLarge { limit: JSON_BODY_LIMIT };
            return Ok(request.error_response(refusal).map_into_boxed_body());
        }
    };
    let fingerprint = fingerprint(request.method(), &request.uri().to_string(), &body);
    let now = app.clock.now();
    match claim(&app, &user.subject, &key, &fingerprint, now).await {
        Ok(Claim::Run) => {}
        Ok(Claim::Replay(stored)) => return Ok(request.into_response(replay(&stored)?)),
        Err(refusal) => return Ok(request.error_response(refusal).map_into_boxed_body()),
    }
    request.set_payload(bytes_payload(body));
    let response = match next.call(request).await {
        Ok(response) => response,
        Err(error) => {
            forget(&app, &user.subject, &key).await;
            return Err(error);
        }
    };
    let (http_request, response) = response.into_parts();
    let status = response.status();
    let headers: serde_json::Map<String, serde_json::Value> = KEPT_HEADERS
        .iter()
        .filter_map(|name| {
            let value = response.headers().get(*name)?.to_str().ok()?;
            Some(((*name).to_owned(), serde_json::Value::String(value.to_owned())))
        })
        .collect();
    let body = actix_web::body::to_bytes(response.into_body())
        .await
        .map_err(|_| actix_web::error::ErrorInternalServerError("the response body could not be read"));
    let body = match body {
        Ok(body) => body,
        Err(error) => {
            forget(&app, &user.subject, &key).await;
            return Err(error);
        }
    };
    if status.is_server_error() {
        // Nothing was done, or nobody knows: the client may try again with the same key.
        forget(&app, &user.subject, &key).await;
    } else {
        let stored = IdempotencyKey::update_many()
            .col_expr(
                idempotency_key::Column::ResponseStatus,
                sea_orm::sea_query::Expr::value(i32::from(status.as_u16())),
            )
            .col_expr(
                idempotency_key::Column::ResponseHeaders,
                sea_orm::sea_query::Expr::value(serde_json::Value::Object(headers.clone())),
            )
            .col_expr(idempotency_key::Column::ResponseBody, sea_orm::sea_query::Expr::value(body.to_vec()))
            .filter(idempotency_key::Column::Subject.eq(&user.subject))
            .filter(idempotency_key::Column::IdempotencyKey.eq(&key))
            .exec(&app.db)
            .await;
        if let Err(error) = stored {
            tracing::error!(%error, "the response to an idempotent request could not be stored");
        }
    }
    let mut rebuilt = HttpResponse::build(status);
    for (name, value) in &headers {
        if let (Ok(name), Some(Ok(value))) =
            (HeaderName::try_from(name.as_str()), value.as_str().map(HeaderValue::from_str))
        {
            rebuilt.insert_header((name, value));
        }
    }
    Ok(ServiceResponse::new(http_request, rebuilt.body(body)))
}

/// The request's method, target and body, hashed.
fn fingerprint(method: &Method, target: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_str().as_bytes());
    hasher.update(b"\n");
    hasher.update(target.as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    format!("{:x}", hasher.finalize())
}

enum Claim {
    /// The key is new (or expired, or abandoned): run the request.
    Run,
    /// The stored response.
    Replay(idempotency_key::Model),
}

async fn claim(
    app: &AppState,
    subject: &str,
    key: &str,
    fingerprint: &str,
    now: DateTime<Utc>,
) -> Result<Claim, ApiError> {
    let this_key = || {
        sea_orm::Condition::all()
            .add(idempotency_key::Column::Subject.eq(subject))
            .add(idempotency_key::Column::IdempotencyKey.eq(key))
    };
    IdempotencyKey::delete_many()
        .filter(this_key())
        .filter(idempotency_key::Column::CreatedAt.lt(now - RETENTION))
        .exec(&app.db)
        .await?;
    let inserted = IdempotencyKey::insert(idempotency_key::ActiveModel {
        subject: Set(subject.to_owned()),
        idempotency_key: Set(key.to_owned()),
        request_fingerprint: Set(fingerprint.to_owned()),
        response_status: Set(None),
        response_headers: Set(None),
        response_body: Set(None),
        created_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([idempotency_key::Column::Subject, idempotency_key::Column::IdempotencyKey])
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(&app.db)
    .await?;
    if inserted == 1 {
        return Ok(Claim::Run);
    }
    let stored = IdempotencyKey::find().filter(this_key()).one(&app.db).await?;
    let Some(stored) = stored else {
        // Expired and removed between the two statements: ask for a retry rather than guess.
        return Err(in_progress());
    };
    if stored.request_fingerprint != fingerprint {
        return Err(ApiError::Unprocessable {
            slug: "idempotency-key-reused",
            detail: format!("the {IDEMPOTENCY_KEY} was used for another request: use a new key for a new request"),
        });
    }
    if stored.response_status.is_some() {
        return Ok(Claim::Replay(stored));
    }
    // Still running, or its process died: take an abandoned claim over, once.
    let taken = IdempotencyKey::update_many()
        .col_expr(idempotency_key::Column::CreatedAt, sea_orm::sea_query::Expr::value(now))
        .filter(this_key())
        .filter(idempotency_key::Column::ResponseStatus.is_null())
        .filter(idempotency_key::Column::CreatedAt.lt(now - ABANDONED_AFTER))
        .exec(&app.db)
        .await?;
    if taken.rows_affected == 1 { Ok(Claim::Run) } else { Err(in_progress()) }
}

fn in_progress() -> ApiError {
    ApiError::conflict(
        "idempotency-key-in-progress",
        format!("a request with this {IDEMPOTENCY_KEY} is still running: try again in a moment"),
    )
}

async fn forget(app: &AppState, subject: &str, key: &str) {
    let removed = IdempotencyKey::delete_many()
        .filter(idempotency_key::Column::Subject.eq(subject))
        .filter(idempotency_key::Column::IdempotencyKey.eq(key))
        .filter(idempotency_key::Column::ResponseStatus.is_null())
        .exec(&app.db)
        .await;
    if let Err(error) = removed {
        tracing::warn!(%error, "an idempotency key could not be released; it is retried after 5 minutes");
    }
}

fn replay(stored: &idempotency_key::Model) -> Result<HttpResponse, actix_web::Error> {
    let status = stored
        .response_status
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| actix_web::error::ErrorInternalServerError("a stored response has no status"))?;
    let mut response = HttpResponse::build(status);
    if let Some(headers) = stored.response_headers.as_ref().and_then(|h| h.as_object()) {
        for (name, value) in headers {
            if let (Ok(name), Some(Ok(value))) =
                (HeaderName::try_from(name.as_str()), value.as_str().map(HeaderValue::from_str))
            {
                response.insert_header((name, value));
            }
        }
    }
    response.insert_header((IDEMPOTENCY_REPLAYED, "true"));
    Ok(response.body(stored.response_body.clone().unwrap_or_default()))
}

fn bytes_payload(body: web::Bytes) -> actix_web::dev::Payload {
    let stream = futures::stream::once(async move { Ok::<_, actix_web::error::PayloadError>(body) });
    let stream: std::pin::Pin<Box<dyn futures::Stream<Item = _>>> = Box::pin(stream);
    actix_web::dev::Payload::from(stream)
}
