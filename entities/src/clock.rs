//! The one source of "now": the system clock in production, a settable one in tests.

use std::sync::{Arc, RwLock};

use chrono::{DateTime, NaiveDate, Utc};

/// Tells the time. Cloning shares the same clock.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    fixed: Option<Arc<RwLock<DateTime<Utc>>>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self { fixed: None }
    }

    /// A clock that stands at `now` until [`Clock::set`] moves it.
    pub fn fixed(now: DateTime<Utc>) -> Self {
        Self { fixed: Some(Arc::new(RwLock::new(now))) }
    }

    /// Moves a fixed clock; the system clock ignores it.
    pub fn set(&self, now: DateTime<Utc>) {
        if let Some(fixed) = &self.fixed {
            *fixed.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = now;
        }
    }

    /// The current instant.
    pub fn now(&self) -> DateTime<Utc> {
        match &self.fixed {
            Some(fixed) => *fixed.read().unwrap_or_else(|poisoned| poisoned.into_inner()),
            None => Utc::now(),
        }
    }

    /// Today's date in UTC.
    pub fn today(&self) -> NaiveDate {
        self.now().date_naive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_stands_still_until_moved_and_clones_share_it() {
        let start = DateTime::parse_from_rfc3339("2026-01-31T10:00:00Z").unwrap().to_utc();
        let clock = Clock::fixed(start);
        let shared = clock.clone();
        assert_eq!(clock.now(), start);
        clock.set(start + chrono::Days::new(1));
        assert_eq!(shared.today(), NaiveDate::from_ymd_opt(2026, 2, 1).unwrap());
    }
}
