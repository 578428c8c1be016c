//! The configuration file's shape. Doc comments here are the configuration reference: the
//! docs in `docs/config.md` are generated from them (`cargo xtask config-docs`).

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use super::raw_security::{EgressConfig, EncryptionConfig, PolicyConfig};
pub use super::raw_server::{ServerConfig, ServerTlsConfig};

/// moat's configuration file.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// The HTTP listener.
    pub server: ServerConfig,
    /// Where moat keeps keys and usage records.
    pub store: StoreConfig,
    /// Log output.
    pub log: LogConfig,
    /// The usage-record pipeline.
    pub usage: UsageConfig,
    /// Retries and deployment health, for every model.
    pub routing: RoutingConfig,
    /// SCIM 2.0 provisioning from an identity provider.
    pub scim: ScimConfig,
    /// Browser sign-in and `moat login`.
    pub sign_in: SignInConfig,
    /// Single sign-on through an OpenID Connect provider (Okta, Entra ID, Google, Keycloak…).
    pub sso: Option<SsoConfig>,
    /// The SMTP server invitations are sent through; without it, the admin gets the link.
    pub smtp: Option<SmtpConfig>,
    /// Redis, shared by replicas: revoked keys and deactivated users reach every replica at once.
    pub redis: Option<RedisConfig>,
    /// How budgets and limits are enforced. The budgets and limits themselves are data, set
    /// through the admin API or `moat budgets` and `moat limits`.
    pub admission: AdmissionConfig,
    /// Where budget alerts go.
    pub alerts: AlertsConfig,
    /// The frontier models savings are measured against.
    pub savings: SavingsConfig,
    /// The organisation's default data policy: which deployments requests may reach, and what
    /// happens to credentials in prompts bound outside. A team's own policy (admin API,
    /// `PUT /admin/v1/teams/{id}/policy`) replaces it for that team.
    pub policy: PolicyConfig,
    /// Where moat's own outbound calls (sign-on, alert webhooks) may connect.
    pub egress: EgressConfig,
    /// The master key that encrypts what moat keeps at rest (logged prompts and completions).
    pub encryption: EncryptionConfig,
    /// OpenTelemetry traces, sent over OTLP/HTTP to a collector (Jaeger, Tempo, Honeycomb…).
    pub telemetry: Option<TelemetryConfig>,
    /// Price catalog rows that replace the shipped row of the same model, provider and tier, or
    /// add one (a negotiated rate, a model the catalog lacks). Each is one `[[prices]]` table.
    pub prices: Vec<PriceRowConfig>,
    /// Upstream servers that run models. Each is one `[[deployments]]` table.
    pub deployments: Vec<DeploymentConfig>,
    /// Public model names clients ask for, each served by one or more deployments.
    pub models: Vec<ModelConfig>,
}

/// `[store]`: where state lives.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Database URL. `sqlite://PATH` (created if missing, relative to the working directory)
    /// is the embedded default; `postgres://USER:PASSWORD@HOST:PORT/DATABASE` is for fleets of
    /// replicas (add `?options[search_path]=SCHEMA` to keep moat's tables in their own
    /// schema). Put a URL with a password in `MOAT__STORE__URL` rather than in the file.
    pub url: String,
    /// `auto` applies pending schema migrations at start-up; `check` refuses to start until
    /// `moat migrate` has applied them (for fleets that migrate once, before a rollout). Either
    /// way a schema migrated by a newer moat is refused.
    pub migrate: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { url: "sqlite://moat-data/moat.db".into(), migrate: "auto".into() }
    }
}

/// `[log]`: log output on standard error.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `pretty` for people, `json` for log pipelines.
    pub format: String,
    /// A `tracing` filter, e.g. `info` or `info,moat_server=debug`. `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { format: "pretty".into(), level: "info".into() }
    }
}

