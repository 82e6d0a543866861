//! certflow's configuration: one typed tree read from environment variables, with defaults that
//! run locally out of the box. The only place that reads the environment.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};

/// Where the process runs: `local` tolerates development defaults, `production` refuses them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// A developer's machine or a test.
    Local,
    /// A real deployment.
    Production,
}

/// 32 random bytes, in hex: a development secret no other installation (or program) shares.
fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How much of a SQLite file each connection maps into memory unless `SQLITE_MMAP_SIZE` says
/// otherwise: none. Reads then copy pages out of the OS cache (`pread`), and the process's resident
/// memory counts no file pages (docs/benchmarks.md has the measurements that chose it).
pub const DEFAULT_SQLITE_MMAP_SIZE: u64 = 0;

/// KiB of pages each SQLite reading connection caches unless `SQLITE_CACHE_SIZE` says otherwise.
/// Readers are many (the pool), each caching its own copy of the same hot pages; what they miss
/// they read from the OS's file cache. At a million engagements 2,000 KiB each made the API's peak
/// 97-102 MB and 500 KiB 71-74 MB, reads as fast or faster (docs/benchmarks.md, "Memory at a
/// million engagements"); 250 KiB, alternated with 500 in session 22, peaked at 76 MB against
/// 79-82 through the growth run, its reads as fast or faster (the same document, "Session 22:
/// where the growth run's peak is made").
pub const DEFAULT_SQLITE_CACHE_SIZE: u64 = 250;
/// KiB of pages the SQLite writer connection caches unless `SQLITE_WRITER_CACHE_SIZE` says
/// otherwise: one connection, through which every write goes, finding the same index pages.
pub const DEFAULT_SQLITE_WRITER_CACHE_SIZE: u64 = 2000;
/// The most writes one SQLite commit carries by default (`SQLITE_GROUP_COMMIT`).
pub const DEFAULT_SQLITE_GROUP_COMMIT: usize = 16;

