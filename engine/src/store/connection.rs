//! Opening the database: SQLite (a file, WAL, busy timeout, foreign keys) or PostgreSQL, from one URL.

use std::time::Duration;

use anyhow::Context;
use entities::settings::{
    DEFAULT_SQLITE_CACHE_SIZE, DEFAULT_SQLITE_GROUP_COMMIT, DEFAULT_SQLITE_MMAP_SIZE, DEFAULT_SQLITE_WRITER_CACHE_SIZE,
};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    AccessMode, ConnectOptions, Database, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, IsolationLevel,
    TransactionTrait,
};

use super::transaction::{self, WriteTransaction};
use super::writer::Writer;
use super::{colocation, group, postgres};

/// How connections are opened beyond their number (`SQLITE_MMAP_SIZE`, `SQLITE_CACHE_SIZE`,
/// `SQLITE_WRITER_CACHE_SIZE`, `DATABASE_LOG_STATEMENTS`, `SQLITE_WRITER_COLOCATE`, `SQLITE_BATCH_STATEMENTS`,
/// `SQLITE_GROUP_COMMIT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuning {
    /// Bytes of a SQLite file each connection maps (every connection maps the file on its own, and
    /// the process's resident memory counts each mapping's pages once per connection).
    pub sqlite_mmap_size: u64,
    /// KiB of pages each SQLite reading connection caches.
    pub sqlite_cache_size: u64,
    /// KiB of pages the SQLite writer's connection caches.
    pub sqlite_writer_cache_size: u64,
    /// Log every statement with its time (sqlx, target `sqlx::query`, at INFO): to capture what a
    /// request runs, e.g. for a benchmark's ceiling.
    pub log_statements: bool,
    /// Keep the SQLite writer's thread on the CPU of the thread writing through it
    /// ([`super::colocation`]).
    pub colocate_writer: bool,
    /// Send a SQLite write's `BEGIN`, deferred statements and `COMMIT` with its other statements
    /// ([`super::transaction`]).
    pub batch_statements: bool,
    /// The most writes one commit of the SQLite writer carries ([`super::group`]; with
    /// `batch_statements` only); below 2, each write commits alone.
    pub group_commit: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            sqlite_mmap_size: DEFAULT_SQLITE_MMAP_SIZE,
            sqlite_cache_size: DEFAULT_SQLITE_CACHE_SIZE,
            sqlite_writer_cache_size: DEFAULT_SQLITE_WRITER_CACHE_SIZE,
            log_statements: false,
            colocate_writer: true,
            batch_statements: true,
            group_commit: DEFAULT_SQLITE_GROUP_COMMIT,
        }
    }
}

impl Tuning {
    /// The tuning the settings name.
    pub fn of(settings: &entities::settings::Settings) -> Self {
        Self {
            sqlite_mmap_size: settings.sqlite_mmap_size,
            sqlite_cache_size: settings.sqlite_cache_size,
            sqlite_writer_cache_size: settings.sqlite_writer_cache_size,
            log_statements: settings.database_log_statements,
            colocate_writer: settings.sqlite_writer_colocate,
            batch_statements: settings.sqlite_batch_statements,
            group_commit: settings.sqlite_group_commit,
        }
    }
}

/// Connects to `url` with at most `max_connections` connections, tuned as by default. A SQLite
/// file's folder is created when missing. Migrations are not run here: see `migration::Migrator`.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<DatabaseConnection> {
    connect_tuned(url, max_connections, Tuning::default()).await
}

/// [`connect`], tuned by `tuning`.
pub async fn connect_tuned(url: &str, max_connections: u32, tuning: Tuning) -> anyhow::Result<DatabaseConnection> {
    open(url, max_connections, tuning, false).await
}