/// `[usage]`: how usage records reach the store.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct UsageConfig {
    /// Records that may queue between requests and the batch writer before finished requests
    /// wait for room.
    pub channel_capacity: usize,
    /// Most records written in one insert.
    pub max_batch: usize,
    /// How long the writer gathers records before one insert, e.g. `50ms`: the database then
    /// sees about twenty inserts a second at any request rate, instead of one per request.
    /// Reports and budget seeds see a record at most this much later. `0s` writes each record
    /// as soon as it arrives.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub batch_delay: Duration,
    /// The append-only file usage records go to when the database refuses them; they are
    /// replayed (each once) when it answers again, and at the next start. Each batch is
    /// `fsync`ed into it before the writer lets go. An empty string turns the spool off
    /// (records then wait in memory, retried).
    pub spool: String,
    /// The folder of this process's usage journal: every record is appended there as its
    /// request settles, before the client receives the end of the response, and deleted once
    /// stored, so a process that is killed (SIGKILL, out of memory) loses no record of a
    /// completed response; the next start writes what it left. Each process needs its own
    /// folder. An empty string turns the journal off.
    pub journal: String,
    /// `fsync` every journal append. Off, a record survives the process being killed but not
    /// the machine crashing; on, it survives both, at the cost of a disk flush per request.
    pub journal_fsync: bool,
    /// How long usage records are kept, e.g. `400d`; unset keeps them forever. SQLite deletes
    /// older records in batches; PostgreSQL drops whole monthly partitions once every record
    /// in them is older (so up to a month more is kept). Checked hourly.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "Option<String>", extend("format" = "duration"))]
    pub retention: Option<Duration>,
    /// How long the hourly and daily rollups that reports and chargeback read are kept, e.g.
    /// `1100d`; unset keeps them forever. They are small (a row per hour, and one per day, for
    /// each key, model and deployment that saw traffic) and outlive `retention`, so reports
    /// reach further back than records.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "Option<String>", extend("format" = "duration"))]
    pub rollup_retention: Option<Duration>,
}

impl Default for UsageConfig {
    fn default() -> Self {
        UsageConfig {
            channel_capacity: 10_000,
            max_batch: 500,
            batch_delay: Duration::from_millis(50),
            spool: "moat-data/usage-spool.jsonl".into(),
            journal: "moat-data/usage-journal".into(),
            journal_fsync: false,
            retention: None,
            rollup_retention: None,
        }
    }
}

