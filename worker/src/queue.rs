//! The email queue: apalis storage in the same database as the data (SQLite or PostgreSQL).

use apalis::prelude::TaskSink;
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use sea_orm::{DatabaseBackend, DatabaseConnection};

use crate::error::WorkerError;
use crate::jobs::SendNotification;

/// The queue's name in apalis storage: fixed, so moving the job type strands nothing.
pub const EMAIL_QUEUE: &str = "certflow-emails";
/// Jobs fetched per poll.
const BATCH: usize = 200;

/// Where email jobs wait.
#[derive(Clone)]
pub enum EmailQueue {
    /// In the SQLite file.
    Sqlite(SqliteStorage<SendNotification>),
    /// In PostgreSQL's `apalis` schema.
    Postgres(PostgresStorage<SendNotification>),
}

impl std::fmt::Debug for EmailQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Sqlite(_) => "EmailQueue::Sqlite",
            Self::Postgres(_) => "EmailQueue::Postgres",
        })
    }
}

impl EmailQueue {
    /// Sets up apalis' tables on the application's pool and opens the queue.
    pub async fn open(db: &DatabaseConnection) -> Result<Self, WorkerError> {
        match db.get_database_backend() {
            DatabaseBackend::Sqlite => {
                let pool = db.get_sqlite_connection_pool();
                SqliteStorage::setup(pool).await.map_err(|e| WorkerError::Queue(e.to_string()))?;
                let config = apalis_sqlite::Config::default().queue(EMAIL_QUEUE).batch_size(BATCH);
                Ok(Self::Sqlite(SqliteStorage::new(pool).with_config(config)))
            }
            DatabaseBackend::Postgres => {
                let pool = db.get_postgres_connection_pool();
                PostgresStorage::setup(pool).await.map_err(|e| WorkerError::Queue(e.to_string()))?;
                let config = apalis_postgres::Config::default().queue(EMAIL_QUEUE).batch_size(BATCH);
                Ok(Self::Postgres(PostgresStorage::new(pool).with_config(config)))
            }
            other => Err(WorkerError::Queue(format!("no email queue for {other:?}"))),
        }
    }

    /// Queues one email job.
    pub async fn push(&self, job: SendNotification) -> Result<(), WorkerError> {
        match self {
            Self::Sqlite(storage) => storage.clone().push(job).await.map_err(|e| WorkerError::Queue(e.to_string())),
            Self::Postgres(storage) => storage.clone().push(job).await.map_err(|e| WorkerError::Queue(e.to_string())),
        }
    }
}
