//! Webhooks: the outbox every write tells its events to, the endpoints integrations register, and
//! what the worker needs to make events into messages and deliver them.

pub mod data;
pub mod dispatch;
pub mod endpoints;
pub mod outbox;
pub mod retention;
pub mod rows;
