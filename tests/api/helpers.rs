//! `spawn_app()`: a fresh database (a SQLite file, or a PostgreSQL database of its own), the real
//! server on port 0, a settable clock, and one method per endpoint the tests use.

use std::sync::LazyLock;

use api::auth::{Role, TokenKeys};
use api::telemetry::{get_subscriber, init_subscriber};
use chrono::{DateTime, Days, NaiveDate, Utc};
use entities::clock::Clock;
use entities::settings::Settings;
use migration::{Migrator, MigratorTrait};
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};
use uuid::Uuid;

static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var("TEST_LOG").is_ok() {
        init_subscriber(get_subscriber("debug,sqlx=warn", std::io::stdout, None));
    } else {
        init_subscriber(get_subscriber("error", std::io::sink, None));
    }
});

/// The database a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server the tests create their databases on.
fn postgres_admin_url() -> String {
    std::env::var("TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

fn with_database(url: &str, database: &str) -> String {
    match url.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{database}"),
        None => format!("{url}/{database}"),
    }
}

/// The first day of the tests' calendar: fixed, so dates and deadlines are exact.
pub fn day0() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 1, 5).unwrap()
}

/// For processes on the system clock: a day whose reminders are due whatever the hour (a step is
/// due from 08:00 of its day in its body's zone, UTC by default, so "today" is not yet due before
/// 08:00 UTC): yesterday.
pub fn a_day_already_due_by_the_wall_clock() -> NaiveDate {
    Utc::now().date_naive().pred_opt().unwrap()
}

/// `day0` plus `n` days.
pub fn day(n: u64) -> NaiveDate {
    day0().checked_add_days(Days::new(n)).unwrap()
}

fn noon(date: NaiveDate) -> DateTime<Utc> {
    date.and_hms_opt(12, 0, 0).unwrap().and_utc()
}

/// A running server and what a test needs to drive it.
pub struct TestApp {
    pub address: String,
    pub database_url: String,
    pub client: reqwest::Client,
    pub clock: Clock,
    pub keys: TokenKeys,
    /// The HS256 secret the server checks tokens with (a random one per test server).
    pub jwt_secret: Vec<u8>,
    pub token: String,
    cleanup: Cleanup,
}

enum Cleanup {
    SqliteFile(std::path::PathBuf),
    PostgresDatabase(String),
    /// The database belongs to the test (e.g. a private server it stops and starts).
    Nothing,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        match &self.cleanup {
            Cleanup::SqliteFile(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::PostgresDatabase(name) => {
                let name = name.clone();
                let _ = std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
                    runtime.block_on(async {
                        let admin = engine::store::connect(&postgres_admin_url(), 1).await.ok()?;
                        admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await.ok()
                    })
                })
                .join();
            }
            Cleanup::Nothing => {}
        }
    }
}

/// A test-only RSA key pair: the server accepts RS256 tokens signed by its private half.
pub const RS256_PUBLIC_KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/jwt-test-rs256-public.pem");
/// The private half (test-only, never used outside the tests).
pub const RS256_PRIVATE_KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/jwt-test-rs256-private.pem");

/// The documents stage 1 requires.
pub const STAGE1_DOCUMENTS: [&str; 7] = [
    "scope_statement",
    "information_security_policy",
    "risk_assessment",
    "risk_treatment_plan",
    "statement_of_applicability",
    "internal_audit",
    "management_review",
];

/// The subject of the test's admin token.
pub const ADMIN: &str = "admin@certflow.test";

/// Starts the server over a fresh database of `backend`, its clock at noon on `day0()`.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

