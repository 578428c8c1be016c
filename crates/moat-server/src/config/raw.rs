//! The configuration file's shape. Doc comments here are the configuration reference: the
//! docs in `docs/config.md` are generated from them (`cargo xtask config-docs`).

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

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
    /// Upstream servers that run models. Each is one `[[deployments]]` table.
    pub deployments: Vec<DeploymentConfig>,
    /// Public model names clients ask for, each served by one or more deployments.
    pub models: Vec<ModelConfig>,
}

/// `[server]`: the HTTP listener.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on. Loopback by default; use `0.0.0.0:4000` to accept
    /// connections from other machines.
    pub listen: String,
    /// Largest request body accepted, in bytes. Coding agents send multi-megabyte
    /// conversations, so the default is generous (32 MiB).
    pub max_body_bytes: u64,
    /// After this long without a byte from the upstream, a stream gets an SSE comment line
    /// (`: keep-alive`), which every client ignores, so proxies and load balancers between
    /// moat and the client do not drop it while a long prompt is processed.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub stream_keepalive: Duration,
    /// On shutdown, how long in-flight requests and streams may run before they are cut.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub shutdown_grace: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:4000".into(),
            max_body_bytes: 32 * 1024 * 1024,
            stream_keepalive: Duration::from_secs(15),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// `[store]`: where state lives.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Database URL. `sqlite://PATH` (created if missing, relative to the working directory)
    /// is the embedded default.
    pub url: String,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig { url: "sqlite://moat-data/moat.db".into() }
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
}

impl Default for UsageConfig {
    fn default() -> Self {
        UsageConfig { channel_capacity: 10_000, max_batch: 500 }
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
    /// Longest connecting may take.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    #[schemars(with = "String", extend("format" = "duration"))]
    pub connect_timeout: Duration,
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
    /// A tokenize endpoint (llama.cpp's or vLLM's `/tokenize`) used to count tokens when the
    /// upstream reports no usage. Without it such counts are estimated from text length.
    #[serde(default)]
    pub tokenize_url: Option<String>,
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

/// `[[models]]`: a public model name and the deployments that serve it.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The name clients put in `model`.
    pub name: String,
    /// Names of the deployments serving it; requests rotate across them.
    pub deployments: Vec<String>,
    /// Other names clients may ask for, as patterns where `*` matches anything: e.g.
    /// `["claude-*"]` so Claude Code's model names reach this model. A configured model name
    /// always wins over an alias; among aliases the first match in file order wins.
    #[serde(default)]
    pub aliases: Vec<String>,
}