/// `[[deployments]]`: one upstream server and the model it runs.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeploymentConfig {
    /// Unique name, used in usage records, metrics and `[[models]]`.
    pub name: String,
    /// Base URL of the upstream's API, ending in its version: `http://host:8080/v1`. moat
    /// appends `/chat/completions`, `/completions`, `/embeddings`, `/messages` or
    /// `/messages/count_tokens`.
    pub url: String,
    /// Wire dialects the upstream speaks: `openai` (chat/completions, completions,
    /// embeddings), `anthropic` (messages, messages/count_tokens), and `responses` when it
    /// serves the OpenAI Responses API itself (as vLLM does). A request in a dialect the
    /// deployment speaks is passed through; otherwise it is translated where moat can.
    #[serde(default = "default_dialects")]
    pub dialects: Vec<String>,
    /// The model name sent upstream (what the upstream calls it).
    pub upstream_model: String,
    /// Credential sent as `Authorization: Bearer`, read from the environment
    /// (`{ env = "VAR" }`) or a file (`{ file = "/run/secrets/x" }`); never written inline.
    #[serde(default)]
    pub api_key: Option<SecretRef>,
    /// Extra headers sent with every request to this deployment.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Longest a whole request may take, stream included.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub timeout: Duration,
    /// Longest connecting may take. Its own error code (`upstream_connect_timeout`); retried.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub connect_timeout: Duration,
    /// Longest wait for the first byte of the answer (for streams, the first chunk): the
    /// prompt's prefill on a busy server. `upstream_first_byte_timeout`; not retried, since
    /// the server may still be working on it.
    #[serde(default = "default_first_byte_timeout", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub first_byte_timeout: Duration,
    /// Longest silence between two chunks of a stream (`upstream_idle_timeout`). Keep it
    /// above `server.stream_keepalive`, which only speaks to the client.
    #[serde(default = "default_idle_timeout", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub idle_timeout: Duration,
    /// Largest prompt, in tokens, this deployment accepts. A longer prompt (estimated at 4
    /// bytes per token of the request body) goes to a deployment, or a fallback model, with
    /// room for it; when none has, the client gets `context_window_exceeded`.
    #[serde(default)]
    pub context_window: Option<u64>,
    /// Prices in US dollars per million tokens, for the `lowest_cost` strategy (and cost
    /// reports): `{ input = 0.6, output = 2.4 }`, optionally `cache_read` and `cache_write`.
    #[serde(default)]
    pub price: Option<PriceConfig>,
    /// For a self-hosted deployment, what its tokens cost you, instead of a `price`: GPUs by
    /// the hour over the throughput they serve, `{ gpus = 2, gpu = "H100 80GB SXM",
    /// gpu_provider = "lambda", tokens_per_hour = 9000000 }` (the GPU's hourly rate from the
    /// price catalog, or `gpu_hour_usd = 2.69` for your own), or a flat `{ per_mtok = 0.20 }`.
    #[serde(default)]
    pub cost: Option<CostConfig>,
    /// URL that active health checks GET (any 2xx is healthy), when
    /// `routing.health_check_interval` is set. Default: the base URL's `/models`.
    #[serde(default)]
    pub health_check_url: Option<String>,
    /// Stop sequences added to every request sent to this deployment (to `stop`, or
    /// `stop_sequences` in the Anthropic dialect), after the client's own. For models that do
    /// not end their turns by themselves, e.g. `["<|im_end|>"]` for a base model served with
    /// the ChatML template.
    #[serde(default)]
    pub stop: Vec<String>,
    /// `anthropic-beta` values forwarded to this deployment (Anthropic dialect only). Any
    /// other value a client sends is dropped for it, never turned into an error.
    #[serde(default)]
    pub anthropic_beta: Vec<String>,
    /// Whether a translated request's thinking settings (Anthropic `thinking`, Responses
    /// `reasoning.effort`) reach this OpenAI-dialect deployment as `reasoning_effort` (`low`,
    /// `medium`, `high`). Turn off for a server that rejects the field.
    #[serde(default = "default_true")]
    pub reasoning_effort: bool,
    /// TLS to this deployment: a CA to trust besides the built-in roots, and a client
    /// certificate for mutual TLS. `{ ca_file = "/etc/moat/ca.pem", client_cert_file =
    /// "/etc/moat/moat.pem", client_key_file = "/etc/moat/moat-key.pem" }`; PEM files, read at
    /// start-up and on reload.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// A tokenize endpoint (llama.cpp's or vLLM's `/tokenize`) used to count tokens when the
    /// upstream reports no usage. Without it such counts are estimated from text length.
    #[serde(default)]
    pub tokenize_url: Option<String>,
    /// Where the deployment runs: `internal` (the company's own servers; prompts stay inside)
    /// or `external` (a third party's API; prompts are scanned for credentials on the way out,
    /// and `internal_only` policies keep traffic off it). Default: `internal` when the URL's
    /// host is a loopback, private or link-local address, a single-label name, or a name
    /// under `.local`, `.internal`, `.lan`, `.svc` or `.cluster.local`; `external` otherwise.
    #[serde(default)]
    pub location: Option<String>,
}

fn default_strategy() -> String {
    "weighted".into()
}

fn default_first_byte_timeout() -> Duration {
    Duration::from_secs(120)
}

fn default_idle_timeout() -> Duration {
    Duration::from_secs(120)
}

fn default_true() -> bool {
    true
}

fn default_dialects() -> Vec<String> {
    vec!["openai".into()]
}

fn default_timeout() -> Duration {
    Duration::from_secs(600)
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Where a secret comes from. Secrets are never written in the config file itself.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SecretRef {
    /// The value of this environment variable.
    Env(String),
    /// The contents of this file, without a trailing newline.
    File(String),
}

/// TLS files for one deployment.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of CA certificates to trust for this deployment (a private PKI).
    #[serde(default)]
    pub ca_file: Option<String>,
    /// PEM file of moat's client certificate (and any intermediates), for mutual TLS.
    #[serde(default)]
    pub client_cert_file: Option<String>,
    /// PEM file of the client certificate's private key.
    #[serde(default)]
    pub client_key_file: Option<String>,
}

/// Prices in US dollars per million tokens.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceConfig {
    /// Uncached input tokens.
    #[serde(default)]
    pub input: f64,
    /// Output tokens.
    #[serde(default)]
    pub output: f64,
    /// Input tokens read from the prompt cache.
    #[serde(default)]
    pub cache_read: f64,
    /// Input tokens written to the prompt cache.
    #[serde(default)]
    pub cache_write: f64,
    /// Reasoning tokens, when the provider bills them apart from output; unset bills them as
    /// output.
    #[serde(default)]
    pub reasoning: Option<f64>,
}

