//! End-to-end tests: the real server on a random port over a fresh database (SQLite and PostgreSQL).

mod access;
mod api_crash;
mod bad_inputs;
mod certification_policy;
mod concurrency;
mod corrective_actions;
mod cycle;
mod faults;
mod helpers;
mod idempotency;
mod impartiality;
mod lifecycle;
mod migrations;
mod openapi;
mod processes;
mod reminder_policy;
mod reminders;
mod scale_out;
mod smtp;
mod stage1;
mod storage_faults;
mod suspension;
mod tokens;
mod worker_crash;
mod worker_scale;
mod write_path;
