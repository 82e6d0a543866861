//! The cron tick: claim due steps and queue their emails.

use apalis::prelude::{BoxDynError, Data};
use apalis_cron::Tick;

use crate::startup::SharedTicker;

/// Runs one scan. Idempotent: a duplicate tick claims nothing twice.
pub async fn scan_deadlines(_tick: Tick, ticker: Data<SharedTicker>) -> Result<(), BoxDynError> {
    ticker.tick().await?;
    Ok(())
}
