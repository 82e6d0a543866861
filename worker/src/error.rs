//! The worker's one error type.

/// What can stop a scan or a delivery (a refused email is not an error: it is recorded).
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sea_orm::DbErr),
    /// A job could not be queued.
    #[error("failed to queue a job: {0}")]
    Queue(String),
    /// An event the clock fires failed (the database, most likely: a refused event is skipped).
    #[error("an event the clock fires failed: {0}")]
    ClockEvent(#[from] engine::EngineError),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}
