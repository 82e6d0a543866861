//! Moving every record from one database to another, e.g. from the embedded SQLite default to
//! PostgreSQL: `certflow export FILE` writes each table of `DATABASE_URL` as JSON lines, read in one
//! snapshot; `certflow import FILE` writes them into `DATABASE_URL`, which must hold no records, in
//! one transaction (all or nothing). Both ends must be at this build's schema.
//!
//! The file: a header line (`format`, `migrations`, `exported_at`), then one line per record
//! (`{"table": …, "row": {…}}`, tables in an order that satisfies every foreign key), then a
//! trailer with the count of each table, so a cut-off file is refused rather than half imported.
//!
//! The webhook endpoints go with their secrets, and the outbox's queue, messages and attempts with
//! them: an export is kept as the database itself is.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{Context, bail, ensure};
use chrono::{DateTime, Utc};
use entities::domain::reminders::NotificationStatus;
use entities::domain::webhooks::WebhookMessageStatus;
use entities::orm::{
    audit, certificate, certification_body, certification_decision, certification_policy, corrective_action, deadline,
    document, engagement, finding, history_entry, idempotency_key, notification, organization, person, proposal,
    reminder_policy, session, sign_in_link, soa_entry, token_revocation, webhook_attempt, webhook_endpoint,
    webhook_event, webhook_message, webhook_outbox,
};
use futures::TryStreamExt;
use migration::{Migrator, MigratorTrait};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityName, EntityTrait,
    IntoActiveModel, Iterable, PaginatorTrait, PrimaryKeyToColumn, QueryFilter, QueryOrder, TransactionTrait,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The file's `format`.
const FORMAT: &str = "certflow-export/1";
/// Records inserted per statement.
const BATCH: usize = 500;

/// Calls `$apply!(module)` for every table, parents before children.
macro_rules! every_table {
    ($apply:ident) => {
        $apply!(organization);
        $apply!(certification_body);
        $apply!(reminder_policy);
        $apply!(certification_policy);
        $apply!(engagement);
        $apply!(proposal);
        $apply!(audit);
        $apply!(document);
        $apply!(soa_entry);
        $apply!(finding);
        $apply!(corrective_action);
        $apply!(certification_decision);
        $apply!(certificate);
        $apply!(history_entry);
        $apply!(deadline);
        $apply!(notification);
        $apply!(idempotency_key);
        $apply!(token_revocation);
        $apply!(person);
        $apply!(sign_in_link);
        $apply!(session);
        $apply!(webhook_endpoint);
        $apply!(webhook_event);
        $apply!(webhook_outbox);
        $apply!(webhook_message);
        $apply!(webhook_attempt);
    };
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    migrations: Vec<String>,
    exported_at: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
struct Record<'a, Row: Serialize> {
    table: &'a str,
    row: &'a Row,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Line {
    Record { table: String, row: serde_json::Value },
    End { end: BTreeMap<String, u64> },
}

/// What an export or an import moved: records per table.
pub type Counts = BTreeMap<String, u64>;

/// The migrations of this build, by name.
fn this_schema() -> Vec<String> {
    Migrator::migrations().iter().map(|migration| migration.name().to_owned()).collect()
}

/// Refuses a database whose schema is not this build's.
async fn ensure_this_schema(db: &DatabaseConnection, which: &str) -> anyhow::Result<()> {
    let applied: Vec<String> = Migrator::get_applied_migrations(db)
        .await
        .with_context(|| format!("Failed to read the {which} database's migrations"))?
        .iter()
        .map(|migration| migration.name().to_owned())
        .collect();
    ensure!(
        applied == this_schema(),
        "the {which} database is at {} migrations, this build at {}: run `certflow migrate` on it first (or use the \
         certflow version that wrote it)",
        applied.len(),
        this_schema().len()
    );
    Ok(())
}

/// Writes every record of `db` to `file` (which must not exist), from one snapshot.
pub async fn export(db: &DatabaseConnection, file: &Path) -> anyhow::Result<Counts> {
    ensure_this_schema(db, "source").await?;
    let created = std::fs::OpenOptions::new().write(true).create_new(true).open(file);
    let created = created.with_context(|| format!("Failed to create {} (an export never overwrites)", file.display()));
    let mut out = std::io::BufWriter::new(created?);
    let header = Header { format: FORMAT.to_owned(), migrations: this_schema(), exported_at: Utc::now() };
    serde_json::to_writer(&mut out, &header)?;
    out.write_all(b"\n")?;
    // One read transaction, a snapshot of every table consistent while certflow keeps writing.
    let snapshot = engine::store::read_snapshot(db).await.context("Failed to open a read transaction")?;
    let mut counts = Counts::new();
    macro_rules! export_table {
        ($module:ident) => {
            let rows = export_rows::<$module::Entity>(&snapshot, &mut out).await?;
            counts.insert($module::Entity.table_name().to_owned(), rows);
        };
    }
    every_table!(export_table);
    snapshot.commit().await.ok();
    serde_json::to_writer(&mut out, &serde_json::json!({ "end": counts }))?;
    out.write_all(b"\n")?;
    out.into_inner().map_err(|e| e.into_error())?.sync_all().context("Failed to write the export to disk")?;
    Ok(counts)
}

