//! `Idempotency-Key` on POST: the first request with a key runs and its response is stored; a
//! retry with the same key and the same request gets the stored response (`Idempotency-Replayed:
//! true`), the same key with another request is a 422, and a retry while the first still runs is
//! a 409. Keys belong to the caller (its token's subject) and are kept for 24 hours.
//!
//! The key is recorded by the handler, in the transaction of its write ([`IdempotencyClaim`],
//! `db::begin_write_claiming`), and so is its response ([`IdempotencyClaim::commit`]): a request
//! that dies before its commit leaves no key (its retry runs), and one that committed always leaves
//! the key with its response (its retry never runs twice, and gets that response, whatever became
//! of the process after the commit).

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpResponse, web};
use chrono::{DateTime, Duration, Utc};
use entities::orm::{idempotency_key, prelude::*};
use sea_orm::sea_query::Expr;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter};
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
    match earlier(&app, &user.subject, &key, &fingerprint, now).await {
        Ok(None) => {}
        Ok(Some(stored)) => return Ok(request.into_response(replay(&stored)?)),
        Err(refusal) => return Ok(request.error_response(refusal).map_into_boxed_body()),
    }
    request.extensions_mut().insert(IdempotencyClaim(Some(ClaimRecord {
        subject: user.subject.clone(),
        key: key.clone(),
        fingerprint,
        now,
    })));
    request.set_payload(bytes_payload(body));
    Ok(next.call(request).await?.map_into_boxed_body())
}

/// The headers of `response` kept with its body (name to string).
fn kept_headers(response: &HttpResponse) -> serde_json::Map<String, serde_json::Value> {
    KEPT_HEADERS
        .iter()
        .filter_map(|name| {
            let value = response.headers().get(*name)?.to_str().ok()?;
            Some(((*name).to_owned(), serde_json::Value::String(value.to_owned())))
        })
        .collect()
}

/// Puts the kept headers (as stored: name to string) on a response.
fn insert_kept_headers(
    response: &mut actix_web::HttpResponseBuilder,
    headers: &serde_json::Map<String, serde_json::Value>,
) {
    for (name, value) in headers {
        if let (Ok(name), Some(Ok(value))) =
            (HeaderName::try_from(name.as_str()), value.as_str().map(HeaderValue::from_str))
        {
            response.insert_header((name, value));
        }
    }
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

/// The key of a POST, recorded by its handler in the transaction of its write.
#[derive(Debug, Clone, Default)]
pub struct IdempotencyClaim(Option<ClaimRecord>);

#[derive(Debug, Clone)]
struct ClaimRecord {
    subject: String,
    key: String,
    fingerprint: String,
    now: DateTime<Utc>,
}

impl FromRequest for IdempotencyClaim {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(request: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        use actix_web::HttpMessage;
        std::future::ready(Ok(request.extensions().get::<IdempotencyClaim>().cloned().unwrap_or_default()))
    }
}

impl IdempotencyClaim {
    /// Records the key in `txn`. Another request with the same key that committed first (a
    /// concurrent retry) makes this one a 409, and its transaction is dropped unwritten.
    pub async fn record(&self, txn: &DatabaseTransaction) -> Result<(), ApiError> {
        let Some(claim) = &self.0 else { return Ok(()) };
        let inserted = IdempotencyKey::insert(idempotency_key::ActiveModel {
            subject: Set(claim.subject.clone()),
            idempotency_key: Set(claim.key.clone()),
            request_fingerprint: Set(claim.fingerprint.clone()),
            response_status: Set(None),
            response_headers: Set(None),
            response_body: Set(None),
            created_at: Set(claim.now),
        })
        .on_conflict(
            OnConflict::columns([idempotency_key::Column::Subject, idempotency_key::Column::IdempotencyKey])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(txn)
        .await?;
        if inserted == 1 { Ok(()) } else { Err(in_progress()) }
    }

    /// Commits `txn` with `response` stored under the request's key (when it has one) in the same
    /// transaction: once the write is there, so is the answer its retries get.
    pub async fn commit(&self, txn: DatabaseTransaction, response: HttpResponse) -> Result<HttpResponse, ApiError> {
        let Some(claim) = &self.0 else {
            txn.commit().await?;
            return Ok(response);
        };
        let status = response.status();
        let headers = kept_headers(&response);
        let body = actix_web::body::to_bytes(response.into_body())
            .await
            .map_err(|_| ApiError::Unexpected(anyhow::anyhow!("BUG: a response body could not be read")))?;
        IdempotencyKey::update_many()
            .col_expr(idempotency_key::Column::ResponseStatus, Expr::value(i32::from(status.as_u16())))
            .col_expr(idempotency_key::Column::ResponseHeaders, Expr::value(serde_json::Value::Object(headers.clone())))
            .col_expr(idempotency_key::Column::ResponseBody, Expr::value(body.to_vec()))
            .filter(idempotency_key::Column::Subject.eq(&claim.subject))
            .filter(idempotency_key::Column::IdempotencyKey.eq(&claim.key))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        let mut stored = HttpResponse::build(status);
        insert_kept_headers(&mut stored, &headers);
        Ok(stored.body(body))
    }
}

/// What an earlier request with this key says: nothing (run this one), its stored response, or a
/// refusal (another request used the key; or a key without a response, which only a version that
/// stored responses after the commit can have left).
async fn earlier(
    app: &AppState,
    subject: &str,
    key: &str,
    fingerprint: &str,
    now: DateTime<Utc>,
) -> Result<Option<idempotency_key::Model>, ApiError> {
    let this_key = || {
        sea_orm::Condition::all()
            .add(idempotency_key::Column::Subject.eq(subject))
            .add(idempotency_key::Column::IdempotencyKey.eq(key))
    };
    IdempotencyKey::delete_many()
        .filter(this_key())
        .filter(idempotency_key::Column::CreatedAt.lt(now - RETENTION))
        .exec(&app.writer)
        .await?;
    let Some(stored) = IdempotencyKey::find().filter(this_key()).one(&app.db).await? else {
        return Ok(None);
    };
    if stored.request_fingerprint != fingerprint {
        return Err(ApiError::Unprocessable {
            slug: "idempotency-key-reused",
            detail: format!("the {IDEMPOTENCY_KEY} was used for another request: use a new key for a new request"),
        });
    }
    if stored.response_status.is_some() { Ok(Some(stored)) } else { Err(in_progress()) }
}

fn in_progress() -> ApiError {
    ApiError::conflict(
        "idempotency-key-in-progress",
        format!(
            "another request with this {IDEMPOTENCY_KEY} is being carried out: try again in a moment for its \
             response"
        ),
    )
}

fn replay(stored: &idempotency_key::Model) -> Result<HttpResponse, actix_web::Error> {
    let status = stored
        .response_status
        .and_then(|s| u16::try_from(s).ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .ok_or_else(|| actix_web::error::ErrorInternalServerError("a stored response has no status"))?;
    let mut response = HttpResponse::build(status);
    if let Some(headers) = stored.response_headers.as_ref().and_then(|h| h.as_object()) {
        insert_kept_headers(&mut response, headers);
    }
    response.insert_header((IDEMPOTENCY_REPLAYED, "true"));
    Ok(response.body(stored.response_body.clone().unwrap_or_default()))
}

fn bytes_payload(body: web::Bytes) -> actix_web::dev::Payload {
    let stream = futures::stream::once(async move { Ok::<_, actix_web::error::PayloadError>(body) });
    let stream: std::pin::Pin<Box<dyn futures::Stream<Item = _>>> = Box::pin(stream);
    actix_web::dev::Payload::from(stream)
}
