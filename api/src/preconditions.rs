//! Preconditions a request states in its headers: the version it last read (`If-Match`).

use crate::error::ApiError;

/// The version an `If-Match` header expects (`"3"`, `W/"3"` or `3`), if the request has one.
pub fn if_match(request: &actix_web::HttpRequest) -> Result<Option<i32>, ApiError> {
    let Some(value) = request.headers().get(actix_web::http::header::IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse::<i32>().ok())
        .map(Some)
        .ok_or_else(|| ApiError::invalid("If-Match", "must be the resource's version, e.g. \"3\""))
}

/// The version a write expects: `If-Match`, or the body's `version` (both must then agree).
pub fn expected_version(request: &actix_web::HttpRequest, in_body: Option<i32>) -> Result<Option<i32>, ApiError> {
    match (if_match(request)?, in_body) {
        (Some(header), Some(body)) if header != body => {
            Err(ApiError::invalid("version", format!("{body} differs from If-Match ({header})")))
        }
        (header, body) => Ok(header.or(body)),
    }
}
