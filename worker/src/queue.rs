//! The email queue: apalis storage in the same database as the data (SQLite or PostgreSQL).

use apalis::prelude::TaskSink;
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection};

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

/// apalis-sqlite acknowledges a job with `UPDATE Jobs … FROM json_each(?) WHERE Jobs.id = … AND
/// Jobs.lock_by = ?`. Without statistics SQLite guesses that few rows share a `lock_by` and walks
/// every job the worker ever ran, parsing the JSON once per row: each acknowledgement costs more
/// than the last (quadratic over a burst of emails). Telling the planner that `lock_by` is a poor
/// filter (SQLite's documented way to steer plans, sqlite_stat1) makes it look jobs up by their
/// unique id instead.
///
/// That row is the only statistic kept: certflow's queries are planned without statistics (their
/// indexes are chosen for that). apalis's own setup used to run `PRAGMA optimize`, which analyzed
/// the tables it chose, at whatever moment the worker started: analyzed while the webhook outbox
/// held 40,000 undispatched events, SQLite then read the whole outbox to find the next
/// undispatched one, every pass. Statistics of other tables are deleted here.
///
/// Statistics are read with the schema: the empty table created and dropped changes the schema,
/// so every pooled connection reloads both; `ANALYZE sqlite_schema` reloads this one.
async fn steer_acknowledgements(db: &DatabaseConnection) -> Result<(), WorkerError> {
    let steer = "ANALYZE sqlite_schema; \
        DELETE FROM sqlite_stat1 WHERE tbl <> 'Jobs'; \
        INSERT INTO sqlite_stat1 (tbl, idx, stat) SELECT 'Jobs', 'LIdx', '1000000 100000' \
        WHERE NOT EXISTS (SELECT 1 FROM sqlite_stat1 WHERE tbl = 'Jobs' AND idx = 'LIdx'); \
        CREATE TABLE IF NOT EXISTS certflow_reload_statistics (x INTEGER); \
        DROP TABLE IF EXISTS certflow_reload_statistics; \
        ANALYZE sqlite_schema;";
    db.execute_unprepared(steer).await.map_err(|e| WorkerError::Queue(format!("steering the queue's plans: {e}")))?;
    Ok(())
}

impl EmailQueue {
    /// Sets up apalis' tables on the application's pool and opens the queue.
    ///
    /// On SQLite only apalis's migrations run, not its `setup`: that also set pragmas on whichever
    /// pooled connections it drew (`synchronous = OFF`, a page cache of 64,000 pages, 250 MB, that
    /// held 53 MB after one read of the outbox, in-memory temporary tables) and ran `PRAGMA
    /// optimize`. The connections keep the settings certflow opens them with.
    pub async fn open(db: &DatabaseConnection) -> Result<Self, WorkerError> {
        match db.get_database_backend() {
            DatabaseBackend::Sqlite => {
                let pool = db.get_sqlite_connection_pool();
                SqliteStorage::<()>::migrations().run(pool).await.map_err(|e| WorkerError::Queue(e.to_string()))?;
                steer_acknowledgements(db).await?;
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

#[cfg(test)]
mod tests {
    use sea_orm::sqlx::{self, Row};

    use super::EmailQueue;

    /// The shape of apalis-sqlite's acknowledgement (queries/task/ack.sql).
    const ACKNOWLEDGEMENT: &str = "EXPLAIN QUERY PLAN WITH j AS (SELECT value ->> 'task_id' AS task_id, \
        value ->> 'status' AS status FROM json_each(?1)) UPDATE Jobs SET status = j.status FROM j \
        WHERE Jobs.id = j.task_id AND Jobs.lock_by = ?2";

    #[tokio::test]
    async fn every_pooled_connection_acknowledges_jobs_by_their_id() {
        let path = std::env::temp_dir().join(format!("certflow-queue-{}.db", uuid::Uuid::now_v7()));
        let db = engine::store::connect(&format!("sqlite://{}?mode=rwc", path.display()), 3).await.expect("connect");
        let pool = db.get_sqlite_connection_pool().clone();
        // Connections opened before the queue, as the API's are.
        let mut early = Vec::new();
        for _ in 0..3 {
            early.push(pool.acquire().await.expect("a connection"));
        }
        drop(early);
        EmailQueue::open(&db).await.expect("open the queue");
        let mut plans = Vec::new();
        let mut pragmas = Vec::new();
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut connection = pool.acquire().await.expect("a connection");
            sqlx::query("SELECT count(*) FROM Jobs").fetch_one(&mut *connection).await.expect("read the queue");
            let mut settings = Vec::new();
            for pragma in ["PRAGMA synchronous", "PRAGMA cache_size", "PRAGMA temp_store"] {
                let row = sqlx::query(pragma).fetch_one(&mut *connection).await.expect("a pragma");
                settings.push(row.get::<i64, _>(0));
            }
            pragmas.push(settings);
            let rows = sqlx::query(ACKNOWLEDGEMENT)
                .bind("[]")
                .bind("worker")
                .fetch_all(&mut *connection)
                .await
                .expect("explain the acknowledgement");
            plans.push(rows.iter().map(|row| row.get::<String, _>(3)).collect::<Vec<_>>().join(" / "));
            held.push(connection);
        }
        drop(held);
        let statistics: Vec<String> = sqlx::query("SELECT tbl FROM sqlite_stat1")
            .fetch_all(&pool)
            .await
            .expect("the statistics")
            .iter()
            .map(|row| row.get(0))
            .collect();
        db.close().await.expect("close");
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
        // Each connection as certflow opened it (synchronous NORMAL, a reader's page cache,
        // temporary tables as by default), whatever the queue's setup ran.
        let cache = -i64::try_from(entities::settings::DEFAULT_SQLITE_CACHE_SIZE).expect("KiB");
        assert_eq!(pragmas, vec![vec![1, cache, 0]; 3]);
        assert_eq!(statistics, ["Jobs"], "the queue's steering is the only statistic");
        for plan in plans {
            assert!(plan.starts_with("SCAN json_each"), "{plan}");
            assert!(plan.contains("SEARCH Jobs USING INDEX sqlite_autoindex_Jobs_1 (id=?)"), "{plan}");
        }
    }
}
