//! Metering: every attributable request produces exactly one usage record.
//!
//! A [`Meter`] is created once a request has a key and a model. It is consumed by `finish` or
//! `fail`; if it is dropped instead (the client disconnected, or shutdown cut the request), its
//! `Drop` records the request as `499 client_closed` with whatever usage was seen. Settlement
//! (counting tokens when the upstream reported none, writing the record) runs as a tracked
//! background task, so the response never waits for it and shutdown waits for all of it.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use axum::body::Bytes;
use axum::http::HeaderMap;
use moat_core::estimate::estimate_tokens;
use moat_core::usage_record::STATUS_CLIENT_CLOSED;
use moat_core::{Dialect, PromptLogging, Usage, UsageRecord};
use moat_wire::response_view::ResponseView;

use super::Endpoint;
use crate::error::ApiError;
use crate::fleet::{Deployment, InFlight};
use crate::state::AppState;
use crate::telemetry::RequestTrace;

/// The error code recorded when the client went away before the response was complete.
pub(crate) const CLIENT_CLOSED: &str = "client_closed";

/// What is known about a request before the upstream is called.
#[derive(Debug)]
pub(crate) struct RecordBase {
    pub(crate) id: String,
    pub(crate) created_at_ms: i64,
    pub(crate) started: Instant,
    pub(crate) key_id: Option<String>,
    /// Who the request is charged to (see [`UsageRecord::team_id`]).
    pub(crate) user_id: Option<String>,
    pub(crate) team_id: Option<String>,
    pub(crate) model: String,
    pub(crate) endpoint: Endpoint,
    pub(crate) streamed: bool,
}

/// Accumulates one request's usage and records it exactly once.
#[derive(Debug)]
pub(crate) struct Meter {
    state: Arc<AppState>,
    /// `None` once settled.
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    base: RecordBase,
    request_body: Bytes,
    deployment: Option<Arc<Deployment>>,
    /// Counts this request against its deployment's in-flight load until settled.
    in_flight: Option<InFlight>,
    /// When the current attempt started, for the deployment's time to first token.
    attempt_started: Option<Instant>,
    usage: Option<Usage>,
    generated: String,
    first_byte: Option<Duration>,
    /// The request's spans, when tracing is on.
    trace: Option<RequestTrace>,
    /// Answered from the response cache.
    cache_hit: bool,
    /// What admission reserved on budgets and limits, settled with the actual usage.
    reservation: Option<crate::admission::Reservation>,
    /// Credentials found on the way to an external deployment, by kind, and what was done.
    secrets: Option<(std::collections::BTreeMap<String, u32>, moat_core::SecretAction)>,
    /// Days the full exchange is kept, when the caller's policy logs it.
    prompt_retention_days: Option<u32>,
}

impl Meter {
    /// Starts metering (and, when tracing is on and `policy` lets metadata be kept, the
    /// request's span: `headers` may carry the caller's `traceparent`).
    pub(crate) fn new(
        state: Arc<AppState>,
        base: RecordBase,
        request_body: Bytes,
        headers: &HeaderMap,
        policy: &moat_core::Policy,
    ) -> Self {
        let trace = match policy.prompts {
            PromptLogging::None => None,
            PromptLogging::Metadata | PromptLogging::Full => state.telemetry.request(headers, &base),
        };
        let prompt_retention_days = (policy.prompts == PromptLogging::Full && state.prompt_vault.is_some())
            .then_some(policy.prompt_retention_days);
        let pending = Pending {
            prompt_retention_days,
            trace,
            cache_hit: false,
            reservation: None,
            secrets: None,
            base,
            request_body,
            deployment: None,
            in_flight: None,
            attempt_started: None,
            usage: None,
            generated: String::new(),
            first_byte: None,
        };
        Meter { state, pending: Some(pending) }
    }

