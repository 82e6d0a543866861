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
    /// A command of the engine failed (an event the clock fires, an event told to the webhooks:
    /// the database, most likely; a refused event is skipped).
    #[error("the engine failed: {0}")]
    Engine(#[from] engine::EngineError),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}
