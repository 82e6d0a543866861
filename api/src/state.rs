//! What every handler shares.

use engine::Engine;

/// The largest JSON body accepted.
pub const JSON_BODY_LIMIT: usize = 256 * 1024;

/// What every handler shares: the engine (database, clock, rules).
#[derive(Debug, Clone)]
pub struct AppState {
    /// The application layer every handler goes through.
    pub engine: Engine,
}

impl std::ops::Deref for AppState {
    type Target = Engine;

    fn deref(&self) -> &Engine {
        &self.engine
    }
}
