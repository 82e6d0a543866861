//! PostgreSQL connections held by certflow itself: the writer's ([`super::Writer`]).
//!
//! sqlx's pool pings every connection it takes back (`sqlx-core`, `return_to_pool`): one round
//! trip to the server on each release, unconditionally, so each write paid one on top of the
//! statements it needs (a transition: `BEGIN`, four reads, its write, `COMMIT`). The ping is
//! sqlx's guard against a connection left half way through an answer by a future dropped during
//! a statement, or with a transaction open.
//!
//! Here a connection knows both: it is marked busy while a statement is out and for as long as a
//! transaction is open on it, and one given back busy (a future dropped mid-answer, an I/O error,
//! a transaction not ended) is closed instead of kept. A connection idle for longer than
//! [`PING_IF_IDLE_FOR`] is pinged before it is used (as the read pool is told:
//! `test_before_acquire_if_idle_for`), so one broken by a server restart is replaced rather than
//! failing a request. The connections are opened with the read pool's options (its URL, TLS,
//! statement logging), its acquire timeout and its maximum lifetime.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sea_orm::sea_query::Values;
use sea_orm::sqlx::postgres::{PgConnectOptions, PgConnection, PgPool};
use sea_orm::sqlx::{self, Connection, Executor};
use sea_orm::{ConnAcquireErr, DbErr, ExecResult, QueryResult, RuntimeErr, Statement};
use sea_query_sqlx::SqlxValues;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::transaction::sqlx_error;

/// A connection idle for this long is pinged before it is handed out.
pub(super) const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Connections opened with a sqlx pool's options, at most `most` of them.
#[derive(Debug)]
pub(crate) struct Connections {
    options: Arc<PgConnectOptions>,
    /// Idle connections, the one given back last on top.
    idle: Mutex<Vec<Idle>>,
    /// One permit a connection handed out.
    slots: Arc<Semaphore>,
    most: u32,
    /// Open connections, idle or handed out.
    open: AtomicU32,
    acquire_timeout: Duration,
    max_lifetime: Option<Duration>,
}

#[derive(Debug)]
struct Idle {
    connection: PgConnection,
    opened: Instant,
    since: Instant,
}

impl Connections {
    /// At most `most` connections, opened with `pool`'s options, waited for no longer than its
    /// acquire timeout, and closed once as old as its maximum lifetime.
    pub(super) fn beside(pool: &PgPool, most: u32) -> Self {
        Self {
            options: pool.connect_options(),
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(Semaphore::new(most as usize)),
            most,
            open: AtomicU32::new(0),
            acquire_timeout: pool.options().get_acquire_timeout(),
            max_lifetime: pool.options().get_max_lifetime(),
        }
    }

    /// A connection: an idle one (pinged first if it idled long), else a new one; waiting for a
    /// free slot no longer than the pool's acquire timeout.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Result<Held, DbErr> {
        let deadline = Instant::now() + self.acquire_timeout;
        let timed_out = || DbErr::ConnectionAcquire(ConnAcquireErr::Timeout);
        let slot = match tokio::time::timeout_at(deadline, self.slots.clone().acquire_owned()).await {
            Ok(Ok(slot)) => slot,
            Ok(Err(_)) => return Err(DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed)),
            Err(_) => return Err(timed_out()),
        };
        loop {
            let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
            let Some(mut idle) = idle else { break };
            if idle.since.elapsed() < PING_IF_IDLE_FOR {
                return Ok(self.hand_out(idle.connection, idle.opened, slot));
            }
            match tokio::time::timeout_at(deadline, idle.connection.ping()).await {
                Ok(Ok(())) => return Ok(self.hand_out(idle.connection, idle.opened, slot)),
                // Broken (a server restart, say): closed, and the next one tried.
                Ok(Err(_)) => self.closed(),
                Err(_) => {
                    self.closed();
                    return Err(timed_out());
                }
            }
        }
        match tokio::time::timeout_at(deadline, PgConnection::connect_with(&self.options)).await {
            Ok(Ok(connection)) => {
                self.open.fetch_add(1, Ordering::Relaxed);
                Ok(self.hand_out(connection, Instant::now(), slot))
            }
            Ok(Err(error)) => Err(DbErr::Conn(sqlx_error(error))),
            Err(_) => Err(timed_out()),
        }
    }

    fn hand_out(self: &Arc<Self>, connection: PgConnection, opened: Instant, slot: OwnedSemaphorePermit) -> Held {
        Held {
            connection: Some(connection),
            opened,
            busy: false,
            in_transaction: false,
            home: self.clone(),
            _slot: slot,
        }
    }

    fn closed(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }

    /// Open connections, idle ones, and the most there may be.
    pub(crate) fn census(&self) -> (u32, u32, u32) {
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).len();
        (self.open.load(Ordering::Relaxed), u32::try_from(idle).unwrap_or(u32::MAX), self.most)
    }
}