async fn export_rows<E>(db: &DatabaseTransaction, out: &mut impl Write) -> anyhow::Result<u64>
where
    E: EntityTrait + Default,
    E::Model: Serialize + Send + Sync,
{
    let table = E::default().table_name().to_owned();
    let mut query = E::find();
    for key in E::PrimaryKey::iter() {
        query = query.order_by_asc(key.into_column());
    }
    let mut rows = query.stream(db).await.with_context(|| format!("Failed to read {table}"))?;
    let mut count = 0;
    while let Some(row) = rows.try_next().await.with_context(|| format!("Failed to read {table}"))? {
        serde_json::to_writer(&mut *out, &Record { table: &table, row: &row })?;
        out.write_all(b"\n")?;
        count += 1;
    }
    Ok(count)
}

/// Reads `file` into `db`: its schema is brought to this build's first, it must hold no records,
/// and either every record goes in or none does.
pub async fn import(db: &DatabaseConnection, file: &Path) -> anyhow::Result<Counts> {
    let opened = std::fs::File::open(file).with_context(|| format!("Failed to open {}", file.display()))?;
    let mut lines = std::io::BufReader::new(opened).lines();
    let header = lines.next().context("the file is empty")??;
    let header: Header = serde_json::from_str(&header).context("the file is not a certflow export")?;
    ensure!(header.format == FORMAT, "the file is a {} export, this build reads {FORMAT}", header.format);
    ensure!(
        header.migrations == this_schema(),
        "the export was written at {} migrations, this build is at {}: import it with the certflow version that \
         wrote it",
        header.migrations.len(),
        this_schema().len()
    );
    Migrator::up(db, None).await.context("Failed to apply the database migrations")?;
    ensure_empty(db).await?;
    let txn = db.begin().await.context("Failed to begin the import")?;
    let mut counts = Counts::new();
    let mut batch: Vec<serde_json::Value> = Vec::with_capacity(BATCH);
    let mut table = String::new();
    let mut end = None;
    for (number, line) in lines.enumerate() {
        let line = line.with_context(|| format!("Failed to read line {}", number + 2))?;
        ensure!(end.is_none(), "line {}: records after the end of the export", number + 2);
        match serde_json::from_str::<Line>(&line).with_context(|| format!("line {} is not a record", number + 2))? {
            Line::Record { table: of, row } => {
                if of != table || batch.len() == BATCH {
                    insert_rows(&txn, &table, std::mem::take(&mut batch)).await?;
                    table = of;
                }
                *counts.entry(table.clone()).or_default() += 1;
                batch.push(row);
            }
            Line::End { end: stated } => end = Some(stated),
        }
    }
    insert_rows(&txn, &table, batch).await?;
    let stated = end.context("the export ends before its last line: it was cut off; nothing was imported")?;
    let stated: Counts = stated.into_iter().filter(|(_, n)| *n > 0).collect();
    ensure!(stated == counts, "the export states {stated:?} records but holds {counts:?}; nothing was imported");
    // The email jobs stayed with the old database's queue: what was waiting is queued again by
    // the first scan, and a delivery in progress there is handed back.
    notification::Entity::update_many()
        .col_expr(notification::Column::Status, Expr::value(NotificationStatus::Pending))
        .col_expr(notification::Column::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(notification::Column::Status.eq(NotificationStatus::Sending))
        .exec(&txn)
        .await?;
    notification::Entity::update_many()
        .col_expr(notification::Column::QueuedAt, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(notification::Column::Status.eq(NotificationStatus::Pending))
        .exec(&txn)
        .await?;
    // A webhook attempt in flight belonged to the old database's worker: its message is due again
    // here, with the same `webhook-id` (a receiver that got it drops the repeat).
    webhook_message::Entity::update_many()
        .col_expr(webhook_message::Column::Status, Expr::value(WebhookMessageStatus::Pending))
        .col_expr(webhook_message::Column::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
        .filter(webhook_message::Column::Status.eq(WebhookMessageStatus::Sending))
        .exec(&txn)
        .await?;
    txn.commit().await.context("Failed to commit the import")?;
    Ok(counts)
}

async fn ensure_empty(db: &DatabaseConnection) -> anyhow::Result<()> {
    macro_rules! ensure_table_empty {
        ($module:ident) => {
            let records = $module::Entity::find().count(db).await?;
            ensure!(
                records == 0,
                "the target database holds records already ({records} in {}): import only into an empty one",
                $module::Entity.table_name()
            );
        };
    }
    every_table!(ensure_table_empty);
    Ok(())
}

async fn insert_rows(db: &impl ConnectionTrait, table: &str, rows: Vec<serde_json::Value>) -> anyhow::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    macro_rules! insert_into {
        ($module:ident) => {
            if table == $module::Entity.table_name() {
                return insert_as::<$module::Entity>(db, table, rows).await;
            }
        };
    }
    every_table!(insert_into);
    bail!("the export names a table this build does not have: {table}")
}

async fn insert_as<E>(db: &impl ConnectionTrait, table: &str, rows: Vec<serde_json::Value>) -> anyhow::Result<()>
where
    E: EntityTrait,
    E::Model: DeserializeOwned + IntoActiveModel<E::ActiveModel>,
    E::ActiveModel: ActiveModelTrait<Entity = E> + Send,
{
    let models = rows
        .into_iter()
        .map(|row| serde_json::from_value::<E::Model>(row).with_context(|| format!("a record of {table} is malformed")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    E::insert_many(models.into_iter().map(IntoActiveModel::into_active_model))
        .exec_without_returning(db)
        .await
        .with_context(|| format!("Failed to write records of {table}"))?;
    Ok(())
}