/// Every setting of certflow.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `APP_ENV`.
    pub environment: Environment,
    /// `LISTEN_ADDR`: where the API listens.
    pub listen_addr: SocketAddr,
    /// `DATABASE_URL`.
    pub database_url: String,
    /// `DATABASE_MAX_CONNECTIONS`: the pool for reads (and, in the worker, for everything).
    pub database_max_connections: u32,
    /// `DATABASE_WRITE_CONNECTIONS`: how many write transactions the API runs at once on
    /// PostgreSQL (SQLite always has one writer).
    pub database_write_connections: u32,
    /// `JWT_SECRET`: HS256 key for bearer tokens.
    pub jwt_secret: SecretString,
    /// True when `JWT_SECRET` is not set (outside production): a development secret is used.
    pub jwt_secret_is_dev_default: bool,
    /// `JWT_DEV_SECRET_FILE`: where the generated development secret is kept, so that the server
    /// and `certflow token` agree on it (see [`Settings::load_dev_secret`]).
    pub jwt_dev_secret_file: PathBuf,
    /// `JWT_ISSUER`: the `iss` tokens must carry.
    pub jwt_issuer: String,
    /// `JWT_AUDIENCE`: the `aud` tokens must carry.
    pub jwt_audience: String,
    /// `JWT_MAX_LIFETIME_HOURS`: the longest a person's token may live (`exp - iat`); longer
    /// ones are refused, and `certflow token` does not mint them.
    pub jwt_max_lifetime_hours: u32,
    /// `SESSION_HOURS`: how long a console session opened from an emailed link lasts.
    pub session_hours: u32,
    /// `PORTFOLIO_KEEP_SECONDS`: how long the console keeps a page it read, a portfolio view or an
    /// engagement page (a change made through this process shows at once; 0 reads on every visit).
    pub portfolio_keep_seconds: u32,
    /// `JWT_MAX_SERVICE_LIFETIME_HOURS`: the same for a service account's (`integration`) token.
    pub jwt_max_service_lifetime_hours: u32,
    /// `JWT_PUBLIC_KEY_FILE`: a PEM RSA public key; when set, RS256 tokens signed by its private
    /// key (an identity provider's) are accepted beside HS256 ones.
    pub jwt_public_key_file: Option<PathBuf>,
    /// `PUBLIC_BASE_URL`: how people reach the API (links in emails).
    pub public_base_url: String,
    /// `OUTBOX_DIR`: where emails are written as `.eml` files when no SMTP server is configured.
    pub outbox_dir: PathBuf,
    /// How emails leave: SMTP when `SMTP_HOST` is set, else `.eml` files in `OUTBOX_DIR`.
    pub mail_transport: MailTransport,
    /// `MAIL_FROM`: the sender of reminders and escalations.
    pub mail_from: String,
    /// `DELIVERY_MAX_ATTEMPTS`: tries per email before it is `failed`.
    pub delivery_max_attempts: u32,
    /// `DELIVERY_LEASE_SECONDS`: how long a delivery may hold an email before another worker may
    /// take it over (longer than the SMTP timeout of 20 s).
    pub delivery_lease_seconds: u32,
    /// `DELIVERY_CONCURRENCY`: emails one worker process sends at once.
    pub delivery_concurrency: u32,
    /// `WEBHOOK_CONCURRENCY`: webhook messages one worker process sends at once.
    pub webhook_concurrency: u32,
    /// `WEBHOOK_LEASE_SECONDS`: how long an attempt holds a message before another worker may
    /// take it over (more than the 15 s an attempt may last).
    pub webhook_lease_seconds: u32,
    /// `WEBHOOK_RETENTION_DAYS`: how long a delivered (or failed and not replayed) webhook
    /// message, its attempts and its event are kept.
    pub webhook_retention_days: u32,
    /// `WEBHOOK_ALLOW_LOOPBACK`: endpoints on loopback addresses (and `http://` to them) are
    /// accepted and sent to: local development and tests only.
    pub webhook_allow_loopback: bool,
    /// `SCAN_BATCH_SIZE`: deadlines claimed per transaction by the scan.
    pub scan_batch_size: u32,
    /// `SCAN_SCHEDULE`: when the scan runs, as a cron expression with seconds (every minute).
    pub scan_schedule: String,
    /// `WORKER_EMBEDDED`: `certflow serve` runs the reminder worker beside the API.
    pub worker_embedded: bool,
    /// `DOCS_ENABLED`: the docs page (`/docs/`) and the served spec (`/api-docs/openapi.json`);
    /// on by default locally, off by default in production.
    pub docs_enabled: bool,
    /// `LOG_FORMAT`: `json` for one JSON object a line (read by the log setup; checked here so a
    /// typo stops the start).
    pub json_logs: bool,
    /// `TOKEN_REVOCATION_REFRESH_SECONDS`: how often each API process rereads the revocations
    /// (a revocation made on another process takes effect within this many seconds).
    pub token_revocation_refresh_seconds: u32,
    /// `RATE_LIMIT_CALLER_PER_SECOND` / `RATE_LIMIT_CALLER_BURST`: requests each authenticated
    /// caller may make.
    pub caller_rate_limit: RateLimit,
    /// `RATE_LIMIT_ANONYMOUS_PER_SECOND` / `RATE_LIMIT_ANONYMOUS_BURST`: requests each client
    /// address may make without a valid token (health checks, certificate verification, docs).
    pub anonymous_rate_limit: RateLimit,
    /// `METRICS_ADDR`: where `/metrics` (Prometheus) is served: on the API's own port when unset,
    /// on a listener of its own at this host:port (so it need not be public; a worker running
    /// alone serves it only there), or nowhere (`off`).
    pub metrics: MetricsExposure,
    /// `SHUTDOWN_DRAIN_SECONDS`: after SIGTERM, how long the API keeps serving while `/readyz`
    /// answers 503, so a load balancer stops sending before the listener closes (0: close at once).
    pub shutdown_drain_seconds: u32,
    /// `SHUTDOWN_GRACE_SECONDS`: after the listener closes, how long requests in flight and the
    /// worker's jobs in hand may take to finish before the process exits.
    pub shutdown_grace_seconds: u32,
    /// `HTTP_WORKERS`: the threads serving HTTP, each with its own event loop (0: one per core,
    /// actix's default).
    pub http_workers: u32,
    /// `SQLITE_MMAP_SIZE`: bytes of a SQLite file each connection reads through a memory map
    /// (SQLite's `mmap_size`; 0: none).
    pub sqlite_mmap_size: u64,
    /// `SQLITE_CACHE_SIZE`: KiB of database pages each SQLite reading connection keeps in its own
    /// cache (SQLite's `cache_size`, as a negative number); what it misses it reads from the OS's
    /// cache.
    pub sqlite_cache_size: u64,
    /// `SQLITE_WRITER_CACHE_SIZE`: the same for the SQLite writer's one connection.
    pub sqlite_writer_cache_size: u64,
    /// `DATABASE_LOG_STATEMENTS`: log every statement with its time (at INFO, target
    /// `sqlx::query`), to capture what a request runs.
    pub database_log_statements: bool,
    /// `SQLITE_WRITER_COLOCATE`: move the SQLite writer connection's thread to the CPU of the
    /// thread writing through it, each write (see `engine::store::colocation`).
    pub sqlite_writer_colocate: bool,
    /// `SQLITE_BATCH_STATEMENTS`: a SQLite write sends its `BEGIN`, the statements whose outcome
    /// it does not read and its `COMMIT` together with its other statements (see
    /// `engine::store::transaction`).
    pub sqlite_batch_statements: bool,
    /// `SQLITE_GROUP_COMMIT`: the most writes one commit of the SQLite writer carries: a write
    /// that ends while others wait for the writer leaves its transaction open for them, and is
    /// answered once the commit that holds it is done (see `engine::store::group`). 0 or 1: each
    /// write commits alone.
    pub sqlite_group_commit: usize,
}

