//! The tick: the scan, the emails it claimed queued, and the events the clock fires; run by the
//! cron job [`scan_deadlines`] and, step by step, by the tests.

use engine::idempotency::purge_expired_keys;
use std::sync::Arc;

use apalis::prelude::{BoxDynError, Data};
use apalis_cron::Tick;
use chrono::{DateTime, Utc};
use engine::Engine;
use engine::clock_events::fire_clock_events;
use engine::webhooks::retention::{PurgedWebhooks, purge_old_webhooks};
use entities::domain::reminders::NotificationStatus;
use entities::orm::{notification, prelude::*};
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use super::claim::{ScanReport, claim_due_steps};
use crate::error::WorkerError;
use crate::jobs::SendNotification;
use crate::queue::EmailQueue;

/// What one tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickReport {
    /// The scan.
    pub scan: ScanReport,
    /// Email jobs queued.
    pub queued: usize,
    /// Certificates the clock expired.
    pub expired: usize,
    /// Certificates the clock suspended for a missed surveillance audit.
    pub suspended: usize,
    /// Certificates the clock withdrew after their suspension's limit.
    pub withdrawn: usize,
    /// Idempotency keys past their retention, forgotten.
    pub keys_purged: usize,
    /// Token revocations that cover no live token any more, forgotten.
    pub revocations_purged: u64,
    /// Webhook messages and events past their retention, deleted.
    pub webhooks_purged: PurgedWebhooks,
}

/// Runs the scan and queues the emails it claimed.
#[derive(Debug)]
pub struct Ticker {
    /// The database, the clock, and the rules the events the clock fires follow.
    pub(crate) engine: Engine,
    pub(crate) batch: u64,
    /// How long ended webhook messages and their events are kept.
    pub(crate) webhook_retention: chrono::Duration,
    pub(crate) queue: EmailQueue,
    /// A queued email whose job has not run for this long is queued again (its job was lost
    /// with a killed worker): two leases. A repeated job finds the email claimed and does nothing.
    pub(crate) requeue_after: chrono::Duration,
}

/// A ticker shared by the cron job and the tests.
pub type SharedTicker = Arc<Ticker>;

impl Ticker {
    /// Claims every due step, then queues one job per email waiting for one, then fires the
    /// events that fall due by the clock (a surveillance missed suspends, a suspension past its
    /// limit and grace withdraws, a certificate past its expiry date expires). The escalations go
    /// first: withdrawing and expiring cancel a deadline's unsent emails, so an engagement whose
    /// escalation waits to be sent moves at a later tick.
    #[tracing::instrument(name = "scan_tick", skip_all, fields(at = %self.engine.clock.now()))]
    pub async fn tick(&self) -> Result<TickReport, WorkerError> {
        let started = std::time::Instant::now();
        let report = self.scan_and_queue().await;
        metrics::histogram!("certflow_scan_duration_seconds").record(started.elapsed().as_secs_f64());
        match &report {
            Ok(report) => metrics::counter!("certflow_scan_claimed_steps_total").increment(report.scan.claimed as u64),
            Err(_) => metrics::counter!("certflow_scan_failures_total").increment(1),
        }
        report
    }

    async fn scan_and_queue(&self) -> Result<TickReport, WorkerError> {
        let now = self.engine.clock.now();
        let scan = claim_due_steps(&self.engine.writer, now, self.batch).await?;
        let queued = self.enqueue(now).await?;
        if scan.claimed + scan.superseded + queued > 0 {
            tracing::info!(claimed = scan.claimed, superseded = scan.superseded, queued, "scan");
        }
        let clock = fire_clock_events(&self.engine, now).await?;
        // What the clock just did is told at once (a suspension's notice), not a tick later.
        let mut queued = queued;
        if !clock.suspended.is_empty() {
            queued += self.enqueue(now).await?;
        }
        // Bounded: 10 batches a tick at most, so a backlog drains over a few ticks.
        let keys_purged = purge_expired_keys(&self.engine, now, self.batch, 10).await?;
        // Tokens run on the wall clock, not the engine's.
        let revocations_purged = self.engine.purge_spent_revocations(Utc::now()).await?;
        let webhooks_purged =
            purge_old_webhooks(&self.engine.writer, now, self.webhook_retention, self.batch, 10).await?;
        Ok(TickReport {
            scan,
            queued,
            expired: clock.expired.len(),
            suspended: clock.suspended.len(),
            withdrawn: clock.withdrawn.len(),
            keys_purged,
            revocations_purged,
            webhooks_purged,
        })
    }

    /// Queues a job for each email that is due a try and has no live job: just claimed, retrying
    /// after a backoff, re-queued by an admin, queued so long ago that its job must be lost, or
    /// held by a delivery that died (its lease is over: it is handed back to `pending`).
    async fn enqueue(&self, now: DateTime<Utc>) -> Result<usize, WorkerError> {
        let mut queued = 0;
        loop {
            let jobless = Condition::any()
                .add(notification::Column::QueuedAt.is_null())
                .add(notification::Column::QueuedAt.lt(now - self.requeue_after));
            let waiting = Condition::any()
                .add(
                    Condition::all()
                        .add(notification::Column::Status.eq(NotificationStatus::Pending))
                        .add(notification::Column::NextAttemptAt.lte(now))
                        .add(jobless),
                )
                .add(
                    Condition::all()
                        .add(notification::Column::Status.eq(NotificationStatus::Sending))
                        .add(notification::Column::LeaseUntil.lt(now)),
                );
            // Take exactly the rows that still wait: a concurrent scan or a delivery that claimed
            // one meanwhile makes it drop out here, so no email gets two live jobs.
            let ids: Vec<Uuid> = Notification::find()
                .select_only()
                .column(notification::Column::Id)
                .filter(waiting.clone())
                .order_by_asc(notification::Column::Id)
                .limit(500)
                .into_tuple()
                .all(&self.engine.db)
                .await?;
            let taken = if ids.is_empty() {
                Vec::new()
            } else {
                Notification::update_many()
                    .col_expr(notification::Column::QueuedAt, Expr::value(now))
                    .col_expr(notification::Column::Status, Expr::value(NotificationStatus::Pending))
                    .col_expr(notification::Column::LeaseUntil, Expr::value(Option::<DateTime<Utc>>::None))
                    .filter(notification::Column::Id.is_in(ids.clone()))
                    .filter(waiting)
                    .exec_with_returning(&self.engine.writer)
                    .await?
            };
            for taken in &taken {
                self.queue.push(SendNotification { notification_id: taken.id }).await?;
            }
            queued += taken.len();
            if ids.len() < 500 {
                return Ok(queued);
            }
        }
    }
}

/// The cron job: one tick. Idempotent: a duplicate tick claims nothing twice.
pub async fn scan_deadlines(_tick: Tick, ticker: Data<SharedTicker>) -> Result<(), BoxDynError> {
    ticker.tick().await?;
    Ok(())
}
