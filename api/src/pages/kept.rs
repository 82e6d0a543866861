//! What a page read, kept between visits: each view until a write of this process changes what it
//! was read from (its scope's generation, bumped by the write path after the commit), and for
//! `PORTFOLIO_KEEP_SECONDS` at most (the writes of other processes, the worker's clock or another
//! API instance, show within that). The clients asking for one view at once wait for one read.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use engine::changes::Scope;

use super::PageError;
use crate::state::AppState;

/// Views kept at most (past it, those no longer current are dropped).
const VIEWS_KEPT: usize = 4096;

/// Views of type `V`, by key `K`.
#[derive(Debug)]
pub struct Kept<K, V> {
    /// How long a view is kept at most (zero: read on every visit).
    pub keep: Duration,
    views: Mutex<HashMap<K, Slot<V>>>,
}

/// One view's place: its lock is held while it is read, so those asking at once wait for one read.
type Slot<V> = Arc<tokio::sync::Mutex<Option<Entry<V>>>>;

#[derive(Debug)]
struct Entry<V> {
    generation: u64,
    at: Instant,
    view: Arc<V>,
}

impl<K: Hash + Eq + Clone, V> Kept<K, V> {
    /// Views kept for `keep` at most.
    pub fn new(keep: Duration) -> Self {
        Self { keep, views: Mutex::default() }
    }

    /// The view of `key`, read from `scope`: as kept when still current, else read now by `read`.
    pub async fn of<F>(&self, app: &AppState, key: K, scope: Scope, read: F) -> Result<Arc<V>, PageError>
    where
        F: AsyncFnOnce() -> Result<V, PageError>,
    {
        if self.keep.is_zero() {
            return Ok(Arc::new(read().await?));
        }
        let slot = {
            let mut views = self.views.lock().unwrap_or_else(PoisonError::into_inner);
            if views.len() >= VIEWS_KEPT {
                views.retain(|_, slot| match slot.try_lock() {
                    Ok(entry) => entry.as_ref().is_some_and(|e| e.at.elapsed() < self.keep),
                    Err(_) => true,
                });
            }
            views.entry(key).or_default().clone()
        };
        let mut entry = slot.lock().await;
        // Taken before the read: a write committed meanwhile makes the next visit read again.
        let generation = app.changes.generation(scope);
        if let Some(e) = entry.as_ref().filter(|e| e.generation == generation && e.at.elapsed() < self.keep) {
            return Ok(e.view.clone());
        }
        let view = Arc::new(read().await?);
        *entry = Some(Entry { generation, at: Instant::now(), view: view.clone() });
        Ok(view)
    }
}
