//! Backups of the embedded SQLite database: `certflow backup PATH` writes a consistent copy while
//! the server runs (`VACUUM INTO` reads one snapshot of the database and writes a compact copy, so
//! concurrent writes neither block it nor tear it); `certflow restore PATH` checks a copy and puts
//! it in place of the configured database while certflow is stopped. PostgreSQL has its own tools
//! (`pg_dump`, `pg_restore`; see the README).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

/// What a backup or a checked copy holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    /// The copy.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// The migrations applied to it (the schema's version).
    pub migrations: usize,
    /// Its engagements.
    pub engagements: i64,
}

fn sqlite_file_of(database_url: &str) -> anyhow::Result<PathBuf> {
    match engine::store::sqlite_file(database_url) {
        Some(file) => Ok(PathBuf::from(file)),
        None if database_url.starts_with("postgres") => bail!(
            "DATABASE_URL is a PostgreSQL database: back it up with PostgreSQL's own tools (pg_dump -Fc, \
             pg_restore), see the README"
        ),
        None => bail!("DATABASE_URL is not a SQLite file (an in-memory database has nothing to back up)"),
    }
}

/// Writes a consistent copy of the configured SQLite database to `target` (which must not exist),
/// while certflow may be running, and checks it.
pub async fn backup(database_url: &str, target: &Path) -> anyhow::Result<BackupSummary> {
    let source = sqlite_file_of(database_url)?;
    ensure!(source.is_file(), "there is no database at {} to back up", source.display());
    ensure!(!target.exists(), "{} exists already: a backup never overwrites a file", target.display());
    ensure!(
        !target.to_string_lossy().contains(['%', '?', '#']),
        "{}: a backup's path may not hold %, ? or #",
        target.display()
    );
    let target_text = target.to_str().context("the backup's path is not valid UTF-8")?;
    let db = engine::store::connect(database_url, 1).await?;
    db.execute_unprepared(&format!("VACUUM INTO '{}'", target_text.replace('\'', "''")))
        .await
        .with_context(|| format!("Failed to write the backup to {}", target.display()))?;
    db.close().await.ok();
    check(target).await
}

/// Checks that `file` is a whole certflow database this build can run: SQLite's integrity check
/// passes, and its schema was made by certflow, by this version or an earlier one.
pub async fn check(file: &Path) -> anyhow::Result<BackupSummary> {
    ensure!(file.is_file(), "{} is not a file", file.display());
    // The file is opened through a URL: a path with URL syntax in it could name another file.
    ensure!(
        !file.to_string_lossy().contains(['%', '?', '#']),
        "{}: a backup's path may not hold %, ? or #",
        file.display()
    );
    let url = format!("sqlite://{}?mode=ro", file.display());
    let db = sea_orm::Database::connect(&url)
        .await
        .with_context(|| format!("{} is not a SQLite database", file.display()))?;
    let one = |sql: &str| db.query_one_raw(Statement::from_string(DbBackend::Sqlite, sql.to_owned()));
    let integrity = one("PRAGMA integrity_check")
        .await
        .with_context(|| format!("{} is not a SQLite database", file.display()))?
        .and_then(|row| row.try_get_by_index::<String>(0).ok())
        .unwrap_or_default();
    ensure!(integrity == "ok", "{} fails SQLite's integrity check: {integrity}", file.display());
    let applied: Vec<String> = db
        .query_all_raw(Statement::from_string(DbBackend::Sqlite, "SELECT version FROM seaql_migrations".to_owned()))
        .await
        .map_err(|_| anyhow::anyhow!("{} is not a certflow database (no migrations table)", file.display()))?
        .into_iter()
        .filter_map(|row| row.try_get_by_index::<String>(0).ok())
        .collect();
    let known: Vec<String> = Migrator::migrations().iter().map(|m| m.name().to_owned()).collect();
    ensure!(!applied.is_empty(), "{} is not a certflow database (no migration applied)", file.display());
    if let Some(unknown) = applied.iter().find(|version| !known.contains(version)) {
        bail!("{} was made by a newer certflow (migration {unknown} is unknown to this one)", file.display());
    }
    let engagements = one("SELECT COUNT(*) FROM engagements")
        .await?
        .and_then(|row| row.try_get_by_index::<i64>(0).ok())
        .unwrap_or_default();
    db.close().await.ok();
    let bytes = std::fs::metadata(file)?.len();
    Ok(BackupSummary { path: file.to_owned(), bytes, migrations: applied.len(), engagements })
}

/// Puts the checked copy `backup` in place of the configured SQLite database, which must not be
/// in use (certflow stopped). An existing database is replaced only when `replace` says so.
pub async fn restore(backup: &Path, database_url: &str, replace: bool) -> anyhow::Result<BackupSummary> {
    let target = sqlite_file_of(database_url)?;
    let summary = check(backup).await?;
    let wal = with_suffix(&target, "-wal");
    // A write-ahead log beside the target belongs to the database it was written for: SQLite would
    // replay it onto the restored one.
    ensure!(
        !wal.exists(),
        "{} exists: a certflow process has the database open (or stopped without closing it); stop it, \
         or remove that file if its database is gone",
        wal.display()
    );
    if target.exists() {
        ensure!(replace, "{} exists: pass --replace to put the backup in its place", target.display());
    }
    if let Some(folder) = target.parent().filter(|f| !f.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder)?;
    }
    // Copied beside the target, then renamed over it: the database is the old one or the new one,
    // never half of each.
    let staging = with_suffix(&target, ".restoring");
    std::fs::copy(backup, &staging)
        .with_context(|| format!("Failed to copy {} beside the database", backup.display()))?;
    std::fs::File::open(&staging)?.sync_all()?;
    std::fs::rename(&staging, &target).with_context(|| format!("Failed to put the backup at {}", target.display()))?;
    let _ = std::fs::remove_file(with_suffix(&target, "-shm"));
    // The rename itself survives a crash once the folder is on disk.
    let folder = target.parent().filter(|f| !f.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::File::open(folder)?.sync_all()?;
    Ok(BackupSummary { path: target, ..summary })
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