/// Where `/metrics` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsExposure {
    /// On the API's port (the default); a worker running alone serves none.
    OnApiPort,
    /// On a listener of its own, in the API and in a worker running alone.
    Listener(SocketAddr),
    /// Nowhere: nothing is recorded.
    Off,
}

/// A rate limit: a sustained rate and the burst allowed above it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per second, sustained.
    pub per_second: u32,
    /// Requests allowed at once above the rate (at least 1).
    pub burst: u32,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain text (a local relay or a test server only).
    None,
    /// STARTTLS after connecting (port 587).
    StartTls,
    /// TLS from the start (port 465).
    Tls,
}

/// Where emails go.
#[derive(Debug, Clone)]
pub enum MailTransport {
    /// An SMTP server.
    Smtp {
        /// `SMTP_HOST`.
        host: String,
        /// `SMTP_PORT`.
        port: u16,
        /// `SMTP_SECURITY`.
        security: SmtpSecurity,
        /// `SMTP_USERNAME` and `SMTP_PASSWORD`.
        credentials: Option<(String, SecretString)>,
    },
    /// `.eml` files in a folder.
    Outbox(PathBuf),
}

/// A setting that could not be used; names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {variable}: {problem}")]
pub struct SettingsError {
    /// The environment variable.
    pub variable: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

impl Settings {
    /// Reads the settings from the process environment.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_vars(std::env::vars())
    }

