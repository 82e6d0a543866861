//! Transactions and the look-ups every route shares.

use entities::orm::{engagement, prelude::*};
pub use entities::orm::{json_strings, strings_of};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::access::{Action, engagements_in};
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::idempotency::IdempotencyClaim;

/// Begins a transaction that will write (see [`migration::begin_write`]).
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, ApiError> {
    Ok(migration::begin_write(db).await?)
}

/// Begins a write transaction that also records the request's `Idempotency-Key` (if any): the key
/// is committed with the write or not at all, so a retry after a crash never runs a committed
/// write twice, and never waits on a write that died uncommitted.
pub async fn begin_write_claiming(
    db: &DatabaseConnection,
    claim: &IdempotencyClaim,
) -> Result<DatabaseTransaction, ApiError> {
    let txn = begin_write(db).await?;
    claim.record(&txn).await?;
    Ok(txn)
}

/// The engagement `id`, or 404 when it does not exist or `user` does not see it.
pub async fn find_engagement(
    conn: &impl ConnectionTrait,
    user: &AuthUser,
    id: Uuid,
) -> Result<engagement::Model, ApiError> {
    Engagement::find_by_id(id)
        .filter(engagements_in(user.tenancy))
        .one(conn)
        .await?
        .ok_or(ApiError::NotFound("engagement"))
}

/// The engagement `id`, locked for the rest of the transaction (`FOR UPDATE` on PostgreSQL;
/// SQLite's write transaction already excludes other writers), or 404 as [`find_engagement`];
/// then 403 unless `user` may do `action`.
pub async fn lock_engagement(
    txn: &DatabaseTransaction,
    user: &AuthUser,
    id: Uuid,
    action: Action,
) -> Result<engagement::Model, ApiError> {
    let engagement = Engagement::find_by_id(id)
        .filter(engagements_in(user.tenancy))
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or(ApiError::NotFound("engagement"))?;
    user.may(action)?;
    Ok(engagement)
}

/// Refuses a row that belongs to another engagement as if it did not exist.
pub fn belongs<T>(
    row: Option<T>,
    engagement_of: impl Fn(&T) -> Uuid,
    engagement_id: Uuid,
    what: &'static str,
) -> Result<T, ApiError> {
    row.filter(|r| engagement_of(r) == engagement_id).ok_or(ApiError::NotFound(what))
}

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

/// Refuses a write when `If-Match` expected another version than `current`.
pub fn check_version(expected: Option<i32>, current: i32) -> Result<(), ApiError> {
    match expected {
        Some(expected) if expected != current => Err(ApiError::PreconditionFailed { expected, current }),
        _ => Ok(()),
    }
}

/// Maps a unique-constraint violation to a client error; the database, not a prior look-up,
/// enforces uniqueness.
pub trait UniqueViolation<T> {
    /// `conflict()` when the write broke a unique constraint, else the database error.
    fn on_unique_violation(self, conflict: impl FnOnce() -> ApiError) -> Result<T, ApiError>;
}

impl<T> UniqueViolation<T> for Result<T, sea_orm::DbErr> {
    fn on_unique_violation(self, conflict: impl FnOnce() -> ApiError) -> Result<T, ApiError> {
        self.map_err(|error| match error.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => conflict(),
            _ => error.into(),
        })
    }
}

/// Refuses to record new `what` (audits, findings, corrective actions) for an engagement that has
/// ended (withdrawn or cancelled): they would open deadlines, and send reminders, for nothing.
pub fn require_open(engagement: &engagement::Model, what: &str) -> Result<(), ApiError> {
    if engagement.state.is_terminal() {
        return Err(ApiError::conflict(
            "engagement-state-conflict",
            format!("the engagement is {} and takes no new {what}", engagement.state),
        ));
    }
    Ok(())
}
