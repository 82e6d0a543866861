//! What every handler shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use engine::Engine;

/// The largest JSON body accepted.
pub const JSON_BODY_LIMIT: usize = 256 * 1024;

/// What every handler shares: the engine (database, clock, rules), and whether the process is
/// stopping.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The application layer every handler goes through.
    pub engine: Engine,
    /// Set once a stop is asked for (SIGTERM): `/readyz` answers 503 and every answer closes its
    /// connection, while requests are still served until the listener closes.
    pub stopping: Arc<AtomicBool>,
    /// `WEBHOOK_ALLOW_LOOPBACK`: endpoints on loopback addresses are accepted (local development).
    pub webhook_allow_loopback: bool,
}

impl AppState {
    /// Whether the process is stopping.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }
}

impl std::ops::Deref for AppState {
    type Target = Engine;

    fn deref(&self) -> &Engine {
        &self.engine
    }
}