    /// Reads the settings from `vars` (name, value) pairs; absent names take their defaults.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Result<Self, SettingsError> {
        let vars: HashMap<String, String> = vars.into_iter().filter(|(_, v)| !v.trim().is_empty()).collect();
        let get = |name: &str| vars.get(name).map(|v| v.trim().to_owned());
        let environment = match get("APP_ENV").as_deref() {
            None | Some("local") => Environment::Local,
            Some("production") => Environment::Production,
            Some(other) => {
                return Err(invalid("APP_ENV", format!("'{other}' is neither 'local' nor 'production'")));
            }
        };
        let (jwt_secret, jwt_secret_is_dev_default) = match get("JWT_SECRET") {
            Some(secret) if secret.len() < 32 => {
                return Err(invalid("JWT_SECRET", "must be at least 32 characters".into()));
            }
            Some(secret) => (SecretString::from(secret), false),
            None if environment == Environment::Production => {
                return Err(invalid("JWT_SECRET", "must be set when APP_ENV=production".into()));
            }
            // Until `load_dev_secret` reads the installation's own: one of this process's.
            None => (SecretString::from(random_secret()), true),
        };
        let listen_addr = get("LISTEN_ADDR").unwrap_or_else(|| "127.0.0.1:8080".into());
        let outbox_dir = get("OUTBOX_DIR").map_or_else(|| PathBuf::from("./data/outbox"), PathBuf::from);
        let mail_transport = match get("SMTP_HOST") {
            Some(host) => {
                let security = match get("SMTP_SECURITY").as_deref() {
                    None | Some("starttls") => SmtpSecurity::StartTls,
                    Some("tls") => SmtpSecurity::Tls,
                    Some("none") => SmtpSecurity::None,
                    Some(other) => {
                        return Err(invalid("SMTP_SECURITY", format!("'{other}' is not starttls, tls or none")));
                    }
                };
                let default_port = if security == SmtpSecurity::Tls { 465 } else { 587 };
                let port = parse_number(&get, "SMTP_PORT", default_port)?;
                let port = u16::try_from(port).map_err(|_| invalid("SMTP_PORT", format!("{port} is not a port")))?;
                let credentials = get("SMTP_USERNAME")
                    .map(|user| (user, SecretString::from(get("SMTP_PASSWORD").unwrap_or_default())));
                // In production a password never crosses the network in clear: only to a relay on
                // this machine.
                if environment == Environment::Production
                    && credentials.is_some()
                    && security == SmtpSecurity::None
                    && !is_loopback(&host)
                {
                    return Err(invalid(
                        "SMTP_SECURITY",
                        format!(
                            "'none' sends SMTP_USERNAME's password in clear to {host}: use starttls or tls (or a relay on 127.0.0.1)"
                        ),
                    ));
                }
                MailTransport::Smtp { host, port, security, credentials }
            }
            None if environment == Environment::Production => {
                return Err(invalid(
                    "SMTP_HOST",
                    "must be set when APP_ENV=production (emails must really leave)".into(),
                ));
            }
            None => MailTransport::Outbox(outbox_dir.clone()),
        };
        Ok(Self {
            environment,
            listen_addr: listen_addr
                .parse()
                .map_err(|e| invalid("LISTEN_ADDR", format!("'{listen_addr}' is not host:port ({e})")))?,
            database_url: get("DATABASE_URL").unwrap_or_else(|| "sqlite://./data/certflow.db?mode=rwc".into()),
            database_max_connections: parse_number(&get, "DATABASE_MAX_CONNECTIONS", 10)?,
            database_write_connections: parse_number(&get, "DATABASE_WRITE_CONNECTIONS", 8)?,
            jwt_secret,
            jwt_secret_is_dev_default,
            jwt_dev_secret_file: get("JWT_DEV_SECRET_FILE")
                .map_or_else(|| PathBuf::from("./data/dev-jwt-secret"), PathBuf::from),
            jwt_issuer: get("JWT_ISSUER").unwrap_or_else(|| "certflow".into()),
            jwt_audience: get("JWT_AUDIENCE").unwrap_or_else(|| "certflow-api".into()),
            jwt_public_key_file: get("JWT_PUBLIC_KEY_FILE").map(PathBuf::from),
            jwt_max_lifetime_hours: parse_number(&get, "JWT_MAX_LIFETIME_HOURS", 12)?,
            session_hours: parse_number(&get, "SESSION_HOURS", 12)?,
            portfolio_keep_seconds: parse_amount(&get, "PORTFOLIO_KEEP_SECONDS", 10)?,
            jwt_max_service_lifetime_hours: parse_number(&get, "JWT_MAX_SERVICE_LIFETIME_HOURS", 12)?,
            public_base_url: match get("PUBLIC_BASE_URL") {
                // The links in emails people click: in production, only over https.
                Some(url) if environment == Environment::Production && !url.starts_with("https://") => {
                    return Err(invalid(
                        "PUBLIC_BASE_URL",
                        format!("'{url}' must be an https:// URL when APP_ENV=production"),
                    ));
                }
                Some(url) => url,
                None if environment == Environment::Production => {
                    return Err(invalid("PUBLIC_BASE_URL", "must be set (https://...) when APP_ENV=production".into()));
                }
                None => "http://127.0.0.1:8080".into(),
            },
            outbox_dir,
            mail_transport,
            mail_from: get("MAIL_FROM").unwrap_or_else(|| "certflow <reminders@certflow.local>".into()),
            delivery_max_attempts: parse_number(&get, "DELIVERY_MAX_ATTEMPTS", 8)?,
            delivery_lease_seconds: parse_number(&get, "DELIVERY_LEASE_SECONDS", 60)?,
            scan_batch_size: parse_number(&get, "SCAN_BATCH_SIZE", 500)?,
            delivery_concurrency: parse_number(&get, "DELIVERY_CONCURRENCY", 64)?,
            webhook_concurrency: parse_number(&get, "WEBHOOK_CONCURRENCY", 64)?,
            webhook_lease_seconds: parse_number(&get, "WEBHOOK_LEASE_SECONDS", 60)?,
            webhook_retention_days: parse_number(&get, "WEBHOOK_RETENTION_DAYS", 30)?,
            webhook_allow_loopback: parse_flag(&get, "WEBHOOK_ALLOW_LOOPBACK", false)?,
            scan_schedule: get("SCAN_SCHEDULE").unwrap_or_else(|| "0 * * * * *".into()),
            worker_embedded: parse_flag(&get, "WORKER_EMBEDDED", true)?,
            docs_enabled: match get("DOCS_ENABLED").as_deref() {
                None => environment == Environment::Local,
                Some("true") => true,
                Some("false") => false,
                Some(other) => return Err(invalid("DOCS_ENABLED", format!("'{other}' is neither true nor false"))),
            },
            token_revocation_refresh_seconds: parse_number(&get, "TOKEN_REVOCATION_REFRESH_SECONDS", 2)?,
            json_logs: match get("LOG_FORMAT").as_deref() {
                None | Some("text") => false,
                Some("json") => true,
                Some(other) => return Err(invalid("LOG_FORMAT", format!("'{other}' is neither text nor json"))),
            },
            caller_rate_limit: rate_limit(&get, "RATE_LIMIT_CALLER_PER_SECOND", 50, "RATE_LIMIT_CALLER_BURST", 200)?,
            anonymous_rate_limit: rate_limit(
                &get,
                "RATE_LIMIT_ANONYMOUS_PER_SECOND",
                5,
                "RATE_LIMIT_ANONYMOUS_BURST",
                30,
            )?,
            metrics: match get("METRICS_ADDR").as_deref() {
                None => MetricsExposure::OnApiPort,
                Some("off") => MetricsExposure::Off,
                Some(address) => MetricsExposure::Listener(address.parse().map_err(|e| {
                    invalid("METRICS_ADDR", format!("'{address}' is neither host:port nor 'off' ({e})"))
                })?),
            },
            shutdown_drain_seconds: parse_amount(&get, "SHUTDOWN_DRAIN_SECONDS", 0)?,
            shutdown_grace_seconds: parse_amount(&get, "SHUTDOWN_GRACE_SECONDS", 30)?,
            http_workers: parse_amount(&get, "HTTP_WORKERS", 0)?,
            sqlite_mmap_size: parse_amount(&get, "SQLITE_MMAP_SIZE", DEFAULT_SQLITE_MMAP_SIZE)?,
            sqlite_cache_size: parse_amount(&get, "SQLITE_CACHE_SIZE", DEFAULT_SQLITE_CACHE_SIZE)?,
            sqlite_writer_cache_size: parse_amount(&get, "SQLITE_WRITER_CACHE_SIZE", DEFAULT_SQLITE_WRITER_CACHE_SIZE)?,
            sqlite_writer_colocate: parse_flag(&get, "SQLITE_WRITER_COLOCATE", true)?,
            sqlite_batch_statements: parse_flag(&get, "SQLITE_BATCH_STATEMENTS", true)?,
            sqlite_group_commit: parse_amount(&get, "SQLITE_GROUP_COMMIT", DEFAULT_SQLITE_GROUP_COMMIT)?,
            database_log_statements: parse_flag(&get, "DATABASE_LOG_STATEMENTS", false)?,
        })
    }

    /// Without `JWT_SECRET` (never in production): the development secret from
    /// `JWT_DEV_SECRET_FILE`, generated (32 random bytes, readable by the owner only) on first use.
    /// Every installation gets its own, and the server and `certflow token` share it.
    pub fn load_dev_secret(mut self) -> std::io::Result<Self> {
        if !self.jwt_secret_is_dev_default {
            return Ok(self);
        }
        let path = &self.jwt_dev_secret_file;
        if let Some(folder) = path.parent().filter(|f| !f.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder)?;
        }
        let generated = random_secret();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(mut file) => std::io::Write::write_all(&mut file, generated.as_bytes())?,
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => trust_secret_file(path)?,
            Err(error) => return Err(error),
        }
        let secret = std::fs::read_to_string(path)?.trim().to_owned();
        if secret.len() < 32 {
            return Err(std::io::Error::other(format!("{} holds no usable secret: delete it", path.display())));
        }
        self.jwt_secret = SecretString::from(secret);
        Ok(self)
    }

    /// The JWT secret's bytes, for the code that signs and checks tokens.
    pub fn jwt_secret_bytes(&self) -> &[u8] {
        self.jwt_secret.expose_secret().as_bytes()
    }
}

