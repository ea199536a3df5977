//! W3C trace context across process boundaries: HTTP headers in and out, and the
//! `traceparent` every event carries. Spans come from `tracing`; the OpenTelemetry layer the
//! binary installs gives them trace and span ids. Without that layer these functions do
//! nothing, and nothing breaks.

use std::collections::HashMap;

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Makes `span` a child of the trace the caller sent in `traceparent`/`tracestate`, if any.
pub fn continue_from_headers(span: &Span, headers: &HeaderMap) {
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    adopt(span, parent);
}

/// Makes `span` a child of the span an event was published under.
pub fn continue_from_traceparent(span: &Span, traceparent: Option<&str>) {
    if let Some(parent) = traceparent.map(parse_traceparent) {
        adopt(span, parent);
    }
}

/// Links `span` to the span behind `traceparent` without joining its trace: for work that
/// serves many traces at once, such as a relay batch.
pub fn link_to_traceparent(span: &Span, traceparent: Option<&str>) {
    if let Some(linked) = traceparent.map(parse_traceparent) {
        let linked = linked.span().span_context().clone();
        if linked.is_valid() {
            span.add_link(linked);
        }
    }
}

fn parse_traceparent(traceparent: &str) -> opentelemetry::Context {
    let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
    TraceContextPropagator::new().extract(&carrier)
}

fn adopt(span: &Span, parent: opentelemetry::Context) {
    if parent.span().span_context().is_valid() {
        // Fails only when the span has already started, which our callers never allow.
        let _ = span.set_parent(parent);
    }
}

/// Adds `span`'s `traceparent` (and `tracestate`) to outgoing request headers.
pub fn inject_headers(span: &Span, headers: &mut HeaderMap) {
    TraceContextPropagator::new().inject_context(&span.context(), &mut HeaderInjector(headers));
}

/// `span`'s W3C `traceparent`, to store with an event; `None` when tracing is off.
pub fn traceparent(span: &Span) -> Option<String> {
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&span.context(), &mut carrier);
    carrier.remove("traceparent")
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    const PARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    /// `span`'s trace and span ids in hex; `None` when tracing is off.
    fn ids(span: &Span) -> Option<(String, String)> {
        let context = span.context();
        let otel_span = context.span();
        let ids = otel_span.span_context();
        ids.is_valid()
            .then(|| (ids.trace_id().to_string(), ids.span_id().to_string()))
    }

    fn traced<T>(test: impl FnOnce() -> T) -> T {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, test)
    }

    #[test]
    fn a_span_continues_the_callers_trace_and_passes_it_on() {
        traced(|| {
            let mut incoming = HeaderMap::new();
            incoming.insert("traceparent", HeaderValue::from_static(PARENT));
            let span = tracing::info_span!("handling");
            continue_from_headers(&span, &incoming);

            let (trace_id, span_id) = ids(&span).expect("ids");
            assert_eq!(trace_id, "0af7651916cd43dd8448eb211c80319c");
            assert_ne!(span_id, "b7ad6b7169203331", "a new span of the same trace");

            let mut outgoing = HeaderMap::new();
            inject_headers(&span, &mut outgoing);
            assert_eq!(
                outgoing["traceparent"],
                format!("00-{trace_id}-{span_id}-01").as_str()
            );
            assert_eq!(
                traceparent(&span).as_deref(),
                Some(format!("00-{trace_id}-{span_id}-01").as_str())
            );
        });
    }

    #[test]
    fn an_event_span_continues_the_publishers_trace() {
        traced(|| {
            let span = tracing::info_span!("consuming");
            continue_from_traceparent(&span, Some(PARENT));
            assert_eq!(
                ids(&span).expect("ids").0,
                "0af7651916cd43dd8448eb211c80319c"
            );
        });
    }

    #[test]
    fn garbage_starts_a_new_trace_instead_of_failing() {
        traced(|| {
            let span = tracing::info_span!("consuming");
            continue_from_traceparent(&span, Some("not a traceparent"));
            let (trace_id, _) = ids(&span).expect("a fresh trace");
            assert_ne!(trace_id, "0af7651916cd43dd8448eb211c80319c");
        });
    }

    #[test]
    fn without_tracing_there_is_nothing_to_pass_on() {
        let span = tracing::info_span!("untraced");
        assert_eq!(traceparent(&span), None);
        assert_eq!(ids(&span), None);
    }
}
