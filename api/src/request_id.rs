//! Every request runs in a span with its request id: taken from `X-Request-Id` when the caller (or
//! a proxy) sent a usable one, made otherwise; echoed in the answer's `X-Request-Id` and in every
//! problem body (`request_id`), so a report of a refusal leads to its log lines. The span carries
//! the method, the path, once the token is checked the caller's subject and, on an engagement's
//! routes, the engagement's id; its one line at the end says the status and the time taken.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, web};
use tracing::Instrument;

use crate::state::AppState;

/// The header.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, in its extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// A caller's id is used when it is 1 to 128 visible ASCII characters; otherwise one is made.
fn usable(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// The middleware.
pub async fn trace_request(
    request: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let id = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| usable(id))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        path = %loggable_path(request.path()),
        subject = tracing::field::Empty,
        engagement_id = tracing::field::Empty,
    );
    request.extensions_mut().insert(RequestId(id.clone()));
    let response = next.call(request).instrument(span.clone()).await?.map_into_boxed_body();
    let mut response = with_request_id(response, &id).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    if let Some(engagement_id) = engagement_of(response.request()) {
        span.record("engagement_id", engagement_id);
    }
    // A stopping process closes each connection after its answer, so clients reconnect elsewhere.
    let stopping = response.request().app_data::<web::Data<AppState>>().is_some_and(|state| state.is_stopping());
    if stopping {
        response.response_mut().head_mut().set_connection_type(ConnectionType::Close);
    }
    let status = response.status().as_u16();
    let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
    span.in_scope(|| tracing::info!(status, elapsed_ms, "request"));
    Ok(response)
}

/// `path` as the logs keep it: the secrets some console paths carry (a sign-in link's token, a
/// calendar feed's key) replaced by `…`, so a log reader cannot sign in or read a feed.
pub fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    if let Some(token) = path.strip_prefix("/sign-in/")
        && !token.is_empty()
    {
        return "/sign-in/…".into();
    }
    if path.starts_with("/calendar/")
        && let Some((feed, _key)) = path.rsplit_once('/')
    {
        return format!("{feed}/….ics").into();
    }
    path.into()
}

/// The engagement a request was about, read from its route (`/api/v1/engagements/{id}/...`).
/// Read from the matched path's `id` (no copy of the route's pattern: the metrics middleware makes
/// the one copy a request needs).
fn engagement_of(request: &HttpRequest) -> Option<&str> {
    request.path().starts_with("/api/v1/engagements/").then(|| request.match_info().get("id")).flatten()
}

/// A problem body gets the request's id; other answers are left as they are.
async fn with_request_id(response: ServiceResponse<BoxBody>, id: &str) -> ServiceResponse<BoxBody> {
    let is_problem = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/problem+json"));
    if !is_problem {
        return response;
    }
    let (request, response) = response.into_parts();
    let (head, body) = response.into_parts();
    let bytes = match actix_web::body::to_bytes(body).await {
        Ok(bytes) => bytes,
        Err(_) => return ServiceResponse::new(request, head.set_body(BoxBody::new(()))),
    };
    let body = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(mut problem)) => {
            problem.insert("request_id".into(), serde_json::Value::String(id.to_owned()));
            serde_json::to_vec(&problem).unwrap_or_else(|_| bytes.to_vec())
        }
        _ => bytes.to_vec(),
    };
    let mut head = head;
    head.headers_mut().remove(actix_web::http::header::CONTENT_LENGTH);
    ServiceResponse::new(request, head.set_body(BoxBody::new(body)))
}

/// Records the authenticated caller's subject on the request's span.
pub fn record_subject(subject: &str) {
    tracing::Span::current().record("subject", subject);
}

#[cfg(test)]
mod secret_paths {
    use super::loggable_path;

    #[test]
    fn the_secrets_of_console_paths_stay_out_of_the_logs() {
        assert_eq!(loggable_path("/sign-in/abcDEF123"), "/sign-in/…");
        assert_eq!(loggable_path("/sign-in"), "/sign-in");
        assert_eq!(loggable_path("/calendar/0193/mine/SECRETKEY.ics"), "/calendar/0193/mine/….ics");
        assert_eq!(loggable_path("/api/v1/engagements/1"), "/api/v1/engagements/1");
    }
}

#[cfg(test)]
mod tests {
    use super::usable;

    #[test]
    fn a_caller_s_request_id_is_used_only_when_it_is_short_visible_ascii() {
        assert!(usable("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert!(!usable(""));
        assert!(!usable(&"x".repeat(129)));
        assert!(!usable("two words"));
        assert!(!usable("naïve"));
    }
}
