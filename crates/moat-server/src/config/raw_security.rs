//! The configuration sections about what may leave the company and what is kept: data
//! policy, egress and encryption at rest.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::raw::SecretRef;

/// `[egress]`: the networks moat's own outbound calls may reach.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EgressConfig {
    /// Networks (CIDR: `10.20.0.0/16`, `127.0.0.1/32`, `fd00::/8`) that the SSO provider's
    /// endpoints and alert webhooks may resolve to besides public addresses. Without them,
    /// loopback, private, link-local (cloud metadata), carrier-grade NAT and unique-local
    /// addresses are refused, and redirects are never followed. Deployments are not subject
    /// to this.
    pub allowed_networks: Vec<String>,
}

/// `[policy]`: the default data policy.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Only `internal` deployments may serve requests.
    pub internal_only: bool,
    /// Only these deployments (by name) may serve requests; absent: any a model routes to.
    pub deployments: Option<Vec<String>>,
    /// What happens to a credential (private key, cloud or Git token, JWT, database password,
    /// moat key, high-entropy secret assignment) found in a request bound for an `external`
    /// deployment: `allow` (sent; the usage record counts it), `redact` (replaced by a
    /// placeholder such as `[REDACTED:github_token:1]`), or `block` (the request is not sent
    /// outside; 400 `secret_detected` if no internal deployment can serve it).
    pub secrets: String,
    /// What moat keeps of each request: `none` (only the usage ledger budgets and chargeback
    /// need; no trace spans exported), `metadata` (the usage record and trace spans, never
    /// content), or `full` (also the prompt and completion, encrypted with `[encryption] key`,
    /// readable by admins at `GET /admin/v1/usage/{id}/prompt`, each read audited).
    pub prompts: String,
    /// With `prompts = "full"`: days each logged exchange is kept before it is deleted.
    pub prompt_retention_days: u32,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            internal_only: false,
            deployments: None,
            secrets: "redact".into(),
            prompts: "metadata".into(),
            prompt_retention_days: moat_core::policy::DEFAULT_PROMPT_RETENTION_DAYS,
        }
    }
}

/// `[encryption]`: the master key for what moat keeps at rest.
///
/// Logged prompts and completions are encrypted with AES-256-GCM under data keys that are
/// stored only wrapped by this key (envelope encryption). The key itself never reaches the
/// database: keep it in a secret manager, not beside the database's backups.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EncryptionConfig {
    /// The master key: 32 random bytes in base64 or hex (`moat secrets generate-key` makes
    /// one), from the environment (`{ env = "MOAT_ENCRYPTION_KEY" }`) or a file. Required for
    /// `prompts = "full"`.
    pub key: Option<SecretRef>,
    /// Master keys this one replaced: still needed to read what they wrapped until `moat
    /// secrets rotate` has re-wrapped it under `key`; then remove them.
    pub previous_keys: Vec<SecretRef>,
}