    /// Starts an attempt on `deployment`, spoken to in `upstream`: the record names it, it
    /// counts as in flight there, and it has its own span.
    pub(crate) fn set_deployment(&mut self, deployment: &Arc<Deployment>, upstream: Dialect) {
        if let Some(p) = &mut self.pending {
            p.in_flight = None;
            p.in_flight = Some(deployment.live.begin());
            p.deployment = Some(deployment.clone());
            p.attempt_started = Some(Instant::now());
            if let Some(trace) = &mut p.trace {
                trace.begin_attempt(deployment.spec(), upstream);
            }
        }
    }

    /// Takes the request's reservation, to settle it with the request's usage.
    pub(crate) fn hold(&mut self, reservation: Option<crate::admission::Reservation>) {
        if let Some(p) = &mut self.pending {
            p.reservation = reservation;
        }
    }

    /// Notes credentials the data policy found in the request and what it did about them.
    pub(crate) fn note_secrets(
        &mut self,
        found: std::collections::BTreeMap<String, u32>,
        action: moat_core::SecretAction,
    ) {
        if let Some(p) = &mut self.pending {
            p.secrets = Some((found, action));
        }
    }

    /// Marks the request as answered from the response cache.
    pub(crate) fn mark_cache_hit(&mut self) {
        if let Some(p) = &mut self.pending {
            p.cache_hit = true;
        }
    }

    /// Adds the current attempt's trace context to its upstream request's headers.
    pub(crate) fn propagate_trace(&self, headers: &mut HeaderMap) {
        if let Some(trace) = self.pending.as_ref().and_then(|p| p.trace.as_ref()) {
            trace.inject(headers);
        }
    }

    /// The deployment of the current attempt.
    pub(crate) fn deployment(&self) -> Option<&Arc<Deployment>> {
        self.pending.as_ref().and_then(|p| p.deployment.as_ref())
    }

    /// Notes the first byte of the upstream's answer (the first only), and for streams feeds
    /// the deployment's time-to-first-token average.
    pub(crate) fn mark_first_byte(&mut self) {
        if let Some(p) = &mut self.pending
            && p.first_byte.is_none()
        {
            let first_byte = p.base.started.elapsed();
            p.first_byte = Some(first_byte);
            if let (true, Some(trace)) = (p.base.streamed, &p.trace) {
                trace.first_chunk(first_byte);
            }
            if p.base.streamed
                && let (Some(deployment), Some(started)) = (&p.deployment, p.attempt_started)
            {
                deployment.live.record_ttft(started.elapsed());
            }
        }
    }

    pub(crate) fn mark_first_byte_if(&mut self, condition: bool) {
        if condition {
            self.mark_first_byte();
        }
    }

    /// Takes usage and generated text from a body or one stream chunk.
    pub(crate) fn observe(&mut self, view: ResponseView) {
        if let Some(p) = &mut self.pending {
            if let Some(usage) = view.usage {
                p.usage = Some(p.usage.map_or(usage, |seen| seen.merge_max(usage)));
            }
            p.generated.push_str(&view.generated_text);
        }
    }

    /// Counts a failed exchange with the deployment in the metrics and its health.
    pub(crate) fn note_upstream_error(&mut self, error: &moat_upstream::UpstreamError) {
        if let Some(trace) = self.pending.as_mut().and_then(|p| p.trace.as_mut()) {
            trace.end_attempt(Some(error.code().as_str()));
        }
        if let Some(deployment) = self.deployment() {
            self.state.metrics.observe_upstream_error(&deployment.spec().name, error.code().as_str());
            if error.counts_against_health() {
                deployment.live.failed(Instant::now());
            }
        }
    }

    /// Records the request as failed with `error`, and hands the error back for the response.
    pub(crate) fn fail(mut self, error: ApiError) -> ApiError {
        self.settle(error.code.status(), Some(error.code.as_str()));
        error
    }

    /// Records the request as answered with `status`.
    pub(crate) fn finish(mut self, status: u16, error_code: Option<&'static str>) {
        self.settle(status, error_code);
    }

