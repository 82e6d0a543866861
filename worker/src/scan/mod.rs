//! The scan: every due reminder or escalation step claimed once, its email queued, and the events
//! the clock fires, at every tick.

mod claim;
mod ticker;

pub use claim::{ScanReport, claim_due_steps};
pub use ticker::{SharedTicker, TickReport, Ticker, scan_deadlines};
