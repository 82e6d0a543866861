//! Which certification bodies' engagements changed: a generation number per body, bumped after
//! every engagement write commits, so a reader that keeps something it computed from a body's
//! engagements (the portfolio's counts) knows, without asking the database, whether it still holds.
//!
//! Bodies are hashed into a fixed number of slots: two bodies sharing one only refresh each other's
//! kept results more often. Writes of other processes (the worker's clock, another API instance)
//! are not seen here: what keeps results must also bound their age.

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::atomic::{AtomicU64, Ordering};

use uuid::Uuid;

/// Slots of body generations.
const SLOTS: usize = 1024;

/// The generations of the bodies' engagements, and of every engagement.
#[derive(Debug)]
pub struct Changes {
    slots: Box<[AtomicU64]>,
    engagements: Box<[AtomicU64]>,
    every: AtomicU64,
}

impl Default for Changes {
    fn default() -> Self {
        let slots = || (0..SLOTS).map(|_| AtomicU64::new(0)).collect();
        Self { slots: slots(), engagements: slots(), every: AtomicU64::new(0) }
    }
}

/// What a generation is read for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// One certification body's engagements.
    CertificationBody(Uuid),
    /// One engagement and what hangs off it.
    Engagement(Uuid),
    /// Any engagement (an organization's engagements may be any body's).
    Every,
}

impl Changes {
    /// `engagement` (when known), an engagement of `body` (when it has one), changed and
    /// committed.
    pub fn touch(&self, engagement: Option<Uuid>, body: Option<Uuid>) {
        if let Some(engagement) = engagement {
            self.engagements[slot(engagement)].fetch_add(1, Ordering::AcqRel);
        }
        if let Some(body) = body {
            self.slots[slot(body)].fetch_add(1, Ordering::AcqRel);
        }
        self.every.fetch_add(1, Ordering::AcqRel);
    }

    /// The generation of `scope`'s engagements: read it *before* computing from them, and keep the
    /// result only while it stays the same.
    pub fn generation(&self, scope: Scope) -> u64 {
        match scope {
            Scope::CertificationBody(body) => self.slots[slot(body)].load(Ordering::Acquire),
            Scope::Engagement(engagement) => self.engagements[slot(engagement)].load(Ordering::Acquire),
            Scope::Every => self.every.load(Ordering::Acquire),
        }
    }
}

fn slot(body: Uuid) -> usize {
    // A fixed hasher: the slot of a body is the same for the process's life.
    let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(body);
    usize::try_from(hash % SLOTS as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_to_an_engagement_changes_its_generation_and_its_bodys() {
        let changes = Changes::default();
        let (engagement, other, body) = (Uuid::from_u128(11), Uuid::from_u128(12), Uuid::from_u128(13));
        assert_ne!(slot(engagement), slot(other), "the test's two engagements must not share a slot");
        let before = (
            changes.generation(Scope::Engagement(engagement)),
            changes.generation(Scope::Engagement(other)),
            changes.generation(Scope::CertificationBody(body)),
        );
        changes.touch(Some(engagement), Some(body));
        assert_ne!(changes.generation(Scope::Engagement(engagement)), before.0);
        assert_eq!(changes.generation(Scope::Engagement(other)), before.1);
        assert_ne!(changes.generation(Scope::CertificationBody(body)), before.2);
    }

    #[test]
    fn a_write_to_a_body_changes_its_generation_and_everyones_but_not_another_bodys() {
        let changes = Changes::default();
        let (ours, theirs) = (Uuid::from_u128(1), Uuid::from_u128(2));
        assert_ne!(slot(ours), slot(theirs), "the test's two bodies must not share a slot");
        let before = (
            changes.generation(Scope::CertificationBody(ours)),
            changes.generation(Scope::CertificationBody(theirs)),
            changes.generation(Scope::Every),
        );
        changes.touch(None, Some(ours));
        assert_ne!(changes.generation(Scope::CertificationBody(ours)), before.0);
        assert_eq!(changes.generation(Scope::CertificationBody(theirs)), before.1);
        assert_ne!(changes.generation(Scope::Every), before.2);
    }

    #[test]
    fn a_write_to_an_engagement_with_no_body_yet_changes_everyones_generation_only() {
        let changes = Changes::default();
        let body = Uuid::from_u128(7);
        let (of_body, every) = (changes.generation(Scope::CertificationBody(body)), changes.generation(Scope::Every));
        changes.touch(None, None);
        assert_eq!(changes.generation(Scope::CertificationBody(body)), of_body);
        assert_ne!(changes.generation(Scope::Every), every);
    }
}