    fn settle(&mut self, status: u16, error_code: Option<&'static str>) {
        let Some(mut p) = self.pending.take() else { return };
        p.in_flight = None;
        let latency = p.base.started.elapsed();
        let settled_at = SystemTime::now();
        // Tokens must be counted when an upstream did work but reported no usage: the stream
        // was cut, or the upstream does not report usage at all.
        let upstream_worked = p.first_byte.is_some() || (status == STATUS_CLIENT_CLOSED && p.deployment.is_some());
        // The record as known now, before any counting; settlement only fills in the usage.
        let record = UsageRecord {
            id: p.base.id,
            created_at_ms: p.base.created_at_ms,
            key_id: p.base.key_id,
            user_id: p.base.user_id,
            team_id: p.base.team_id,
            model: p.base.model,
            deployment: p.deployment.as_ref().map(|d| d.spec().name.clone()),
            endpoint: p.base.endpoint.name().to_owned(),
            status,
            error_code: error_code.map(str::to_owned),
            usage: p.usage.unwrap_or_default(),
            estimated: p.usage.is_none() && upstream_worked,
            streamed: p.base.streamed,
            latency_ms: duration_ms(latency),
            ttft_ms: p.first_byte.map(duration_ms),
            cache_hit: p.cache_hit,
            // Priced now too, so a journaled record replayed after a crash carries its cost.
            cost_micro_usd: p.deployment.as_ref().map_or(0, |d| d.spec().price.cost(&p.usage.unwrap_or_default())),
            reference_cost_micro_usd: reference_cost(&self.state, &p.usage.unwrap_or_default()),
            deployment_location: p.deployment.as_ref().map(|d| d.spec().location),
            secrets_action: p.secrets.as_ref().map(|(_, action)| *action),
            secrets_found: p.secrets.map(|(found, _)| found).unwrap_or_default(),
        };
        // Journaled now, synchronously, while the response is still open: a process killed
        // after the client has its answer still leaves this record on disk.
        let ticket = self.state.usage.journal(&record);
        let settlement = Settlement {
            record,
            upstream_worked,
            endpoint: p.base.endpoint,
            latency,
            request_body: p.request_body,
            deployment: p.deployment,
            usage: p.usage,
            generated: p.generated,
            first_byte: p.first_byte,
            ticket,
            trace: p.trace.map(|trace| (trace, settled_at)),
            reservation: p.reservation,
            prompt_retention_days: p.prompt_retention_days,
        };
        self.state.tasks.spawn(settlement.run(self.state.clone()));
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        // Dropped without finish/fail: the response was abandoned part-way.
        self.settle(STATUS_CLIENT_CLOSED, Some(CLIENT_CLOSED));
    }
}

/// Everything needed to write the record, detached from the request.
struct Settlement {
    /// The record with the usage the upstream reported (zero, marked estimated, if none).
    record: UsageRecord,
    /// Whether the upstream did work, so that tokens must be counted if it reported none.
    upstream_worked: bool,
    endpoint: Endpoint,
    latency: Duration,
    request_body: Bytes,
    deployment: Option<Arc<Deployment>>,
    usage: Option<Usage>,
    generated: String,
    first_byte: Option<Duration>,
    /// Where the record was journaled.
    ticket: Option<moat_store::JournalTicket>,
    /// The request's spans, ended with the settled usage at the time the response ended.
    trace: Option<(RequestTrace, SystemTime)>,
    /// Its budget and limit reservation, settled here with the actual cost and tokens.
    reservation: Option<crate::admission::Reservation>,
    /// Days the full exchange is kept, when the caller's policy logs it.
    prompt_retention_days: Option<u32>,
}