/// [`spawn_app`] with `extra` settings (environment variables) over the tests' own.
pub async fn spawn_app_with(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
    LazyLock::force(&TRACING);
    let (url, cleanup) = match backend {
        Backend::Sqlite => {
            let path = std::env::temp_dir().join(format!("certflow-test-{}.db", Uuid::now_v7()));
            (format!("sqlite://{}?mode=rwc", path.display()), Cleanup::SqliteFile(path))
        }
        Backend::Postgres => {
            let name = format!("t_{}", Uuid::now_v7().simple());
            let admin = engine::store::connect(&postgres_admin_url(), 1)
                .await
                .expect("PostgreSQL must be reachable at TEST_POSTGRES_URL (default 127.0.0.1:5432, database test)");
            admin
                .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
                .await
                .expect("Failed to create a test database");
            admin.close().await.ok();
            (with_database(&postgres_admin_url(), &name), Cleanup::PostgresDatabase(name))
        }
    };
    build_app(url, cleanup, extra).await
}

/// Starts the server over the database at `url`, which the caller owns (migrations are applied).
pub async fn spawn_app_at(url: &str) -> TestApp {
    LazyLock::force(&TRACING);
    build_app(url.to_owned(), Cleanup::Nothing, &[]).await
}

/// Rate limits no test reaches unless it sets its own (the tests send bursts from one address).
pub const UNREACHED_RATE_LIMITS: [(&str, &str); 4] = [
    ("RATE_LIMIT_CALLER_PER_SECOND", "100000"),
    ("RATE_LIMIT_CALLER_BURST", "100000"),
    ("RATE_LIMIT_ANONYMOUS_PER_SECOND", "100000"),
    ("RATE_LIMIT_ANONYMOUS_BURST", "100000"),
];

