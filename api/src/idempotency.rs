//! `Idempotency-Key` on POST: the first request with a key runs and its response is stored; a
//! retry with the same key and the same request gets the stored response (`Idempotency-Replayed:
//! true`), the same key with another request is a 422, and a retry while the first still runs is
//! a 409. Keys belong to the whole caller (role, scope and subject: two tokens that share a subject
//! but not a tenant never see each other's answers) and are kept for 24 hours; the worker purges
//! older ones.
//!
//! The key is recorded by the engine's write path, in the transaction of the handler's write
//! ([`IdempotencyClaim`] handed to `Engine::begin`), and so is its response ([`commit`]): a request
//! that dies before its commit leaves no key (its retry runs), and one that committed always leaves
//! the key with its response (its retry never runs twice, and gets that response, whatever became
//! of the process after the commit).

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpResponse, web};
use engine::Write;
use engine::idempotency::{Claim, StoredResponse};
use sha2::{Digest, Sha256};

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::{AppState, JSON_BODY_LIMIT};

/// The request header.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
/// Set on a replayed response.
pub const IDEMPOTENCY_REPLAYED: &str = "Idempotency-Replayed";
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
    let claim = Claim { owner: user.identity(), key, fingerprint, now };
    match app.earlier_response(&claim).await {
        Ok(None) => {}
        Ok(Some(stored)) => return Ok(request.into_response(replay(&stored)?)),
        Err(refusal) => return Ok(request.error_response(ApiError::from(refusal)).map_into_boxed_body()),
    }
    request.extensions_mut().insert(IdempotencyClaim(Some(claim)));
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

/// The key of a POST, recorded by the engine in the transaction of the handler's write.
#[derive(Debug, Clone, Default)]
pub struct IdempotencyClaim(Option<Claim>);

impl IdempotencyClaim {
    /// The claim the engine records with the write, if the request has a key.
    pub fn claim(&self) -> Option<Claim> {
        self.0.clone()
    }
}

impl FromRequest for IdempotencyClaim {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(request: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(Ok(request.extensions().get::<IdempotencyClaim>().cloned().unwrap_or_default()))
    }
}

/// Commits `write` and answers with `response`, which is stored with the write's idempotency key
/// (when it has one) in the same transaction: once the write is there, so is the answer its
/// retries get.
pub async fn commit(write: Write, response: HttpResponse) -> Result<HttpResponse, ApiError> {
    if !write.keeps_response() {
        write.commit(None).await?;
        return Ok(response);
    }
    let status = response.status();
    let headers = kept_headers(&response);
    let body = actix_web::body::to_bytes(response.into_body())
        .await
        .map_err(|_| ApiError::unexpected(anyhow::anyhow!("BUG: a response body could not be read")))?;
    let stored = StoredResponse { status: status.as_u16(), headers, body: body.to_vec() };
    write.commit(Some(&stored)).await?;
    let mut answer = HttpResponse::build(status);
    insert_kept_headers(&mut answer, &stored.headers);
    Ok(answer.body(body))
}

fn replay(stored: &StoredResponse) -> Result<HttpResponse, actix_web::Error> {
    let status = StatusCode::from_u16(stored.status)
        .map_err(|_| actix_web::error::ErrorInternalServerError("a stored response has no valid status"))?;
    let mut response = HttpResponse::build(status);
    insert_kept_headers(&mut response, &stored.headers);
    response.insert_header((IDEMPOTENCY_REPLAYED, "true"));
    Ok(response.body(stored.body.clone()))
}

fn bytes_payload(body: web::Bytes) -> actix_web::dev::Payload {
    let stream = futures::stream::once(async move { Ok::<_, actix_web::error::PayloadError>(body) });
    let stream: std::pin::Pin<Box<dyn futures::Stream<Item = _>>> = Box::pin(stream);
    actix_web::dev::Payload::from(stream)
}