/// Opens the pool; `writer`: SQLite's one writer connection, its thread named to be followed
/// ([`super::colocation`]) when the tuning says so.
async fn open(url: &str, max_connections: u32, tuning: Tuning, writer: bool) -> anyhow::Result<DatabaseConnection> {
    let Tuning {
        sqlite_mmap_size,
        sqlite_cache_size,
        sqlite_writer_cache_size,
        log_statements,
        colocate_writer,
        batch_statements,
        group_commit,
    } = tuning;
    let cache_size = if writer { sqlite_writer_cache_size } else { sqlite_cache_size };
    let followed = writer && colocate_writer;
    let folder = sqlite_file(url)
        .and_then(|path| std::path::Path::new(path).parent())
        .filter(|folder| !folder.as_os_str().is_empty());
    if let Some(folder) = folder {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("Failed to create the database folder {}", folder.display()))?;
    }
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        // A request waits at most this long for a connection: when the server is gone, callers
        // get their 503 (and Retry-After) in seconds instead of hanging.
        .acquire_timeout(Duration::from_secs(3))
        // A connection used within the last second is handed out as it is: pinging it on every
        // acquire (sqlx's default) costs PostgreSQL a round trip per statement outside a
        // transaction. One idle for longer (e.g. through a server restart) is pinged first, and
        // a dead one is replaced instead of failing the request.
        .test_before_acquire_if_idle_for(postgres::PING_IF_IDLE_FOR)
        // sea-orm logs them at INFO.
        .sqlx_logging(log_statements)
        .map_sqlx_sqlite_opts(move |opts| {
            let opts = if followed { opts.thread_name(colocation::thread_name) } else { opts };
            opts.create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                // With a map, reads take pages from it instead of copying them out of the OS
                // cache with a `pread` (writes still go through the WAL).
                .pragma("mmap_size", sqlite_mmap_size.to_string())
                // Negative: a size in KiB rather than a number of pages.
                .pragma("cache_size", format!("-{cache_size}"))
        });
    let db = Database::connect(options).await.context("Failed to connect to the database")?;
    if followed {
        colocation::enable();
    }
    if writer {
        transaction::set_batched(batch_statements);
        group::group_commits_of(db.get_sqlite_connection_pool(), if batch_statements { group_commit } else { 0 });
    }
    Ok(db)
}

/// The writer write transactions go through, beside `db` (the pool for reads) opened on `url`.
///
/// On SQLite, one connection of its own: SQLite lets one writer in at a time, and a writer that
/// finds the lock taken sleeps and retries with growing pauses instead of waiting its turn, so
/// under 64 concurrent writers some waited a second while others overtook them. Queued for one
/// connection (sqlx hands a pool's connections out first come, first served), writers take turns
/// and none sleeps. On PostgreSQL, `writers` connections of its own, opened with `db`'s options
/// ([`super::postgres`]: held by certflow rather than sqlx's pool, which pings each connection it
/// takes back): a few write transactions at once keep the cores busy, more only wait on each
/// other's row locks and stretch the tail, while reads, one short statement each, gain from a
/// larger pool.
pub async fn connect_writer(
    url: &str,
    db: &DatabaseConnection,
    writers: u32,
    tuning: Tuning,
) -> anyhow::Result<Writer> {
    Ok(match db.get_database_backend() {
        DbBackend::Sqlite if sqlite_file(url).is_none() => Writer::over(db.clone(), 1),
        DbBackend::Sqlite => Writer::over(open(url, 1, tuning, true).await?, 1),
        _ => Writer::over(db.clone(), writers),
    })
}

/// Begins a transaction that will write. On SQLite it takes the write lock at once (`BEGIN
/// IMMEDIATE`), so concurrent writers queue instead of failing when they upgrade a read.
///
/// `certflow_db_pool_waiting{pool="write"}` counts the writes waiting for the writer meanwhile (on
/// SQLite, the queue for its one connection, and the write holding it until its `BEGIN IMMEDIATE`
/// got SQLite's lock).
pub async fn begin_write(writer: &Writer) -> Result<WriteTransaction, DbErr> {
    let txn = WriteTransaction::begin(writer, Waiting::for_pool("write")).await?;
    if writer.pool().get_database_backend() == DbBackend::Sqlite {
        colocation::follow();
    }
    Ok(txn)
}

