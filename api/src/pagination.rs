//! Keyset pagination: `limit` and an opaque `cursor` (the last id seen; ids are time-ordered UUIDv7).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Datelike, NaiveDate};
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select};
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

/// A list ordered by a date, then id (audits by first day, deadlines and corrective actions by due
/// date): its cursor holds both, and the next page starts after that pair.
pub fn decode_dated_cursor(cursor: Option<&str>) -> Result<Option<(NaiveDate, Uuid)>, ApiError> {
    cursor
        .map(|c| {
            let bytes = URL_SAFE_NO_PAD.decode(c).ok().filter(|b| b.len() == 20);
            bytes
                .and_then(|b| {
                    let days = i32::from_be_bytes(b[16..20].try_into().ok()?);
                    Some((NaiveDate::from_num_days_from_ce_opt(days)?, Uuid::from_slice(&b[..16]).ok()?))
                })
                .ok_or_else(|| ApiError::InvalidQuery("cursor is not one this API issued".into()))
        })
        .transpose()
}

/// Builds a page of a list ordered by (date, id) from up to `limit + 1` rows in that order.
pub fn dated_page_of<R, T>(
    mut rows: Vec<R>,
    limit: u64,
    key_of: impl Fn(&R) -> (NaiveDate, Uuid),
    view: impl FnMut(R) -> T,
) -> Page<T> {
    let has_more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = has_more
        .then(|| {
            rows.last().map(|r| {
                let (date, id) = key_of(r);
                let mut bytes = id.as_bytes().to_vec();
                bytes.extend_from_slice(&date.num_days_from_ce().to_be_bytes());
                URL_SAFE_NO_PAD.encode(bytes)
            })
        })
        .flatten();
    Page { items: rows.into_iter().map(view).collect(), next_cursor }
}

/// `select` ordered by (`date`, `id`), `limit + 1` rows from after `cursor`.
pub fn dated_page<E: EntityTrait>(
    select: Select<E>,
    date: impl ColumnTrait,
    id: impl ColumnTrait,
    cursor: Option<(NaiveDate, Uuid)>,
    limit: u64,
) -> Select<E> {
    let select = select.order_by_asc(date).order_by_asc(id).limit(limit + 1);
    match cursor {
        None => select,
        Some((after_date, after_id)) => select.filter(
            Condition::any()
                .add(date.gt(after_date))
                .add(Condition::all().add(date.eq(after_date)).add(id.gt(after_id))),
        ),
    }
}

/// `select` ordered by `id`, `limit + 1` rows from after `cursor`.
pub fn id_page<E: EntityTrait>(select: Select<E>, id: impl ColumnTrait, cursor: Option<Uuid>, limit: u64) -> Select<E> {
    let select = select.order_by_asc(id).limit(limit + 1);
    match cursor {
        None => select,
        Some(after) => select.filter(id.gt(after)),
    }
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

    #[test]
    fn a_dated_cursor_round_trips_and_an_id_cursor_is_not_one() {
        let rows: Vec<(NaiveDate, Uuid)> =
            (1..=3).map(|d| (NaiveDate::from_ymd_opt(2026, 3, d).unwrap(), Uuid::now_v7())).collect();
        let page = dated_page_of(rows.clone(), 2, |r| *r, |r| r);
        assert_eq!(decode_dated_cursor(page.next_cursor.as_deref()).unwrap(), Some(rows[1]));
        let id_cursor = page_of(vec![rows[0].1, rows[1].1], 1, |id| *id, |id| id).next_cursor;
        assert!(decode_dated_cursor(id_cursor.as_deref()).is_err());
    }
}