/// Is `host` this machine (a relay on it is reached without crossing the network)?
fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.trim_matches(|c| c == '[' || c == ']').parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Refuses an existing secret file anyone but this process's user could have written or read: a
/// symbolic link, a file others may read or write, or one another user owns.
fn trust_secret_file(path: &std::path::Path) -> std::io::Result<()> {
    let refuse = |why: &str| std::io::Error::other(format!("{} {why}: refused as the JWT secret", path.display()));
    let metadata = std::fs::symlink_metadata(path)?;
    if metadata.file_type().is_symlink() {
        return Err(refuse("is a symbolic link"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if metadata.mode() & 0o077 != 0 {
            return Err(refuse("may be read or written by others (chmod 600 it)"));
        }
        // On Linux `/proc/self` belongs to the process's effective user.
        if let Ok(me) = std::fs::metadata("/proc/self")
            && me.uid() != metadata.uid()
        {
            return Err(refuse("belongs to another user"));
        }
    }
    Ok(())
}

fn rate_limit(
    get: &impl Fn(&str) -> Option<String>,
    rate_variable: &'static str,
    rate: u32,
    burst_variable: &'static str,
    burst: u32,
) -> Result<RateLimit, SettingsError> {
    Ok(RateLimit {
        per_second: parse_number(get, rate_variable, rate)?,
        burst: parse_number(get, burst_variable, burst)?,
    })
}

fn invalid(variable: &'static str, problem: String) -> SettingsError {
    SettingsError { variable, problem }
}

/// A whole number above 0.
fn parse_number(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: u32,
) -> Result<u32, SettingsError> {
    match parse_amount(get, variable, default) {
        Ok(0) | Err(_) => {
            Err(invalid(variable, format!("'{}' is not a positive whole number", get(variable).unwrap_or_default())))
        }
        Ok(n) => Ok(n),
    }
}

/// A `true`/`false` setting, `default` when unset.
fn parse_flag(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: bool,
) -> Result<bool, SettingsError> {
    match get(variable).as_deref() {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(invalid(variable, format!("'{other}' is neither true nor false"))),
    }
}

/// A whole number that may be 0 (a duration or a size that can be turned off).
fn parse_amount<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    variable: &'static str,
    default: T,
) -> Result<T, SettingsError> {
    match get(variable) {
        None => Ok(default),
        Some(raw) => raw.parse::<T>().map_err(|_| invalid(variable, format!("'{raw}' is not a whole number"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn defaults_run_locally_with_the_dev_secret() {
        let settings = Settings::from_vars(vars(&[])).unwrap();
        assert_eq!(settings.environment, Environment::Local);
        assert_eq!(settings.listen_addr.to_string(), "127.0.0.1:8080");
        assert!(settings.database_url.starts_with("sqlite://./data/"));
        assert!(settings.jwt_secret_is_dev_default);
        assert!(matches!(settings.mail_transport, MailTransport::Outbox(_)));
    }

    #[test]
    fn metrics_shutdown_and_the_memory_map_are_settings_with_working_defaults() {
        let defaults = Settings::from_vars(vars(&[])).unwrap();
        assert_eq!(defaults.metrics, MetricsExposure::OnApiPort);
        assert_eq!((defaults.shutdown_drain_seconds, defaults.shutdown_grace_seconds), (0, 30));
        assert_eq!(defaults.http_workers, 0, "one per core");
        assert_eq!(Settings::from_vars(vars(&[("HTTP_WORKERS", "1")])).unwrap().http_workers, 1);
        assert!(Settings::from_vars(vars(&[("HTTP_WORKERS", "two")])).is_err());
        assert_eq!(defaults.sqlite_mmap_size, DEFAULT_SQLITE_MMAP_SIZE);
        assert!(!defaults.database_log_statements);
        assert!(defaults.sqlite_writer_colocate);
        assert!(defaults.sqlite_batch_statements);
        assert!(!Settings::from_vars(vars(&[("SQLITE_BATCH_STATEMENTS", "false")])).unwrap().sqlite_batch_statements);
        assert_eq!(defaults.sqlite_group_commit, DEFAULT_SQLITE_GROUP_COMMIT);
        assert_eq!(Settings::from_vars(vars(&[("SQLITE_GROUP_COMMIT", "1")])).unwrap().sqlite_group_commit, 1);
        assert!(Settings::from_vars(vars(&[("SQLITE_GROUP_COMMIT", "many")])).is_err());
        assert_eq!(defaults.sqlite_cache_size, DEFAULT_SQLITE_CACHE_SIZE);
        assert_eq!(Settings::from_vars(vars(&[("SQLITE_CACHE_SIZE", "512")])).unwrap().sqlite_cache_size, 512);
        assert_eq!(defaults.sqlite_writer_cache_size, DEFAULT_SQLITE_WRITER_CACHE_SIZE);
        let writer = Settings::from_vars(vars(&[("SQLITE_WRITER_CACHE_SIZE", "4000")])).unwrap();
        assert_eq!((writer.sqlite_cache_size, writer.sqlite_writer_cache_size), (DEFAULT_SQLITE_CACHE_SIZE, 4000));
        assert!(!Settings::from_vars(vars(&[("SQLITE_WRITER_COLOCATE", "false")])).unwrap().sqlite_writer_colocate);
        assert!(Settings::from_vars(vars(&[("SQLITE_WRITER_COLOCATE", "no")])).is_err());
        assert!(Settings::from_vars(vars(&[("DATABASE_LOG_STATEMENTS", "true")])).unwrap().database_log_statements);
        let typo = Settings::from_vars(vars(&[("DATABASE_LOG_STATEMENTS", "yes")])).unwrap_err();
        assert_eq!(typo.variable, "DATABASE_LOG_STATEMENTS");
        let set = Settings::from_vars(vars(&[
            ("METRICS_ADDR", "127.0.0.1:9464"),
            ("SHUTDOWN_DRAIN_SECONDS", "5"),
            ("SHUTDOWN_GRACE_SECONDS", "0"),
            ("SQLITE_MMAP_SIZE", "268435456"),
        ]))
        .unwrap();
        assert_eq!(set.metrics, MetricsExposure::Listener("127.0.0.1:9464".parse().unwrap()));
        assert_eq!((set.shutdown_drain_seconds, set.shutdown_grace_seconds, set.sqlite_mmap_size), (5, 0, 1 << 28));
        assert_eq!(Settings::from_vars(vars(&[("METRICS_ADDR", "off")])).unwrap().metrics, MetricsExposure::Off);
        for (variable, value) in
            [("METRICS_ADDR", "9464"), ("SHUTDOWN_GRACE_SECONDS", "-1"), ("SQLITE_MMAP_SIZE", "1GB")]
        {
            assert_eq!(Settings::from_vars(vars(&[(variable, value)])).unwrap_err().variable, variable);
        }
    }

    #[test]
    fn production_refuses_a_missing_or_short_secret_and_names_the_variable() {
        let missing = Settings::from_vars(vars(&[("APP_ENV", "production")])).unwrap_err();
        assert_eq!(missing.variable, "JWT_SECRET");
        let short = Settings::from_vars(vars(&[("JWT_SECRET", "short")])).unwrap_err();
        assert_eq!(short.variable, "JWT_SECRET");
        let secret = "s".repeat(32);
        let no_smtp = Settings::from_vars(vars(&[("APP_ENV", "production"), ("JWT_SECRET", &secret)])).unwrap_err();
        assert_eq!(no_smtp.variable, "SMTP_HOST");
        let ok = Settings::from_vars(vars(&[
            ("APP_ENV", "production"),
            ("JWT_SECRET", &secret),
            ("SMTP_HOST", "mail.example"),
            ("PUBLIC_BASE_URL", "https://certflow.example"),
        ]))
        .unwrap();
        assert!(!ok.jwt_secret_is_dev_default);
        assert!(matches!(ok.mail_transport, MailTransport::Smtp { port: 587, security: SmtpSecurity::StartTls, .. }));
        assert!(!ok.docs_enabled, "no docs page in production unless asked for");
    }

    #[test]
    fn production_refuses_weak_settings_and_names_the_variable() {
        let secret = "s".repeat(32);
        let production = |extra: &[(&str, &str)]| {
            let mut all = vec![
                ("APP_ENV", "production"),
                ("JWT_SECRET", secret.as_str()),
                ("SMTP_HOST", "mail.example"),
                ("PUBLIC_BASE_URL", "https://certflow.example"),
            ];
            all.extend_from_slice(extra);
            Settings::from_vars(vars(&all))
        };
        let http = production(&[("PUBLIC_BASE_URL", "http://certflow.example")]).unwrap_err();
        assert_eq!(http.variable, "PUBLIC_BASE_URL");
        let clear = [("SMTP_SECURITY", "none"), ("SMTP_USERNAME", "certflow"), ("SMTP_PASSWORD", "pw")];
        let in_clear = production(&clear).unwrap_err();
        assert_eq!(in_clear.variable, "SMTP_SECURITY");
        assert!(in_clear.problem.contains("in clear to mail.example"), "{}", in_clear.problem);
        // A relay on this machine, or no credentials at all, may go without TLS.
        let mut relay = clear.to_vec();
        relay.push(("SMTP_HOST", "127.0.0.1"));
        assert!(production(&relay).is_ok());
        assert!(production(&[("SMTP_SECURITY", "none")]).is_ok());
        assert!(production(&[("DOCS_ENABLED", "true")]).unwrap().docs_enabled, "asked for");
        // Locally, the same settings are fine, and the docs are on.
        assert!(Settings::from_vars(vars(&[("PUBLIC_BASE_URL", "http://127.0.0.1:8080")])).unwrap().docs_enabled);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (name, value) in [
            ("APP_ENV", "staging"),
            ("LISTEN_ADDR", "localhost"),
            ("DATABASE_MAX_CONNECTIONS", "0"),
            ("TOKEN_REVOCATION_REFRESH_SECONDS", "0"),
            ("RATE_LIMIT_CALLER_PER_SECOND", "-1"),
            ("RATE_LIMIT_ANONYMOUS_BURST", "0"),
            ("LOG_FORMAT", "xml"),
        ] {
            assert_eq!(Settings::from_vars(vars(&[(name, value)])).unwrap_err().variable, name);
        }
    }

    #[test]
    fn rate_limits_and_the_revocation_refresh_have_defaults_and_settings() {
        let defaults = Settings::from_vars(vars(&[])).unwrap();
        assert_eq!(defaults.caller_rate_limit, RateLimit { per_second: 50, burst: 200 });
        assert_eq!(defaults.anonymous_rate_limit, RateLimit { per_second: 5, burst: 30 });
        assert_eq!(defaults.token_revocation_refresh_seconds, 2);
        let set = Settings::from_vars(vars(&[("RATE_LIMIT_CALLER_PER_SECOND", "7"), ("RATE_LIMIT_CALLER_BURST", "9")]));
        assert_eq!(set.unwrap().caller_rate_limit, RateLimit { per_second: 7, burst: 9 });
    }

    #[test]
    fn the_development_secret_is_generated_once_per_installation_and_kept() {
        let folder = std::env::temp_dir().join(format!("certflow-secret-{}", uuid::Uuid::now_v7()));
        let file = folder.join("dev-jwt-secret");
        let file_var = file.display().to_string();
        let load =
            || Settings::from_vars(vars(&[("JWT_DEV_SECRET_FILE", &file_var)])).unwrap().load_dev_secret().unwrap();
        let first = load();
        let second = load();
        assert_eq!(first.jwt_secret_bytes(), second.jwt_secret_bytes(), "kept between starts");
        assert_eq!(first.jwt_secret_bytes().len(), 64);
        let another = Settings::from_vars(vars(&[])).unwrap();
        assert_ne!(first.jwt_secret_bytes(), another.jwt_secret_bytes(), "not a secret shared by every installation");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        }
        #[cfg(unix)]
        {
            // A file others may read, or a link to one, is refused.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            let open = Settings::from_vars(vars(&[("JWT_DEV_SECRET_FILE", &file_var)])).unwrap().load_dev_secret();
            assert!(open.unwrap_err().to_string().contains("may be read or written by others"));
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
            let link = folder.join("link");
            std::os::unix::fs::symlink(&file, &link).unwrap();
            let link_var = link.display().to_string();
            let linked = Settings::from_vars(vars(&[("JWT_DEV_SECRET_FILE", &link_var)])).unwrap().load_dev_secret();
            assert!(linked.unwrap_err().to_string().contains("is a symbolic link"));
        }
        let configured =
            Settings::from_vars(vars(&[("JWT_SECRET", &"s".repeat(32))])).unwrap().load_dev_secret().unwrap();
        assert_eq!(configured.jwt_secret_bytes(), "s".repeat(32).as_bytes(), "JWT_SECRET wins");
        std::fs::remove_dir_all(folder).unwrap();
    }
}
