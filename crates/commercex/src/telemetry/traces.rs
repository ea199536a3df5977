//! OpenTelemetry traces. Spans always get trace and span ids (the logs carry them); they are
//! exported over OTLP/HTTP when the standard variables ask for it:
//!
//! - `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: where to (setting
//!   either turns export on; `OTEL_TRACES_EXPORTER=otlp` does too, to the default
//!   `http://localhost:4318`, and `none` turns it off);
//! - `OTEL_EXPORTER_OTLP_PROTOCOL` / `..._TRACES_PROTOCOL`: `http/protobuf` (default) or
//!   `http/json`; `OTEL_EXPORTER_OTLP_HEADERS`, `..._TIMEOUT`, `..._COMPRESSION`;
//! - `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` (default `parentbased_always_on`);
//! - `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`;
//! - `OTEL_BSP_SCHEDULE_DELAY`, `OTEL_BSP_MAX_QUEUE_SIZE`, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE`.

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

pub struct Traces {
    provider: SdkTracerProvider,
    exporting: bool,
}

/// What the environment asks for.
#[derive(Debug, PartialEq, Eq)]
enum Export {
    Off,
    Otlp(Protocol),
}

impl Traces {
    pub fn from_env(service: &'static str) -> anyhow::Result<Self> {
        let mut resource = Resource::builder();
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name(service_name(service));
        }
        let mut provider = SdkTracerProvider::builder().with_resource(resource.build());
        let export = export(&|name| std::env::var(name).ok())?;
        let exporting = export != Export::Off;
        if let Export::Otlp(protocol) = export {
            // Endpoint, headers, timeout and compression come from the OTEL_* variables.
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(protocol)
                .build()
                .context("building the OTLP trace exporter")?;
            provider = provider.with_batch_exporter(exporter);
        }
        Ok(Self {
            provider: provider.build(),
            exporting,
        })
    }

    /// Whether spans leave the process (otherwise they only lend their ids to log lines
    /// and to what is propagated).
    pub fn exporting(&self) -> bool {
        self.exporting
    }

    pub fn tracer(&self) -> SdkTracer {
        self.provider.tracer("commercex")
    }

    /// Exports what is buffered and stops the exporter.
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(%error, "could not flush the last spans");
        }
    }
}

/// `commercex-orders`, or `commercex` for the embedded runtime.
fn service_name(service: &str) -> String {
    if service == "commercex" {
        service.to_owned()
    } else {
        format!("commercex-{service}")
    }
}

fn export(var: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Export> {
    let wanted = match var("OTEL_TRACES_EXPORTER").as_deref() {
        Some("none") => return Ok(Export::Off),
        Some("otlp") => true,
        Some(other) => anyhow::bail!("OTEL_TRACES_EXPORTER={other}: only otlp and none exist"),
        None => {
            var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
                || var("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
        }
    };
    if !wanted {
        return Ok(Export::Off);
    }
    let protocol =
        var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| var("OTEL_EXPORTER_OTLP_PROTOCOL"));
    match protocol.as_deref() {
        None | Some("http/protobuf") => Ok(Export::Otlp(Protocol::HttpBinary)),
        Some("http/json") => Ok(Export::Otlp(Protocol::HttpJson)),
        Some("grpc") => anyhow::bail!(
            "OTLP over gRPC is not built in: use OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf and \
             the collector's HTTP port (4318)"
        ),
        Some(other) => anyhow::bail!("unknown OTLP protocol {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export_with(vars: &[(&str, &str)]) -> anyhow::Result<Export> {
        export(&|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn export_is_on_when_an_endpoint_is_given() {
        assert_eq!(export_with(&[]).expect("off"), Export::Off);
        assert_eq!(
            export_with(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")]).expect("on"),
            Export::Otlp(Protocol::HttpBinary)
        );
        assert_eq!(
            export_with(&[("OTEL_TRACES_EXPORTER", "otlp")]).expect("on"),
            Export::Otlp(Protocol::HttpBinary)
        );
        assert_eq!(
            export_with(&[
                ("OTEL_TRACES_EXPORTER", "none"),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
            ])
            .expect("off"),
            Export::Off
        );
    }

    #[test]
    fn the_protocol_is_chosen_by_the_standard_variables() {
        let endpoint = (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://c:4318/v1/traces",
        );
        assert_eq!(
            export_with(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]).expect("json"),
            Export::Otlp(Protocol::HttpJson)
        );
        assert_eq!(
            export_with(&[
                endpoint,
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf")
            ])
            .expect("the signal's own wins"),
            Export::Otlp(Protocol::HttpBinary)
        );
        let grpc = export_with(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
        assert!(grpc.expect_err("grpc").to_string().contains("4318"));
        assert!(export_with(&[("OTEL_TRACES_EXPORTER", "zipkin")]).is_err());
    }
}
