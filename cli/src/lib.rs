//! The `certflow` command: runs the API and the reminder worker (together or apart), applies
//! migrations, backs up and restores the embedded SQLite database, exports and imports every
//! record (from SQLite to PostgreSQL), and mints tokens for local use.

pub mod backup;
pub mod transfer;

use anyhow::Context;
use api::auth::{Role, TokenKeys};
use api::telemetry::{Traces, get_subscriber, init_subscriber, log_writer};
use clap::{Parser, Subcommand};
use entities::settings::{MetricsExposure, Settings};
use migration::{Migrator, MigratorTrait};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// certflow: the ISO/IEC 27001 certification engagement, from CB selection to surveillance.
#[derive(Debug, Parser)]
#[command(name = "certflow", version)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the system (the default): the REST API on LISTEN_ADDR and, unless WORKER_EMBEDDED=false,
    /// the reminder worker beside it.
    Serve,
    /// Run the reminder worker alone (scale-out: several workers on one PostgreSQL database).
    Worker,
    /// Apply every pending database migration and exit.
    Migrate,
    /// Write a consistent copy of the SQLite database (DATABASE_URL) to PATH, while certflow runs,
    /// and check it. PostgreSQL: use pg_dump.
    Backup {
        /// Where the copy goes (must not exist).
        path: std::path::PathBuf,
    },
    /// Check a backup and put it in place of the SQLite database (DATABASE_URL); certflow must be
    /// stopped.
    Restore {
        /// The backup.
        path: std::path::PathBuf,
        /// Replace an existing database.
        #[arg(long)]
        replace: bool,
    },
    /// Write every record of DATABASE_URL to FILE (JSON lines, one snapshot), e.g. to move from the
    /// embedded SQLite database to PostgreSQL with `import`.
    Export {
        /// Where the records go (must not exist).
        path: std::path::PathBuf,
    },
    /// Read an export into DATABASE_URL, which must hold no records (its schema is made first):
    /// every record or none.
    Import {
        /// The export.
        path: std::path::PathBuf,
    },
    /// Print a bearer token for local use, signed with JWT_SECRET.
    Token {
        /// The caller's role.
        #[arg(long, default_value = "admin")]
        role: Role,
        /// The caller (recorded as the actor in the history).
        #[arg(long, default_value = "dev@certflow.local")]
        sub: String,
        /// The organization the caller belongs to.
        #[arg(long)]
        org: Option<Uuid>,
        /// The certification body the caller belongs to.
        #[arg(long)]
        cb: Option<Uuid>,
        /// Hours until the token expires.
        #[arg(long, default_value_t = 12)]
        hours: i64,
    },
}

/// Runs the command line `args` (the first is the program's name).
pub async fn run(args: impl IntoIterator<Item = String>) -> anyhow::Result<()> {
    let cli = Cli::parse_from(args);
    // Spans go out over OTLP while the command runs; what is held is flushed when it returns.
    let traces = Traces::from_env()?;
    let tracer = || traces.as_ref().map(Traces::tracer);
    let settings =
        Settings::from_env()?.load_dev_secret().context("Failed to read or create the development JWT secret")?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let (log, _written) = log_writer(std::io::stdout());
            init_subscriber(get_subscriber("info,sqlx=warn", log, tracer()));
            warn_about_development_defaults(&settings);
            let stop = stop_on_signal()?;
            install_metrics(&settings);
            // One database open for the process: the embedded worker shares the API's pools (its
            // writes queue for the same writer) and its engine.
            let engine = engine::Engine::open(&settings, entities::clock::Clock::system()).await?;
            let application = api::Application::build_on(&settings, engine.clone()).await?;
            tracing::info!(address = %settings.listen_addr, port = application.port(), docs = "/docs/", "certflow API listening");
            if settings.worker_embedded {
                let worker = build_worker(&settings, engine).await?;
                // Whichever stops first (a signal, or a failure) stops the other, and both finish.
                let api = async {
                    let ended = application.run_until(stop.clone().cancelled_owned()).await;
                    stop.cancel();
                    report_exit("API", ended.map_err(anyhow::Error::from))
                };
                let worker = async {
                    let ended = worker.run_until_stopped(stop.clone().cancelled_owned()).await;
                    stop.cancel();
                    report_exit("reminder worker", ended)
                };
                let (api, worker) = tokio::join!(api, worker);
                api.and(worker)?;
            } else {
                let ended = application.run_until(stop.cancelled_owned()).await;
                report_exit("API", ended.map_err(anyhow::Error::from))?;
            }
        }
        Command::Worker => {
            let (log, _written) = log_writer(std::io::stdout());
            init_subscriber(get_subscriber("info,sqlx=warn", log, tracer()));
            let stop = stop_on_signal()?;
            let engine = engine::Engine::open(&settings, entities::clock::Clock::system()).await?;
            let worker = build_worker(&settings, engine).await?;
            let metrics = serve_worker_metrics(&settings, &worker)?;
            tracing::info!("certflow reminder worker running");
            let ended = report_exit("reminder worker", worker.run_until_stopped(stop.cancelled_owned()).await);
            if let Some(metrics) = metrics {
                metrics.stop(true).await;
            }
            ended?;
        }
        Command::Migrate => {
            init_subscriber(get_subscriber("info,sqlx=warn", std::io::stderr, tracer()));
            let db = engine::store::connect(&settings.database_url, 1).await?;
            Migrator::up(&db, None).await.context("Failed to apply the database migrations")?;
            tracing::info!("migrations applied");
        }
        Command::Backup { path } => {
            let summary = backup::backup(&settings.database_url, &path).await?;
            println!("{}", describe("backed up to", &summary));
        }
        Command::Restore { path, replace } => {
            let summary = backup::restore(&path, &settings.database_url, replace).await?;
            println!("{}", describe("restored to", &summary));
        }
        Command::Export { path } => {
            let db = engine::store::connect(&settings.database_url, 1).await?;
            let counts = transfer::export(&db, &path).await?;
            println!("exported to {}: {}", path.display(), describe_counts(&counts));
        }
        Command::Import { path } => {
            let db = engine::store::connect(&settings.database_url, 1).await?;
            let counts = transfer::import(&db, &path).await?;
            println!("imported {}: {}", path.display(), describe_counts(&counts));
        }
        Command::Token { role, sub, org, cb, hours } => {
            let keys = TokenKeys::from_settings(&settings)?;
            let token = keys.mint(&sub, role, org, cb, chrono::Utc::now(), chrono::Duration::hours(hours)).context(
                "certflow token: CB roles take --cb <id>, client_manager --org <id>, integration one of them",
            )?;
            println!("{token}");
        }
    }
    Ok(())
}

