//! OpenTelemetry traces of model requests, exported over OTLP/HTTP.
//!
//! A fleet's operators follow one slow or failed request across the load balancer, the replica
//! that served it and the model server behind it. Each attributable request is one SERVER span
//! named `{operation} {model}` that carries the GenAI semantic conventions (requested and
//! serving model, tokens by kind, time to first chunk, `error.type`); each upstream attempt is
//! a CLIENT child span whose context reaches the model server as `traceparent`, so a vLLM or
//! SGLang that traces joins the same trace. A request that arrives with a `traceparent` is
//! a child of its caller's span. Prompts and completions never enter a span.
//!
//! Spans are batched and sent by the SDK's own thread; an unreachable collector costs dropped
//! spans, never a request. Without `[telemetry]` no span is built at all.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use axum::http::HeaderMap;
use moat_core::{Dialect, UsageRecord};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer, TracerProvider};
use opentelemetry::{Context, KeyValue};
use opentelemetry_http::{HeaderExtractor, HeaderInjector};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider};
use secrecy::{ExposeSecret, SecretString};

use crate::proxy::{Endpoint, RecordBase};

/// Validated `[telemetry]`.
#[derive(Debug, Clone)]
pub struct TelemetrySettings {
    /// Where spans are posted (`<endpoint>/v1/traces`).
    pub traces_url: String,
    /// `service.name`.
    pub service_name: String,
    /// Share of root traces recorded.
    pub sample_ratio: f64,
    /// Headers sent with every export; values are secrets (a vendor's API key).
    pub headers: Vec<(String, SecretString)>,
    /// How long finished spans wait to be sent together.
    pub export_interval: Duration,
    /// Longest one export may take.
    pub export_timeout: Duration,
}

/// The tracer requests take spans from, or nothing when tracing is off.
#[derive(Debug, Default)]
pub(crate) struct Telemetry {
    tracer: Option<SdkTracer>,
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Builds the exporter and its batch processor; nothing is sent until a span ends.
    pub(crate) fn start(settings: Option<&TelemetrySettings>) -> Result<Telemetry, String> {
        let Some(settings) = settings else { return Ok(Telemetry::default()) };
        let headers: HashMap<String, String> =
            settings.headers.iter().map(|(name, value)| (name.clone(), value.expose_secret().to_owned())).collect();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(settings.traces_url.clone())
            .with_timeout(settings.export_timeout)
            .with_headers(headers)
            .build()
            .map_err(|e| format!("telemetry: the OTLP exporter could not be built: {e}"))?;
        let batches = BatchSpanProcessor::builder(exporter)
            .with_batch_config(BatchConfigBuilder::default().with_scheduled_delay(settings.export_interval).build())
            .build();
        let resource = opentelemetry_sdk::Resource::builder_empty()
            .with_service_name(settings.service_name.clone())
            .with_attributes([
                KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
                KeyValue::new("service.instance.id", uuid::Uuid::now_v7().to_string()),
            ])
            .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(batches)
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(settings.sample_ratio))))
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("moat");
        Ok(Telemetry { tracer: Some(tracer), provider: Some(provider) })
    }

    /// Opens the span of one model request, a child of the caller's `traceparent` if it sent
    /// one; `None` when tracing is off.
    pub(crate) fn request(&self, headers: &HeaderMap, base: &RecordBase) -> Option<RequestTrace> {
        let tracer = self.tracer.as_ref()?;
        let parent = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
        let operation = operation_name(base.endpoint);
        let mut attributes = vec![
            KeyValue::new("gen_ai.operation.name", operation),
            KeyValue::new("gen_ai.request.model", base.model.clone()),
            KeyValue::new("gen_ai.request.stream", base.streamed),
            KeyValue::new("http.request.method", "POST"),
            KeyValue::new("http.route", base.endpoint.client_path()),
            KeyValue::new("moat.request_id", base.id.clone()),
        ];
        if let Some(key_id) = &base.key_id {
            attributes.push(KeyValue::new("moat.key_id", key_id.clone()));
        }
        let started_at =
            SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(base.created_at_ms).unwrap_or_default());
        let span = tracer
            .span_builder(format!("{operation} {}", base.model))
            .with_kind(SpanKind::Server)
            .with_start_time(started_at)
            .with_attributes(attributes)
            .start_with_context(tracer, &parent);
        Some(RequestTrace {
            tracer: tracer.clone(),
            request: parent.with_span(span),
            attempt: None,
            attempts: 0,
            operation,
        })
    }

    /// Sends every span still waiting; called once, at the end of shutdown.
    pub(crate) async fn shutdown(&self) {
        if let Some(provider) = self.provider.clone() {
            let flushed = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(error)) = flushed {
                tracing::warn!(%error, "telemetry: the last spans could not be sent");
            }
        }
    }
}

/// The spans of one request in flight.
#[derive(Debug)]
pub(crate) struct RequestTrace {
    tracer: SdkTracer,
    /// Holds the request's span.
    request: Context,
    /// Holds the span of the current upstream attempt, until it ends.
    attempt: Option<Context>,
    attempts: u32,
    operation: &'static str,
}

