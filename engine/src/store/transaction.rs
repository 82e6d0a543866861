//! A write transaction: what a write's statements run in, and the statements it sends later.
//!
//! On a SQLite file every statement is a hand-off: sqlx runs each SQLite connection on a thread of
//! its own, hands it the statement and wakes the write's task with the answer. Under load each
//! hand-off cost more than SQLite's own work on the statement (docs/benchmarks.md, "Writes on
//! SQLite"), and SQLite lets one writer in at a time, so every hand-off of one write was time
//! every other write waited. A transition took ten: `BEGIN`, four reads, four writes, `COMMIT`.
//!
//! So a write sends SQLite what it can in one hand-off: its `BEGIN IMMEDIATE` goes with its first
//! statement, and the statements whose outcome it does not read (a history entry, an outbox event,
//! the idempotency key's response: [`WriteTransaction::defer`]) go with its next statement, or
//! with its `COMMIT`, in order: sqlx runs a text of several statements on the connection's thread
//! one after the other, binding the values in order, and this reads the answer of the last. What
//! the write reads still sees what it deferred (those statements ran first). A deferred statement
//! that fails fails the statement it went with (and the write).
//!
//! On PostgreSQL the write runs on a connection of the writer's own ([`super::postgres`]), and
//! deferred statements are sent before the next statement or the commit, as one statement where
//! they may go together ([`super::together`]). On SQLite with `SQLITE_BATCH_STATEMENTS=false` the
//! write is sea-orm's transaction, and deferred statements are sent one by one.
//!
//! A SQLite writer that groups its commits (`SQLITE_GROUP_COMMIT`, [`super::group`]) hands its
//! connection from write to write in turn: a write that ends while others wait leaves its
//! transaction open for them, and the next one runs in a savepoint of that transaction.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::TryStreamExt;
use futures::lock::Mutex as AsyncMutex;
use sea_orm::sea_query::Values;
use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::sqlite::SqliteQueryResult;
use sea_orm::sqlx::{self, Either, Executor, Sqlite};
use sea_orm::{
    ActiveModelTrait, ConnAcquireErr, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, EntityTrait, ExecResult,
    QueryResult, QueryTrait, RuntimeErr, Statement, StatementBuilder, TransactionOptions, TransactionTrait,
    TryIntoModel,
};
use sea_query_sqlx::SqlxValues;

use super::connection::Waiting;
use super::group::{self, Group, OpenGroup, Turn};
use super::postgres::Held;
use super::writer::Writer;

/// Whether SQLite writes send their statements together (`SQLITE_BATCH_STATEMENTS`).
static BATCHED: AtomicBool = AtomicBool::new(true);

/// Sets whether SQLite writes send their statements together.
pub(crate) fn set_batched(batched: bool) {
    BATCHED.store(batched, Ordering::Relaxed);
}

/// A write transaction (see the module). Dropped without [`WriteTransaction::commit`], it rolls
/// back, as does a savepoint.
#[derive(Debug)]
pub struct WriteTransaction {
    kind: Kind,
    /// Statements whose outcome the write does not read, in order, not sent yet.
    deferred: Mutex<Vec<Statement>>,
}

#[derive(Debug)]
enum Kind {
    /// sea-orm's transaction (SQLite unbatched).
    SeaOrm(DatabaseTransaction),
    /// The SQLite writer's connection, driven here; `savepoint`: the savepoint this is, if any.
    Sqlite { session: Arc<Session>, savepoint: Option<String> },
    /// A connection of the PostgreSQL writer's own ([`super::postgres`]), driven here;
    /// `savepoint`: the savepoint this is, if any.
    Postgres { session: Arc<PgSession>, savepoint: Option<String> },
    /// Committed or rolled back.
    Ended,
}

