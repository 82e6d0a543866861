//! Keyset pagination: `limit` and an opaque `cursor` (the last id seen; ids are time-ordered UUIDv7).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::ApiError;

/// The default and largest page sizes.
pub const DEFAULT_LIMIT: u64 = 50;
/// See [`DEFAULT_LIMIT`].
pub const MAX_LIMIT: u64 = 200;

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items, oldest first.
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Reads `limit` (1 to 200, default 50).
pub fn limit_of(limit: Option<u64>) -> Result<u64, ApiError> {
    match limit {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::InvalidQuery(format!("limit must be between 1 and {MAX_LIMIT}"))),
    }
}

/// Decodes a cursor.
pub fn decode_cursor(cursor: Option<&str>) -> Result<Option<Uuid>, ApiError> {
    cursor
        .map(|c| {
            URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|bytes| Uuid::from_slice(&bytes).ok())
                .ok_or_else(|| ApiError::InvalidQuery("cursor is not one this API issued".into()))
        })
        .transpose()
}

/// Builds a page from up to `limit + 1` rows fetched in id order.
pub fn page_of<R, T>(mut rows: Vec<R>, limit: u64, id_of: impl Fn(&R) -> Uuid, view: impl Fn(R) -> T) -> Page<T> {
    let has_more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = has_more.then(|| rows.last().map(|r| URL_SAFE_NO_PAD.encode(id_of(r).as_bytes()))).flatten();
    Page { items: rows.into_iter().map(view).collect(), next_cursor }
}

/// Query parameters of a plain paged list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u64>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_garbage_is_refused() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let page = page_of(ids.clone(), 2, |id| *id, |id| id);
        assert_eq!(page.items, ids[..2]);
        assert_eq!(decode_cursor(page.next_cursor.as_deref()).unwrap(), Some(ids[1]));
        assert!(page_of(ids.clone(), 3, |id| *id, |id| id).next_cursor.is_none());
        assert!(decode_cursor(Some("not a cursor")).is_err());
        assert!(limit_of(Some(0)).is_err() && limit_of(Some(201)).is_err());
    }
}