impl RequestTrace {
    /// Opens the span of an attempt on a deployment (ending an earlier one still open).
    pub(crate) fn begin_attempt(&mut self, deployment: &moat_upstream::DeploymentSpec, upstream: Dialect) {
        self.end_attempt(None);
        self.attempts += 1;
        let mut attributes = vec![
            KeyValue::new("gen_ai.operation.name", self.operation),
            KeyValue::new("gen_ai.provider.name", provider_name(upstream)),
            KeyValue::new("gen_ai.request.model", deployment.upstream_model.clone()),
            KeyValue::new("moat.deployment", deployment.name.clone()),
        ];
        if let Some((address, port)) = server_address(&deployment.base_url) {
            attributes.push(KeyValue::new("server.address", address));
            attributes.push(KeyValue::new("server.port", port));
        }
        let span = self
            .tracer
            .span_builder(format!("{} {}", self.operation, deployment.upstream_model))
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &self.request);
        let request = self.request.span();
        request.set_attribute(KeyValue::new("gen_ai.provider.name", provider_name(upstream)));
        request.set_attribute(KeyValue::new("gen_ai.response.model", deployment.upstream_model.clone()));
        request.set_attribute(KeyValue::new("moat.deployment", deployment.name.clone()));
        self.attempt = Some(self.request.with_span(span));
    }

    /// Writes the current attempt's `traceparent` (and `tracestate`) into its upstream request.
    pub(crate) fn inject(&self, headers: &mut HeaderMap) {
        if let Some(attempt) = &self.attempt {
            TraceContextPropagator::new().inject_context(attempt, &mut HeaderInjector(headers));
        }
    }

    /// Ends the current attempt's span now, as failed with `error_type` if given.
    pub(crate) fn end_attempt(&mut self, error_type: Option<&str>) {
        self.end_attempt_at(error_type, SystemTime::now());
    }

    fn end_attempt_at(&mut self, error_type: Option<&str>, ended_at: SystemTime) {
        let Some(attempt) = self.attempt.take() else { return };
        let span = attempt.span();
        if let Some(error_type) = error_type {
            span.set_attribute(KeyValue::new("error.type", error_type.to_owned()));
            span.set_status(Status::error(error_type.to_owned()));
        }
        span.end_with_timestamp(ended_at);
    }

    /// Notes when a stream's first chunk arrived, counted from the request's arrival.
    pub(crate) fn first_chunk(&self, after: Duration) {
        self.request.span().set_attribute(KeyValue::new("gen_ai.response.time_to_first_chunk", after.as_secs_f64()));
    }

    /// Ends the request's span at `ended_at` with its outcome and the settled usage.
    pub(crate) fn finish(mut self, record: &UsageRecord, ended_at: SystemTime) {
        let failed = record.error_code.as_deref();
        self.end_attempt_at(failed.filter(|_| record.status >= 500), ended_at);
        let span = self.request.span();
        let usage = record.usage;
        let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        span.set_attributes([
            KeyValue::new("http.response.status_code", i64::from(record.status)),
            KeyValue::new("gen_ai.usage.input_tokens", count(usage.input)),
            KeyValue::new("gen_ai.usage.output_tokens", count(usage.output)),
            KeyValue::new("gen_ai.usage.cache_read.input_tokens", count(usage.cached)),
            KeyValue::new("gen_ai.usage.cache_creation.input_tokens", count(usage.cache_write)),
            KeyValue::new("gen_ai.usage.reasoning.output_tokens", count(usage.reasoning)),
            KeyValue::new("moat.usage.estimated", record.estimated),
            KeyValue::new("moat.attempts", i64::from(self.attempts)),
            KeyValue::new("moat.cache_hit", record.cache_hit),
        ]);
        if let Some(error_type) = failed {
            span.set_attribute(KeyValue::new("error.type", error_type.to_owned()));
            // A server span's status is an error only for what moat or its upstreams got wrong.
            if record.status >= 500 {
                span.set_status(Status::error(error_type.to_owned()));
            }
        }
        span.end_with_timestamp(ended_at);
    }
}

/// `gen_ai.operation.name` of an endpoint.
fn operation_name(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Completions => "text_completion",
        Endpoint::Embeddings => "embeddings",
        Endpoint::ChatCompletions | Endpoint::Messages | Endpoint::Responses => "chat",
    }
}

/// `gen_ai.provider.name`: the API the upstream was spoken to in.
fn provider_name(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::OpenAi => "openai",
        Dialect::Anthropic => "anthropic",
    }
}

/// Host and port of a deployment's base URL, for `server.address` and `server.port`.
fn server_address(base_url: &str) -> Option<(String, i64)> {
    let uri: axum::http::Uri = base_url.parse().ok()?;
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']').to_owned();
    let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
    Some((host, i64::from(port)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_address_reads_host_and_port_with_scheme_defaults() {
        assert_eq!(server_address("http://gpu-1:8000/v1"), Some(("gpu-1".into(), 8000)));
        assert_eq!(server_address("https://api.example.com/v1"), Some(("api.example.com".into(), 443)));
        assert_eq!(server_address("http://[::1]:9000/v1"), Some(("::1".into(), 9000)));
        assert_eq!(server_address("not a url"), None);
    }

    #[test]
    fn operation_names_follow_the_genai_conventions() {
        assert_eq!(operation_name(Endpoint::Messages), "chat");
        assert_eq!(operation_name(Endpoint::Completions), "text_completion");
        assert_eq!(operation_name(Endpoint::Embeddings), "embeddings");
    }
}