async fn build_app(url: String, cleanup: Cleanup, extra: &[(&str, &str)]) -> TestApp {
    // Sign-in emails of a test without an SMTP server go to a folder of the system's, not the repository.
    let outbox = std::env::temp_dir().join("certflow-test-outbox");
    let mut vars = vec![
        ("OUTBOX_DIR".to_owned(), outbox.display().to_string()),
        ("DATABASE_URL".to_owned(), url.clone()),
        ("LISTEN_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("DATABASE_MAX_CONNECTIONS".to_owned(), "5".to_owned()),
        ("JWT_PUBLIC_KEY_FILE".to_owned(), RS256_PUBLIC_KEY.to_owned()),
    ];
    vars.extend(UNREACHED_RATE_LIMITS.iter().chain(extra).map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    let settings = Settings::from_vars(vars).expect("test settings");
    let db = engine::store::connect(&settings.database_url, settings.database_max_connections).await.expect("connect");
    Migrator::up(&db, None).await.expect("migrate");
    let clock = Clock::fixed(noon(day0()));
    let application = api::Application::build_with(&settings, db.clone(), clock.clone()).await.expect("build the app");
    let address = format!("http://127.0.0.1:{}", application.port());
    tokio::spawn(application.run_until_stopped());
    let keys = TokenKeys::from_settings(&settings).expect("token keys");
    let token =
        keys.mint(ADMIN, Role::Admin, None, None, Utc::now(), chrono::Duration::hours(1)).expect("mint a token");
    let jwt_secret = settings.jwt_secret_bytes().to_vec();
    TestApp { address, database_url: url, client: client().build().unwrap(), clock, keys, jwt_secret, token, cleanup }
}

/// The tests' HTTP client. It drops a pooled connection after 2 s idle, before the server's
/// keep-alive (actix's 5 s) closes it: a request sent on a connection the server is closing at
/// that moment fails with `IncompleteMessage` (seen once in CI, in `scale_out`, whose requests to
/// the same processes were about 5 s apart). A client behind a load balancer meets the same race;
/// the usual rule is the one kept here, the client's idle timeout below the server's.
pub fn client() -> reqwest::ClientBuilder {
    reqwest::Client::builder().pool_idle_timeout(std::time::Duration::from_secs(2))
}

/// The reminder worker, running in the background against the app's database and clock.
pub struct TestWorker {
    pub ticker: worker::scan::SharedTicker,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestWorker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl TestWorker {
    /// One scan now (as the cron would).
    pub async fn tick(&self) -> worker::scan::TickReport {
        self.ticker.tick().await.expect("the scan runs")
    }
}

/// Polls `check` every 50 ms until it holds, for at most 30 s.
pub async fn wait_until<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    wait_at_most(30, what, check).await;
}

/// Polls `check` every 50 ms until it holds, for at most `seconds`.
pub async fn wait_at_most<F, Fut>(seconds: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Sends `request` and reads its response (for tasks that hold no `TestApp`).
pub async fn read_reply(request: reqwest::RequestBuilder) -> Reply {
    let response = request.send().await.expect("the server answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    Reply { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::Null) }
}

/// A status and a JSON body (Null when empty or not JSON).
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Reply {
    /// `body[field]` as a string.
    pub fn str(&self, field: &str) -> String {
        self.body[field].as_str().unwrap_or_else(|| panic!("no string {field} in {}", self.body)).to_owned()
    }

    /// The `Content-Type` header ("" when absent).
    pub fn content_type(&self) -> String {
        self.header("content-type").unwrap_or_default()
    }

    /// The value of the response header `name`, if it is there.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|value| value.to_str().unwrap_or_default().to_owned())
    }

    /// A page's items in place of the page (for a test that reads one page of a list).
    pub fn items(mut self) -> Self {
        self.body = self.body["items"].take();
        self
    }

    /// The problem `type` slug.
    pub fn problem_type(&self) -> String {
        self.body["type"].as_str().unwrap_or_default().trim_start_matches("https://certflow.dev/problems/").to_owned()
    }

    /// Panics unless the status is `expected`.
    #[track_caller]
    pub fn expect(self, expected: u16) -> Self {
        assert_eq!(self.status, expected, "unexpected reply: {}", self.body);
        self
    }
}

impl TestApp {
    /// Starts the reminder worker on this app's database and clock, sending to SMTP on `smtp_port`.
    pub async fn spawn_worker(&self, smtp_port: u16) -> TestWorker {
        self.spawn_worker_with(smtp_port, &[]).await
    }

    /// Starts the reminder worker with extra settings.
    pub async fn spawn_worker_with(&self, smtp_port: u16, extra: &[(&str, &str)]) -> TestWorker {
        let mut vars = vec![
            ("DATABASE_URL".to_owned(), self.database_url.clone()),
            ("DATABASE_MAX_CONNECTIONS".to_owned(), "10".to_owned()),
            ("SMTP_HOST".to_owned(), "127.0.0.1".to_owned()),
            ("SMTP_PORT".to_owned(), smtp_port.to_string()),
            ("SMTP_SECURITY".to_owned(), "none".to_owned()),
            ("PUBLIC_BASE_URL".to_owned(), self.address.clone()),
        ];
        // The scan runs when the test says (`tick`), not on the clock: a scan at the turn of
        // a minute would race with the test's own.
        vars.push(("SCAN_SCHEDULE".to_owned(), "0 0 0 1 1 * 2099".to_owned()));
        // Tests check behaviour, not speed: fewer deliveries at once than the default keep a debug
        // build on two shared cores from queueing for database connections.
        vars.push(("DELIVERY_CONCURRENCY".to_owned(), "16".to_owned()));
        vars.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let settings = Settings::from_vars(vars).expect("worker settings");
        // Pools of its own, as a worker process opens them.
        let engine = engine::Engine::open(&settings, self.clock.clone()).await.expect("open the worker's database");
        let reminder_worker = worker::ReminderWorker::build(&settings, engine).await.expect("build the worker");
        let ticker = reminder_worker.ticker();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(reminder_worker.run_scheduled(async move {
            let _ = stopped.await;
        }));
        TestWorker { ticker, stop: Some(stop) }
    }

    /// A token for `role` with the scope `org` or `cb`, valid for an hour.
    pub fn token_for(&self, role: Role, org: Option<&str>, cb: Option<&str>) -> String {
        self.token_of(&format!("{role}@certflow.test"), role, org, cb)
    }

    /// A token for `subject` in `role`, scoped to `org` or `cb`.
    pub fn token_of(&self, subject: &str, role: Role, org: Option<&str>, cb: Option<&str>) -> String {
        let parse = |id: Option<&str>| id.map(|id| id.parse::<Uuid>().expect("a uuid"));
        self.keys
            .mint(subject, role, parse(org), parse(cb), Utc::now(), chrono::Duration::hours(1))
            .expect("mint a token")
    }

    /// Sends a request with `token`.
    pub async fn send_as(&self, token: &str, method: reqwest::Method, path: &str, body: Option<&Value>) -> Reply {
        let mut request = self.client.request(method, format!("{}{path}", self.address)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.reply(request).await
    }

    /// A connection of the test's own to the app's database.
    pub async fn db(&self) -> sea_orm::DatabaseConnection {
        engine::store::connect(&self.database_url, 5).await.expect("connect to the test database")
    }

    /// Inserts `count` open corrective-action deadlines of `engagement`, due 14 days after `today`
    /// with their next step on `today`: each has exactly one step (its 14-day reminder) due.
    pub async fn insert_due_deadlines(&self, engagement: &str, count: usize, today: NaiveDate) {
        use entities::domain::deadline::{DeadlineKind, DeadlineOwner, DeadlineStatus};
        use entities::orm::{deadline, prelude::Deadline};
        use sea_orm::{ActiveValue::Set, EntityTrait};
        let db = self.db().await;
        let engagement_id: Uuid = engagement.parse().unwrap();
        let body = self.engagement(engagement).await.body["certification_body_id"].as_str().map(|b| b.parse().unwrap());
        let rows: Vec<deadline::ActiveModel> = (0..count)
            .map(|i| deadline::ActiveModel {
                id: Set(Uuid::now_v7()),
                engagement_id: Set(engagement_id),
                kind: Set(DeadlineKind::CorrectiveActionDue),
                subject_id: Set(None),
                due_on: Set(today.checked_add_days(Days::new(14)).unwrap()),
                owner: Set(DeadlineOwner::CorrectiveActionOwner),
                owner_email: Set(format!("owner{i}@acme.test")),
                status: Set(DeadlineStatus::Open),
                created_at: Set(Utc::now()),
                closed_at: Set(None),
                next_step_on: Set(Some(today)),
                certification_body_id: Set(body),
            })
            .collect();
        for chunk in rows.chunks(200) {
            Deadline::insert_many(chunk.to_vec()).exec_without_returning(&db).await.unwrap();
        }
    }

    /// Inserts a deadline of `engagement` and an email about it that failed for good; returns the
    /// email's id.
    pub async fn insert_failed_notification(&self, engagement: &str) -> String {
        use entities::domain::reminders::{NotificationStatus, StepKind};
        use entities::orm::{notification, prelude::Notification};
        use sea_orm::{ActiveValue::Set, EntityTrait};
        let today = self.clock.today();
        self.insert_due_deadlines(engagement, 1, today).await;
        let db = self.db().await;
        let deadline = entities::orm::prelude::Deadline::find()
            .all(&db)
            .await
            .unwrap()
            .into_iter()
            .filter(|d| d.engagement_id.to_string() == engagement)
            .max_by_key(|d| d.id)
            .expect("the deadline just inserted");
        let id = Uuid::now_v7();
        Notification::insert(notification::ActiveModel {
            id: Set(id),
            deadline_id: Set(deadline.id),
            engagement_id: Set(deadline.engagement_id),
            step_key: Set("reminder-14".into()),
            kind: Set(StepKind::Reminder),
            recipients: Set(json!(["owner@acme.test"])),
            scheduled_on: Set(today),
            status: Set(NotificationStatus::Failed),
            attempts: Set(8),
            next_attempt_at: Set(Utc::now()),
            queued_at: Set(None),
            lease_until: Set(None),
            last_error: Set(Some("550 mailbox unavailable".into())),
            message_id: Set(None),
            created_at: Set(Utc::now()),
            sent_at: Set(None),
            recipients_sent: Set(0),
            certification_body_id: Set(deadline.certification_body_id),
        })
        .exec_without_returning(&db)
        .await
        .unwrap();
        id.to_string()
    }

    /// The notifications of an engagement, oldest first.
    pub async fn notifications(&self, engagement: &str) -> Vec<Value> {
        let page = self.get(&format!("/api/v1/notifications?engagement_id={engagement}&limit=200")).await.expect(200);
        page.body["items"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until no notification of `engagement` is due a try now or being sent.
    pub async fn wait_for_deliveries(&self, engagement: &str) {
        let now = self.clock.now();
        let what = format!("every notification due at {now} is handled");
        wait_until(&what, || async {
            let notifications = self.notifications(engagement).await;
            if std::env::var("TEST_LOG").is_ok() {
                eprintln!("waiting: {notifications:?}");
            }
            notifications.iter().all(|n| match n["status"].as_str() {
                Some("sending") => false,
                Some("pending") => {
                    n["next_attempt_at"].as_str().and_then(|t| t.parse::<DateTime<Utc>>().ok()).is_some_and(|t| t > now)
                }
                _ => true,
            })
        })
        .await;
    }

    /// Moves the server's clock to noon of `date`.
    pub fn set_today(&self, date: NaiveDate) {
        self.clock.set(noon(date));
    }

    /// Moves the server's clock to `now`.
    pub fn set_now(&self, now: DateTime<Utc>) {
        self.clock.set(now);
    }

    /// Sends a request with the test's admin token.
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Reply {
        self.send_as(&self.token, method, path, body).await
    }

    /// Sends `request` and reads its response.
    pub async fn reply(&self, request: reqwest::RequestBuilder) -> Reply {
        read_reply(request).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn create_organization(&self, persons: u32) -> String {
        self.post(
            "/api/v1/organizations",
            &json!({
                "legal_name": "Acme Data Ltd",
                "isms_scope": "SaaS platform operations, London",
                "persons": persons,
                "sites": ["London"],
                "isms_manager_email": "isms@acme.test",
                "executive_email": "ceo@acme.test"
            }),
        )
        .await
        .expect(201)
        .str("id")
    }

    pub async fn create_certification_body(&self, accredited: bool) -> String {
        self.post(
            "/api/v1/certification-bodies",
            &json!({
                "name": "Trusted Certification Ltd",
                "accredited": accredited,
                "accreditation_body": accredited.then_some("UKAS"),
                "coordinator_email": "coordinator@cb.test"
            }),
        )
        .await
        .expect(201)
        .str("id")
    }

    /// An engagement in `cb_selection` with a selected proposal from an accredited CB.
    pub async fn engagement_with_selected_proposal(&self) -> String {
        let organization = self.create_organization(120).await;
        let cb = self.create_certification_body(true).await;
        self.engagement_selecting(&organization, &cb).await
    }

    /// An engagement of `organization` in `cb_selection` with `cb`'s proposal selected.
    pub async fn engagement_selecting(&self, organization: &str, cb: &str) -> String {
        let (engagement, proposal) = self.engagement_with_proposal(organization, cb).await;
        self.select_proposal(&engagement, &proposal).await;
        engagement
    }

    /// An engagement of `organization` in `cb_selection` with a proposal of `cb`: their ids.
    pub async fn engagement_with_proposal(&self, organization: &str, cb: &str) -> (String, String) {
        let engagement = self
            .post("/api/v1/engagements", &json!({ "organization_id": organization, "manager_email": "isms@acme.test" }))
            .await
            .expect(201)
            .str("id");
        let proposal = self.propose(&engagement, cb).await;
        (engagement, proposal)
    }

    /// `cb`'s proposal for `engagement`: its id.
    pub async fn propose(&self, engagement: &str, cb: &str) -> String {
        self.post(
            &format!("/api/v1/engagements/{engagement}/proposals"),
            &json!({ "certification_body_id": cb, "price_minor": 1_450_000, "currency": "GBP", "audit_days": 12.0 }),
        )
        .await
        .expect(201)
        .str("id")
    }

    /// Selects `proposal` for `engagement`.
    pub async fn select_proposal(&self, engagement: &str, proposal: &str) {
        self.post(&format!("/api/v1/engagements/{engagement}/proposals/{proposal}/selection"), &json!({}))
            .await
            .expect(200);
    }

    /// Fires `event` as the admin, or, for the certification decision, as a decision maker of the
    /// engagement's certification body (only they may decide). The answer of a transition that
    /// took place must be what a read of the engagement shows right after it (the transition
    /// builds its answer without reading the engagement back).
    pub async fn fire(&self, engagement: &str, event: Value) -> Reply {
        let path = format!("/api/v1/engagements/{engagement}/events");
        let reply = if matches!(event["event"].as_str(), Some("grant_certification" | "refuse_certification")) {
            let view = self.engagement(engagement).await;
            let token = self.token_for(Role::DecisionMaker, None, view.body["certification_body_id"].as_str());
            self.send_as(&token, reqwest::Method::POST, &path, Some(&event)).await
        } else {
            self.post(&path, &event).await
        };
        if reply.status == 200 {
            let read = self.engagement(engagement).await;
            assert_eq!(reply.body, read.body, "the answer to {event} differs from the engagement read after it");
        }
        reply
    }

    pub async fn engagement(&self, engagement: &str) -> Reply {
        self.get(&format!("/api/v1/engagements/{engagement}")).await.expect(200)
    }

    pub async fn create_audit(&self, engagement: &str, kind: &str, first: NaiveDate, last: NaiveDate) -> String {
        self.post(
            &format!("/api/v1/engagements/{engagement}/audits"),
            &json!({
                "kind": kind,
                "first_day": first,
                "last_day": last,
                "lead_auditor": "lead@cb.test",
                "audit_team": ["auditor@cb.test"]
            }),
        )
        .await
        .expect(201)
        .str("id")
    }

    /// Registers all seven required documents and a complete Statement of Applicability.
    pub async fn prepare_stage1_documents(&self, engagement: &str) {
        for kind in STAGE1_DOCUMENTS {
            self.put(
                &format!("/api/v1/engagements/{engagement}/documents/{kind}"),
                &json!({ "reference": format!("dms://{kind}") }),
            )
            .await
            .expect(200);
        }
        let entries: Vec<Value> = entities::domain::soa::annex_a_controls()
            .iter()
            .map(|c| json!({ "control": c.control, "applicable": c.control != "7.5", "justification": "decided in the risk treatment plan" }))
            .collect();
        let soa = self
            .put(
                &format!("/api/v1/engagements/{engagement}/statement-of-applicability"),
                &json!({ "entries": entries }),
            )
            .await
            .expect(200);
        assert_eq!(soa.body["report"]["complete"], true, "{}", soa.body["report"]);
    }

    /// From `cb_selection` to `stage2`: letter signed on day 0, stage 1 on days 10–11 found ready.
    pub async fn engagement_in_stage2(&self) -> String {
        let engagement = self.engagement_with_selected_proposal().await;
        self.move_to_stage2(&engagement).await;
        engagement
    }

    /// From `cb_selection` with a selected proposal to `stage2` (see [`Self::engagement_in_stage2`]).
    pub async fn move_to_stage2(&self, engagement: &str) {
        let engagement = engagement.to_owned();
        self.fire(&engagement, json!({ "event": "sign_engagement_letter", "signed_on": day0() })).await.expect(200);
        let stage1 = self.create_audit(&engagement, "stage1", day(10), day(11)).await;
        self.prepare_stage1_documents(&engagement).await;
        self.set_today(day(12));
        self.fire(&engagement, json!({ "event": "record_stage1_outcome", "audit_id": stage1, "outcome": "ready" }))
            .await
            .expect(200);
    }

    /// An engagement in `stage2` (see [`Self::engagement_in_stage2`]) with a stage 2 audit on days
    /// 40–43 that found one `grade` finding on `reference`: (engagement, audit, finding).
    pub async fn stage2_with_finding(&self, grade: &str, reference: &str) -> (String, String, String) {
        let engagement = self.engagement_in_stage2().await;
        let audit = self.create_audit(&engagement, "stage2", day(40), day(43)).await;
        let finding = self.record_finding(&engagement, &audit, grade, reference).await;
        (engagement, audit, finding)
    }

    pub async fn record_finding(&self, engagement: &str, audit: &str, grade: &str, reference: &str) -> String {
        self.post(
            &format!("/api/v1/engagements/{engagement}/audits/{audit}/findings"),
            &json!({ "grade": grade, "reference": reference, "description": "observed during the audit" }),
        )
        .await
        .expect(201)
        .str("id")
    }

    pub async fn submit_corrective_action(&self, engagement: &str, finding: &str, due_on: Option<NaiveDate>) -> Reply {
        self.post(
            &format!("/api/v1/engagements/{engagement}/findings/{finding}/corrective-action"),
            &json!({
                "root_cause": "no owner for restore tests",
                "correction": "restore tested",
                "corrective_action": "quarterly restore test scheduled",
                "owner_email": "sre@acme.test",
                "due_on": due_on,
                "evidence": ["dms://evidence/restore-test.pdf"]
            }),
        )
        .await
    }

    pub async fn verify_corrective_action(&self, engagement: &str, action: &str, outcome: &str) -> Reply {
        self.post(
            &format!("/api/v1/engagements/{engagement}/corrective-actions/{action}/verification"),
            &json!({ "outcome": outcome, "note": "reviewed the evidence" }),
        )
        .await
    }

    /// Grants certification (as a decision maker of its certification body) and returns the engagement view.
    pub async fn grant(&self, engagement: &str) -> Reply {
        self.fire(engagement, json!({ "event": "grant_certification" })).await
    }

    /// From `cb_selection` to `certified`: stage 2 on days 40–43 with no NC, granted on day 44.
    pub async fn certified_engagement(&self) -> String {
        let engagement = self.engagement_in_stage2().await;
        self.certify_from_stage2(&engagement).await;
        engagement
    }

    /// From `stage2` to `certified` (see [`Self::certified_engagement`]).
    pub async fn certify_from_stage2(&self, engagement: &str) {
        let engagement = engagement.to_owned();
        let stage2 = self.create_audit(&engagement, "stage2", day(40), day(43)).await;
        self.set_today(day(44));
        self.fire(&engagement, json!({ "event": "complete_stage2", "audit_id": stage2 })).await.expect(200);
        self.grant(&engagement).await.expect(200);
    }

    pub async fn history_actions(&self, engagement: &str) -> Vec<String> {
        let history = self.get(&format!("/api/v1/engagements/{engagement}/history")).await.expect(200).items();
        history.body.as_array().unwrap().iter().map(|h| h["action"].as_str().unwrap().to_owned()).collect()
    }
}

/// Defines one test per database from an `async fn(Backend)`.
#[macro_export]
macro_rules! on_both_databases {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test]
            async fn on_sqlite() {
                super::$scenario($crate::helpers::Backend::Sqlite).await;
            }

            #[tokio::test]
            async fn on_postgres() {
                super::$scenario($crate::helpers::Backend::Postgres).await;
            }
        }
    };
}