/// A connection handed out: kept for the next caller when given back between statements and
/// outside a transaction, closed otherwise (see the module).
#[derive(Debug)]
pub(crate) struct Held {
    connection: Option<PgConnection>,
    opened: Instant,
    /// A statement is out (or its answer failed half way).
    busy: bool,
    /// A transaction was begun and not ended.
    in_transaction: bool,
    home: Arc<Connections>,
    _slot: OwnedSemaphorePermit,
}

impl Held {
    /// The connection, marked busy until [`Held::settle`] reads the statement's outcome.
    fn out(&mut self) -> Result<&mut PgConnection, DbErr> {
        self.busy = true;
        self.connection.as_mut().ok_or_else(|| DbErr::Conn(sqlx_error(sqlx::Error::PoolClosed)))
    }

    /// The connection is whole again after an answer or an error the server sent; any other
    /// error (I/O, protocol) leaves it busy, to be closed. The error as sea-orm tells it
    /// (`told`: a query's or an execution's).
    fn settle<T>(&mut self, answer: Result<T, sqlx::Error>, told: fn(RuntimeErr) -> DbErr) -> Result<T, DbErr> {
        self.busy = matches!(&answer, Err(error) if !matches!(error, sqlx::Error::Database(_)));
        answer.map_err(|error| told(sqlx_error(error)))
    }

    /// Runs `statement`: its rows.
    pub(crate) async fn query(&mut self, statement: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let values = SqlxValues(statement.values.unwrap_or(Values(Vec::new())));
        let query = sqlx::query_with(sqlx::AssertSqlSafe(statement.sql), values);
        let answer = query.fetch_all(self.out()?).await;
        Ok(self.settle(answer, DbErr::Query)?.into_iter().map(QueryResult::from).collect())
    }

    /// Runs `statement`: what it changed.
    pub(crate) async fn execute(&mut self, statement: Statement) -> Result<ExecResult, DbErr> {
        let values = SqlxValues(statement.values.unwrap_or(Values(Vec::new())));
        let query = sqlx::query_with(sqlx::AssertSqlSafe(statement.sql), values);
        let answer = query.execute(self.out()?).await;
        self.settle(answer, DbErr::Exec).map(ExecResult::from)
    }

