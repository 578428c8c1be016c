//! The validated description of one deployment, as the upstream client needs it.

use std::time::Duration;

use moat_core::{Dialect, Price};
use secrecy::SecretString;

/// One upstream: where it is, how to authenticate, what it is called there.
#[derive(Debug, Clone)]
pub struct DeploymentSpec {
    /// Unique name, used in usage records and metrics.
    pub name: String,
    /// Base URL ending in the API version (e.g. `http://gpu-1:8000/v1`), without a trailing slash.
    pub base_url: String,
    /// Dialects the upstream speaks.
    pub dialects: Vec<Dialect>,
    /// Whether the upstream serves the OpenAI Responses API (`/responses`) itself, so
    /// Responses requests are passed through instead of translated to chat completions.
    pub native_responses: bool,
    /// The model name sent upstream.
    pub upstream_model: String,
    /// Bearer credential, if the upstream needs one.
    pub api_key: Option<SecretString>,
    /// Extra headers sent with every request.
    pub headers: Vec<(String, String)>,
    /// Limit on the whole exchange, stream included.
    pub timeout: Duration,
    /// Limit on establishing a connection.
    pub connect_timeout: Duration,
    /// Limit on the wait for the first byte of the answer (response headers, and for streams
    /// the first chunk): prefill of a long prompt on a busy server.
    pub first_byte_timeout: Duration,
    /// Limit on the silence between two chunks of a stream.
    pub idle_timeout: Duration,
    /// Stop sequences added to every request, for models that do not end their turns on their
    /// own (a base model that writes `<|im_end|>` as text).
    pub stop: Vec<String>,
    /// `anthropic-beta` values this deployment accepts; others are dropped, never forwarded.
    pub anthropic_beta: Vec<String>,
    /// Whether translated thinking and reasoning settings reach this deployment as
    /// `reasoning_effort` (OpenAI dialect); off for servers that reject the field.
    pub reasoning_effort: bool,
    /// Largest prompt it accepts, in tokens, when declared: longer prompts go elsewhere.
    pub context_window: Option<u64>,
    /// What its tokens cost (zero when not priced).
    pub price: Price,
    /// The self-hosted cost model its price comes from, if it has one rather than a list price.
    pub cost_model: Option<moat_core::CostModel>,
    /// URL polled by active health checks, when they are on.
    pub health_check_url: Option<String>,
    /// Extra trust and a client certificate for TLS to this deployment.
    pub tls: UpstreamTls,
    /// A tokenize endpoint (llama.cpp's or vLLM's `/tokenize`) to count tokens with when the
    /// upstream reports no usage.
    pub tokenize_url: Option<String>,
    /// Whether it runs inside the company or at a third party: data policies keep traffic
    /// off external deployments and scan what goes to them.
    pub location: moat_core::Location,
}

/// TLS settings for one deployment, as PEM read at configuration time.
#[derive(Debug, Clone, Default)]
pub struct UpstreamTls {
    /// CA certificates trusted for this deployment besides the built-in roots (a company's
    /// private PKI).
    pub ca_pem: Option<String>,
    /// The client certificate and its private key, concatenated, for mutual TLS.
    pub client_identity_pem: Option<SecretString>,
}
