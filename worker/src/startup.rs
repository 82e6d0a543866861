//! Building and running the worker: the scan on a cron schedule (and at start), the email jobs
//! on apalis storage in the application's database.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use apalis::prelude::{BackendExt, Monitor, Strategy, WorkerBuilder, WorkerBuilderExt};
use apalis_cron::CronScheduler;
use chrono::{DateTime, Utc};
use entities::clock::Clock;
use entities::domain::policy::CertificationPolicy;
use entities::domain::reminders::NotificationStatus;
use entities::orm::{notification, prelude::*};
use entities::settings::Settings;
use lettre::message::Mailbox;
use sea_orm::sea_query::{Condition, Expr};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect};
use uuid::Uuid;

use crate::delivery::{DeliveryContext, SharedDeliveryContext};
use crate::error::WorkerError;
use crate::jobs::{SendNotification, scan_deadlines, send_notification};
use crate::mailer::Mailer;
use crate::queue::EmailQueue;
use crate::scan::{ScanReport, claim_due_steps};
use crate::templates::Templates;

/// How often idle email workers look for jobs.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// What one tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TickReport {
    /// The scan.
    pub scan: ScanReport,
    /// Email jobs queued.
    pub queued: usize,
    /// Certificates the clock expired.
    pub expired: usize,
}

/// Runs the scan and queues the emails it claimed.
#[derive(Debug)]
pub struct Ticker {
    db: DatabaseConnection,
    clock: Clock,
    /// The certification rules the events the clock fires follow.
    policy: CertificationPolicy,
    batch: u64,
    queue: EmailQueue,
    /// A queued email whose job has not run for this long is queued again (its job was lost
    /// with a killed worker): two leases. A repeated job finds the email claimed and does nothing.
    requeue_after: chrono::Duration,
}

/// A ticker shared by the cron job and the tests.
pub type SharedTicker = Arc<Ticker>;

impl Ticker {
    /// Claims every due step, then queues one job per email waiting for one, then fires the
    /// events that fall due by the clock (certificates past their expiry date expire). The
    /// escalations go first: expiring cancels a deadline's unsent emails, so an engagement whose
    /// expiry escalation waits to be sent expires at a later tick.
    pub async fn tick(&self) -> Result<TickReport, WorkerError> {
        let now = self.clock.now();
        let scan = claim_due_steps(&self.db, now.date_naive(), now, self.batch).await?;
        let queued = self.enqueue(now).await?;
        if scan.claimed + scan.superseded + queued > 0 {
            tracing::info!(claimed = scan.claimed, superseded = scan.superseded, queued, "scan");
        }
        let expired = api::clock_events::expire_lapsed_certificates(&self.db, now, &self.policy).await?.len();
        Ok(TickReport { scan, queued, expired })
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
                .all(&self.db)
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
                    .exec_with_returning(&self.db)
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

/// The reminder worker, built and ready to run.
#[derive(Debug)]
pub struct ReminderWorker {
    ticker: SharedTicker,
    delivery: SharedDeliveryContext,
    queue: EmailQueue,
    schedule: cron::Schedule,
    concurrency: usize,
}

impl ReminderWorker {
    /// Opens the email queue in the database and builds the mailer the settings name.
    pub async fn build(settings: &Settings, db: DatabaseConnection, clock: Clock) -> anyhow::Result<Self> {
        let schedule = cron::Schedule::from_str(&settings.scan_schedule)
            .with_context(|| format!("SCAN_SCHEDULE '{}' is not a cron expression", settings.scan_schedule))?;
        let queue = EmailQueue::open(&db).await.context("Failed to open the email queue")?;
        let from: Mailbox = settings
            .mail_from
            .parse()
            .with_context(|| format!("MAIL_FROM '{}' is not a mailbox", settings.mail_from))?;
        let delivery = Arc::new(DeliveryContext {
            db: db.clone(),
            clock: clock.clone(),
            mailer: Mailer::from_settings(settings)?,
            templates: Templates::default(),
            from,
            max_attempts: settings.delivery_max_attempts,
            lease: chrono::Duration::seconds(i64::from(settings.delivery_lease_seconds)),
            public_base_url: settings.public_base_url.clone(),
        });
        let requeue_after = chrono::Duration::seconds(2 * i64::from(settings.delivery_lease_seconds));
        let batch = u64::from(settings.scan_batch_size);
        let ticker = Arc::new(Ticker {
            db,
            clock,
            policy: CertificationPolicy::default(),
            batch,
            queue: queue.clone(),
            requeue_after,
        });
        let concurrency = usize::try_from(settings.delivery_concurrency).unwrap_or(1);
        Ok(Self { ticker, delivery, queue, schedule, concurrency })
    }

    /// The scan, to drive it step by step (tests) or on a schedule.
    pub fn ticker(&self) -> SharedTicker {
        self.ticker.clone()
    }

    /// One scan now.
    pub async fn tick(&self) -> Result<TickReport, WorkerError> {
        self.ticker.tick().await
    }

    /// Scans once, then runs the cron scan and the email workers until `shutdown` completes.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        if let Err(error) = self.tick().await {
            tracing::error!(error = ?error, "the scan at start failed; the next tick retries");
        }
        self.run_scheduled(shutdown).await
    }

    /// Runs the cron scan and the email workers until `shutdown` completes (no scan at start).
    pub async fn run_scheduled(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let schedule = self.schedule.clone();
        let ticker = self.ticker.clone();
        let monitor = Monitor::new().register(move |_| {
            WorkerBuilder::new("certflow-scan")
                .backend(CronScheduler::new(schedule.clone()))
                .data(ticker.clone())
                .build(scan_deadlines)
        });
        let delivery = self.delivery.clone();
        let concurrency = self.concurrency;
        // Names unique to this process: apalis tracks which worker holds which job.
        let instance = Uuid::now_v7().simple().to_string();
        let instance = instance[instance.len() - 8..].to_owned();
        let monitor = match self.queue {
            EmailQueue::Sqlite(storage) => monitor.register(move |index| {
                WorkerBuilder::new(format!("certflow-email-{instance}-{index}"))
                    .backend(storage.clone().poll_with_strategy(Strategy::new().interval(POLL_INTERVAL)))
                    .concurrency(concurrency)
                    .data(delivery.clone())
                    .build(send_notification)
            }),
            EmailQueue::Postgres(storage) => monitor.register(move |index| {
                WorkerBuilder::new(format!("certflow-email-{instance}-{index}"))
                    .backend(storage.clone().poll_with_strategy(Strategy::new().interval(POLL_INTERVAL)))
                    .concurrency(concurrency)
                    .data(delivery.clone())
                    .build(send_notification)
            }),
        };
        monitor
            .shutdown_timeout(Duration::from_secs(10))
            .run_with_signal(async move {
                shutdown.await;
                Ok(())
            })
            .await
            .context("The reminder worker failed")
    }
}