/// Where an open write's statements go (see [`WriteTransaction::open`]).
enum Open<'a> {
    SeaOrm(&'a DatabaseTransaction),
    Sqlite(&'a Session),
    Postgres(&'a PgSession),
}

/// A PostgreSQL write's connection.
#[derive(Debug)]
struct PgSession {
    /// `None` once the write has ended.
    connection: AsyncMutex<Option<Held>>,
    /// Savepoints taken so far (their names are numbered).
    savepoints: AtomicUsize,
    /// A savepoint was dropped without its commit or rollback: the write must not commit.
    spoiled: AtomicBool,
}

/// A SQLite write's connection and where its transaction stands.
#[derive(Debug)]
struct Session {
    /// `None` once the write has ended (committed or rolled back).
    connection: AsyncMutex<Option<PoolConnection<Sqlite>>>,
    /// `BEGIN IMMEDIATE` was sent (it may have failed: a rollback then finds no transaction).
    begun: AtomicBool,
    /// Savepoints taken so far (their names are numbered).
    savepoints: AtomicUsize,
    /// A savepoint was dropped without its commit or rollback: the write must not commit.
    spoiled: AtomicBool,
    /// Texts handed to the connection's thread.
    sent: AtomicUsize,
    /// Counts the write as waiting for the writer until its first text (its `BEGIN`) returns.
    waiting: Mutex<Option<Waiting>>,
    /// The writer's turn, when the writer groups its commits ([`super::group`]): held from the
    /// write's begin to its end.
    turn: Mutex<Option<Turn>>,
    /// The group this write joined: it runs in a savepoint of the group's transaction.
    joined: Option<Arc<Group>>,
}

/// The savepoint a write that joined a group runs in.
const MEMBER: &str = "cf_write";

impl WriteTransaction {
    /// Begins on `db`, the writer (see [`super::begin_write`]), counted in `waiting` until it holds
    /// the writer (on SQLite: until its `BEGIN IMMEDIATE`, sent with its first statement, returns).
    pub(super) async fn begin(writer: &Writer, waiting: Waiting) -> Result<Self, DbErr> {
        Self::begin_batched(writer, BATCHED.load(Ordering::Relaxed), Some(waiting)).await
    }

    /// Begins on `writer`; on SQLite, sending statements together when `batched`.
    async fn begin_batched(writer: &Writer, batched: bool, waiting: Option<Waiting>) -> Result<Self, DbErr> {
        let db = writer.pool();
        if let Some(connections) = writer.held() {
            return Self::begin_on(connections.acquire().await?, waiting).await;
        }
        let kind = if db.get_database_backend() == DbBackend::Sqlite && batched {
            let pool = db.get_sqlite_connection_pool();
            // Its turn first when the writer groups commits: the group left open, if any, is
            // joined; else the connection is taken from the pool.
            let deadline = tokio::time::Instant::now() + pool.options().get_acquire_timeout();
            let mut turn = match group::gate_of(pool) {
                Some(gate) => Some(gate.turn(deadline).await?),
                None => None,
            };
            let (connection, joined) = match turn.as_mut().and_then(Turn::join) {
                Some(OpenGroup { connection, group }) => (connection, Some(group)),
                None => match tokio::time::timeout_at(deadline, pool.acquire()).await {
                    Ok(connection) => (connection.map_err(connection_error)?, None),
                    Err(_) => return Err(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout)),
                },
            };
            let session = Session {
                connection: AsyncMutex::new(Some(connection)),
                begun: AtomicBool::new(false),
                savepoints: AtomicUsize::new(0),
                spoiled: AtomicBool::new(false),
                sent: AtomicUsize::new(0),
                waiting: Mutex::new(waiting),
                turn: Mutex::new(turn),
                joined,
            };
            Kind::Sqlite { session: Arc::new(session), savepoint: None }
        } else {
            // sea-orm's BEGIN returns once the transaction holds the writer.
            let _waiting = waiting;
            let options = TransactionOptions {
                sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
                ..Default::default()
            };
            Kind::SeaOrm(db.begin_with_options(options).await?)
        };
        Ok(Self { kind, deferred: Mutex::new(Vec::new()) })
    }

    /// Begins on `connection`, a connection of the PostgreSQL writer's own, counted in `waiting`
    /// until its `BEGIN` returns.
    pub(super) async fn begin_on(mut connection: Held, waiting: Option<Waiting>) -> Result<Self, DbErr> {
        connection.begin().await?;
        drop(waiting);
        let session = PgSession {
            connection: AsyncMutex::new(Some(connection)),
            savepoints: AtomicUsize::new(0),
            spoiled: AtomicBool::new(false),
        };
        Ok(Self {
            kind: Kind::Postgres { session: Arc::new(session), savepoint: None },
            deferred: Mutex::new(Vec::new()),
        })
    }

    /// Sends `statement` with the write's next statement, or with its commit: for statements
    /// whose outcome the write does not read (their failure fails the statement they go with).
    pub fn defer<S: StatementBuilder>(&self, statement: &S) {
        let statement = self.get_database_backend().build(statement);
        self.deferred.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(statement);
    }

    /// Inserts `row` with the write's next statement ([`WriteTransaction::defer`]): the row as it
    /// will be, every column set by the caller (nothing read back from the database).
    pub fn insert_later<A>(&self, row: A) -> Result<<A::Entity as EntityTrait>::Model, DbErr>
    where
        A: ActiveModelTrait + TryIntoModel<<A::Entity as EntityTrait>::Model>,
    {
        let inserted = row.clone().try_into_model()?;
        self.defer(&<A::Entity as EntityTrait>::insert(row).into_query());
        Ok(inserted)
    }

    /// The deferred statements, taken to be sent.
    fn take_deferred(&self) -> Vec<Statement> {
        std::mem::take(&mut *self.deferred.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Sends what was deferred on sea-orm's transaction, one at a time.
    async fn flush(&self, txn: &DatabaseTransaction) -> Result<(), DbErr> {
        for statement in self.take_deferred() {
            txn.execute_raw(statement).await?;
        }
        Ok(())
    }

    /// Sends what was deferred on the PostgreSQL session, as few statements as may go together.
    async fn flush_postgres(&self, session: &PgSession) -> Result<(), DbErr> {
        let deferred = self.take_deferred();
        if deferred.is_empty() {
            return Ok(());
        }
        let mut connection = session.connection.lock().await;
        let connection = connection.as_mut().ok_or_else(ended)?;
        for statement in super::together::together(deferred) {
            connection.execute(statement).await?;
        }
        Ok(())
    }

    /// Where the write's next statement goes: sea-orm's transaction or the PostgreSQL session,
    /// what was deferred sent first; or the SQLite session, which sends it with what goes before
    /// it.
    async fn open(&self) -> Result<Open<'_>, DbErr> {
        match &self.kind {
            Kind::SeaOrm(txn) => {
                self.flush(txn).await?;
                Ok(Open::SeaOrm(txn))
            }
            Kind::Postgres { session, .. } => {
                self.flush_postgres(session).await?;
                Ok(Open::Postgres(session))
            }
            Kind::Sqlite { session, .. } => Ok(Open::Sqlite(session)),
            Kind::Ended => Err(ended()),
        }
    }

    /// A savepoint inside this transaction: its commit keeps what was done since, its rollback
    /// undoes it, and the transaction goes on. End it either way: one dropped without its end
    /// stops the write's commit on a SQLite session (sea-orm's transaction rolls back to it).
    pub async fn savepoint(&self) -> Result<WriteTransaction, DbErr> {
        let kind = match &self.kind {
            Kind::SeaOrm(txn) => {
                self.flush(txn).await?;
                Kind::SeaOrm(txn.begin().await?)
            }
            Kind::Sqlite { session, .. } => {
                let name = format!("cf_savepoint_{}", session.savepoints.fetch_add(1, Ordering::Relaxed) + 1);
                self.run(session, Statement::from_string(DbBackend::Sqlite, format!("SAVEPOINT {name}"))).await?;
                Kind::Sqlite { session: session.clone(), savepoint: Some(name) }
            }
            Kind::Postgres { session, .. } => {
                self.flush_postgres(session).await?;
                let name = format!("cf_savepoint_{}", session.savepoints.fetch_add(1, Ordering::Relaxed) + 1);
                session.execute_plain(format!("SAVEPOINT {name}")).await?;
                Kind::Postgres { session: session.clone(), savepoint: Some(name) }
            }
            Kind::Ended => return Err(ended()),
        };
        Ok(Self { kind, deferred: Mutex::new(Vec::new()) })
    }

    /// Commits, with what was deferred (or releases the savepoint).
    pub async fn commit(self) -> Result<(), DbErr> {
        let apart = self.takes_turns();
        end_apart(apart, self.finish_commit()).await
    }

    /// Whether this is a write that took its turn on a SQLite writer grouping its commits.
    fn takes_turns(&self) -> bool {
        match &self.kind {
            Kind::Sqlite { session, savepoint: None } => {
                session.turn.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_some()
            }
            _ => false,
        }
    }

    async fn finish_commit(mut self) -> Result<(), DbErr> {
        match std::mem::replace(&mut self.kind, Kind::Ended) {
            Kind::SeaOrm(txn) => {
                self.flush(&txn).await?;
                txn.commit().await
            }
            Kind::Postgres { session, savepoint: Some(name) } => {
                self.flush_postgres(&session).await?;
                session.execute_plain(format!("RELEASE SAVEPOINT {name}")).await.map(drop)
            }
            Kind::Postgres { session, savepoint: None } => {
                if session.spoiled.load(Ordering::Relaxed) {
                    return Err(DbErr::Custom("a savepoint of the write was left open: rolled back".into()));
                }
                self.flush_postgres(&session).await?;
                session.end(true).await
            }
            Kind::Sqlite { session, savepoint: Some(name) } => {
                self.run(&session, Statement::from_string(DbBackend::Sqlite, format!("RELEASE {name}"))).await?;
                Ok(())
            }
            Kind::Sqlite { session, savepoint: None } => {
                if session.spoiled.load(Ordering::Relaxed) {
                    return Err(DbErr::Custom("a savepoint of the write was left open: rolled back".into()));
                }
                if !session.begun.load(Ordering::Relaxed) && self.deferred_is_empty() {
                    session.end(false).await;
                    return Ok(());
                }
                let sql = |text: &str| Statement::from_string(DbBackend::Sqlite, text);
                // Waiting for its group's commit, a write holds nothing of the group.
                match (session.joined.clone(), session.hands_on()) {
                    // Alone, nobody waiting: it commits.
                    (None, false) => {
                        self.run(&session, sql("COMMIT")).await?;
                        session.end(false).await;
                        Ok(())
                    }
                    // Others wait: its transaction is left open for them, and it is answered
                    // with the commit of the group.
                    (None, true) => {
                        self.send(&session, Vec::new()).await?;
                        let answer = session.open_group().await?;
                        drop(session);
                        group::committed(answer).await
                    }
                    (Some(group), true) => {
                        drop(group);
                        self.run(&session, sql(&format!("RELEASE {MEMBER}"))).await?;
                        let answer = session.end(true).await.ok_or_else(ended)?;
                        drop(session);
                        group::committed(answer).await
                    }
                    // The group's last write: it commits the group. (A failure before the commit
                    // is its own: dropped, it undoes its own work, and the others go on.)
                    (Some(group), false) => {
                        self.send(&session, vec![sql(&format!("RELEASE {MEMBER}")), sql("COMMIT")]).await?;
                        group.keep();
                        group.publish(&Ok(()));
                        session.end(false).await;
                        Ok(())
                    }
                }
            }
            Kind::Ended => Ok(()),
        }
    }

    /// Rolls back (to the savepoint), dropping what was deferred.
    pub async fn rollback(self) -> Result<(), DbErr> {
        let apart = self.takes_turns();
        end_apart(apart, self.finish_rollback()).await
    }

    async fn finish_rollback(mut self) -> Result<(), DbErr> {
        self.take_deferred();
        match std::mem::replace(&mut self.kind, Kind::Ended) {
            Kind::SeaOrm(txn) => txn.rollback().await,
            Kind::Postgres { session, savepoint: Some(name) } => {
                session.execute_plain(format!("ROLLBACK TO SAVEPOINT {name}; RELEASE SAVEPOINT {name}")).await.map(drop)
            }
            Kind::Postgres { session, savepoint: None } => session.end(false).await,
            Kind::Sqlite { session, savepoint: Some(name) } => {
                let undo = [format!("ROLLBACK TO {name}"), format!("RELEASE {name}")];
                session.send_alone(undo.map(|sql| Statement::from_string(DbBackend::Sqlite, sql)).to_vec()).await?;
                Ok(())
            }
            Kind::Sqlite { session, savepoint: None } => {
                if !session.begun.load(Ordering::Relaxed) {
                    session.end(false).await;
                    return Ok(());
                }
                if session.joined.is_some() {
                    // Its own work undone; the group goes on without it.
                    return session.leave_group().await;
                }
                let rolled_back = session.send_alone(vec![Statement::from_string(DbBackend::Sqlite, "ROLLBACK")]).await;
                match rolled_back.map(|_| ()).or_else(no_transaction_is_fine) {
                    Ok(()) => {
                        session.end(false).await;
                        Ok(())
                    }
                    // Its transaction may be open: the connection is closed (`Session`'s drop)
                    // rather than handed on.
                    Err(error) => Err(error),
                }
            }
            Kind::Ended => Ok(()),
        }
    }

    fn deferred_is_empty(&self) -> bool {
        self.deferred.lock().unwrap_or_else(std::sync::PoisonError::into_inner).is_empty()
    }

    /// Runs `query` (sqlx's own, after what was deferred) on a PostgreSQL write and answers its
    /// rows; an error on SQLite, which has no such write. For the values sea-query does not bind:
    /// arrays whose elements may be null (`UNNEST` of one array a column inserts any number of rows
    /// with one statement text, prepared once).
    pub async fn query_postgres(
        &self,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Vec<QueryResult>, DbErr> {
        match self.open().await? {
            Open::Postgres(session) => session.query_bound(query).await,
            Open::SeaOrm(_) | Open::Sqlite(_) => Err(DbErr::Custom("a PostgreSQL query on a SQLite write".into())),
        }
    }

    /// Runs `statements` (reads) and answers each one's rows, in order: on SQLite in one hand-off
    /// (with what goes before them), else one after the other.
    pub async fn query_all_together(&self, statements: &[Statement]) -> Result<Vec<Vec<QueryResult>>, DbErr> {
        match self.open().await? {
            Open::SeaOrm(txn) => {
                let mut answers = Vec::with_capacity(statements.len());
                for statement in statements {
                    answers.push(txn.query_all_raw(statement.clone()).await?);
                }
                Ok(answers)
            }
            Open::Postgres(session) => {
                let mut answers = Vec::with_capacity(statements.len());
                for statement in statements {
                    answers.push(session.query(statement.clone()).await?);
                }
                Ok(answers)
            }
            Open::Sqlite(session) => {
                let answers = self.send(session, statements.to_vec()).await?;
                Ok(answers.into_iter().map(|a| a.rows.into_iter().map(QueryResult::from).collect()).collect())
            }
        }
    }

    /// Sends `statements` on the SQLite session in one text, after what goes before them (the
    /// write's `BEGIN IMMEDIATE` when they are its first, and what was deferred), taken once the
    /// connection is held: the answers of `statements`.
    async fn send(&self, session: &Session, statements: Vec<Statement>) -> Result<Vec<Answer>, DbErr> {
        let mut connection = session.connection.lock().await;
        let connection = connection.as_mut().ok_or_else(ended)?;
        let mut batch = Vec::new();
        if !session.begun.swap(true, Ordering::Relaxed) {
            let begin = match session.joined {
                Some(_) => format!("SAVEPOINT {MEMBER}"),
                None => "BEGIN IMMEDIATE".to_owned(),
            };
            batch.push(Statement::from_string(DbBackend::Sqlite, begin));
        }
        batch.extend(self.take_deferred());
        let before = batch.len();
        batch.extend(statements);
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut answers = session.send_on(connection, batch).await?;
        Ok(answers.split_off(before))
    }

    /// [`WriteTransaction::send`] of `main` alone: its answer.
    async fn run(&self, session: &Session, main: Statement) -> Result<Answer, DbErr> {
        let mut answers = self.send(session, vec![main]).await?;
        answers.pop().ok_or_else(|| DbErr::Custom("SQLite answered no statement".into()))
    }
}

impl PgSession {
    /// Runs `query` on the write's connection: its rows.
    async fn query_bound(
        &self,
        query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<Vec<QueryResult>, DbErr> {
        self.connection.lock().await.as_mut().ok_or_else(ended)?.query_bound(query).await
    }

    /// Runs `statement` on the write's connection: its rows.
    async fn query(&self, statement: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.connection.lock().await.as_mut().ok_or_else(ended)?.query(statement).await
    }

    /// Runs `statement` on the write's connection: what it changed.
    async fn execute(&self, statement: Statement) -> Result<ExecResult, DbErr> {
        self.connection.lock().await.as_mut().ok_or_else(ended)?.execute(statement).await
    }

    /// Runs `sql`, statements without values, on the write's connection.
    async fn execute_plain(&self, sql: String) -> Result<ExecResult, DbErr> {
        self.connection.lock().await.as_mut().ok_or_else(ended)?.execute_plain(sql).await
    }

    /// Commits or rolls back, and gives the connection back.
    async fn end(&self, commit: bool) -> Result<(), DbErr> {
        let mut connection = self.connection.lock().await;
        let ended = connection.as_mut().ok_or_else(ended)?.end(commit).await;
        // Back to the connections it came from, or closed if the end did not come through.
        drop(connection.take());
        ended
    }
}

impl Drop for PgSession {
    /// A write dropped before its end (a refusal, an error, a request gone): its transaction is
    /// rolled back before its connection is given back. One dropped during a statement is closed
    /// ([`postgres::Held`]), which ends its transaction on the server.
    fn drop(&mut self) {
        let Some(mut connection) = self.connection.get_mut().take() else { return };
        if !connection.in_transaction() || connection.is_busy() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            // Given back once rolled back; closed if the rollback failed.
            let _ = connection.end(false).await;
        });
    }
}

/// What a SQLite statement answered: its rows and its count of changes.
struct Answer {
    rows: Vec<sqlx::sqlite::SqliteRow>,
    done: SqliteQueryResult,
}

impl Session {
    /// Sends `statements` alone (nothing deferred, no `BEGIN`): each one's answer.
    async fn send_alone(&self, statements: Vec<Statement>) -> Result<Vec<Answer>, DbErr> {
        let mut connection = self.connection.lock().await;
        let connection = connection.as_mut().ok_or_else(ended)?;
        self.send_on(connection, statements).await
    }

    /// Sends `statements` on `connection` as one text, their values in order: each one's answer,
    /// or the error of the first that failed (those after it did not run).
    async fn send_on(
        &self,
        connection: &mut PoolConnection<Sqlite>,
        statements: Vec<Statement>,
    ) -> Result<Vec<Answer>, DbErr> {
        let sent = statements.len();
        let mut sql = String::new();
        let mut values = Vec::new();
        for statement in statements {
            if !sql.is_empty() {
                sql.push_str(";\n");
            }
            sql.push_str(statement.sql.trim_end().trim_end_matches(';'));
            values.extend(statement.values.map(|v| v.0).unwrap_or_default());
        }
        self.sent.fetch_add(1, Ordering::Relaxed);
        let query = sqlx::query_with(sqlx::AssertSqlSafe(sql), SqlxValues(Values(values)));
        let mut steps = (&mut **connection).fetch_many(query);
        let (mut rows, mut answers) = (Vec::new(), Vec::new());
        let mut answered = Ok(());
        while let Some(step) = steps.try_next().await.transpose() {
            match step {
                Ok(Either::Right(row)) => rows.push(row),
                // One statement done: the rows so far are its own.
                Ok(Either::Left(done)) => answers.push(Answer { rows: std::mem::take(&mut rows), done }),
                Err(error) => {
                    answered = Err(DbErr::Query(sqlx_error(error)));
                    break;
                }
            }
        }
        self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        answered?;
        // A connection's thread that stopped part way ends the answers without an error.
        if answers.len() != sent {
            return Err(DbErr::Custom(format!("SQLite answered {} of the {sent} statements sent", answers.len())));
        }
        Ok(answers)
    }

    /// Ends the write's hold of the writer: the connection back to the pool and the turn given
    /// on; or, for a write in a group when `kept` or when it sent nothing, the group's transaction
    /// left for the next write (`kept`: with this write's work): the group's outcome then.
    async fn end(&self, kept: bool) -> Option<tokio::sync::watch::Receiver<Option<group::Outcome>>> {
        let connection = self.connection.lock().await.take();
        let turn = self.take_turn();
        let in_group = kept || !self.begun.load(Ordering::Relaxed);
        match (connection, turn, &self.joined) {
            (Some(connection), Some(turn), Some(group)) if in_group => {
                Some(turn.hand_on(OpenGroup { connection, group: group.clone() }, kept))
            }
            _ => None,
        }
    }

    fn take_turn(&self) -> Option<Turn> {
        self.turn.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
    }

    /// Whether the write, ending, leaves its transaction open for writes waiting for the writer.
    fn hands_on(&self) -> bool {
        let turn = self.turn.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        turn.as_ref().is_some_and(|turn| turn.hands_on(self.joined.as_deref()))
    }

    /// Opens a group with the write's transaction and gives the writer on: the group's outcome.
    async fn open_group(&self) -> Result<tokio::sync::watch::Receiver<Option<group::Outcome>>, DbErr> {
        let turn = self.take_turn().ok_or_else(ended)?;
        let connection = self.connection.lock().await.take().ok_or_else(ended)?;
        Ok(turn.open_group(connection))
    }

    /// A write of a group undoes its own work and leaves the group's transaction to the next
    /// write (or the closer).
    async fn leave_group(&self) -> Result<(), DbErr> {
        let (Some(connection), Some(turn), Some(group)) =
            (self.connection.lock().await.take(), self.take_turn(), self.joined.clone())
        else {
            return Err(ended());
        };
        leave_group(Unfinished(Some(connection)), turn, group).await
    }
}

/// Undoes the work of a write of `group` on `connection` (its savepoint) and leaves the group's
/// transaction to the next write. If that fails, the group's transaction is lost or in doubt:
/// every write of the group fails.
///
/// The connection is `Unfinished` meanwhile: stopped half way (the runtime shutting down), it is
/// closed rather than handed on with the group's transaction open, and the group's writes are told
/// it was lost once its closer finds it gone.
async fn leave_group(mut connection: Unfinished, turn: Turn, group: Arc<Group>) -> Result<(), DbErr> {
    let undo = format!("ROLLBACK TO {MEMBER}; RELEASE {MEMBER}");
    let Some(held) = connection.0.as_mut() else { return Err(ended()) };
    let undone = (&mut **held).execute(sqlx::AssertSqlSafe(undo)).await;
    let Some(held) = connection.0.take() else { return Err(ended()) };
    match undone {
        Ok(_) => {
            turn.hand_on(OpenGroup { connection: held, group }, false);
            Ok(())
        }
        Err(error) => {
            let failed = Err(DbErr::Exec(sqlx_error(error)));
            group::settle(held, &group, &failed).await;
            drop(turn);
            failed
        }
    }
}

impl Drop for Session {
    /// A write dropped before its end (a refusal, an error, a request gone): its transaction is
    /// rolled back before the connection goes back to the pool, so the next write begins clean. A
    /// write of a group rolls back to its savepoint only, and leaves the group's transaction to
    /// the next write.
    fn drop(&mut self) {
        let Some(connection) = self.connection.get_mut().take() else { return };
        let turn = self.turn.get_mut().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let group = self.joined.clone();
        if !*self.begun.get_mut() {
            // Nothing sent: a write of a group leaves the group as it found it; any other gives
            // the connection back to the pool (and the turn on).
            if let (Some(turn), Some(group)) = (turn, group) {
                turn.hand_on(OpenGroup { connection, group }, false);
            }
            return;
        }
        let mut unfinished = Unfinished(Some(connection));
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        runtime.spawn(async move {
            // The writer's turn, if any, is held until the rollback is done.
            let turn = match (turn, group) {
                // A write of a group: its own work undone, the group goes on.
                (Some(turn), Some(group)) => return drop(leave_group(unfinished, turn, group).await),
                (turn, _) => turn,
            };
            let Some(connection) = unfinished.0.as_mut() else { return };
            let rolled_back = match (&mut **connection).execute("ROLLBACK").await {
                Ok(_) => true,
                Err(error) => no_transaction_is_fine(DbErr::Exec(sqlx_error(error))).is_ok(),
            };
            if rolled_back {
                // Back to the pool as it is, then the turn on.
                drop(unfinished.0.take());
            }
            drop(turn);
        });
    }
}

/// A connection whose transaction may be open: closed when dropped (SQLite rolls back what a
/// closed connection had begun), unless taken back first. Guards a rollback that never ran (the
/// runtime shutting down) or failed.
struct Unfinished(Option<PoolConnection<Sqlite>>);

impl Drop for Unfinished {
    fn drop(&mut self) {
        if let Some(mut connection) = self.0.take() {
            connection.close_on_drop();
        }
    }
}

/// A rollback that found no transaction (its `BEGIN` had failed): nothing to undo.
fn no_transaction_is_fine(error: DbErr) -> Result<(), DbErr> {
    if error.to_string().contains("no transaction is active") { Ok(()) } else { Err(error) }
}

fn ended() -> DbErr {
    DbErr::Custom("the write has ended".into())
}

/// Runs `end`, a write's commit or rollback: in a task of its own when `apart` (a write that took
/// its turn on a writer grouping its commits), so a caller that goes away does not stop half way
/// the end of a write the other writes of its group depend on.
async fn end_apart(apart: bool, end: impl Future<Output = Result<(), DbErr>> + Send + 'static) -> Result<(), DbErr> {
    if !apart {
        return end.await;
    }
    tokio::spawn(end).await.unwrap_or_else(|error| Err(DbErr::Custom(format!("the end of the write stopped: {error}"))))
}

/// As sea-orm says it of a connection not acquired.
fn connection_error(error: sqlx::Error) -> DbErr {
    match error {
        sqlx::Error::PoolTimedOut => DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
        sqlx::Error::PoolClosed => DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
        error => DbErr::Conn(sqlx_error(error)),
    }
}

pub(super) fn sqlx_error(error: sqlx::Error) -> RuntimeErr {
    RuntimeErr::SqlxError(Arc::new(error))
}

#[async_trait::async_trait]
impl ConnectionTrait for WriteTransaction {
    fn get_database_backend(&self) -> DbBackend {
        match &self.kind {
            Kind::SeaOrm(txn) => txn.get_database_backend(),
            Kind::Postgres { .. } => DbBackend::Postgres,
            Kind::Sqlite { .. } | Kind::Ended => DbBackend::Sqlite,
        }
    }

    async fn execute_raw(&self, statement: Statement) -> Result<ExecResult, DbErr> {
        match self.open().await? {
            Open::SeaOrm(txn) => txn.execute_raw(statement).await,
            Open::Postgres(session) => session.execute(statement).await,
            Open::Sqlite(session) => Ok(ExecResult::from(self.run(session, statement).await.map_err(as_exec)?.done)),
        }
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        match self.open().await? {
            Open::SeaOrm(txn) => txn.execute_unprepared(sql).await,
            Open::Postgres(session) => session.execute_plain(sql.to_owned()).await,
            Open::Sqlite(_) => self.execute_raw(Statement::from_string(DbBackend::Sqlite, sql)).await,
        }
    }

    async fn query_one_raw(&self, statement: Statement) -> Result<Option<QueryResult>, DbErr> {
        Ok(self.query_all_raw(statement).await?.into_iter().next())
    }

    async fn query_all_raw(&self, statement: Statement) -> Result<Vec<QueryResult>, DbErr> {
        match self.open().await? {
            Open::SeaOrm(txn) => txn.query_all_raw(statement).await,
            Open::Postgres(session) => session.query(statement).await,
            Open::Sqlite(session) => {
                Ok(self.run(session, statement).await?.rows.into_iter().map(QueryResult::from).collect())
            }
        }
    }
}

/// A failed statement run for its changes is an execution error, as sea-orm says it.
fn as_exec(error: DbErr) -> DbErr {
    match error {
        DbErr::Query(error) => DbErr::Exec(error),
        error => error,
    }
}

impl Drop for WriteTransaction {
    /// A savepoint dropped without its end spoils the write: it will not commit.
    fn drop(&mut self) {
        match &self.kind {
            Kind::Sqlite { session, savepoint: Some(_) } => session.spoiled.store(true, Ordering::Relaxed),
            Kind::Postgres { session, savepoint: Some(_) } => session.spoiled.store(true, Ordering::Relaxed),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
    use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

    use std::path::PathBuf;

    use super::*;
    use crate::store::{Tuning, connect, connect_writer};

    /// A SQLite file with a table `t (x)`, its read pool and its writer.
    async fn database(name: &str) -> (DatabaseConnection, Writer, PathBuf) {
        let folder = std::env::temp_dir().join(format!("certflow-txn-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&folder);
        let url = format!("sqlite://{}/t.db?mode=rwc", folder.display());
        let db = connect(&url, 2).await.expect("connect");
        db.execute_unprepared("CREATE TABLE t (x INTEGER NOT NULL UNIQUE)").await.expect("create");
        let writer = connect_writer(&url, &db, 1, Tuning::default()).await.expect("writer");
        (db, writer, folder)
    }

    /// [`database`] (named for `name` and the mode) and a write begun on it, batched or not.
    async fn write_on(name: &str, batched: bool) -> (DatabaseConnection, Writer, PathBuf, WriteTransaction) {
        let (db, writer, folder) = database(&format!("{name}-{batched}")).await;
        let txn = WriteTransaction::begin_batched(&writer, batched, None).await.expect("begin");
        (db, writer, folder, txn)
    }

    fn insert(x: i64) -> sea_orm::sea_query::InsertStatement {
        Query::insert().into_table(Alias::new("t")).columns([Alias::new("x")]).values_panic([x.into()]).to_owned()
    }

    async fn xs(db: &impl ConnectionTrait) -> Vec<i64> {
        let rows = db.query_all_raw(Statement::from_string(DbBackend::Sqlite, "SELECT x FROM t ORDER BY x")).await;
        rows.expect("select").iter().map(|row| row.try_get_by_index(0).expect("x")).collect()
    }

    fn hand_offs(txn: &WriteTransaction) -> usize {
        match &txn.kind {
            Kind::Sqlite { session, .. } => session.sent.load(Ordering::Relaxed),
            _ => panic!("not a SQLite session"),
        }
    }

    #[tokio::test]
    async fn begin_and_deferred_statements_go_with_the_next_statement_and_the_commit_in_one_hand_off_each() {
        let (db, writer, folder) = database("batched").await;
        let txn = WriteTransaction::begin_batched(&writer, true, None).await.expect("begin");
        txn.defer(&insert(1));
        txn.defer(&insert(2));
        assert_eq!(hand_offs(&txn), 0, "nothing is sent before a statement needs an answer");
        // The read sees what was deferred: it ran first, after the BEGIN.
        assert_eq!(xs(&txn).await, [1, 2]);
        assert_eq!(hand_offs(&txn), 1, "BEGIN, two inserts and the read: one hand-off");
        assert!(xs(&db).await.is_empty(), "not committed yet");
        txn.defer(&insert(3));
        txn.commit().await.expect("commit");
        assert_eq!(xs(&db).await, [1, 2, 3], "the deferred insert went with the COMMIT");
        std::fs::remove_dir_all(folder).expect("clean up");
    }

    #[tokio::test]
    async fn reads_sent_together_answer_each_with_their_own_rows() {
        let (_db, writer, folder) = database("together").await;
        let txn = WriteTransaction::begin_batched(&writer, true, None).await.expect("begin");
        txn.defer(&insert(5));
        let select = |above: i64| {
            DbBackend::Sqlite.build(
                Query::select()
                    .column(Alias::new("x"))
                    .from(Alias::new("t"))
                    .and_where(Expr::col(Alias::new("x")).gt(above)),
            )
        };
        let answers = txn.query_all_together(&[select(0), select(9)]).await.expect("reads");
        assert_eq!(answers.len(), 2);
        assert_eq!((answers[0].len(), answers[1].len()), (1, 0), "the insert's row, then none above 9");
        assert_eq!(hand_offs(&txn), 1);
        std::fs::remove_dir_all(folder).expect("clean up");
    }

    #[tokio::test]
    async fn a_failing_deferred_statement_fails_the_statement_it_went_with_and_the_write_commits_nothing() {
        for batched in [true, false] {
            let (db, writer, folder, txn) = write_on("fails", batched).await;
            txn.defer(&insert(1));
            txn.defer(&insert(1));
            let error = txn.execute(&insert(2)).await.expect_err("the second insert of 1 breaks uniqueness");
            assert!(error.to_string().contains("UNIQUE"), "{error}");
            drop(txn);
            // The dropped write rolled back before the writer was handed on.
            let next = WriteTransaction::begin_batched(&writer, batched, None).await.expect("begin again");
            next.execute(&insert(7)).await.expect("the next write begins clean");
            next.commit().await.expect("commit");
            assert_eq!(xs(&db).await, [7], "batched: {batched}");
            std::fs::remove_dir_all(folder).expect("clean up");
        }
    }

    #[tokio::test]
    async fn a_write_dropped_after_its_statements_leaves_nothing_and_one_that_did_nothing_commits_nothing() {
        let (db, writer, folder) = database("dropped").await;
        let txn = WriteTransaction::begin_batched(&writer, true, None).await.expect("begin");
        txn.execute(&insert(1)).await.expect("insert");
        txn.defer(&insert(2));
        drop(txn);
        let idle = WriteTransaction::begin_batched(&writer, true, None).await.expect("begin");
        assert_eq!(hand_offs(&idle), 0);
        idle.commit().await.expect("a write that sent nothing commits nothing");
        assert!(xs(&db).await.is_empty());
        std::fs::remove_dir_all(folder).expect("clean up");
    }

    #[tokio::test]
    async fn a_savepoint_rolled_back_undoes_its_own_work_only_and_one_left_open_stops_the_commit() {
        for batched in [true, false] {
            let (db, _writer, folder, txn) = write_on("savepoint", batched).await;
            txn.execute(&insert(1)).await.expect("insert");
            let attempt = txn.savepoint().await.expect("savepoint");
            attempt.execute(&insert(2)).await.expect("insert in the savepoint");
            attempt.rollback().await.expect("rollback to the savepoint");
            let kept = txn.savepoint().await.expect("savepoint");
            kept.execute(&insert(3)).await.expect("insert in the savepoint");
            kept.commit().await.expect("release");
            txn.commit().await.expect("commit");
            assert_eq!(xs(&db).await, [1, 3], "batched: {batched}");
            std::fs::remove_dir_all(folder).expect("clean up");
        }
        let (db, writer, folder) = database("savepoint-open").await;
        let txn = WriteTransaction::begin_batched(&writer, true, None).await.expect("begin");
        txn.execute(&insert(1)).await.expect("insert");
        let forgotten = txn.savepoint().await.expect("savepoint");
        forgotten.execute(&insert(2)).await.expect("insert");
        drop(forgotten);
        txn.commit().await.expect_err("a savepoint left open: the write does not commit");
        assert!(xs(&db).await.is_empty());
        std::fs::remove_dir_all(folder).expect("clean up");
    }
    /// Waits until `n` writes are queued for the writer's turn.
    async fn queued(writer: &Writer, n: usize) {
        let Some(gate) = group::gate_of(writer.pool().get_sqlite_connection_pool()) else {
            // Commits not grouped: the writes queue for the pool's connection.
            return tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        for _ in 0..500 {
            if gate.waiting() == n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        panic!("{} writes queued, not {n}", gate.waiting());
    }

    fn joined(txn: &WriteTransaction) -> bool {
        matches!(&txn.kind, Kind::Sqlite { session, .. } if session.joined.is_some())
    }

    /// [`database`], and a first write on it that inserted 1 and holds the writer.
    async fn first_write(name: &str) -> (DatabaseConnection, Writer, PathBuf, WriteTransaction) {
        let (db, writer, folder) = database(name).await;
        let first = WriteTransaction::begin_batched(&writer, true, None).await.expect("begin");
        first.execute(&insert(1)).await.expect("insert");
        (db, writer, folder, first)
    }

    /// Whether a write joined a group, and how its commit went.
    type Joined = tokio::task::JoinHandle<(bool, Result<(), DbErr>)>;

    /// A write begun on `writer` that inserts `x`, then waits for `go` before it commits.
    fn queued_write(writer: &Writer, x: i64) -> (tokio::sync::oneshot::Sender<()>, Joined) {
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let writer = writer.clone();
        let write = tokio::spawn(async move {
            let txn = WriteTransaction::begin_batched(&writer, true, None).await.expect("begin");
            txn.execute(&insert(x)).await.expect("insert");
            let _ = wait.await;
            (joined(&txn), txn.commit().await)
        });
        (go, write)
    }

    #[tokio::test]
    async fn a_write_that_ends_while_others_wait_is_answered_only_once_the_commit_it_shares_with_them_is_done() {
        let (db, writer, folder, first) = first_write("group").await;
        let (go, second) = queued_write(&writer, 2);
        queued(&writer, 1).await;
        let mut first_commit = tokio::spawn(first.commit());
        // The first write left its transaction open for the second: not answered, not committed.
        let early = tokio::time::timeout(std::time::Duration::from_millis(200), &mut first_commit).await;
        assert!(early.is_err(), "the first write was answered before the commit that holds it");
        assert!(xs(&db).await.is_empty(), "nothing is committed while the group is open");
        go.send(()).expect("the second write waits");
        let (second_joined, second_committed) = second.await.expect("the second write");
        assert!(second_joined, "the second write ran in the first one's transaction");
        second_committed.expect("the second write commits the group");
        first_commit.await.expect("the first write").expect("answered with the group's commit");
        assert_eq!(xs(&db).await, [1, 2]);
        std::fs::remove_dir_all(folder).expect("clean up");
    }

    #[tokio::test]
    async fn a_write_of_a_group_that_fails_rolls_back_or_goes_away_undoes_its_own_work_only() {
        let (db, writer, folder, first) = first_write("group-undo").await;
        let mut writes = Vec::new();
        for (x, how) in [(2, "rolls back"), (3, "is dropped"), (4, "fails at its commit"), (5, "commits")] {
            let own = writer.clone();
            writes.push(tokio::spawn(async move {
                let txn = WriteTransaction::begin_batched(&own, true, None).await.expect("begin");
                txn.execute(&insert(x)).await.expect("insert");
                match how {
                    "rolls back" => txn.rollback().await,
                    "is dropped" => {
                        drop(txn);
                        Ok(())
                    }
                    "fails at its commit" => {
                        // The first write's row again: its deferred insert breaks uniqueness.
                        txn.defer(&insert(1));
                        txn.commit().await.map(|()| panic!("a repeated row committed"))
                    }
                    _ => txn.commit().await,
                }
            }));
            queued(&writer, writes.len()).await;
        }
        first.commit().await.expect("the group commits");
        let outcomes: Vec<bool> =
            futures::future::join_all(writes).await.into_iter().map(|w| w.unwrap().is_ok()).collect();
        assert_eq!(outcomes, [true, true, false, true]);
        assert_eq!(xs(&db).await, [1, 5], "the work of the writes that did not commit is gone, the rest kept");
        std::fs::remove_dir_all(folder).expect("clean up");
    }

    #[tokio::test]
    async fn a_group_whose_writes_went_away_is_committed_by_its_closer() {
        let (db, writer, folder, first) = first_write("group-closer").await;
        let (go, idle) = tokio::sync::oneshot::channel::<()>();
        let joiner = {
            let writer = writer.clone();
            tokio::spawn(async move {
                let txn = WriteTransaction::begin_batched(&writer, true, None).await.expect("begin");
                let _ = idle.await;
                // Gone without a statement: the group it joined goes on without it.
                drop(txn);
            })
        };
        queued(&writer, 1).await;
        let first_commit = tokio::spawn(first.commit());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        go.send(()).expect("the joiner waits");
        joiner.await.expect("the joiner");
        first_commit.await.expect("the first write").expect("committed by the closer");
        assert_eq!(xs(&db).await, [1]);
        std::fs::remove_dir_all(folder).expect("clean up");
    }

    #[tokio::test]
    async fn when_the_commit_of_a_group_fails_every_write_of_it_fails_and_none_of_their_work_stays() {
        let (db, writer, folder) = database("group-fails").await;
        db.execute_unprepared(
            "CREATE TABLE parent (id INTEGER PRIMARY KEY); \
             CREATE TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)",
        )
        .await
        .expect("tables checked at the commit");
        let first = WriteTransaction::begin_batched(&writer, true, None).await.expect("begin");
        first.execute(&insert(1)).await.expect("insert");
        let last = {
            let writer = writer.clone();
            tokio::spawn(async move {
                let txn = WriteTransaction::begin_batched(&writer, true, None).await.expect("begin");
                txn.execute(&insert(2)).await.expect("insert");
                // A child without its parent: refused only when the transaction commits.
                let orphan = Statement::from_string(DbBackend::Sqlite, "INSERT INTO child (p) VALUES (42)");
                txn.execute_raw(orphan).await.expect("checked later");
                txn.commit().await
            })
        };
        queued(&writer, 1).await;
        let first_committed = first.commit().await;
        let last_committed = last.await.expect("the last write");
        assert!(last_committed.expect_err("its commit fails").to_string().contains("FOREIGN KEY"));
        assert!(first_committed.is_err(), "the first write is told its group's commit failed");
        assert!(xs(&db).await.is_empty(), "neither write's work stays");
        // The writer goes on.
        let next = WriteTransaction::begin_batched(&writer, true, None).await.expect("begin");
        next.execute(&insert(3)).await.expect("insert");
        next.commit().await.expect("commit");
        assert_eq!(xs(&db).await, [3]);
        std::fs::remove_dir_all(folder).expect("clean up");
    }

    #[tokio::test]
    async fn a_write_whose_caller_goes_away_while_it_commits_its_group_still_ends_it() {
        let (db, writer, folder, first) = first_write("group-gone").await;
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let last = {
            let writer = writer.clone();
            tokio::spawn(async move {
                let txn = WriteTransaction::begin_batched(&writer, true, None).await.expect("begin");
                txn.execute(&insert(2)).await.expect("insert");
                let _ = wait.await;
                // Its request goes away as its commit begins: polled once, then dropped.
                use futures::FutureExt;
                assert!(txn.commit().now_or_never().is_none(), "a commit waits for SQLite");
            })
        };
        queued(&writer, 1).await;
        let first_commit = tokio::spawn(first.commit());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        go.send(()).expect("the last write waits");
        last.await.expect("the last write");
        first_commit.await.expect("the first write").expect("told the truth: the group committed");
        assert_eq!(xs(&db).await, [1, 2]);
        std::fs::remove_dir_all(folder).expect("clean up");
    }

    #[tokio::test]
    async fn a_write_waits_for_its_turn_no_longer_than_for_the_connection() {
        let (db, writer, folder) = database("group-timeout").await;
        let holding = WriteTransaction::begin_batched(&writer, true, None).await.expect("begin");
        holding.execute(&insert(1)).await.expect("insert");
        let started = std::time::Instant::now();
        let refused = WriteTransaction::begin_batched(&writer, true, None).await.map(|_| ());
        assert!(
            matches!(refused, Err(DbErr::ConnectionAcquire(ConnAcquireErr::Timeout))),
            "a timeout, as the pool says it: {refused:?}"
        );
        let waited = started.elapsed();
        assert!(waited < std::time::Duration::from_secs(6), "the pool's acquire timeout (3 s), once: {waited:?}");
        holding.commit().await.expect("commit");
        assert_eq!(xs(&db).await, [1]);
        std::fs::remove_dir_all(folder).expect("clean up");
    }
}
