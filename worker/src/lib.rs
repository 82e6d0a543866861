//! certflow's reminder worker: a scan (apalis cron, every minute and at start) claims every due
//! reminder or escalation step of every open deadline once, and one apalis job per email delivers
//! it with lettre. The `notifications` table is the record of what was claimed, sent, or failed.

pub mod delivery;
pub mod error;
pub mod jobs;
pub mod mailer;
pub mod queue;
pub mod scan;
pub mod startup;
pub mod templates;

pub use startup::ReminderWorker;
