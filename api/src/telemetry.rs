//! Logging and tracing setup, in one place.

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt};

/// A subscriber that writes to `sink`, filtered by `RUST_LOG` or else `default_filter`: lines of
/// text, or one JSON object a line (with the fields of the event's spans, such as the request id)
/// when `LOG_FORMAT=json`, for log shippers.
pub fn get_subscriber<Sink>(default_filter: &str, sink: Sink) -> impl Subscriber + Send + Sync
where
    Sink: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|format| format.trim() == "json");
    let (json_sink, text_sink) = if json { (Some(sink), None) } else { (None, Some(sink)) };
    tracing_subscriber::registry()
        .with(filter)
        .with(json_sink.map(|sink| {
            tracing_subscriber::fmt::layer().json().with_current_span(true).with_span_list(false).with_writer(sink)
        }))
        .with(
            text_sink
                .map(|sink| tracing_subscriber::fmt::layer().with_target(true).with_ansi(colours()).with_writer(sink)),
        )
}

/// Installs `subscriber` as the global default; a second call is ignored.
pub fn init_subscriber(subscriber: impl Subscriber + Send + Sync) {
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Colours only for a person at a terminal (and never with `NO_COLOR`): log files and collectors
/// get plain text.
fn colours() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}
