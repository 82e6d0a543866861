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
pub fn page_of<R, T>(rows: Vec<R>, limit: u64, id_of: impl Fn(&R) -> Uuid, view: impl FnMut(R) -> T) -> Page<T> {
    page_with(rows, limit, |r| URL_SAFE_NO_PAD.encode(id_of(r).as_bytes()), view)
}

/// Builds a page from up to `limit + 1` rows in the list's order, the cursor from its last row.
fn page_with<R, T>(
    mut rows: Vec<R>,
    limit: u64,
    cursor_of: impl Fn(&R) -> String,
    view: impl FnMut(R) -> T,
) -> Page<T> {
    let has_more = rows.len() as u64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = has_more.then(|| rows.last().map(&cursor_of)).flatten();
    Page { items: rows.into_iter().map(view).collect(), next_cursor }
}

/// A sort key a cursor can carry beside the id: a list ordered by (key, id) (audits by first
/// day, deadlines and corrective actions by due date, proposals by price) starts its next page
/// after that pair.
pub trait CursorKey: Sized + Copy + Into<sea_orm::Value> {
    /// The key's bytes in the cursor.
    fn to_bytes(self) -> Vec<u8>;
    /// The key read back from its bytes (`None`: not a key of this kind).
    fn from_bytes(bytes: &[u8]) -> Option<Self>;
}

impl CursorKey for NaiveDate {
    fn to_bytes(self) -> Vec<u8> {
        self.num_days_from_ce().to_be_bytes().to_vec()
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        NaiveDate::from_num_days_from_ce_opt(i32::from_be_bytes(bytes.try_into().ok()?))
    }
}

impl CursorKey for i64 {
    fn to_bytes(self) -> Vec<u8> {
        self.to_be_bytes().to_vec()
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Some(i64::from_be_bytes(bytes.try_into().ok()?))
    }
}

/// An instant, to the nanosecond (a list of records in the order they were made: what a row holds
/// is what its cursor holds, on either database).
impl CursorKey for chrono::DateTime<chrono::Utc> {
    fn to_bytes(self) -> Vec<u8> {
        let nanos = self.timestamp_nanos_opt().unwrap_or(i64::MAX);
        // A byte of its own: an instant's cursor is never read as a price's (also 8 bytes).
        let mut bytes = vec![b't'];
        bytes.extend_from_slice(&nanos.to_be_bytes());
        bytes
    }

    fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (b't', nanos) = bytes.split_first()? else { return None };
        Some(chrono::DateTime::from_timestamp_nanos(i64::from_be_bytes(nanos.try_into().ok()?)))
    }
}

/// Decodes the cursor of a list ordered by (key, id).
pub fn decode_keyed_cursor<K: CursorKey>(cursor: Option<&str>) -> Result<Option<(K, Uuid)>, ApiError> {
    cursor
        .map(|c| {
            let bytes = URL_SAFE_NO_PAD.decode(c).ok().filter(|b| b.len() > 16);
            bytes
                .and_then(|b| Some((K::from_bytes(&b[16..])?, Uuid::from_slice(&b[..16]).ok()?)))
                .ok_or_else(|| ApiError::InvalidQuery("cursor is not one this API issued".into()))
        })
        .transpose()
}