fn describe_counts(counts: &transfer::Counts) -> String {
    let total: u64 = counts.values().sum();
    let tables: Vec<String> = counts.iter().filter(|(_, n)| **n > 0).map(|(table, n)| format!("{n} {table}")).collect();
    format!("{total} records ({})", tables.join(", "))
}

fn describe(done: &str, summary: &backup::BackupSummary) -> String {
    format!(
        "{done} {} ({} bytes, {} engagements, schema at migration {}); SQLite's integrity check passed",
        summary.path.display(),
        summary.bytes,
        summary.engagements,
        summary.migrations
    )
}

/// The worker over `engine` (the API's, when it runs embedded in it).
async fn build_worker(settings: &Settings, engine: engine::Engine) -> anyhow::Result<worker::ReminderWorker> {
    if let entities::settings::MailTransport::Outbox(folder) = &settings.mail_transport {
        tracing::info!(outbox = %folder.display(), "no SMTP_HOST: emails are written as .eml files");
    }
    worker::ReminderWorker::build(settings, engine).await
}

/// The API's metrics recorder, unless `METRICS_ADDR=off`.
fn install_metrics(settings: &Settings) {
    if settings.metrics != MetricsExposure::Off {
        api::metrics::recorder();
        worker::describe_metrics();
    }
}

/// A worker running alone serves `/metrics` only on a listener of its own (`METRICS_ADDR`).
fn serve_worker_metrics(
    settings: &Settings,
    worker: &worker::ReminderWorker,
) -> anyhow::Result<Option<api::metrics::MetricsServerHandle>> {
    match settings.metrics {
        MetricsExposure::Listener(address) => {
            // Recorded only where something scrapes it (and keeps its histograms bounded).
            install_metrics(settings);
            let endpoint = api::metrics::MetricsEndpoint::new(worker.pools());
            let (server, port) = api::metrics::metrics_server(address, endpoint)?;
            let handle = server.handle();
            tokio::spawn(server);
            tokio::spawn(api::metrics::keep_metrics(None));
            tracing::info!(%address, port, "worker metrics at /metrics");
            Ok(Some(handle))
        }
        MetricsExposure::OnApiPort => {
            tracing::info!("METRICS_ADDR is not set: a worker running alone serves no /metrics");
            Ok(None)
        }
        MetricsExposure::Off => Ok(None),
    }
}

/// Cancelled on the first SIGINT (Ctrl-C) or SIGTERM: the API drains and finishes its requests,
/// the worker finishes or hands back its jobs. A second signal ends the process at once. The
/// handlers are in place when this returns: a signal during the start is not lost.
fn stop_on_signal() -> anyhow::Result<CancellationToken> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("Failed to listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("Failed to listen for SIGTERM")?;
    let stop = CancellationToken::new();
    let cancel = stop.clone();
    tokio::spawn(async move {
        let mut next_signal = async || {
            tokio::select! {
                _ = interrupt.recv() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            }
        };
        let signal = next_signal().await;
        tracing::info!(signal, "stopping gracefully (a second signal stops at once)");
        cancel.cancel();
        let signal = next_signal().await;
        tracing::warn!(signal, "second signal: stopping at once");
        std::process::exit(130);
    });
    Ok(stop)
}

/// Logs how `task` ended, and passes a failure on (the process then exits non-zero, so a
/// supervisor restarts it).
fn report_exit(task: &str, outcome: anyhow::Result<()>) -> anyhow::Result<()> {
    match &outcome {
        Ok(()) => tracing::info!("{task} stopped"),
        Err(error) => tracing::error!(error = ?error, "{task} failed"),
    }
    outcome.with_context(|| format!("the {task} failed"))
}

fn warn_about_development_defaults(settings: &Settings) {
    if settings.jwt_secret_is_dev_default {
        tracing::warn!(
            secret_file = %settings.jwt_dev_secret_file.display(),
            "JWT_SECRET is not set: using a DEVELOPMENT secret generated into the file named here. Anyone \
             who can read it can mint tokens for this server. Set JWT_SECRET (32+ characters) and \
             APP_ENV=production for any real use."
        );
    }
}
