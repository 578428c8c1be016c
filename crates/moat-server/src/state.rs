//! What every request shares: built once at start-up, never rebuilt on the request path.

use std::sync::atomic::AtomicBool;

use arc_swap::ArcSwap;
use moat_store::{Store, UsageSink};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::KeyResolver;
use crate::fleet::Routing;
use crate::metrics::Metrics;

#[derive(Debug)]
pub(crate) struct AppState {
    /// Models and deployments; a config reload swaps in a new snapshot, and each request
    /// keeps the one it started with.
    pub(crate) routing: ArcSwap<Routing>,
    pub(crate) store: Store,
    pub(crate) usage: UsageSink,
    pub(crate) keys: KeyResolver,
    pub(crate) metrics: Metrics,
    /// Background work that must finish before shutdown completes (usage settlement).
    pub(crate) tasks: TaskTracker,
    pub(crate) max_body_bytes: usize,
    /// Longest a client may take to send a model request's body.
    pub(crate) body_read_timeout: std::time::Duration,
    /// `Strict-Transport-Security`, sent on responses over TLS when configured.
    pub(crate) hsts: Option<http::HeaderValue>,
    /// Silence after which a stream gets a keep-alive comment.
    pub(crate) stream_keepalive: std::time::Duration,
    /// Set when shutdown begins: `/readyz` fails so load balancers stop sending traffic.
    pub(crate) draining: AtomicBool,
    /// Cancelled when the shutdown grace period ends: in-flight upstream calls stop.
    pub(crate) hard_stop: CancellationToken,
    /// Cancelled when shutdown begins: background loops (health checks) end.
    pub(crate) stopping: CancellationToken,
    /// Sends invitations, when SMTP is configured.
    pub(crate) mailer: Option<moat_identity::mail::Mailer>,
    /// Answers of models that cache them: in Redis when configured, else in this process.
    pub(crate) response_cache: std::sync::Arc<crate::response_cache::ResponseCache>,
    /// List prices and GPU rates, as loaded at start.
    pub(crate) price_catalog: crate::price_catalog::PriceCatalog,
    /// Budgets, limits and their counters.
    pub(crate) admission: crate::admission::Admission,
    /// Which deployments each team's traffic may reach, and what happens to credentials in it.
    pub(crate) data_policies: crate::data_policy::DataPolicies,
    /// The frontier models savings are measured against (`[savings]`).
    pub(crate) references: Vec<crate::price_catalog::Reference>,
    /// The start-time configuration without its secrets ([`crate::config::summary::at_start`]).
    pub(crate) settings_summary: serde_json::Value,
    /// Budget alert webhooks.
    pub(crate) alerts: crate::alerts::Alerts,
    /// Seals the full exchanges of teams whose policy logs them, when `[encryption]` is set.
    pub(crate) prompt_vault: Option<crate::prompt_vault::PromptVault>,
    /// Request spans, when `[telemetry]` is configured.
    pub(crate) telemetry: crate::telemetry::Telemetry,
}