/// A self-hosted deployment's cost model (see `deployments[].cost`).
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CostConfig {
    /// GPUs the deployment runs on.
    #[serde(default)]
    pub gpus: Option<u32>,
    /// The GPU's name in the price catalog's `[[gpu]]` rows, e.g. `H100 80GB SXM`.
    #[serde(default)]
    pub gpu: Option<String>,
    /// Whose catalog rate to use for `gpu`, e.g. `lambda`; without it, the lowest listed.
    #[serde(default)]
    pub gpu_provider: Option<String>,
    /// Dollars per GPU-hour: your own rate (a reserved-instance price, or purchase price
    /// amortized), instead of the catalog's.
    #[serde(default)]
    pub gpu_hour_usd: Option<f64>,
    /// Tokens (input plus output) the deployment serves per hour, as measured at its usual
    /// load. Every token then costs `gpus × rate ÷ tokens_per_hour`.
    #[serde(default)]
    pub tokens_per_hour: Option<u64>,
    /// A flat price in dollars per million tokens, input and output alike, instead of GPUs.
    #[serde(default)]
    pub per_mtok: Option<f64>,
}

/// One row of the price catalog, in the shipped file's shape (`catalog/prices.toml`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
pub struct PriceRowConfig {
    /// The provider's model name, e.g. `claude-sonnet-4-5`.
    pub model: String,
    /// Who sells it at this price, e.g. `anthropic`.
    pub provider: String,
    /// `frontier` (a closed model savings are measured against) or `open-weight`.
    pub kind: String,
    /// Dollars per million uncached input tokens.
    pub input_per_mtok: f64,
    /// Dollars per million output tokens.
    pub output_per_mtok: f64,
    /// Dollars per million input tokens read from the prompt cache (default: the input price).
    #[serde(default)]
    pub cache_read_per_mtok: Option<f64>,
    /// Dollars per million input tokens written to the prompt cache (default: the input price).
    #[serde(default)]
    pub cache_write_per_mtok: Option<f64>,
    /// A price band, when the provider has several (e.g. `prompt<=200k`).
    #[serde(default)]
    pub tier: Option<String>,
    /// The date the price was read.
    #[serde(default)]
    pub as_of: String,
    /// Where it was read.
    #[serde(default)]
    pub source: String,
    /// Anything else the shipped file notes (`context_window`, `note`, `uncertain`…) is kept
    /// there for people and ignored here.
    #[serde(flatten)]
    #[schemars(skip)]
    pub other: BTreeMap<String, toml::Value>,
}

/// One deployment of a model: its name, or a table with its share and priority.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum ModelDeployment {
    /// Weight 1, tier 0.
    Name(String),
    /// `{ name = "gpu-a", weight = 3, tier = 0 }`.
    Weighted {
        /// The deployment's name.
        name: String,
        /// Share of the tier's traffic, relative to the others (default 1).
        #[serde(default = "default_weight")]
        weight: u32,
        /// Priority: tier 0 serves first; tier 1 only when no tier-0 deployment is available
        /// (down, or too small for the prompt), and so on (default 0).
        #[serde(default)]
        tier: u32,
    },
}

impl ModelDeployment {
    /// The deployment's name.
    pub fn name(&self) -> &str {
        match self {
            ModelDeployment::Name(name) | ModelDeployment::Weighted { name, .. } => name,
        }
    }
}

fn default_weight() -> u32 {
    1
}

/// `[[models]]`: a public model name and the deployments that serve it.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The name clients put in `model`.
    pub name: String,
    /// The deployments serving it: names (`["gpu-a", "gpu-b"]`) or tables with a weight and a
    /// priority tier (`[{ name = "gpu-a", weight = 3 }, { name = "hosted", tier = 1 }]`).
    pub deployments: Vec<ModelDeployment>,
    /// How each tier's deployments are ordered: `weighted` (random in proportion to weight),
    /// `least_in_flight`, `lowest_latency` (moving average of time to first token) or
    /// `lowest_cost` (by `price`). The rest of the order is where retries go.
    #[serde(default = "default_strategy")]
    pub strategy: String,
    /// Models tried, in order, when none of this model's deployments can serve a request
    /// (all down, or all too small for the prompt): e.g. `["qwen3-coder"]`.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// Other names clients may ask for, as patterns where `*` matches anything: e.g.
    /// `["claude-*"]` so Claude Code's model names reach this model. A configured model name
    /// always wins over an alias; among aliases the first match in file order wins.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Serve identical requests from a cache: `cache = { ttl = "10m", scope = "team" }`.
    /// Off unless set. Kept in Redis when `[redis]` is configured (shared by replicas), else in
    /// the process (64 MiB).
    #[serde(default)]
    pub cache: Option<ModelCacheConfig>,
}

