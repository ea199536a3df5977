//! Log lines. In JSON, every line is one object with the fields an operator filters on at the
//! top level: `timestamp`, `level`, `service`, `target`, `message`, `trace_id` and `span_id`,
//! then the fields of the enclosing spans (`request_id`, `order_id`, `event_id`, ...) and of
//! the event itself, the innermost value winning.

use std::fmt;
use std::io::{IsTerminal, Write as _};
use std::sync::{Arc, OnceLock};

use opentelemetry::trace::TraceContextExt;

use serde_json::{Map, Value};
use tracing::dispatcher::WeakDispatch;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::Context;
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
    match format {
        // Colours for a person at a terminal; plain text for files and log collectors.
        LogFormat::Pretty => Box::new(
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(terminal),
        ),
        LogFormat::Json => Box::new(JsonLines {
            service,
            writer,
            dispatch,
        }),
    }
}

/// Field names that only steer the OpenTelemetry layer; not worth a column in the logs.
fn is_span_control(name: &str) -> bool {
    name.starts_with("otel.")
}

/// One JSON object per event. Every span opened records its fields, most of them never
/// logged under (a transaction, an event handled), so a span keeps them as values
/// (`SpanFields`); they become JSON text only when a line is written under the span.
pub struct JsonLines {
    service: &'static str,
    writer: BoxMakeWriter,
    dispatch: DispatchSlot,
}

/// A span's fields, kept until a line is written under it; a field recorded again replaces
/// its value.
#[derive(Default)]
struct SpanFields(Vec<(&'static str, Value)>);

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

    fn line<S>(&self, event: &Event<'_>, ctx: &Context<'_, S>) -> Result<String, serde_json::Error>
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
    {
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
            .event_span(event)
            .and_then(|span| self.trace_ids(&span.id()));
        if let Some((trace_id, span_id)) = ids {
            line.insert("trace_id".into(), trace_id.into());
            line.insert("span_id".into(), span_id.into());
        }
        if let Some(scope) = ctx.event_scope(event) {
            let mut innermost = None;
            for span in scope.from_root() {
                innermost = Some(span.name());
                if let Some(fields) = span.extensions().get::<SpanFields>() {
                    line.extend(fields.0.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
                }
            }
            if let Some(name) = innermost {
                line.insert("span".into(), name.into());
            }
        }
        let mut own = SpanFields::default();
        event.record(&mut own);
        line.extend(own.0.into_iter().map(|(k, v)| (k.to_owned(), v)));
        // Some libraries log fields alone (sqlx: `summary`, `db.statement`); the line still
        // has the column operators filter on.
        line.entry("message").or_insert_with(|| "".into());
        let mut text = serde_json::to_string(&Value::Object(line))?;
        text.push('\n');
        Ok(text)
    }
}

impl<S> Layer<S> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut fields = SpanFields::default();
            attrs.record(&mut fields);
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<SpanFields>()
        {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        // A line that cannot be made or written is lost: there is nowhere to report it.
        if let Ok(line) = self.line(event, &ctx) {
            let _ = self
                .writer
                .make_writer_for(event.metadata())
                .write_all(line.as_bytes());
        }
    }
}

impl SpanFields {
    fn set(&mut self, field: &Field, value: Value) {
        let name = field.name();
        if is_span_control(name) {
            return;
        }
        match self.0.iter_mut().find(|(known, _)| *known == name) {
            Some((_, slot)) => *slot = value,
            None => self.0.push((name, value)),
        }
    }
}

/// Numbers and booleans stay typed.
impl Visit for SpanFields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.set(field, format!("{value:?}").into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.set(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.set(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.set(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.set(field, value.into());
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
                .with(JsonLines {
                    service: "orders",
                    writer: BoxMakeWriter::new(move || writer.clone()),
                    dispatch: slot.clone(),
                }),
        );
        slot.set(dispatch.downgrade()).expect("set once");
        tracing::dispatcher::with_default(&dispatch, || {
            let request = tracing::info_span!(
                "http.request",
                request_id = "r-1",
                otel.kind = "server",
                status = tracing::field::Empty,
                step = "outer",
            );
            let _request = request.enter();
            request.record("status", 201);
            let event = tracing::info_span!(
                "event.process",
                event_id = "e-1",
                order_id = "o-1",
                step = "inner",
                retry = false,
            );
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
        assert_eq!(line["retry"], true, "the event's own value wins");
        assert_eq!(line["step"], "inner", "the innermost span's value wins");
        assert_eq!(line["status"], 201, "recorded after the span opened");
        assert_eq!(line["span"], "event.process");
        assert_eq!(line["trace_id"].as_str().map(str::len), Some(32));
        assert_eq!(line["span_id"].as_str().map(str::len), Some(16));
        assert!(line.get("otel.kind").is_none());
        assert!(line["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    }
}
