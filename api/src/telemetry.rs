//! Logging and tracing setup, in one place: lines of text or JSON on a sink, and, when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, every span exported over OTLP (HTTP).

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt};

/// A subscriber that writes to `sink`, filtered by `RUST_LOG` or else `default_filter`: lines of
/// text, or one JSON object a line (with the fields of the event's spans, such as the request id)
/// when `LOG_FORMAT=json`, for log shippers; and, given a `tracer`, every span it lets through
/// exported over OpenTelemetry.
pub fn get_subscriber<Sink>(
    default_filter: &str,
    sink: Sink,
    tracer: Option<SdkTracer>,
) -> impl Subscriber + Send + Sync
where
    Sink: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|format| format.trim() == "json");
    let (json_sink, text_sink) = if json { (Some(sink), None) } else { (None, Some(sink)) };
    tracing_subscriber::registry()
        .with(filter)
        .with(tracer.map(|tracer| tracing_opentelemetry::layer().with_tracer(tracer)))
        .with(json_sink.map(|sink| {
            tracing_subscriber::fmt::layer().json().with_current_span(true).with_span_list(false).with_writer(sink)
        }))
        .with(
            text_sink
                .map(|sink| tracing_subscriber::fmt::layer().with_target(true).with_ansi(colours()).with_writer(sink)),
        )
}

/// Log lines queued at most for the writer thread; past that, a request's line waits for room
/// (none is dropped), and the queue's memory stays bounded (about 300 bytes a line).
const LOG_QUEUE_LINES: usize = 8_192;

/// A writer for the log that takes a line off the request's thread: lines are queued to a thread
/// of its own, which writes them through a 64 KB buffer (one write for many lines when they come
/// fast) and flushes whenever the queue is empty. What is queued is written before the returned
/// guard is dropped: keep it until the process ends.
pub fn log_writer<W: std::io::Write + Send + Sync + 'static>(
    out: W,
) -> (tracing_appender::non_blocking::NonBlocking, tracing_appender::non_blocking::WorkerGuard) {
    tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(LOG_QUEUE_LINES)
        .thread_name("certflow-log")
        .finish(std::io::BufWriter::with_capacity(64 * 1024, out))
}

/// Installs `subscriber` as the global default; a second call is ignored.
pub fn init_subscriber(subscriber: impl Subscriber + Send + Sync) {
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// The OpenTelemetry pipeline while the process runs: its spans are sent in batches, and what it
/// holds is flushed when this is dropped (at the end of `certflow`'s commands).
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// The OTLP exporter when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (over HTTP: `http/protobuf`, or
    /// `http/json` by `OTEL_EXPORTER_OTLP_PROTOCOL`; the exporter reads the other `OTEL_*`
    /// variables itself), else none. The service is `OTEL_SERVICE_NAME`, by default `certflow`.
    pub fn from_env() -> anyhow::Result<Option<Self>> {
        let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or_default();
        if endpoint.trim().is_empty() {
            return Ok(None);
        }
        if std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL").is_ok_and(|protocol| protocol.trim() == "grpc") {
            anyhow::bail!(
                "OTEL_EXPORTER_OTLP_PROTOCOL: certflow exports over HTTP (http/protobuf or http/json), not grpc"
            );
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .with_context(|| format!("OTEL_EXPORTER_OTLP_ENDPOINT '{endpoint}': cannot build the OTLP exporter"))?;
        let mut resource = opentelemetry_sdk::Resource::builder();
        if std::env::var("OTEL_SERVICE_NAME").is_err() {
            resource = resource.with_service_name("certflow");
        }
        let provider =
            SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build();
        Ok(Some(Self { provider }))
    }

    /// The tracer spans are recorded with.
    pub fn tracer(&self) -> SdkTracer {
        self.provider.tracer("certflow")
    }
}

impl Drop for Traces {
    fn drop(&mut self) {
        if let Err(error) = self.provider.shutdown() {
            eprintln!("certflow: the last spans could not be exported: {error}");
        }
    }
}

/// Colours only for a person at a terminal (and never with `NO_COLOR`): log files and collectors
/// get plain text.
fn colours() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}
