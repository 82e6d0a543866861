//! What a database error means for the caller: a reason to try again later (the database is
//! down, busy, full or read-only: nothing was written), a value the database cannot store (the
//! caller's to change), or neither (a bug). SQLSTATEs and SQLite result codes are read here only.

use sea_orm::DbErr;

/// What a failed statement says about the request that ran it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageFault {
    /// The database cannot serve the request now: try again.
    Unavailable(Unavailability),
    /// A value passed every check but the database's own (a NUL in a text, a date PostgreSQL
    /// cannot hold), with the database's message; the statement and its transaction failed.
    ValueNotStorable(String),
}

impl StorageFault {
    /// The fault `error` is, if it is one a caller can act on.
    pub fn of(error: &DbErr) -> Option<Self> {
        match Unavailability::of(error) {
            Some(reason) => Some(Self::Unavailable(reason)),
            None => postgres_data_exception(error).map(Self::ValueNotStorable),
        }
    }
}

/// The sqlx error under a statement's `error`, if there is one.
fn sqlx_error_of(error: &DbErr) -> Option<&sea_orm::sqlx::Error> {
    use sea_orm::RuntimeErr;
    match error {
        DbErr::Exec(RuntimeErr::SqlxError(sqlx)) | DbErr::Query(RuntimeErr::SqlxError(sqlx)) => Some(sqlx.as_ref()),
        _ => None,
    }
}

/// PostgreSQL's message when `error` is a data exception (SQLSTATE class 22: a value it cannot
/// take, such as a NUL character or a date out of its range).
fn postgres_data_exception(error: &DbErr) -> Option<String> {
    let sea_orm::sqlx::Error::Database(database) = sqlx_error_of(error)? else { return None };
    let is_postgres = database.try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>().is_none();
    (is_postgres && database.code().is_some_and(|code| code.starts_with("22"))).then(|| database.message().to_owned())
}

/// Why the database cannot serve a request now: a reason to try again later (503 with
/// `Retry-After`), not a bug. The pool replaces broken connections by itself, and a write refused
/// for any of these reasons was rolled back whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unavailability {
    /// The server is down, restarting or unreachable, or every connection is busy.
    #[error("the service is temporarily unavailable; nothing was written")]
    Unreachable,
    /// The SQLite file is locked by another writer for longer than the busy timeout.
    #[error("the database is busy; nothing was written")]
    Busy,
    /// The database's disk is full (SQLITE_FULL, PostgreSQL 53100).
    #[error("the database's disk is full: nothing was written; retry once space is freed")]
    StorageFull,
    /// The database file or its disk cannot be written (SQLITE_READONLY, PostgreSQL 25006).
    #[error("the database is read-only (its file or disk refuses writes): nothing was written; retry later")]
    ReadOnly,
    /// The disk failed a read or a write (SQLITE_IOERR, SQLITE_CANTOPEN, PostgreSQL 58030).
    #[error("the database's disk failed to read or write: nothing was written; retry later")]
    StorageFailure,
}

impl Unavailability {
    /// The reason `error` is a temporary unavailability, if it is one.
    pub fn of(error: &DbErr) -> Option<Self> {
        use sea_orm::sqlx::Error as Sqlx;
        if matches!(error, DbErr::ConnectionAcquire(_) | DbErr::Conn(_)) {
            return Some(Self::Unreachable);
        }
        match sqlx_error_of(error)? {
            Sqlx::Io(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed | Sqlx::WorkerCrashed | Sqlx::Tls(_) => {
                Some(Self::Unreachable)
            }
            Sqlx::Database(database) => {
                let code = database.code().unwrap_or_default();
                match database.try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>() {
                    Some(_) => Self::of_sqlite(code.parse().unwrap_or_default()),
                    None => Self::of_postgres(&code),
                }
            }
            _ => None,
        }
    }

    /// SQLite's (extended) result code: its low byte is the primary code.
    fn of_sqlite(code: i32) -> Option<Self> {
        match code & 0xff {
            5 | 6 => Some(Self::Busy),             // SQLITE_BUSY, SQLITE_LOCKED
            8 => Some(Self::ReadOnly),             // SQLITE_READONLY (and its extended codes)
            13 => Some(Self::StorageFull),         // SQLITE_FULL
            10 | 14 => Some(Self::StorageFailure), // SQLITE_IOERR, SQLITE_CANTOPEN
            _ => None,
        }
    }

    /// PostgreSQL's SQLSTATE.
    fn of_postgres(code: &str) -> Option<Self> {
        match code {
            "53100" => Some(Self::StorageFull),    // disk_full
            "25006" => Some(Self::ReadOnly),       // read_only_sql_transaction (a standby)
            "58030" => Some(Self::StorageFailure), // io_error
            // Class 08: connection exception; 57P01–57P05: shutting down, cannot connect now;
            // 53300: too many connections.
            _ if code.starts_with("08") || code.starts_with("57P") || code == "53300" => Some(Self::Unreachable),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_result_codes_that_mean_try_again_are_classified_by_their_primary_code() {
        use Unavailability::*;
        let cases = [
            (5, Some(Busy)),             // SQLITE_BUSY
            (517, Some(Busy)),           // SQLITE_BUSY_SNAPSHOT
            (6, Some(Busy)),             // SQLITE_LOCKED
            (8, Some(ReadOnly)),         // SQLITE_READONLY
            (1032, Some(ReadOnly)),      // SQLITE_READONLY_DBMOVED
            (13, Some(StorageFull)),     // SQLITE_FULL
            (10, Some(StorageFailure)),  // SQLITE_IOERR
            (778, Some(StorageFailure)), // SQLITE_IOERR_WRITE
            (14, Some(StorageFailure)),  // SQLITE_CANTOPEN
            (19, None),                  // SQLITE_CONSTRAINT: a bug or a rule, not the storage
            (2067, None),                // SQLITE_CONSTRAINT_UNIQUE
            (11, None),                  // SQLITE_CORRUPT: not to be retried
            (1, None),                   // SQLITE_ERROR
        ];
        for (code, expected) in cases {
            assert_eq!(Unavailability::of_sqlite(code), expected, "SQLite code {code}");
        }
    }

    #[test]
    fn postgres_sqlstates_that_mean_try_again_are_classified() {
        use Unavailability::*;
        let cases = [
            ("08006", Some(Unreachable)),    // connection_failure
            ("57P01", Some(Unreachable)),    // admin_shutdown
            ("57P03", Some(Unreachable)),    // cannot_connect_now
            ("53300", Some(Unreachable)),    // too_many_connections
            ("53100", Some(StorageFull)),    // disk_full
            ("25006", Some(ReadOnly)),       // read_only_sql_transaction
            ("58030", Some(StorageFailure)), // io_error
            ("23505", None),                 // unique_violation
            ("40001", None),                 // serialization_failure: handled where it can happen
            ("42P01", None),                 // undefined_table: a bug
        ];
        for (code, expected) in cases {
            assert_eq!(Unavailability::of_postgres(code), expected, "SQLSTATE {code}");
        }
    }
}
