//! The token revocations this process refuses: the whole table in memory (it holds only
//! revocations that still cover a live token), reread every `TOKEN_REVOCATION_REFRESH_SECONDS`,
//! so a revocation made on any API process takes effect on every other within that time, and on
//! its own at once. Checking a token costs two hash look-ups, no I/O.

use std::sync::RwLock;

use chrono::Utc;
use engine::{Engine, EngineError};
use entities::domain::revocation::{Revocation, Revocations};

/// The revocations in force, shared by the workers of one process.
#[derive(Debug, Default)]
pub struct RevocationList {
    current: RwLock<Revocations>,
}

impl RevocationList {
    /// Is the token with id `jti` (if any), of `sub`, issued at `iat`, revoked?
    pub fn covers(&self, jti: Option<&str>, sub: &str, iat: i64) -> bool {
        let current = self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        !current.is_empty() && current.covers(jti, sub, iat)
    }

    /// Adds a revocation this process just committed (other processes read it at their refresh).
    pub fn add(&self, revocation: Revocation) {
        self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner).add(revocation);
    }

    /// Rereads the revocations in force; returns how many there are.
    pub async fn refresh(&self, engine: &Engine) -> Result<usize, EngineError> {
        let fresh = engine.revocations_in_force(Utc::now()).await?;
        let count = fresh.len();
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        Ok(count)
    }
}
