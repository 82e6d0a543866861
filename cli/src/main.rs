//! The `certflow` command: runs the API (and, from the worker's issue on, the reminder worker),
//! applies migrations, and mints tokens for local use.

use anyhow::Context;
use api::auth::{Role, TokenKeys};
use api::telemetry::{get_subscriber, init_subscriber};
use clap::{Parser, Subcommand};
use entities::settings::Settings;
use migration::{Migrator, MigratorTrait};
use uuid::Uuid;

/// certflow: the ISO/IEC 27001 certification engagement, from CB selection to surveillance.
#[derive(Debug, Parser)]
#[command(name = "certflow", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the system (the default): the REST API on LISTEN_ADDR.
    Serve,
    /// Apply every pending database migration and exit.
    Migrate,
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

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::from_env()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            init_subscriber(get_subscriber("info,sqlx=warn", std::io::stdout));
            warn_about_development_defaults(&settings);
            let application = api::Application::build(&settings).await?;
            tracing::info!(address = %settings.listen_addr, port = application.port(), docs = "/docs/", "certflow API listening");
            application
                .run_until_stopped()
                .await
                .context("The API server failed")?;
            tracing::info!("certflow API stopped");
        }
        Command::Migrate => {
            init_subscriber(get_subscriber("info,sqlx=warn", std::io::stderr));
            let db = migration::connect(&settings.database_url, 1).await?;
            Migrator::up(&db, None)
                .await
                .context("Failed to apply the database migrations")?;
            tracing::info!("migrations applied");
        }
        Command::Token {
            role,
            sub,
            org,
            cb,
            hours,
        } => {
            let keys = TokenKeys::from_settings(&settings);
            let token = keys.mint(
                &sub,
                role,
                org,
                cb,
                chrono::Utc::now(),
                chrono::Duration::hours(hours),
            )?;
            println!("{token}");
        }
    }
    Ok(())
}

fn warn_about_development_defaults(settings: &Settings) {
    if settings.jwt_secret_is_dev_default {
        tracing::warn!(
            "JWT_SECRET is not set: using the built-in DEVELOPMENT secret. Anyone can mint tokens for this \
             server. Set JWT_SECRET (32+ characters) and APP_ENV=production for any real use."
        );
    }
}
