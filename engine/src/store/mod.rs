//! The store: connections and transactions, what a database error means, and the look-ups and
//! checks every command shares.

mod colocation;
mod connection;
mod group;
mod postgres;
mod rows;
mod template;
mod together;
mod transaction;
mod writer;

pub use crate::fault::{StorageFault, Unavailability};
pub use connection::{Tuning, begin_write, connect, connect_tuned, connect_writer, read_snapshot, sqlite_file};
pub use entities::orm::{json_strings, strings_of};
pub use rows::{
    Contacts, UniqueViolation, belongs, check_version, contacts_for, find_engagement, find_engagement_records,
    lock_engagement, lock_engagement_reading, require_open,
};
pub use template::Templates;
pub use transaction::WriteTransaction;
pub use writer::{Pool, Taken, Writer};

/// Deletes in batches: `batch_step` finds at most `batch` rows and deletes them, returning how
/// many it found and how many it deleted. It runs at most `rounds` times, and stops at the first
/// batch that finds fewer than `batch` rows. Returns how many were deleted in all.
pub async fn delete_in_batches<Step, Batch>(
    batch: u64,
    rounds: usize,
    mut batch_step: Step,
) -> Result<usize, crate::error::EngineError>
where
    Step: FnMut() -> Batch,
    Batch: std::future::Future<Output = Result<(usize, u64), crate::error::EngineError>>,
{
    let mut deleted = 0;
    for _ in 0..rounds {
        let (found, gone) = batch_step().await?;
        deleted += usize::try_from(gone).unwrap_or(usize::MAX);
        if (found as u64) < batch {
            break;
        }
    }
    Ok(deleted)
}
