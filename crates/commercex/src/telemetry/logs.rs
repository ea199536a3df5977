//! Log lines. In JSON, every line is one object with the fields an operator filters on at the
//! top level: `timestamp`, `level`, `service`, `target`, `message`, `trace_id` and `span_id`,
//! then the fields of the enclosing spans (`request_id`, `order_id`, `event_id`, ...) and of
//! the event itself, the innermost value winning.

use std::fmt;
use std::io::IsTerminal;
use std::sync::{Arc, OnceLock};

use opentelemetry::trace::TraceContextExt;

use serde_json::{Map, Value};
use tracing::dispatcher::WeakDispatch;
use tracing::field::{Field, Visit};
use tracing::span::Id;
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use crate::cli::LogFormat;

/// Where log lines go. A server logs to stdout, where container runtimes collect it; a
/// command-line tool logs to stderr, since its stdout is its answer (a JSON dead letter, a
/// report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// The dispatcher the log layer is part of, set once it is built: JSON lines read trace ids
/// through it. (The current dispatcher cannot be asked from inside an event, where tracing
/// guards against re-entry.)
pub type DispatchSlot = Arc<OnceLock<WeakDispatch>>;

/// The log layer for `format`, writing to `stream`.
pub fn layer<S>(
    format: LogFormat,
    service: &'static str,
    stream: LogStream,
    dispatch: DispatchSlot,
) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let (writer, terminal) = match stream {
        LogStream::Stdout => (
            BoxMakeWriter::new(std::io::stdout),
            std::io::stdout().is_terminal(),
        ),
        LogStream::Stderr => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::stderr().is_terminal(),
        ),
    };
    // Colours for a person at a terminal; plain text for files and log collectors.
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(terminal);
    match format {
        LogFormat::Pretty => Box::new(fmt),
        LogFormat::Json => Box::new(
            fmt.fmt_fields(JsonFields::new())
                .event_format(JsonLines { service, dispatch }),
        ),
    }
}

/// Field names that only steer the OpenTelemetry layer; not worth a column in the logs.
fn is_span_control(name: &str) -> bool {
    name.starts_with("otel.")
}

pub struct JsonLines {
    pub service: &'static str,
    pub dispatch: DispatchSlot,
}

impl JsonLines {
    /// The W3C trace and span ids of span `id`, when tracing gave it some.
    fn trace_ids(&self, id: &Id) -> Option<(String, String)> {
        let dispatch = self.dispatch.get()?.upgrade()?;
        let context = tracing_opentelemetry::get_otel_context(id, &dispatch)?;
        let span = context.span();
        let ids = span.span_context();
        ids.is_valid()
            .then(|| (ids.trace_id().to_string(), ids.span_id().to_string()))
    }
}

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), metadata.level().as_str().into());
        line.insert("service".into(), self.service.into());
        line.insert("target".into(), metadata.target().into());
        let ids = ctx
            .parent_span()
            .and_then(|span| self.trace_ids(&span.id()));
        if let Some((trace_id, span_id)) = ids {
            line.insert("trace_id".into(), trace_id.into());
            line.insert("span_id".into(), span_id.into());
        }
        if let Some(scope) = ctx.event_scope() {
            let mut names = Vec::new();
            for span in scope.from_root() {
                names.push(span.name());
                let extensions = span.extensions();
                let Some(fields) = extensions.get::<FormattedFields<JsonFields>>() else {
                    continue;
                };
                if let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(fields) {
                    line.extend(fields.into_iter().filter(|(k, _)| !is_span_control(k)));
                }
            }
            if let Some(innermost) = names.last() {
                line.insert("span".into(), (*innermost).into());
            }
        }
        event.record(&mut FieldsInto(&mut line));
        // Some libraries log fields alone (sqlx: `summary`, `db.statement`); the line still
        // has the column operators filter on.
        line.entry("message").or_insert_with(|| "".into());
        let text = serde_json::to_string(&Value::Object(line)).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

/// Records an event's fields into a JSON object, keeping numbers and booleans typed.
struct FieldsInto<'a>(&'a mut Map<String, Value>);

impl Visit for FieldsInto<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use opentelemetry::trace::TracerProvider as _;
    use tracing::Dispatch;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_has_the_ids_and_the_fields_of_its_spans() {
        let captured = Captured::default();
        let writer = captured.clone();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let slot = DispatchSlot::default();
        let dispatch = Dispatch::new(
            tracing_subscriber::registry()
                .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")))
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(move || writer.clone())
                        .fmt_fields(JsonFields::new())
                        .event_format(JsonLines {
                            service: "orders",
                            dispatch: slot.clone(),
                        }),
                ),
        );
        slot.set(dispatch.downgrade()).expect("set once");
        tracing::dispatcher::with_default(&dispatch, || {
            let request =
                tracing::info_span!("http.request", request_id = "r-1", otel.kind = "server");
            let _request = request.enter();
            let event = tracing::info_span!("event.process", event_id = "e-1", order_id = "o-1");
            let _event = event.enter();
            tracing::warn!(attempt = 2, retry = true, "handler failed");
        });
        let text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
        let line: Value = serde_json::from_str(text.trim()).expect("one JSON object");
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["service"], "orders");
        assert_eq!(line["message"], "handler failed");
        assert_eq!(line["request_id"], "r-1");
        assert_eq!(line["event_id"], "e-1");
        assert_eq!(line["order_id"], "o-1");
        assert_eq!(line["attempt"], 2);
        assert_eq!(line["retry"], true);
        assert_eq!(line["span"], "event.process");
        assert_eq!(line["trace_id"].as_str().map(str::len), Some(32));
        assert_eq!(line["span_id"].as_str().map(str::len), Some(16));
        assert!(line.get("otel.kind").is_none());
        assert!(line["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
}
