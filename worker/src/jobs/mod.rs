//! The worker's apalis jobs, one file each (the cron tick lives with the scan).

pub mod send_notification;

pub use send_notification::{SendNotification, send_notification};
