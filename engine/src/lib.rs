//! certflow's application layer, between the pure domain (`entities`) and the shells (`api`,
//! `worker`): who may do what, the store, and every command's one path: authorize, begin, lock,
//! load the facts, let the domain decide, write what it says with the history, and commit with
//! the caller's idempotency record.

pub mod access;
pub mod caller;
pub mod changes;
pub mod clock_events;
pub mod contacts;
pub mod corrective_actions;
pub mod deadlines;
pub mod error;
pub mod fault;
pub mod history;
pub mod idempotency;
pub mod lifecycle;
pub mod mailer;
pub mod nonconformities;
pub mod observe;
pub mod people;
pub mod policies;
pub mod reminders;
pub mod revocations;
pub mod store;
pub mod webhooks;
pub mod write;

pub use caller::Caller;
pub use error::EngineError;
pub use write::{Target, Write};

use std::sync::Arc;

use changes::Changes;
use entities::clock::Clock;
use sea_orm::DatabaseConnection;

/// What every command runs with: the database and the clock (each body's policy is data).
#[derive(Debug, Clone)]
pub struct Engine {
    /// The database, for reads (and a command's authorization, before it takes the writer).
    pub db: DatabaseConnection,
    /// The database, for write transactions (see [`store::connect_writer`]): on SQLite one
    /// connection that writers queue for, on PostgreSQL connections of its own.
    pub writer: store::Writer,
    /// The clock.
    pub clock: Clock,
    /// Which bodies' engagements this engine's writes changed.
    pub changes: Arc<Changes>,
}

impl Engine {
    /// An engine over `db` for reads and `writer` for writes.
    pub fn new(db: DatabaseConnection, writer: store::Writer, clock: Clock) -> Self {
        Self { db, writer, clock, changes: Arc::default() }
    }

    /// Opens the database the settings name (the read pool, then the writer beside it: see
    /// [`store::connect_writer`]) and applies the migrations. One process opens it once: the API
    /// and the worker it embeds share both pools (and what the worker's writes change is seen by
    /// the API's kept views, see [`changes`]).
    pub async fn open(settings: &entities::settings::Settings, clock: Clock) -> anyhow::Result<Self> {
        use anyhow::Context;
        use migration::MigratorTrait;
        let tuning = store::Tuning::of(settings);
        let db = store::connect_tuned(&settings.database_url, settings.database_max_connections, tuning).await?;
        migration::Migrator::up(&db, None).await.context("Failed to apply the database migrations")?;
        Self::beside(settings, db, clock).await
    }

    /// An engine over `db`, an open read pool, with the writer the settings name opened beside it.
    pub async fn beside(
        settings: &entities::settings::Settings,
        db: DatabaseConnection,
        clock: Clock,
    ) -> anyhow::Result<Self> {
        let (url, writers) = (&settings.database_url, settings.database_write_connections);
        let writer = store::connect_writer(url, &db, writers, store::Tuning::of(settings)).await?;
        Ok(Self::new(db, writer, clock))
    }

    /// The pools, named as the metrics name them (`read`, `write`).
    pub fn pools(&self) -> Vec<(&'static str, store::Pool)> {
        vec![("read", store::Pool::Reads(self.db.clone())), ("write", store::Pool::Writer(self.writer.clone()))]
    }
}
