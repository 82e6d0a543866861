//! The store: connections and transactions, what a database error means, and the look-ups and
//! checks every command shares.

mod connection;
mod rows;

pub use crate::fault::{StorageFault, Unavailability};
pub use connection::{Tuning, begin_write, connect, connect_tuned, connect_writer, sqlite_file};
pub use entities::orm::{json_strings, strings_of};
pub use rows::{
    Contacts, UniqueViolation, belongs, check_version, contacts_for, find_engagement, find_engagement_records,
    lock_engagement, require_open,
};
