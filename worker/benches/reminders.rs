//! The reminder scan and delivery at scale: `cargo bench -p worker --bench reminders`.
//!
//! For SQLite and PostgreSQL: 1,000,000 open deadlines of which 10,000 have a step due today.
//! Measures the idle tick (nothing due: the index probe over 1M rows), finding and claiming the
//! 10,000 due steps, the query plan, and delivery into a local SMTP server (emails per second).
//! `BENCH_DEADLINES` and `BENCH_DUE` change the sizes; `BENCH_POSTGRES_URL` the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::{Days, Utc};
use entities::clock::Clock;
use entities::domain::StandardVersion;
use entities::domain::deadline::{DeadlineKind, DeadlineOwner, DeadlineStatus};
use entities::domain::reminders::NotificationStatus;
use entities::domain::state::EngagementState;
use entities::orm::{certification_body, deadline, engagement, notification, organization, prelude::*};
use entities::settings::Settings;
use mailin_embedded::{Handler, Response, Server, response::OK};
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter,
    Statement,
};
use uuid::Uuid;

#[derive(Clone)]
struct CountingSink(Arc<AtomicUsize>);

impl Handler for CountingSink {
    fn data_end(&mut self) -> Response {
        self.0.fetch_add(1, Ordering::Relaxed);
        OK
    }
}

