//! Building and running the worker: the scan on a cron schedule (and at start), the email jobs
//! on apalis storage in the application's database.

use std::future::Future;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use apalis::prelude::{BackendExt, Monitor, Strategy, WorkerBuilder, WorkerBuilderExt};
use apalis_cron::CronScheduler;
use engine::Engine;
use entities::settings::Settings;
use lettre::message::Mailbox;
use uuid::Uuid;

use crate::delivery::{DeliveryContext, SharedDeliveryContext};
use crate::error::WorkerError;
use crate::jobs::send_notification;
use crate::mailer::Mailer;
use crate::queue::EmailQueue;
use crate::scan::{SharedTicker, TickReport, Ticker, scan_deadlines};
use crate::templates::Templates;
use crate::webhooks::{WebhookClient, WebhookSender};

/// How often idle email workers look for jobs.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The reminder worker, built and ready to run.
#[derive(Debug)]
pub struct ReminderWorker {
    ticker: SharedTicker,
    delivery: SharedDeliveryContext,
    queue: EmailQueue,
    schedule: cron::Schedule,
    concurrency: usize,
    /// How long jobs in hand may take to finish once a stop is asked for.
    grace: Duration,
    /// The webhook sender.
    webhooks: WebhookSender,
}

impl ReminderWorker {
    /// Opens the email queue in the database and builds the mailer the settings name, over
    /// `engine`'s pools and clock (those of the API it runs beside, or its own: [`Engine::open`]).
    pub async fn build(settings: &Settings, engine: Engine) -> anyhow::Result<Self> {
        let schedule = cron::Schedule::from_str(&settings.scan_schedule)
            .with_context(|| format!("SCAN_SCHEDULE '{}' is not a cron expression", settings.scan_schedule))?;
        let queue = EmailQueue::open(&engine.db).await.context("Failed to open the email queue")?;
        let from: Mailbox = settings
            .mail_from
            .parse()
            .with_context(|| format!("MAIL_FROM '{}' is not a mailbox", settings.mail_from))?;
        let webhooks = WebhookSender {
            engine: engine.clone(),
            client: WebhookClient::new(settings.webhook_allow_loopback),
            concurrency: usize::try_from(settings.webhook_concurrency).unwrap_or(64).max(1),
            lease: chrono::Duration::seconds(i64::from(settings.webhook_lease_seconds)),
            allow_loopback: settings.webhook_allow_loopback,
            retention: chrono::Duration::days(i64::from(settings.webhook_retention_days)),
            mailer: Arc::new(Mailer::from_settings(settings)?),
            from: from.clone(),
        };
        let delivery = Arc::new(DeliveryContext {
            engine: engine.clone(),
            mailer: Mailer::from_settings(settings)?,
            templates: Templates::default(),
            from,
            max_attempts: settings.delivery_max_attempts,
            lease: chrono::Duration::seconds(i64::from(settings.delivery_lease_seconds)),
            public_base_url: settings.public_base_url.clone(),
        });
        let requeue_after = chrono::Duration::seconds(2 * i64::from(settings.delivery_lease_seconds));
        let batch = u64::from(settings.scan_batch_size);
        let webhook_retention = chrono::Duration::days(i64::from(settings.webhook_retention_days));
        let ticker = Arc::new(Ticker { engine, batch, webhook_retention, queue: queue.clone(), requeue_after });
        let concurrency = usize::try_from(settings.delivery_concurrency).unwrap_or(1);
        let grace = Duration::from_secs(settings.shutdown_grace_seconds.into());
        Ok(Self { ticker, delivery, queue, schedule, concurrency, grace, webhooks })
    }

    /// The worker's database pools, named as the metrics name them (`read`, `write`).
    pub fn pools(&self) -> Vec<(&'static str, engine::store::Pool)> {
        self.delivery.engine.pools()
    }

    /// The scan, to drive it step by step (tests) or on a schedule.
    pub fn ticker(&self) -> SharedTicker {
        self.ticker.clone()
    }

    /// The webhook sender, to drive it pass by pass (tests).
    pub fn webhooks(&self) -> WebhookSender {
        self.webhooks.clone()
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
    /// Then it takes no new job, lets the emails being sent finish (`SHUTDOWN_GRACE_SECONDS` at
    /// most) and hands the jobs it had fetched but not begun back to the queue, where another
    /// worker takes them at once.
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
        // The webhook sender stops with the rest, finishing the attempts in hand.
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let webhooks = tokio::spawn(self.webhooks.run(stopped));
        let ran = monitor
            .shutdown_timeout(self.grace)
            .run_with_signal(async move {
                shutdown.await;
                let _ = stop.send(true);
                Ok(())
            })
            .await
            .context("The reminder worker failed");
        if let Err(error) = webhooks.await {
            tracing::error!(%error, "the webhook sender ended abnormally");
        }
        ran
    }
}