    /// Runs `query`, sqlx's own, its values bound as sqlx binds them: its rows.
    pub(crate) async fn query_bound(
        &mut self,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Vec<QueryResult>, DbErr> {
        let answer = query.fetch_all(self.out()?).await;
        Ok(self.settle(answer, DbErr::Query)?.into_iter().map(QueryResult::from).collect())
    }

    /// Runs `sql`, statements without values, as a simple query.
    pub(crate) async fn execute_plain(&mut self, sql: String) -> Result<ExecResult, DbErr> {
        let answer = self.out()?.execute(sqlx::AssertSqlSafe(sql)).await;
        self.settle(answer, DbErr::Exec).map(ExecResult::from)
    }

    /// Begins a transaction: the connection is closed if given back before [`Held::end`].
    pub(crate) async fn begin(&mut self) -> Result<(), DbErr> {
        self.in_transaction = true;
        self.execute_plain("BEGIN".to_owned()).await.map(drop)
    }

    /// Ends the transaction with `COMMIT` or `ROLLBACK`. Once the server answered (even with an
    /// error: a failed `COMMIT` rolls back) no transaction is open.
    pub(crate) async fn end(&mut self, commit: bool) -> Result<(), DbErr> {
        let sql = if commit { "COMMIT" } else { "ROLLBACK" };
        let answer = self.execute_plain(sql.to_owned()).await;
        if !self.busy {
            self.in_transaction = false;
        }
        answer.map(drop)
    }

    /// Whether a statement's answer was left half read (the connection will be closed).
    pub(crate) fn is_busy(&self) -> bool {
        self.busy
    }

    /// Whether a transaction is open on the connection.
    pub(crate) fn in_transaction(&self) -> bool {
        self.in_transaction
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let Some(connection) = self.connection.take() else { return };
        let home = &self.home;
        let expired = home.max_lifetime.is_some_and(|most| self.opened.elapsed() >= most);
        if self.busy || self.in_transaction || expired {
            home.closed();
            // Closed politely when it is whole (the server then logs no lost client); else its
            // socket is dropped, which ends its session and rolls back what it had begun.
            if !self.busy
                && let Ok(runtime) = tokio::runtime::Handle::try_current()
            {
                runtime.spawn(connection.close());
            }
            return;
        }
        let idle = Idle { connection, opened: self.opened, since: Instant::now() };
        home.idle.lock().unwrap_or_else(PoisonError::into_inner).push(idle);
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

    use crate::store::{Tuning, Writer, begin_write, connect, connect_writer};

    fn postgres_url() -> String {
        std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
    }

    fn sql(text: impl Into<String>) -> Statement {
        Statement::from_string(DbBackend::Postgres, text.into())
    }

    /// A read pool on this machine's PostgreSQL, a writer of 2 connections beside it, and a
    /// table `t (x)` of its own.
    async fn database() -> (DatabaseConnection, Writer, String) {
        let db = connect(&postgres_url(), 2).await.expect("PostgreSQL runs on this machine");
        let writer = connect_writer(&postgres_url(), &db, 2, Tuning::default()).await.expect("writer");
        let table = format!("held_{}", uuid::Uuid::now_v7().simple());
        db.execute_unprepared(&format!("CREATE TABLE {table} (x INTEGER NOT NULL UNIQUE)")).await.expect("create");
        (db, writer, table)
    }

    /// The server process of the connection a statement on `on` gets.
    async fn backend(on: &impl ConnectionTrait) -> i32 {
        let row = on.query_one_raw(sql("SELECT pg_backend_pid()")).await.expect("read").expect("a row");
        row.try_get_by_index(0).expect("pid")
    }

    async fn xs(db: &DatabaseConnection, table: &str) -> Vec<i32> {
        let rows = db.query_all_raw(sql(format!("SELECT x FROM {table} ORDER BY x"))).await.expect("select");
        rows.iter().map(|row| row.try_get_by_index(0).expect("x")).collect()
    }

    /// Waits until `writer` has `idle` connections idle.
    async fn idle(writer: &Writer, idle: u32) {
        for _ in 0..200 {
            if writer.census().1 == idle {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("{:?} open, idle, most; not {idle} idle", writer.census());
    }

    #[tokio::test]
    async fn a_connection_given_back_between_statements_is_kept_and_one_dropped_mid_answer_is_closed() {
        let (_db, writer, _) = database().await;
        let first = backend(&writer).await;
        assert_eq!(backend(&writer).await, first, "the connection given back is handed out again");
        assert_eq!(writer.census(), (1, 1, 2));

        // A statement whose caller goes away while the server still works on it.
        let slow = writer.query_all_raw(sql("SELECT pg_sleep(2)"));
        assert!(tokio::time::timeout(std::time::Duration::from_millis(100), slow).await.is_err());
        assert_eq!(writer.census(), (0, 0, 2), "the connection left mid-answer was closed, not kept");
        assert_ne!(backend(&writer).await, first, "a new connection serves the next statement");
    }

    #[tokio::test]
    async fn a_write_dropped_with_its_transaction_open_is_rolled_back_before_its_connection_serves_again() {
        let (db, writer, table) = database().await;
        let insert = |x: i32| sql(format!("INSERT INTO {table} (x) VALUES ({x})"));
        let txn = begin_write(&writer).await.expect("begin");
        let holder = backend(&txn).await;
        txn.execute_raw(insert(1)).await.expect("insert");
        drop(txn);
        // The rollback runs in a task of its own; the connection is given back after it.
        idle(&writer, 1).await;
        assert_eq!(backend(&writer).await, holder, "the connection was kept once rolled back");
        let next = begin_write(&writer).await.expect("begin");
        next.execute_raw(insert(2)).await.expect("insert");
        next.commit().await.expect("commit");
        assert_eq!(xs(&db, &table).await, [2], "the dropped write left nothing, and the next began afresh");
    }

    #[tokio::test]
    async fn a_refused_statement_leaves_the_write_to_roll_back_and_its_connection_whole() {
        let (db, writer, table) = database().await;
        let insert = |x: i32| sql(format!("INSERT INTO {table} (x) VALUES ({x})"));
        let txn = begin_write(&writer).await.expect("begin");
        txn.execute_raw(insert(1)).await.expect("insert");
        let refused = txn.execute_raw(insert(1)).await.expect_err("a repeated x breaks uniqueness");
        assert!(
            matches!(refused.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_))),
            "told as sea-orm tells it: {refused}"
        );
        txn.rollback().await.expect("rollback");
        assert_eq!(writer.census(), (1, 1, 2), "kept, idle");
        assert!(xs(&db, &table).await.is_empty());
    }

    #[tokio::test]
    async fn savepoints_undo_their_own_work_and_one_left_open_stops_the_commit() {
        let (db, writer, table) = database().await;
        let insert = |x: i32| sql(format!("INSERT INTO {table} (x) VALUES ({x})"));
        let txn = begin_write(&writer).await.expect("begin");
        txn.execute_raw(insert(1)).await.expect("insert");
        let attempt = txn.savepoint().await.expect("savepoint");
        attempt.execute_raw(insert(1)).await.expect_err("a repeated x");
        attempt.rollback().await.expect("rolled back to the savepoint: the write goes on");
        let kept = txn.savepoint().await.expect("savepoint");
        kept.execute_raw(insert(3)).await.expect("insert in the savepoint");
        kept.commit().await.expect("release");
        txn.commit().await.expect("commit");
        assert_eq!(xs(&db, &table).await, [1, 3]);

        let txn = begin_write(&writer).await.expect("begin");
        txn.execute_raw(insert(4)).await.expect("insert");
        let forgotten = txn.savepoint().await.expect("savepoint");
        forgotten.execute_raw(insert(5)).await.expect("insert");
        drop(forgotten);
        txn.commit().await.expect_err("a savepoint left open: the write does not commit");
        assert_eq!(xs(&db, &table).await, [1, 3]);
    }

    #[tokio::test]
    async fn a_connection_its_server_ended_while_it_idled_is_replaced_before_it_is_handed_out() {
        let (db, writer, _) = database().await;
        let first = backend(&writer).await;
        db.execute_unprepared(&format!("SELECT pg_terminate_backend({first})")).await.expect("terminate");
        tokio::time::sleep(super::PING_IF_IDLE_FOR + std::time::Duration::from_millis(100)).await;
        assert_ne!(backend(&writer).await, first, "a new connection, and the statement served");
        assert_eq!(writer.census(), (1, 1, 2), "the ended one no longer counted");
    }

    #[tokio::test]
    async fn a_connection_taken_before_its_write_serves_reads_outside_it_then_the_write_itself() {
        let (db, writer, table) = database().await;
        let taken = writer.take().await.expect("take").expect("PostgreSQL's writer has connections of its own");
        let reader = backend(&taken).await;
        let transaction = || async {
            let row = taken.query_one_raw(sql("SELECT pg_current_xact_id()::text")).await.expect("read");
            row.expect("a row").try_get_by_index::<String>(0).expect("an id")
        };
        assert_ne!(transaction().await, transaction().await, "no transaction yet: each statement is its own");
        let txn = taken.begin().await.expect("begin");
        assert_eq!(backend(&txn).await, reader, "the write runs where its first reads ran");
        txn.execute_raw(sql(format!("INSERT INTO {table} (x) VALUES (1)"))).await.expect("insert");
        txn.commit().await.expect("commit");
        assert_eq!(xs(&db, &table).await, [1]);

        // A connection taken and given back without a write (its caller refused) serves again.
        drop(writer.take().await.expect("take"));
        assert_eq!(writer.census(), (1, 1, 2));
        assert_eq!(backend(&writer).await, reader);
    }

    #[tokio::test]
    async fn no_more_connections_open_than_the_writer_may_have_and_a_caller_waits_no_longer_than_the_timeout() {
        let (_db, writer, _) = database().await;
        let (one, two) = (begin_write(&writer).await.expect("begin"), begin_write(&writer).await.expect("begin"));
        assert_eq!(writer.census(), (2, 0, 2));
        let started = std::time::Instant::now();
        let third = begin_write(&writer).await.map(|_| ());
        assert!(
            matches!(third, Err(sea_orm::DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout))),
            "a timeout, as the pool says it: {third:?}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(6), "the acquire timeout (3 s)");
        one.commit().await.expect("commit");
        two.rollback().await.expect("rollback");
        assert_eq!(writer.census(), (2, 2, 2));
    }
}
