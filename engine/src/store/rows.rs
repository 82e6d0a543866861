//! The look-ups and checks every command shares: an engagement as a caller sees it (and locked
//! for a write), rows that must belong to it, versions, and unique constraints.

use std::collections::HashSet;

use entities::orm::{engagement, prelude::*};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, FromQueryResult, QueryFilter, QueryResult, QuerySelect, QueryTrait,
    Statement,
};
use uuid::Uuid;

use super::{Templates, WriteTransaction};
use crate::access::{Tenancy, engagement_records_in, engagements_in};
use crate::caller::Caller;
use crate::error::EngineError;

/// The engagement `id`, or 404 when it does not exist or `caller` does not see it.
pub async fn find_engagement(
    conn: &impl ConnectionTrait,
    caller: &Caller,
    id: Uuid,
) -> Result<engagement::Model, EngineError> {
    engagement_where(conn, id, engagements_in(caller.tenancy)).await
}

/// Engagement `id` if it meets `which`; a 404 otherwise.
async fn engagement_where(
    conn: &impl ConnectionTrait,
    id: Uuid,
    which: sea_orm::Condition,
) -> Result<engagement::Model, EngineError> {
    Engagement::find_by_id(id).filter(which).one(conn).await?.ok_or(EngineError::NotFound("engagement"))
}

/// The engagement `id` whose records `caller` reads (a 404 otherwise, as for one it does not see):
/// a certification body that has only bid reads the engagement and its own proposal, not its
/// records ([`crate::access::engagement_records_in`]).
pub async fn find_engagement_records(
    conn: &impl ConnectionTrait,
    caller: &Caller,
    id: Uuid,
) -> Result<engagement::Model, EngineError> {
    engagement_where(conn, id, engagement_records_in(caller.tenancy)).await
}

/// The certification bodies whose people's contacts `caller` may see: every one for the
/// platform; its own for a body's people; for an organization, the bodies selected for one of its
/// engagements (a bidder's or a stranger's coordinator stays private).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts {
    /// Every body's.
    All,
    /// These bodies'.
    Of(HashSet<Uuid>),
}

impl Contacts {
    /// Whether `body`'s contacts are shown.
    pub fn shows(&self, body: Uuid) -> bool {
        match self {
            Self::All => true,
            Self::Of(bodies) => bodies.contains(&body),
        }
    }
}

/// Whose contacts `caller` may see (one query for an organization).
pub async fn contacts_for(conn: &impl ConnectionTrait, caller: &Caller) -> Result<Contacts, EngineError> {
    Ok(match caller.tenancy {
        Tenancy::Platform => Contacts::All,
        Tenancy::CertificationBody(own) => Contacts::Of(HashSet::from([own])),
        Tenancy::Organization(organization) => {
            let selected: Vec<Option<Uuid>> = Engagement::find()
                .select_only()
                .column(engagement::Column::CertificationBodyId)
                .filter(engagement::Column::OrganizationId.eq(organization))
                .filter(engagement::Column::CertificationBodyId.is_not_null())
                .distinct()
                .into_tuple()
                .all(conn)
                .await?;
            Contacts::Of(selected.into_iter().flatten().collect())
        }
    })
}

/// The engagement `id`, locked for the rest of the transaction (`FOR UPDATE` on PostgreSQL;
/// SQLite's write transaction already excludes other writers), or 404 as [`find_engagement`]:
/// what a caller sees can change between its authorization and the lock (a selection).
pub async fn lock_engagement(
    txn: &WriteTransaction,
    caller: &Caller,
    id: Uuid,
) -> Result<engagement::Model, EngineError> {
    Ok(lock_engagement_reading(txn, caller, id, Vec::new()).await?.0)
}

/// [`lock_engagement`], then `reads` under the lock, sent with it (one hand-off on SQLite): the
/// engagement and each read's rows.
pub async fn lock_engagement_reading(
    txn: &WriteTransaction,
    caller: &Caller,
    id: Uuid,
    reads: Vec<Statement>,
) -> Result<(engagement::Model, Vec<Vec<QueryResult>>), EngineError> {
    let lock = LOCK.seen_by(txn.get_database_backend(), caller.tenancy, id, |id, tenancy| {
        Engagement::find_by_id(id).filter(engagements_in(tenancy)).lock_exclusive().into_query()
    });
    let mut statements = vec![lock];
    statements.extend(reads);
    let mut answers = txn.query_all_together(&statements).await?.into_iter();
    let locked = answers.next().unwrap_or_default();
    let row = locked.first().ok_or(EngineError::NotFound("engagement"))?;
    Ok((engagement::Model::from_query_result(row, "")?, answers.collect()))
}

/// The statement locking an engagement, built once per backend and tenancy kind.
static LOCK: Templates = Templates::new();

/// Refuses a row that belongs to another engagement as if it did not exist.
pub fn belongs<T>(
    row: Option<T>,
    engagement_of: impl Fn(&T) -> Uuid,
    engagement_id: Uuid,
    what: &'static str,
) -> Result<T, EngineError> {
    row.filter(|r| engagement_of(r) == engagement_id).ok_or(EngineError::NotFound(what))
}

/// Refuses a write when the caller expected another version than `current`.
pub fn check_version(expected: Option<i32>, current: i32) -> Result<(), EngineError> {
    match expected {
        Some(expected) if expected != current => Err(EngineError::PreconditionFailed { expected, current }),
        _ => Ok(()),
    }
}

/// Maps a unique-constraint violation to a refusal; the database, not a prior look-up, enforces
/// uniqueness.
pub trait UniqueViolation<T> {
    /// `conflict()` when the write broke a unique constraint, else the database error.
    fn on_unique_violation(self, conflict: impl FnOnce() -> EngineError) -> Result<T, EngineError>;
}

impl<T> UniqueViolation<T> for Result<T, sea_orm::DbErr> {
    fn on_unique_violation(self, conflict: impl FnOnce() -> EngineError) -> Result<T, EngineError> {
        self.map_err(|error| match error.sql_err() {
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_)) => conflict(),
            _ => error.into(),
        })
    }
}

/// Refuses to record new `what` (audits, findings, corrective actions) for an engagement that has
/// ended (withdrawn or cancelled): they would open deadlines, and send reminders, for nothing.
pub fn require_open(engagement: &engagement::Model, what: &str) -> Result<(), EngineError> {
    if engagement.state.is_terminal() {
        return Err(EngineError::conflict(
            "engagement-state-conflict",
            format!("the engagement is {} and takes no new {what}", engagement.state),
        ));
    }
    Ok(())
}