impl Settlement {
    async fn run(mut self, state: Arc<AppState>) {
        let (usage, estimated) = match (self.usage, &self.deployment) {
            // A stream cut after its input count but before its output count (Anthropic
            // reports them in separate events): count what was generated.
            (Some(usage), Some(deployment)) if usage.output == 0 && !self.generated.is_empty() => {
                (Usage { output: self.count_text(deployment, self.generated.clone()).await, ..usage }, true)
            }
            (Some(usage), _) => (usage, false),
            (None, Some(deployment)) if self.upstream_worked => (self.count(deployment).await, true),
            (None, _) => (Usage::default(), false),
        };
        if self.deployment.is_some() {
            state.metrics.observe_model_request(&self.record.model, &usage, self.latency, self.first_byte);
        }
        self.record.usage = usage;
        self.record.estimated = estimated;
        self.record.cost_micro_usd = self.deployment.as_ref().map_or(0, |d| d.spec().price.cost(&usage));
        self.record.reference_cost_micro_usd = reference_cost(&state, &usage);
        tracing::debug!(
            request_id = %self.record.id,
            model = %self.record.model,
            status = self.record.status,
            input_tokens = usage.input,
            output_tokens = usage.output,
            estimated,
            "usage settled"
        );
        if let Some((trace, ended_at)) = self.trace.take() {
            trace.finish(&self.record, ended_at);
        }
        let reservation = self.reservation.take();
        let cost = self.record.cost_micro_usd;
        let prompt_log = self.prompt_log();
        state.usage.record_journaled(self.record, self.ticket).await;
        // After the record is queued: a budget counter seeded from the ledger meanwhile then
        // misses this request by at most the writer's batching delay.
        if let Some(reservation) = reservation {
            let tokens = usage.input.saturating_add(usage.output);
            let alerting = state.alerts.enabled();
            let crossings = state.admission.settle(&state.metrics, reservation, cost, tokens, alerting).await;
            crate::alerts::notify(&state, crossings).await;
        }
        // Last: storing it may wait out a database outage, which must not hold the
        // reservation above (and with it the caller's budget headroom) meanwhile.
        if let (Some(log), Some(vault)) = (prompt_log, &state.prompt_vault) {
            let kept = vault.keep(&state.store, &log).await;
            state.metrics.observe_prompt_log(kept);
        }
    }

    /// The exchange to keep, when the caller's policy logs it in full (the generated text
    /// moves into it: nothing reads it after this).
    fn prompt_log(&mut self) -> Option<moat_store::PromptLog> {
        let days = self.prompt_retention_days?;
        Some(moat_store::PromptLog {
            request_id: self.record.id.clone(),
            team_id: self.record.team_id.clone(),
            created_at_ms: self.record.created_at_ms,
            expires_at_ms: self.record.created_at_ms.saturating_add(i64::from(days) * 86_400_000),
            request: String::from_utf8_lossy(&self.request_body).into_owned(),
            completion: std::mem::take(&mut self.generated),
        })
    }

    /// Counts input and output tokens with the deployment's tokenizer, or estimates them.
    async fn count(&self, deployment: &Deployment) -> Usage {
        let prompt = super::ingress::prompt_text(self.endpoint.dialect(), &self.request_body);
        Usage {
            input: self.count_text(deployment, prompt).await,
            output: self.count_text(deployment, self.generated.clone()).await,
            ..Usage::default()
        }
    }

    /// Tokens in `text` by the deployment's tokenizer, or estimated when it has none.
    async fn count_text(&self, deployment: &Deployment, text: String) -> u64 {
        if text.is_empty() {
            return 0;
        }
        match deployment.client.count_tokens(&text).await {
            Some(n) => n,
            None => estimate_tokens(&text),
        }
    }
}

/// What `usage` would have cost at the first reference model's list price: the same input,
/// cached, cache-write, output and reasoning tokens, each at the reference's price for its
/// kind. A cache hit counts too: the answer was served without a frontier call.
fn reference_cost(state: &AppState, usage: &Usage) -> u64 {
    state.references.first().map_or(0, |reference| reference.price.cost(usage))
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
