//! OTLP/HTTP export. The SDK's batch processor exports from a thread of its own, outside any
//! Tokio runtime; [`OnRuntime`] sends each export on the server's runtime with the same HTTP
//! client stack the rest of the server uses (rustls, no proxy from the environment).

use super::TelemetryConfig;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig, WithHttpConfig};
use std::time::Duration;

/// How long one export may take unless `OTEL_EXPORTER_OTLP_TRACES_TIMEOUT` or
/// `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds) says otherwise: the SDK applies those only to
/// clients it builds itself, so this client reads them.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

fn export_timeout() -> Duration {
    [
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ]
    .iter()
    .find_map(|k| std::env::var(k).ok()?.trim().parse::<u64>().ok())
    .map_or(EXPORT_TIMEOUT, Duration::from_millis)
}
/// The most of a collector's answer read (it is a small status message).
const MAX_ANSWER: usize = 64 * 1024;

#[derive(Debug)]
struct OnRuntime {
    http: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let http = self.http.clone();
        let sent = self.runtime.spawn(async move {
            let (parts, body) = request.into_parts();
            let answer = http
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await?;
            let status = answer.status();
            let headers = answer.headers().clone();
            let mut body = answer.bytes().await?;
            body.truncate(MAX_ANSWER);
            let mut out = Response::new(body);
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            Ok::<_, HttpError>(out)
        });
        sent.await?
    }
}

/// The span exporter `config` (or the `OTEL_EXPORTER_OTLP_*` variables) names.
pub(super) fn exporter(config: &TelemetryConfig) -> Result<SpanExporter, String> {
    let runtime = tokio::runtime::Handle::try_current()
        .map_err(|_| "tracing starts within the server's runtime".to_owned())?;
    let timeout = export_timeout();
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .user_agent(concat!("Rota/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot build the OTLP client: {e}"))?;
    let mut builder = SpanExporter::builder()
        .with_http()
        .with_http_client(OnRuntime { http, runtime })
        .with_protocol(Protocol::HttpBinary)
        .with_timeout(timeout);
    if let Some(base) = &config.otlp_endpoint {
        builder = builder.with_endpoint(format!("{}/v1/traces", base.trim_end_matches('/')));
    }
    builder
        .build()
        .map_err(|e| format!("cannot start OTLP export: {e}"))
}
