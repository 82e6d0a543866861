//! The writer: where write transactions go, and the statements that write outside one (the
//! worker's claims, the clean-ups).

use std::sync::Arc;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, ExecResult, QueryResult, Statement};

use super::connection::Waiting;
use super::postgres::{Connections, Held};
use super::transaction::WriteTransaction;

/// The writer (see [`super::connect_writer`]): on SQLite a pool of one connection that writes
/// queue for; on PostgreSQL connections held by certflow itself ([`super::postgres`]), as many
/// as `DATABASE_WRITE_CONNECTIONS`, each statement outside a transaction on one of them.
#[derive(Debug, Clone)]
pub struct Writer {
    /// SQLite's writer pool; on PostgreSQL the read pool (its options open the writer's
    /// connections; nothing is written through it).
    pool: DatabaseConnection,
    /// PostgreSQL: the writer's connections.
    held: Option<Arc<Connections>>,
}

impl Writer {
    /// The writer over `pool`: SQLite's writer pool as it is; on PostgreSQL, `most` connections
    /// opened with `pool`'s options.
    pub fn over(pool: DatabaseConnection, most: u32) -> Self {
        let held = (pool.get_database_backend() == DbBackend::Postgres)
            .then(|| Arc::new(Connections::beside(pool.get_postgres_connection_pool(), most)));
        Self { pool, held }
    }

    /// SQLite's writer pool, or the pool whose options a PostgreSQL writer opens its
    /// connections with.
    pub(super) fn pool(&self) -> &DatabaseConnection {
        &self.pool
    }

    /// The PostgreSQL writer's connections.
    pub(super) fn held(&self) -> Option<&Arc<Connections>> {
        self.held.as_ref()
    }

    /// On PostgreSQL, one of the writer's connections, taken for a write that reads on it first
    /// (outside its transaction) what decides whether it begins: [`Taken::begin`] begins it. On
    /// SQLite, none: its one connection is for writes alone, and such reads go to the read pool.
    pub async fn take(&self) -> Result<Option<Taken>, DbErr> {
        let Some(held) = &self.held else { return Ok(None) };
        let waiting = Waiting::for_pool("write");
        let connection = held.acquire().await?;
        Ok(Some(Taken { connection: futures::lock::Mutex::new(connection), waiting }))
    }

    /// The writer's connections: how many are open, how many of them idle, and the most there
    /// may be.
    pub fn census(&self) -> (u32, u32, u32) {
        match &self.held {
            Some(held) => held.census(),
            None => census_of(&self.pool),
        }
    }

    /// Closes the writer's connections (SQLite's pool; a PostgreSQL writer's connections close
    /// as they are given back, and when the writer is dropped).
    pub async fn close(self) -> Result<(), DbErr> {
        match self.held {
            Some(_) => Ok(()),
            None => self.pool.close().await,
        }
    }
}

/// A pool's connections: how many are open, how many of them idle, and the most there may be.
pub fn census_of(pool: &DatabaseConnection) -> (u32, u32, u32) {
    let (size, idle, most) = match pool.get_database_backend() {
        DbBackend::Sqlite => {
            let pool = pool.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle(), pool.options().get_max_connections())
        }
        DbBackend::Postgres => {
            let pool = pool.get_postgres_connection_pool();
            (pool.size(), pool.num_idle(), pool.options().get_max_connections())
        }
        _ => (0, 0, 0),
    };
    (size, u32::try_from(idle).unwrap_or(u32::MAX).min(size), most)
}

/// A process's pool, as its metrics name it: the read pool or the writer.
#[derive(Debug, Clone)]
pub enum Pool {
    /// The read pool.
    Reads(DatabaseConnection),
    /// The writer.
    Writer(Writer),
}

impl Pool {
    /// Its connections: open, idle, and the most there may be.
    pub fn census(&self) -> (u32, u32, u32) {
        match self {
            Self::Reads(pool) => census_of(pool),
            Self::Writer(writer) => writer.census(),
        }
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Writer {
    fn get_database_backend(&self) -> DbBackend {
        self.pool.get_database_backend()
    }

    async fn execute_raw(&self, statement: Statement) -> Result<ExecResult, DbErr> {
        let Some(held) = &self.held else { return self.pool.execute_raw(statement).await };
        held.acquire().await?.execute(statement).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let Some(held) = &self.held else { return self.pool.execute_unprepared(sql).await };
        held.acquire().await?.execute_plain(sql.to_owned()).await
    }

    async fn query_one_raw(&self, statement: Statement) -> Result<Option<QueryResult>, DbErr> {
        Ok(self.query_all_raw(statement).await?.into_iter().next())
    }

    async fn query_all_raw(&self, statement: Statement) -> Result<Vec<QueryResult>, DbErr> {
        let Some(held) = &self.held else { return self.pool.query_all_raw(statement).await };
        held.acquire().await?.query(statement).await
    }
}

/// A connection of the PostgreSQL writer's own, taken for a write not begun yet ([`Writer::take`]):
/// statements on it run outside a transaction. Dropped, it goes back to the writer.
#[derive(Debug)]
pub struct Taken {
    connection: futures::lock::Mutex<Held>,
    /// The write counts as waiting for the writer until its `BEGIN` returns.
    waiting: Waiting,
}

impl Taken {
    /// Begins the write on this connection.
    pub async fn begin(self) -> Result<WriteTransaction, DbErr> {
        WriteTransaction::begin_on(self.connection.into_inner(), Some(self.waiting)).await
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for Taken {
    fn get_database_backend(&self) -> DbBackend {
        DbBackend::Postgres
    }

    async fn execute_raw(&self, statement: Statement) -> Result<ExecResult, DbErr> {
        self.connection.lock().await.execute(statement).await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        self.connection.lock().await.execute_plain(sql.to_owned()).await
    }

    async fn query_one_raw(&self, statement: Statement) -> Result<Option<QueryResult>, DbErr> {
        Ok(self.query_all_raw(statement).await?.into_iter().next())
    }

    async fn query_all_raw(&self, statement: Statement) -> Result<Vec<QueryResult>, DbErr> {
        self.connection.lock().await.query(statement).await
    }
}
