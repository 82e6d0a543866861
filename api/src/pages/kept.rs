//! What a page read, kept between visits: each view until a write of this process changes what it
//! was read from (its scope's generation, bumped by the write path after the commit), and for
//! `PORTFOLIO_KEEP_SECONDS` at most (the writes of other processes, the worker's clock or another
//! API instance, show within that). The clients asking for one view at once wait for one read.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use engine::changes::{Changes, Scope};

use super::PageError;

/// Views kept at most in one store (a view holds a page's rows: tens of kilobytes). When a new
/// view finds the store full, those past their time are dropped, and if every one is current, all
/// are (the next visits read afresh).
const VIEWS_KEPT: usize = 256;

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
    pub async fn of<F>(&self, changes: &Changes, key: K, scope: Scope, read: F) -> Result<Arc<V>, PageError>
    where
        F: AsyncFnOnce() -> Result<V, PageError>,
    {
        if self.keep.is_zero() {
            return Ok(Arc::new(read().await?));
        }
        let slot = {
            let mut views = self.views.lock().unwrap_or_else(PoisonError::into_inner);
            if views.len() >= VIEWS_KEPT && !views.contains_key(&key) {
                views.retain(|_, slot| match slot.try_lock() {
                    Ok(entry) => entry.as_ref().is_some_and(|e| e.at.elapsed() < self.keep),
                    Err(_) => true,
                });
                if views.len() >= VIEWS_KEPT {
                    views.clear();
                }
            }
            views.entry(key).or_default().clone()
        };
        let mut entry = slot.lock().await;
        // Taken before the read: a write committed meanwhile makes the next visit read again.
        let generation = changes.generation(scope);
        if let Some(e) = entry.as_ref().filter(|e| e.generation == generation && e.at.elapsed() < self.keep) {
            return Ok(e.view.clone());
        }
        let view = Arc::new(read().await?);
        *entry = Some(Entry { generation, at: Instant::now(), view: view.clone() });
        Ok(view)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use uuid::Uuid;

    use super::*;

    /// Asks `kept` for `key`, counting the reads it makes.
    async fn ask(kept: &Kept<u32, u32>, changes: &Changes, key: u32, scope: Scope, reads: &Cell<u32>) -> u32 {
        let read = async || {
            reads.set(reads.get() + 1);
            Ok(reads.get())
        };
        *kept.of(changes, key, scope, read).await.unwrap()
    }

    #[actix_web::test]
    async fn a_view_is_read_once_until_its_scope_changes() {
        let (kept, changes, reads) = (Kept::new(Duration::from_secs(60)), Changes::default(), Cell::new(0));
        let (ours, theirs) = (Scope::Engagement(Uuid::from_u128(1)), Scope::Engagement(Uuid::from_u128(2)));
        assert_eq!(ask(&kept, &changes, 7, ours, &reads).await, 1);
        assert_eq!(ask(&kept, &changes, 7, ours, &reads).await, 1, "kept");
        changes.touch(Some(Uuid::from_u128(2)), None);
        assert_eq!(ask(&kept, &changes, 7, ours, &reads).await, 1, "another engagement's change leaves it");
        changes.touch(Some(Uuid::from_u128(1)), None);
        assert_eq!(ask(&kept, &changes, 7, ours, &reads).await, 2, "its own change reads it again");
        assert_eq!(ask(&kept, &changes, 8, theirs, &reads).await, 3, "another view is read on its own");
    }

    #[actix_web::test]
    async fn nothing_is_kept_past_its_time_or_with_no_time() {
        let (changes, reads) = (Changes::default(), Cell::new(0));
        let scope = Scope::Every;
        let never = Kept::new(Duration::ZERO);
        assert_eq!(ask(&never, &changes, 1, scope, &reads).await, 1);
        assert_eq!(ask(&never, &changes, 1, scope, &reads).await, 2);
        let briefly = Kept::new(Duration::from_millis(20));
        assert_eq!(ask(&briefly, &changes, 1, scope, &reads).await, 3);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(ask(&briefly, &changes, 1, scope, &reads).await, 4, "read again once its time is past");
    }

    #[actix_web::test]
    async fn a_full_store_drops_views_before_it_grows() {
        let (kept, changes, reads) = (Kept::new(Duration::from_secs(60)), Changes::default(), Cell::new(0));
        for key in 0..(VIEWS_KEPT as u32 * 3) {
            ask(&kept, &changes, key, Scope::Every, &reads).await;
            let held = kept.views.lock().unwrap().len();
            assert!(held <= VIEWS_KEPT, "{held} views held");
        }
    }
}