/// The cursor after the row at (`key`, `id`).
pub fn keyed_cursor<K: CursorKey>(key: K, id: Uuid) -> String {
    let mut bytes = id.as_bytes().to_vec();
    bytes.extend_from_slice(&key.to_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Builds a page of a list ordered by (key, id) from up to `limit + 1` rows in that order.
pub fn keyed_page_of<R, T, K: CursorKey>(
    rows: Vec<R>,
    limit: u64,
    key_of: impl Fn(&R) -> (K, Uuid),
    view: impl FnMut(R) -> T,
) -> Page<T> {
    page_with(
        rows,
        limit,
        |r| {
            let (key, id) = key_of(r);
            keyed_cursor(key, id)
        },
        view,
    )
}

/// The first `count` rows of two lists each in (key, id) order, in that order: a page of a list
/// kept in two tables, each read a page long from the same cursor.
pub fn merge_pages<R, K: Ord>(
    mut one: Vec<R>,
    other: Vec<R>,
    count: usize,
    key_of: impl Fn(&R) -> (K, Uuid),
) -> Vec<R> {
    one.extend(other);
    one.sort_by_key(|r| key_of(r));
    one.truncate(count);
    one
}

/// `select` ordered by (`key`, `id`), `limit + 1` rows from after `cursor`.
pub fn keyed_page<E: EntityTrait, K: CursorKey>(
    select: Select<E>,
    key: impl ColumnTrait,
    id: impl ColumnTrait,
    cursor: Option<(K, Uuid)>,
    limit: u64,
) -> Select<E> {
    let select = select.order_by_asc(key).order_by_asc(id).limit(limit + 1);
    match cursor {
        None => select,
        Some((after_key, after_id)) => select.filter(
            Condition::any().add(key.gt(after_key)).add(Condition::all().add(key.eq(after_key)).add(id.gt(after_id))),
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
    fn a_page_of_two_lists_is_their_first_rows_in_key_then_id_order() {
        let id = |n: u128| Uuid::from_u128(n);
        let logged = vec![(1, id(9)), (3, id(1)), (3, id(4))];
        let kept = vec![(2, id(5)), (3, id(2)), (7, id(1))];
        let page = merge_pages(logged, kept, 4, |r| *r);
        assert_eq!(page, vec![(1, id(9)), (2, id(5)), (3, id(1)), (3, id(2))]);
    }

    #[test]
    fn a_page_of_two_short_lists_is_all_of_both() {
        let id = |n: u128| Uuid::from_u128(n);
        let page = merge_pages(vec![(5, id(1))], vec![(4, id(2))], 51, |r| *r);
        assert_eq!(page, vec![(4, id(2)), (5, id(1))]);
    }

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
    fn a_keyed_cursor_round_trips_and_one_of_another_kind_is_refused() {
        let rows: Vec<(NaiveDate, Uuid)> =
            (1..=3).map(|d| (NaiveDate::from_ymd_opt(2026, 3, d).unwrap(), Uuid::now_v7())).collect();
        let page = keyed_page_of(rows.clone(), 2, |r| *r, |r| r);
        assert_eq!(decode_keyed_cursor::<NaiveDate>(page.next_cursor.as_deref()).unwrap(), Some(rows[1]));
        assert!(decode_keyed_cursor::<i64>(page.next_cursor.as_deref()).is_err(), "a date is not a price");
        let id_cursor = page_of(vec![rows[0].1, rows[1].1], 1, |id| *id, |id| id).next_cursor;
        assert!(decode_keyed_cursor::<NaiveDate>(id_cursor.as_deref()).is_err());
        let priced = keyed_page_of(vec![(150_000_i64, rows[0].1), (200_000, rows[1].1)], 1, |r| *r, |r| r);
        assert_eq!(decode_keyed_cursor::<i64>(priced.next_cursor.as_deref()).unwrap(), Some((150_000, rows[0].1)));
        let at = chrono::DateTime::from_timestamp_nanos(1_796_000_000_123_456_789);
        let made = keyed_page_of(vec![(at, rows[0].1), (at, rows[1].1)], 1, |r| *r, |r| r);
        let cursor = made.next_cursor.as_deref();
        assert_eq!(decode_keyed_cursor::<chrono::DateTime<chrono::Utc>>(cursor).unwrap(), Some((at, rows[0].1)));
        assert!(decode_keyed_cursor::<i64>(cursor).is_err(), "an instant is not a price");
        assert!(decode_keyed_cursor::<chrono::DateTime<chrono::Utc>>(priced.next_cursor.as_deref()).is_err());
    }
}
