//! A real SMTP server on 127.0.0.1 inside the test process (mailin-embedded), which can be told
//! to refuse with a 4xx for a while.

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use mailin_embedded::response::{INTERNAL_ERROR, NO_MAILBOX, OK};
use mailin_embedded::{Handler, Response, Server};

/// One email as the server received it.
#[derive(Debug, Clone)]
pub struct ReceivedEmail {
    pub to: Vec<String>,
    pub data: String,
}

impl ReceivedEmail {
    /// The decoded `Subject:` header.
    pub fn subject(&self) -> String {
        let headers = self.data.split("\r\n\r\n").next().unwrap_or_default().replace("\r\n ", " ");
        let raw = headers.lines().find_map(|l| l.strip_prefix("Subject: ")).unwrap_or_default().to_owned();
        decode_words(&raw)
    }

    /// The `Message-ID:` header.
    /// The `To:` header as sent.
    pub fn to_header(&self) -> String {
        self.data.lines().find_map(|l| l.strip_prefix("To: ")).unwrap_or_default().trim().to_owned()
    }

    /// The message is addressed to one recipient alone, in its envelope and in its `To:`.
    pub fn assert_to_one_recipient(&self) {
        assert_eq!(self.to.len(), 1, "one envelope recipient per message: {:?}", self.to);
        assert_eq!(self.to_header(), self.to[0], "the To: header names that recipient alone");
    }

    pub fn message_id(&self) -> String {
        self.data.lines().find_map(|l| l.strip_prefix("Message-ID: ")).unwrap_or_default().trim().to_owned()
    }
}

/// Decodes RFC 2047 `=?utf-8?b?...?=` words (lettre encodes non-ASCII subjects so).
fn decode_words(raw: &str) -> String {
    use base64::Engine;
    raw.split_whitespace()
        .map(|word| {
            let inner = word.strip_prefix("=?utf-8?b?").and_then(|w| w.strip_suffix("?="));
            match inner.and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok()) {
                Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                None => format!("{word} "),
            }
        })
        .collect::<String>()
        .trim()
        .to_owned()
}

#[derive(Default)]
struct Shared {
    refusing: AtomicBool,
    rejecting: AtomicBool,
    /// A recipient answered 451 (a temporary failure) while set.
    deferred: Mutex<Option<String>>,
    delay_ms: std::sync::atomic::AtomicU64,
    received: Mutex<Vec<ReceivedEmail>>,
}

#[derive(Clone)]
struct SinkHandler {
    shared: Arc<Shared>,
    to: Vec<String>,
    data: Vec<u8>,
}

impl Handler for SinkHandler {
    fn mail(&mut self, _ip: std::net::IpAddr, _domain: &str, _from: &str) -> Response {
        if self.shared.refusing.load(Ordering::SeqCst) { INTERNAL_ERROR } else { OK }
    }

    fn rcpt(&mut self, to: &str) -> Response {
        if self.shared.deferred.lock().unwrap().as_deref() == Some(to) {
            return INTERNAL_ERROR;
        }
        if self.shared.rejecting.load(Ordering::SeqCst) { NO_MAILBOX } else { OK }
    }

    fn data_start(&mut self, _domain: &str, _from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.to = to.to_vec();
        self.data.clear();
        OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let delay = self.shared.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(std::time::Duration::from_millis(delay));
        }
        let email = ReceivedEmail { to: self.to.clone(), data: String::from_utf8_lossy(&self.data).into_owned() };
        self.shared.received.lock().unwrap().push(email);
        OK
    }
}

/// The running server.
pub struct SmtpSink {
    pub port: u16,
    shared: Arc<Shared>,
}

impl SmtpSink {
    /// Starts a server on a free port of 127.0.0.1.
    pub fn start() -> Self {
        Self::start_on(TcpListener::bind("127.0.0.1:0").expect("bind a port for the SMTP sink"))
    }

    /// Starts a server on `port` (which must be free).
    pub fn start_on_port(port: u16) -> Self {
        Self::start_on(TcpListener::bind(("127.0.0.1", port)).expect("bind the SMTP sink's port"))
    }

    fn start_on(listener: TcpListener) -> Self {
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let handler = SinkHandler { shared: shared.clone(), to: Vec::new(), data: Vec::new() };
        std::thread::spawn(move || {
            let mut server = Server::new(handler);
            server.with_name("sink.test").with_num_threads(64).with_tcp_listener(listener);
            // mailin's error is not Send: it is handled here, in the server's thread.
            if let Err(error) = server.serve() {
                eprintln!("SMTP sink stopped: {error}");
            }
        });
        Self { port, shared }
    }

    /// Answer 451 to `MAIL FROM` until told otherwise.
    pub fn refuse(&self, refusing: bool) {
        self.shared.refusing.store(refusing, Ordering::SeqCst);
    }

    /// Answer 550 (no such mailbox) to every recipient until told otherwise.
    pub fn reject(&self, rejecting: bool) {
        self.shared.rejecting.store(rejecting, Ordering::SeqCst);
    }

    /// Answer 451 (try again later) to `recipient` alone, until set to `None`.
    pub fn defer(&self, recipient: Option<&str>) {
        *self.shared.deferred.lock().unwrap() = recipient.map(str::to_owned);
    }

    /// Takes `ms` milliseconds to accept each message.
    pub fn slow_down(&self, ms: u64) {
        self.shared.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<ReceivedEmail> {
        self.shared.received.lock().unwrap().clone()
    }
}

/// A port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