/// A model's response cache. A request whose body is byte-for-byte identical to an earlier
/// one, from the same tenant, within `ttl`, gets the earlier answer (`x-moat-cache: hit`);
/// `cache-control: no-cache` on a request skips the lookup and `no-store` skips storing.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelCacheConfig {
    /// How long an answer is served from the cache.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub ttl: Duration,
    /// Who may be served each other's answers: `key`, `user`, `team` (a team's keys, or one
    /// user's personal keys) or `org` (everyone on this moat).
    #[serde(default = "default_cache_scope")]
    pub scope: String,
}

fn default_cache_scope() -> String {
    "team".into()
}

/// `[routing]`: retries and deployment health, for every model.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingConfig {
    /// Most attempts one request makes, the first included, across its plan's deployments.
    /// Only failures before any byte reached the client are retried: connect failures and
    /// connect timeouts, a reset before the first byte, 429, 502, 503, 504 and 529.
    pub max_attempts: u32,
    /// Retries stop when this much time has passed since the request arrived.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub retry_deadline: Duration,
    /// Wait before retrying a deployment already tried, doubled at each retry with full
    /// jitter, capped by `backoff_max`. An upstream's `retry-after` replaces it when longer
    /// (and ends the retries when it passes the deadline). A retry on a deployment not yet
    /// tried goes at once.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub backoff_base: Duration,
    /// Longest wait between two attempts.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub backoff_max: Duration,
    /// Consecutive failures that mark a deployment down.
    pub breaker_failures: u32,
    /// Failure share (0 to 1) of a deployment's last `breaker_window` requests that marks it
    /// down, once at least `breaker_min_requests` were seen.
    pub breaker_failure_rate: f64,
    /// Requests the failure rate is computed over.
    pub breaker_window: usize,
    /// Requests seen before the failure rate counts.
    pub breaker_min_requests: usize,
    /// How long a down deployment gets no traffic; then one request probes it, and its
    /// success brings the deployment back.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub breaker_cooldown: Duration,
    /// When set, every deployment's `health_check_url` is polled this often; a failed check
    /// counts as a failed request, a passing one brings a down deployment back.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "Option<String>", extend("format" = "duration"))]
    pub health_check_interval: Option<Duration>,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        RoutingConfig {
            max_attempts: 3,
            retry_deadline: Duration::from_secs(60),
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(5),
            breaker_failures: 5,
            breaker_failure_rate: 0.5,
            breaker_window: 20,
            breaker_min_requests: 10,
            breaker_cooldown: Duration::from_secs(30),
            health_check_interval: None,
        }
    }
}

/// `[scim]`: provisioning from an identity provider (Okta, Entra ID) at `/scim/v2`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ScimConfig {
    /// The bearer token the identity provider presents, from the environment
    /// (`{ env = "MOAT_SCIM_TOKEN" }`) or a file. Without it, `/scim/v2` is off.
    pub token: Option<SecretRef>,
}

/// `[sign_in]`: browser sessions and `moat login` (the OAuth 2.0 device flow).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SignInConfig {
    /// A session unused this long ends.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub session_idle: Duration,
    /// A session ends this long after sign-in, used or not.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub session_lifetime: Duration,
    /// Mark cookies `Secure` (HTTPS only). Turn off only for plain-HTTP development on
    /// something other than localhost.
    pub secure_cookies: bool,
    /// Least time between two polls of `moat login`.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub device_poll_interval: Duration,
    /// How long a `moat login` code waits for approval.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub device_code_lifetime: Duration,
    /// How long the personal key `moat login` receives lives.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub login_key_lifetime: Duration,
}