fn start_sink() -> (u16, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the SMTP sink");
    let port = listener.local_addr().expect("sink address").port();
    let count = Arc::new(AtomicUsize::new(0));
    let handler = CountingSink(count.clone());
    std::thread::spawn(move || {
        let mut server = Server::new(handler);
        server.with_name("bench.sink").with_num_threads(64).with_tcp_listener(listener);
        if let Err(error) = server.serve() {
            eprintln!("SMTP sink stopped: {error}");
        }
    });
    (port, count)
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

async fn seed(db: &DatabaseConnection, total: usize, due: usize) -> anyhow::Result<()> {
    let now = Utc::now();
    let today = now.date_naive();
    let organization_id = Uuid::now_v7();
    let cb_id = Uuid::now_v7();
    let engagement_id = Uuid::now_v7();
    Organization::insert(organization::ActiveModel {
        id: Set(organization_id),
        legal_name: Set("Bench Ltd".into()),
        isms_scope: Set("everything".into()),
        persons: Set(100),
        sites: Set(serde_json::json!([])),
        accepts_unaccredited_cb: Set(false),
        isms_manager_email: Set("isms@bench.test".into()),
        executive_email: Set("ceo@bench.test".into()),
        email_domains: Set(None),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(db)
    .await?;
    CertificationBody::insert(certification_body::ActiveModel {
        id: Set(cb_id),
        name: Set("Bench CB".into()),
        accredited: Set(true),
        accreditation_body: Set(None),
        accreditation_expires_on: Set(None),
        coordinator_email: Set("coordinator@bench.test".into()),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(db)
    .await?;
    Engagement::insert(engagement::ActiveModel {
        id: Set(engagement_id),
        organization_id: Set(organization_id),
        certification_body_id: Set(Some(cb_id)),
        standard: Set(StandardVersion::Iso27001_2022),
        state: Set(EngagementState::CorrectiveActions),
        manager_email: Set("manager@bench.test".into()),
        engagement_letter_signed_on: Set(None),
        stage1_ready_on: Set(None),
        stage2_last_day: Set(None),
        suspended_on: Set(None),
        expired_on: Set(None),
        suspension_cause: Set(None),
        scope: Set(None),
        version: Set(1),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(db)
    .await?;
    let stride = (total / due.max(1)).max(1);
    let mut rows = Vec::with_capacity(2000);
    for i in 0..total {
        let is_due = i % stride == 0 && i / stride < due;
        let (due_on, next_step_on) = if is_due { (14, 0) } else { (200, 186) };
        rows.push(deadline::ActiveModel {
            id: Set(Uuid::now_v7()),
            engagement_id: Set(engagement_id),
            kind: Set(DeadlineKind::CorrectiveActionDue),
            subject_id: Set(None),
            due_on: Set(today.checked_add_days(Days::new(due_on)).expect("date")),
            owner: Set(DeadlineOwner::CorrectiveActionOwner),
            owner_email: Set(format!("owner{i}@bench.test")),
            status: Set(DeadlineStatus::Open),
            created_at: Set(now),
            closed_at: Set(None),
            next_step_on: Set(Some(today.checked_add_days(Days::new(next_step_on)).expect("date"))),
            certification_body_id: Set(None),
        });
        if rows.len() == 2000 {
            Deadline::insert_many(std::mem::take(&mut rows)).exec_without_returning(db).await?;
        }
    }
    if !rows.is_empty() {
        Deadline::insert_many(rows).exec_without_returning(db).await?;
    }
    db.execute_unprepared(if db.get_database_backend() == sea_orm::DatabaseBackend::Sqlite {
        "ANALYZE"
    } else {
        "ANALYZE deadlines"
    })
    .await?;
    Ok(())
}

async fn query_plan(db: &DatabaseConnection) -> anyhow::Result<Vec<String>> {
    let backend = db.get_database_backend();
    let today = Utc::now().date_naive().to_string();
    let sql = format!(
        "SELECT * FROM deadlines WHERE status = 'open' AND next_step_on <= '{today}' ORDER BY next_step_on, id LIMIT 500"
    );
    let explain = match backend {
        sea_orm::DatabaseBackend::Sqlite => format!("EXPLAIN QUERY PLAN {sql}"),
        _ => format!("EXPLAIN {sql}"),
    };
    let rows = db.query_all_raw(Statement::from_string(backend, explain)).await?;
    Ok(rows
        .iter()
        .map(|row| {
            row.try_get_by_index::<String>(if backend == sea_orm::DatabaseBackend::Sqlite { 3 } else { 0 })
                .unwrap_or_default()
        })
        .collect())
}

struct Figures {
    backend: &'static str,
    seed_seconds: f64,
    idle_tick_ms: f64,
    claim_ms: f64,
    claimed: usize,
    emails_per_second: f64,
    plan: Vec<String>,
}

async fn run(backend: &'static str, url: String, total: usize, due: usize) -> anyhow::Result<Figures> {
    let db = engine::store::connect(&url, 10).await?;
    Migrator::up(&db, None).await?;
    let started = Instant::now();
    seed(&db, total, due).await?;
    let seed_seconds = started.elapsed().as_secs_f64();
    let plan = query_plan(&db).await?;

    // Now, in UTC (the bodies' zone): the day's reminders are due; a day earlier, none. Not a
    // fixed hour: the worker sends on the system clock, and emails claimed for a later hour than
    // the run's (noon, in a morning run) would wait for it.
    let now = Utc::now();
    let yesterday = now.checked_sub_days(Days::new(1)).expect("date");
    let writer = engine::store::Writer::over(db.clone(), 1);
    let mut idle = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        worker::scan::claim_due_steps(&writer, yesterday, 500).await?;
        idle.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    idle.sort_by(f64::total_cmp);
    let started = Instant::now();
    let report = worker::scan::claim_due_steps(&writer, now, 500).await?;
    let claim_ms = started.elapsed().as_secs_f64() * 1000.0;

    let (port, delivered) = start_sink();
    let vars = vec![
        ("DATABASE_URL".to_owned(), url.clone()),
        ("SMTP_HOST".to_owned(), "127.0.0.1".to_owned()),
        ("SMTP_PORT".to_owned(), port.to_string()),
        ("SMTP_SECURITY".to_owned(), "none".to_owned()),
    ];
    let mut vars = vars;
    if let Ok(concurrency) = std::env::var("DELIVERY_CONCURRENCY") {
        vars.push(("DELIVERY_CONCURRENCY".to_owned(), concurrency));
    }
    let settings = Settings::from_vars(vars)?;
    let reminder_worker =
        worker::ReminderWorker::build(&settings, engine::Engine::open(&settings, Clock::system()).await?).await?;
    let started = Instant::now();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(reminder_worker.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let sent_filter = || notification::Column::Status.eq(NotificationStatus::Sent);
    while Notification::find().filter(sent_filter()).count(&db).await? < report.claimed as u64 {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(600), "delivery took over 10 minutes");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let emails_per_second = report.claimed as f64 / started.elapsed().as_secs_f64();
    let _ = stop.send(());
    let _ = running.await;
    eprintln!("{backend}: the sink counted {} emails", delivered.load(Ordering::Relaxed));
    Ok(Figures {
        backend,
        seed_seconds,
        idle_tick_ms: idle[idle.len() / 2],
        claim_ms,
        claimed: report.claimed,
        emails_per_second,
        plan,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let total = env_number("BENCH_DEADLINES", 1_000_000);
    let due = env_number("BENCH_DUE", 10_000);
    let sqlite_path = std::env::temp_dir().join(format!("certflow-bench-{}.db", Uuid::now_v7()));
    let mut figures = vec![run("SQLite", format!("sqlite://{}?mode=rwc", sqlite_path.display()), total, due).await?];
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", sqlite_path.display()));
    }
    let admin_url =
        std::env::var("BENCH_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let name = format!("bench_{}", Uuid::now_v7().simple());
    let admin = engine::store::connect(&admin_url, 1).await?;
    admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await?;
    let (server, _) = admin_url.rsplit_once('/').unwrap_or((admin_url.as_str(), ""));
    let result = run("PostgreSQL", format!("{server}/{name}"), total, due).await;
    admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await?;
    figures.push(result?);

    println!(
        "\n| database | deadlines | seeding (s) | idle tick, median of 20 (ms) | find + claim {due} due steps (ms) | claimed | delivery (emails/s) |"
    );
    println!("|---|---|---|---|---|---|---|");
    for f in &figures {
        println!(
            "| {} | {total} | {:.1} | {:.2} | {:.0} | {} | {:.0} |",
            f.backend, f.seed_seconds, f.idle_tick_ms, f.claim_ms, f.claimed, f.emails_per_second
        );
    }
    for f in &figures {
        println!("\nQuery plan of the due-deadline probe on {}:\n```\n{}\n```", f.backend, f.plan.join("\n"));
    }
    Ok(())
}
