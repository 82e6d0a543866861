//! The worker's apalis jobs, one file each.

pub mod scan_deadlines;
pub mod send_notification;

pub use scan_deadlines::scan_deadlines;
pub use send_notification::{SendNotification, send_notification};