impl Default for SignInConfig {
    fn default() -> Self {
        SignInConfig {
            session_idle: Duration::from_secs(8 * 3600),
            session_lifetime: Duration::from_secs(7 * 24 * 3600),
            secure_cookies: true,
            device_poll_interval: Duration::from_secs(5),
            device_code_lifetime: Duration::from_secs(600),
            login_key_lifetime: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// `[sso]`: single sign-on through an OpenID Connect provider, with people provisioned on
/// first sign-in.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SsoConfig {
    /// The provider's issuer URL; moat reads `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// moat's client id at the provider.
    pub client_id: String,
    /// moat's client secret, for a confidential client (`{ env = "MOAT_SSO_SECRET" }`). PKCE
    /// is always used.
    #[serde(default)]
    pub client_secret: Option<SecretRef>,
    /// moat's callback as the provider must send people back to it:
    /// `https://moat.example.com/sso/callback`.
    pub redirect_url: String,
    /// Scopes to ask for.
    #[serde(default = "default_sso_scopes")]
    pub scopes: Vec<String>,
    /// E-mail domains allowed to sign in (`["acme.com"]`); empty lets any in.
    #[serde(default)]
    pub allowed_domains: Vec<String>,
    /// The ID-token claim listing the person's groups.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// The organisation role of people none of whose groups map to one.
    #[serde(default = "default_sso_role")]
    pub default_role: String,
    /// Group → organisation role (`owner`, `admin`, `member`, `viewer`); the highest wins, at
    /// every sign-in.
    #[serde(default)]
    pub group_roles: BTreeMap<String, String>,
    /// Group → team name. Members of the group join the team (created on first use); leaving
    /// the group leaves the team at the next sign-in.
    #[serde(default)]
    pub group_teams: BTreeMap<String, String>,
}

fn default_sso_scopes() -> Vec<String> {
    vec!["openid".into(), "email".into(), "profile".into()]
}

fn default_groups_claim() -> String {
    "groups".into()
}

fn default_sso_role() -> String {
    "member".into()
}

/// `[smtp]`: where invitation e-mails go out.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Server host.
    pub host: String,
    /// Server port.
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// `starttls` (port 587), `tls` (port 465) or `none` (a relay on the same host only).
    #[serde(default = "default_smtp_security")]
    pub security: String,
    /// Login, when the server wants one.
    #[serde(default)]
    pub username: Option<String>,
    /// Password for `username`, from the environment or a file.
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// The sender: `moat <moat@acme.com>`.
    pub from: String,
}

fn default_smtp_port() -> u16 {
    587
}

fn default_smtp_security() -> String {
    "starttls".into()
}

/// `[redis]`: what replicas share beyond the database.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://host:6379/0`, or `rediss://` for TLS. A password belongs in the environment:
    /// `MOAT__REDIS__URL=redis://:secret@host:6379/0`.
    pub url: String,
    /// The pub/sub channel the replicas of one moat share.
    #[serde(default = "default_redis_channel")]
    pub channel: String,
    /// Prefix of every key moat writes (the response cache); installations sharing one Redis
    /// need different prefixes.
    #[serde(default = "default_redis_prefix")]
    pub key_prefix: String,
}

/// `[admission]`: reserving each request's estimate on its budgets and limits. Counters live
/// in this process, or in Redis when `[redis]` is set (then every replica shares them).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdmissionConfig {
    /// Output tokens reserved for a request that sets no `max_tokens` (or
    /// `max_completion_tokens`, `max_output_tokens`). The reservation is settled to the
    /// actual count when the request ends.
    pub default_output_tokens: u64,
    /// How long a reservation holds if its request never settles (the replica serving it
    /// died). Longer than your longest stream: a reservation that expires early frees its
    /// concurrency slot while the request still runs.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub reservation_ttl: Duration,
    /// Longest an admission waits for Redis before the counters count as unavailable.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub counter_timeout: Duration,
    /// When the counters are unavailable, requests a budget covers are refused
    /// (`closed`, with `admission_unavailable`) or admitted without being counted (`open`).
    pub budgets_fail: FailMode,
    /// When the counters are unavailable, requests a rate limit covers are admitted without
    /// being counted (`open`) or refused (`closed`).
    pub limits_fail: FailMode,
    /// How often each replica re-reads budgets and limits from the database, so a change made
    /// through another replica applies here too (changes made here apply at once).
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub refresh_interval: Duration,
}

