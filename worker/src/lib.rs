//! certflow's reminder worker: a scan (apalis cron, every minute and at start) claims every due
//! reminder or escalation step of every open deadline once, and one apalis job per email delivers
//! it with lettre. The `notifications` table is the record of what was claimed, sent, or failed.

pub mod delivery;
pub mod error;
pub mod jobs;
pub use engine::mailer;
pub mod queue;
pub mod scan;
pub mod startup;
pub mod templates;
pub mod webhook_client;
pub mod webhooks;

pub use startup::ReminderWorker;

/// Describes the worker's metrics to the installed recorder (`certflow_emails_total`, the scan's).
pub fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_counter!(
        "certflow_emails_total",
        "Email jobs by outcome: sent, retried (will be tried again), failed (for good), cancelled, nothing_to_do, error"
    );
    describe_histogram!("certflow_scan_duration_seconds", Unit::Seconds, "Time each scan tick took");
    describe_counter!("certflow_scan_claimed_steps_total", "Reminder and escalation steps the scan claimed");
    describe_counter!("certflow_scan_failures_total", "Scan ticks that failed (the next tick retries)");
}
