//! The HTTP client webhooks are posted with: hyper's pooled HTTP/1.1 client (a kept-alive
//! connection reused per endpoint), rustls with the Mozilla roots for https, and a resolver that
//! keeps only the addresses webhooks may go to. No redirect is followed (a redirect is a failed
//! attempt); an attempt ends after [`ATTEMPT_TIMEOUT`], its answer read included; at most
//! [`RESPONSE_READ_LIMIT`] of an answer is read, the rest dropped unread.
//!
//! hyper itself rather than reqwest: reqwest's layers took about a seventh of the worker's
//! instructions a message, its redirect layer parsing every request's URL again although no
//! redirect is ever followed (docs/benchmarks.md, "The worker's instructions, counted").

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, USER_AGENT};
use http::{Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;

use entities::domain::webhooks::may_send_to;

/// How long one attempt may take, answer included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long opening a connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of an answer read (the rest is dropped unread).
pub const RESPONSE_READ_LIMIT: usize = 64 * 1024;

/// What an endpoint answered: its status, its headers, and the start of its body.
#[derive(Debug)]
pub struct Answered {
    /// The status.
    pub status: u16,
    /// The headers.
    pub headers: http::HeaderMap,
    /// At most [`RESPONSE_READ_LIMIT`] bytes of the body.
    pub body: Vec<u8>,
}

/// The client every attempt uses (cheap to clone: its pool is shared).
#[derive(Debug, Clone)]
pub struct WebhookClient {
    client: Client<HttpsConnector<HttpConnector<PublicOnly>>, Full<Bytes>>,
    user_agent: HeaderValue,
}

impl WebhookClient {
    /// A client whose requests go to public addresses only, and to loopback when
    /// `allow_loopback` (local development and tests).
    pub fn new(allow_loopback: bool) -> Self {
        let mut http = HttpConnector::new_with_resolver(PublicOnly { allow_loopback });
        // https URLs reach this connector too: the TLS layer wraps its connections.
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .expect("ring's provider supports TLS 1.2 and 1.3")
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Self {
            client: Client::builder(TokioExecutor::new()).build(https),
            user_agent: HeaderValue::from_static(concat!("certflow-webhooks/", env!("CARGO_PKG_VERSION"))),
        }
    }

    /// Posts `body` (JSON) to `uri` with `headers`. `Err` says why no answer came within
    /// [`ATTEMPT_TIMEOUT`] (the chain of causes: "connection refused", "timed out").
    pub async fn post_json(
        &self,
        uri: Uri,
        headers: impl IntoIterator<Item = (HeaderName, HeaderValue)>,
        body: Vec<u8>,
    ) -> Result<Answered, String> {
        let mut request = Request::new(Full::new(Bytes::from(body)));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = uri;
        let fields = request.headers_mut();
        fields.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        fields.insert(USER_AGENT, self.user_agent.clone());
        fields.extend(headers);
        let attempt = async {
            let response = self.client.request(request).await.map_err(|e| describe(&e))?;
            let (parts, mut body) = response.into_parts();
            let mut read = Vec::new();
            while read.len() < RESPONSE_READ_LIMIT {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            read.extend_from_slice(&data[..data.len().min(RESPONSE_READ_LIMIT - read.len())]);
                        }
                    }
                    // An answer cut short keeps what came of it.
                    Some(Err(_)) | None => break,
                }
            }
            Ok(Answered { status: parts.status.as_u16(), headers: parts.headers, body: read })
        };
        tokio::time::timeout(ATTEMPT_TIMEOUT, attempt)
            .await
            .unwrap_or_else(|_| Err(format!("timed out after {} s", ATTEMPT_TIMEOUT.as_secs())))
    }
}

/// Why no answer came, in a line: the error and its chain of causes.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    std::iter::successors(Some(error), |e| e.source()).map(ToString::to_string).collect::<Vec<_>>().join(": ")
}

/// Resolves names as the system does, keeping only the addresses webhooks may go to: the check is
/// made on the addresses the request will use, so a name that resolves to a private address (or
/// changes to one after the endpoint was registered) is refused. An address written in the URL
/// never reaches a resolver: it is checked where the URL is read (`Target::of`).
#[derive(Debug, Clone, Copy)]
struct PublicOnly {
    allow_loopback: bool,
}

impl tower_service::Service<Name> for PublicOnly {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow_loopback = self.allow_loopback;
        Box::pin(async move {
            let allowed: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| may_send_to(a.ip(), allow_loopback))
                .collect();
            if allowed.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{} resolves only to addresses webhooks are never sent to", name.as_str()),
                ));
            }
            Ok(allowed.into_iter())
        })
    }
}
