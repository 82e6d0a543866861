//! certflow as processes of their own (the `certflow-under-test` binary, the same code as the
//! `certflow` command) on a test's database, so tests can run several and kill them. Each is
//! killed when dropped, so a failing test leaves nothing running.

use std::process::{Child, Command, Stdio};

use crate::helpers::{TestApp, wait_at_most};

/// The processes' token secret (the in-process test server uses its own keys).
const SECRET: &str = "a-test-secret-of-at-least-32-characters";

/// A certflow process; killed (SIGKILL) when dropped.
pub struct CertflowProcess {
    pub child: Child,
    /// The API's base URL (`None` for a worker).
    pub address: Option<String>,
}

impl Drop for CertflowProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl CertflowProcess {
    /// The API's base URL.
    pub fn address(&self) -> &str {
        self.address.as_deref().expect("an API process")
    }

    /// Asks the process to stop (SIGTERM), as a service manager or Kubernetes does.
    pub fn terminate(&self) {
        let sent = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("run kill");
        assert!(sent.success(), "SIGTERM the process");
    }

    /// Waits at most `seconds` for the process to exit: its status, or `None` if it still runs.
    pub async fn exit_within(&mut self, seconds: u64) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
        loop {
            if let Some(status) = self.child.try_wait().expect("read the process's state") {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Kills the process (SIGKILL) and waits until it is gone.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the process");
        self.child.wait().expect("the process is gone");
    }
}

/// `certflow <args>` on the app's database, with the processes' secret.
pub fn certflow(app: &TestApp) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_certflow-under-test"));
    command
        .env("DATABASE_URL", &app.database_url)
        .env("JWT_SECRET", SECRET)
        .env("WORKER_EMBEDDED", "false")
        .env("DATABASE_MAX_CONNECTIONS", "5")
        .env("RUST_LOG", "warn")
        .envs(crate::helpers::UNREACHED_RATE_LIMITS)
        .stdin(Stdio::null());
    command
}

fn output() -> Stdio {
    if std::env::var("TEST_LOG").is_ok() { Stdio::inherit() } else { Stdio::null() }
}

/// A token the processes accept, minted by `certflow token`.
pub fn process_token(app: &TestApp, role: &str, subject: &str) -> String {
    let minted = certflow(app).args(["token", "--role", role, "--sub", subject]).output().expect("certflow token");
    assert!(minted.status.success(), "certflow token: {}", String::from_utf8_lossy(&minted.stderr));
    String::from_utf8(minted.stdout).unwrap().trim().to_owned()
}

/// `certflow serve` (the API alone) on a free port, once it is ready.
pub async fn start_api(app: &TestApp) -> CertflowProcess {
    start_api_with(app, &[]).await
}

/// [`start_api`] with `extra` settings.
pub async fn start_api_with(app: &TestApp, extra: &[(&str, &str)]) -> CertflowProcess {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = certflow(app)
        .arg("serve")
        .envs(extra.iter().copied())
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .stdout(output())
        .stderr(output())
        .spawn()
        .expect("start the API process");
    let process = CertflowProcess { child, address: Some(format!("http://127.0.0.1:{port}")) };
    let ready = format!("{}/readyz", process.address());
    wait_at_most(30, "the API process is ready", || async {
        app.client.get(&ready).send().await.is_ok_and(|r| r.status().is_success())
    })
    .await;
    process
}

/// `certflow worker` sending to the SMTP server on `smtp_port`, with `extra` settings.
pub fn start_worker(app: &TestApp, smtp_port: u16, extra: &[(&str, &str)]) -> CertflowProcess {
    let mut command = certflow(app);
    command
        .arg("worker")
        .env("SMTP_HOST", "127.0.0.1")
        .env("SMTP_PORT", smtp_port.to_string())
        .env("SMTP_SECURITY", "none")
        .envs(extra.iter().copied())
        .stdout(output())
        .stderr(output());
    CertflowProcess { child: command.spawn().expect("start the worker process"), address: None }
}