/// A read-only transaction on `db` that reads one state of the database throughout: SQLite's (in
/// WAL mode, a read transaction sees one state of the file), PostgreSQL's at REPEATABLE READ (its
/// default, READ COMMITTED, would read each statement at another moment). For what is read in
/// several statements and must agree: an export, a page of a list kept in two tables.
pub async fn read_snapshot(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    match db.get_database_backend() {
        DbBackend::Postgres => {
            db.begin_with_config(Some(IsolationLevel::RepeatableRead), Some(AccessMode::ReadOnly)).await
        }
        _ => db.begin().await,
    }
}

/// One more on a pool's `certflow_db_pool_waiting` gauge while it lives (a wait given up when
/// its request goes away is counted off too).
#[derive(Debug)]
pub(super) struct Waiting(metrics::Gauge);

impl Waiting {
    pub(super) fn for_pool(pool: &'static str) -> Self {
        let gauge = metrics::gauge!("certflow_db_pool_waiting", "pool" => pool);
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// The file path of a `sqlite:` URL, unless it is in memory.
pub fn sqlite_file(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then_some(path)
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};

    use super::{Tuning, connect, connect_tuned, connect_writer, sqlite_file};

    async fn cache_size(db: &sea_orm::DatabaseConnection) -> i64 {
        let cache_size = db.query_one_raw(Statement::from_string(DbBackend::Sqlite, "PRAGMA cache_size")).await;
        cache_size.expect("pragma").expect("a row").try_get_by_index(0).expect("a number")
    }

    async fn mmap_size(db: &sea_orm::DatabaseConnection) -> i64 {
        let mmap_size = db.query_one_raw(Statement::from_string(DbBackend::Sqlite, "PRAGMA mmap_size")).await;
        mmap_size.expect("pragma").expect("a row").try_get_by_index(0).expect("a number")
    }

    #[tokio::test]
    async fn a_sqlite_file_gets_one_writer_connection_of_its_own_mapping_and_caching_what_the_settings_say() {
        let folder = std::env::temp_dir().join(format!("certflow-writer-{}", std::process::id()));
        let url = format!("sqlite://{}/w.db?mode=rwc", folder.display());
        let tuning = Tuning {
            sqlite_mmap_size: 1 << 24,
            sqlite_cache_size: 512,
            sqlite_writer_cache_size: 1024,
            ..Tuning::default()
        };
        let db = connect_tuned(&url, 4, tuning).await.expect("connect");
        let writer = connect_writer(&url, &db, 8, tuning).await.expect("writer");
        assert_eq!(writer.pool().get_sqlite_connection_pool().options().get_max_connections(), 1);
        assert_eq!(db.get_sqlite_connection_pool().options().get_max_connections(), 4);
        assert_eq!((mmap_size(&db).await, mmap_size(writer.pool()).await), (1 << 24, 1 << 24));
        assert_eq!(
            (cache_size(&db).await, cache_size(writer.pool()).await),
            (-512, -1024),
            "KiB of pages: readers, writer"
        );
        let unmapped = connect(&url, 1).await.expect("connect with the default");
        assert_eq!(mmap_size(&unmapped).await as u64, entities::settings::DEFAULT_SQLITE_MMAP_SIZE);
        unmapped.close().await.expect("close");
        writer.close().await.expect("close");
        db.close().await.expect("close");
        std::fs::remove_dir_all(folder).expect("clean up");
    }

    #[tokio::test]
    async fn an_in_memory_sqlite_database_writes_through_the_pool_it_reads_from() {
        let db = connect("sqlite::memory:", 1).await.expect("connect");
        let writer = connect_writer("sqlite::memory:", &db, 8, Tuning::default()).await.expect("writer");
        assert_eq!(writer.pool().get_sqlite_connection_pool().options().get_max_connections(), 1);
        writer.execute_unprepared("CREATE TABLE t (x INTEGER)").await.expect("create");
        db.execute_unprepared("SELECT x FROM t").await.expect("the same database");
    }

    #[test]
    fn sqlite_file_paths_are_found_in_urls() {
        assert_eq!(sqlite_file("sqlite://./data/certflow.db?mode=rwc"), Some("./data/certflow.db"));
        assert_eq!(sqlite_file("sqlite:data/x.db"), Some("data/x.db"));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://localhost/test"), None);
    }
}
