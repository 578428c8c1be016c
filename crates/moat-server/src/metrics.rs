//! Prometheus metrics. Labels are low-cardinality by construction: route names, status codes,
//! configured model and deployment names, token kinds and error codes; never key ids, raw
//! client-supplied model strings or messages.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use moat_core::Usage;
use tokio::sync::watch;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SecretLabels {
    kind: &'static str,
    action: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PromptLogLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    model: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamErrorLabels {
    deployment: String,
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    model: String,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AdmissionLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeploymentLabels {
    deployment: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms to about 2 minutes.
    Histogram::new(exponential_buckets(0.001, 2.0, 18))
}

/// One open client connection, counted in `moat_connections_open` while it lives.
pub(crate) struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Every metric moat exports, in one registry.
pub(crate) struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    model_duration: Family<ModelLabels, Histogram, fn() -> Histogram>,
    time_to_first_token: Family<ModelLabels, Histogram, fn() -> Histogram>,
    tokens: Family<TokenLabels, Counter>,
    upstream_errors: Family<UpstreamErrorLabels, Counter>,
    retries: Family<ModelLabels, Counter>,
    secrets_found: Family<SecretLabels, Counter>,
    prompt_logs: Family<PromptLogLabels, Counter>,
    cache_lookups: Family<CacheLabels, Counter>,
    admissions: Family<AdmissionLabels, Counter>,
    counter_errors: Counter,
    counters_up: Gauge,
    deployment_up: Family<DeploymentLabels, Gauge>,
    deployment_in_flight: Family<DeploymentLabels, Gauge>,
    deployment_opened: Family<DeploymentLabels, Gauge>,
    usage_records_written: Counter,
    connections_open: Gauge,
    connections_refused: Counter,
    usage_write_failures: Counter,
    usage_spooled: Gauge,
    /// The usage writer's own counts, mirrored into the counters above at each scrape.
    usage_progress: Option<UsageProgress>,
}

/// The usage writer's published counts.
pub(crate) struct UsageProgress {
    pub(crate) persisted: watch::Receiver<u64>,
    pub(crate) failed_writes: watch::Receiver<u64>,
    pub(crate) spooled: watch::Receiver<u64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("moat");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered, by route and status", http_requests.clone());
        let http_duration =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time from request arrival to response headers, by route",
            http_duration.clone(),
        );
        let model_duration =
            Family::<ModelLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "model_request_duration_seconds",
            "Time from arrival to the last byte of a model response, by model",
            model_duration.clone(),
        );
        let time_to_first_token =
            Family::<ModelLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register(
            "time_to_first_token_seconds",
            "Time from arrival to the first byte of the upstream's response body, by model",
            time_to_first_token.clone(),
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register(
            "tokens",
            "Tokens metered, by model and kind (input, output, cached, cache_write, reasoning)",
            tokens.clone(),
        );
        let upstream_errors = Family::<UpstreamErrorLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Failed exchanges with upstreams, by deployment and error code",
            upstream_errors.clone(),
        );
        let retries = Family::<ModelLabels, Counter>::default();
        registry.register("upstream_retries", "Attempts after the first, by model", retries.clone());
        let secrets_found = Family::<SecretLabels, Counter>::default();
        registry.register(
            "secrets_found",
            "Credentials found in requests bound for external deployments, by kind and the policy's action",
            secrets_found.clone(),
        );
        let prompt_logs = Family::<PromptLogLabels, Counter>::default();
        registry.register(
            "prompt_logs",
            "Exchanges logged in full under a data policy, by result (stored, or lost after retries)",
            prompt_logs.clone(),
        );
        let cache_lookups = Family::<CacheLabels, Counter>::default();
        registry.register(
            "response_cache_lookups",
            "Response cache lookups of models that cache, by model and result (hit, miss, unavailable)",
            cache_lookups.clone(),
        );
        let admissions = Family::<AdmissionLabels, Counter>::default();
        registry.register(
            "admissions",
            "Requests checked against budgets and limits, by outcome: admitted, budget_exceeded, \
             rate_limit_exceeded, refused_unavailable (counters down, failing closed), uncounted \
             (counters down, failing open)",
            admissions.clone(),
        );
        let counter_errors = Counter::default();
        registry.register(
            "admission_counter_errors",
            "Budget and limit counter operations that failed (Redis unreachable or too slow)",
            counter_errors.clone(),
        );
        let counters_up = Gauge::default();
        registry.register(
            "admission_counters_up",
            "1 while the last budget and limit counter operation succeeded, 0 after one failed",
            counters_up.clone(),
        );
        counters_up.set(1);
        let deployment_up = Family::<DeploymentLabels, Gauge>::default();
        registry.register(
            "deployment_up",
            "1 while a deployment serves, 0 while its circuit breaker holds it down (or it awaits a probe)",
            deployment_up.clone(),
        );
        let deployment_in_flight = Family::<DeploymentLabels, Gauge>::default();
        registry.register("deployment_in_flight", "Requests in flight to a deployment", deployment_in_flight.clone());
        let deployment_opened = Family::<DeploymentLabels, Gauge>::default();
        registry.register(
            "deployment_breaker_opened",
            "Times a deployment's circuit breaker has opened since it was configured",
            deployment_opened.clone(),
        );
        let usage_records_written = Counter::default();
        registry.register("usage_records_written", "Usage records stored", usage_records_written.clone());
        let usage_write_failures = Counter::default();
        registry.register(
            "usage_write_failures",
            "Failed attempts to store a batch of usage records (each batch is retried)",
            usage_write_failures.clone(),
        );
        let usage_spooled = Gauge::default();
        registry.register(
            "usage_records_spooled",
            "Usage records waiting in the on-disk spool for the database (alert when it stays above 0)",
            usage_spooled.clone(),
        );
        let connections_open = Gauge::default();
        registry.register("connections_open", "Client connections open now", connections_open.clone());
        let connections_refused = Counter::default();
        registry.register(
            "connections_refused",
            "Client connections closed on arrival because server.max_connections were open",
            connections_refused.clone(),
        );
        Metrics {
            registry,
            connections_open,
            connections_refused,
            http_requests,
            http_duration,
            model_duration,
            time_to_first_token,
            tokens,
            upstream_errors,
            retries,
            secrets_found,
            prompt_logs,
            cache_lookups,
            admissions,
            counter_errors,
            counters_up,
            deployment_up,
            deployment_in_flight,
            deployment_opened,
            usage_records_written,
            usage_write_failures,
            usage_spooled,
            usage_progress: None,
        }
    }

    /// Connects the usage writer's counts.
    pub(crate) fn with_usage_progress(mut self, progress: UsageProgress) -> Self {
        self.usage_progress = Some(progress);
        self
    }

    pub(crate) fn observe_http(&self, route: &'static str, status: u16, elapsed: Duration) {
        self.http_requests.get_or_create(&HttpLabels { route, status }).inc();
        self.http_duration.get_or_create(&RouteLabels { route }).observe(elapsed.as_secs_f64());
    }

    /// Counts one admission by its outcome.
    pub(crate) fn observe_admission(&self, outcome: &'static str) {
        self.admissions.get_or_create(&AdmissionLabels { outcome }).inc();
    }

    /// Notes whether a counter operation worked.
    pub(crate) fn observe_counters(&self, ok: bool) {
        self.counters_up.set(i64::from(ok));
        if !ok {
            self.counter_errors.inc();
        }
    }

    /// Counts one response cache lookup: `hit`, `miss`, or `unavailable` (Redis did not answer).
    pub(crate) fn observe_cache_lookup(&self, model: &str, result: &'static str) {
        self.cache_lookups.get_or_create(&CacheLabels { model: model.to_owned(), result }).inc();
    }

    pub(crate) fn observe_model_request(&self, model: &str, usage: &Usage, latency: Duration, ttft: Option<Duration>) {
        let labels = ModelLabels { model: model.to_owned() };
        self.model_duration.get_or_create(&labels).observe(latency.as_secs_f64());
        if let Some(ttft) = ttft {
            self.time_to_first_token.get_or_create(&labels).observe(ttft.as_secs_f64());
        }
        for (kind, count) in [
            ("input", usage.input),
            ("output", usage.output),
            ("cached", usage.cached),
            ("cache_write", usage.cache_write),
            ("reasoning", usage.reasoning),
        ] {
            if count > 0 {
                self.tokens.get_or_create(&TokenLabels { model: model.to_owned(), kind }).inc_by(count);
            }
        }
    }

    pub(crate) fn observe_upstream_error(&self, deployment: &str, code: &'static str) {
        self.upstream_errors.get_or_create(&UpstreamErrorLabels { deployment: deployment.to_owned(), code }).inc();
    }

    pub(crate) fn observe_secrets(&self, kind: &'static str, action: &'static str, n: u32) {
        self.secrets_found.get_or_create(&SecretLabels { kind, action }).inc_by(u64::from(n));
    }

    pub(crate) fn observe_connection_refused(&self) {
        self.connections_refused.inc();
    }

    /// Counts a connection as open until the returned guard is dropped.
    pub(crate) fn connection_opened(&self) -> OpenConnection {
        self.connections_open.inc();
        OpenConnection(self.connections_open.clone())
    }

    pub(crate) fn observe_prompt_log(&self, stored: bool) {
        self.prompt_logs.get_or_create(&PromptLogLabels { result: if stored { "stored" } else { "lost" } }).inc();
    }

    pub(crate) fn observe_retry(&self, model: &str) {
        self.retries.get_or_create(&ModelLabels { model: model.to_owned() }).inc();
    }

    /// Sets the deployment gauges from the current routing snapshot (at each scrape, so
    /// deployments removed by a reload disappear).
    pub(crate) fn set_deployments(&self, deployments: impl Iterator<Item = (String, bool, u64, u64)>) {
        self.deployment_up.clear();
        self.deployment_in_flight.clear();
        self.deployment_opened.clear();
        for (name, up, in_flight, opened) in deployments {
            let labels = DeploymentLabels { deployment: name };
            self.deployment_up.get_or_create(&labels).set(i64::from(up));
            self.deployment_in_flight.get_or_create(&labels).set(i64::try_from(in_flight).unwrap_or(i64::MAX));
            self.deployment_opened.get_or_create(&labels).set(i64::try_from(opened).unwrap_or(i64::MAX));
        }
    }

    /// The OpenMetrics text exposition.
    pub(crate) fn encode(&self) -> String {
        if let Some(progress) = &self.usage_progress {
            // Both sources only grow, so catching the counters up keeps them monotonic.
            let catch_up = |counter: &Counter, source: &watch::Receiver<u64>| {
                let target = *source.borrow();
                let current = counter.get();
                if target > current {
                    counter.inc_by(target - current);
                }
            };
            catch_up(&self.usage_records_written, &progress.persisted);
            catch_up(&self.usage_write_failures, &progress.failed_writes);
            self.usage_spooled.set(i64::try_from(*progress.spooled.borrow()).unwrap_or(i64::MAX));
        }
        let mut out = String::new();
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(%error, "encoding metrics failed");
        }
        out
    }
}
