//! The token revocations this process refuses: the whole table in memory (it holds only
//! revocations that still cover a live token), reread every `TOKEN_REVOCATION_REFRESH_SECONDS`,
//! so a revocation made on any API process takes effect on every other within that time, and on
//! its own at once. Checking a token costs two hash look-ups, no I/O.

use std::sync::{Mutex, RwLock};

use chrono::Utc;
use engine::{Engine, EngineError};
use entities::domain::revocation::{Revocation, Revocations};

/// How long a revocation this process recorded is re-applied after each reread: a reread whose
/// query ran before the revocation's commit must not drop it from memory.
const RECENT: std::time::Duration = std::time::Duration::from_secs(120);

/// The revocations in force, shared by the workers of one process.
#[derive(Debug, Default)]
pub struct RevocationList {
    current: RwLock<Revocations>,
    /// The revocations this process recorded lately, with when.
    recent: Mutex<Vec<(Revocation, std::time::Instant)>>,
}

impl RevocationList {
    /// Is the token with id `jti` (if any), of `sub`, issued at `iat`, revoked?
    pub fn covers(&self, jti: Option<&str>, sub: &str, iat: i64) -> bool {
        let current = self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        current.covers(jti, sub, iat)
    }

    /// Adds a revocation this process just committed (other processes read it at their refresh).
    pub fn add(&self, revocation: Revocation) {
        let mut recent = self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        recent.push((revocation.clone(), std::time::Instant::now()));
        self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner).add(revocation);
    }

    /// Rereads the revocations in force; returns how many there are.
    pub async fn refresh(&self, engine: &Engine) -> Result<usize, EngineError> {
        let mut fresh = engine.revocations_in_force(Utc::now()).await?;
        let mut recent = self.recent.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        recent.retain(|(_, at)| at.elapsed() < RECENT);
        for (revocation, _) in recent.iter() {
            fresh.add(revocation.clone());
        }
        let count = fresh.len();
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
        Ok(count)
    }
}