impl Default for AdmissionConfig {
    fn default() -> Self {
        AdmissionConfig {
            default_output_tokens: 4096,
            reservation_ttl: Duration::from_secs(15 * 60),
            counter_timeout: Duration::from_millis(250),
            budgets_fail: FailMode::Closed,
            limits_fail: FailMode::Open,
            refresh_interval: Duration::from_secs(5),
        }
    }
}

/// `[alerts]`: budget alerts. When a budget's spend reaches one of its thresholds, one alert
/// per threshold and period is posted to every webhook, whichever replica sees it first.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Each is one `[[alerts.webhooks]]` table.
    pub webhooks: Vec<WebhookConfig>,
}

/// One webhook alerts are posted to.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `https://…` (or `http://` inside your network). A URL that is itself a credential
    /// (a Slack incoming webhook) can come from the environment or a file instead:
    /// `url = { env = "SLACK_WEBHOOK_URL" }`. Webhook URLs never appear in logs.
    pub url: WebhookUrl,
    /// `json` (moat's event, below) or `slack` (a Slack incoming-webhook message: `{"text": …}`).
    #[serde(default = "default_webhook_format")]
    pub format: String,
    /// The shared secret the body is signed with: `x-moat-signature: t=<unix seconds>,v1=<hex
    /// HMAC-SHA256 of "<t>.<body>">`. Receivers recompute it and reject old timestamps.
    #[serde(default)]
    pub secret: Option<SecretRef>,
}

/// A webhook URL, written in the config or kept as a secret.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum WebhookUrl {
    /// Written in the config.
    Plain(String),
    /// From the environment or a file.
    Secret(SecretRef),
}

fn default_webhook_format() -> String {
    "json".into()
}

/// `[savings]`: what the same traffic would have cost on frontier models.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SavingsConfig {
    /// Reference models from the price catalog (`GET /admin/v1/prices?kind=frontier`), e.g.
    /// `[{ model = "claude-sonnet-4-5", provider = "anthropic" }]`. Every usage record carries
    /// what its tokens would have cost at the first one's list price
    /// (`reference_cost_micro_usd`); reports can compare with each.
    pub references: Vec<ReferenceConfig>,
}

/// A reference model: a row of the price catalog.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReferenceConfig {
    /// The model's name in the catalog.
    pub model: String,
    /// Its provider in the catalog.
    pub provider: String,
}

/// What to do with a request when its counters cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FailMode {
    /// Admit it, uncounted.
    Open,
    /// Refuse it.
    Closed,
}

fn default_redis_prefix() -> String {
    "moat".into()
}

fn default_redis_channel() -> String {
    "moat:keys".into()
}

/// `[telemetry]`: OpenTelemetry traces. Each model request is one span named like
/// `chat gemma` (GenAI semantic conventions: model, tokens by kind, time to first chunk), with
/// a child span per upstream attempt whose context reaches the upstream as `traceparent`.
/// Prompts and completions are never put in spans.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The collector's OTLP/HTTP base URL, e.g. `http://otel-collector:4318`. Spans are sent
    /// to `<endpoint>/v1/traces` as protobuf.
    pub endpoint: String,
    /// `service.name` of every span.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// Share of the traces that start at moat that are recorded, from 0.0 to 1.0. A request
    /// that arrives with a `traceparent` follows its caller's sampling decision instead.
    #[serde(default = "default_sample_ratio")]
    pub sample_ratio: f64,
    /// Headers sent with every export, such as a tracing vendor's API key:
    /// `headers = { authorization = { env = "OTLP_TOKEN" } }`.
    #[serde(default)]
    pub headers: BTreeMap<String, SecretRef>,
    /// How long finished spans wait to be sent together.
    #[serde(default = "default_export_interval", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub export_interval: Duration,
    /// Longest one export may take; spans that cannot be sent are dropped, never the request.
    #[serde(default = "default_export_timeout", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub export_timeout: Duration,
}

fn default_service_name() -> String {
    "moat".into()
}

fn default_sample_ratio() -> f64 {
    1.0
}

fn default_export_interval() -> Duration {
    Duration::from_secs(5)
}

fn default_export_timeout() -> Duration {
    Duration::from_secs(10)
}
