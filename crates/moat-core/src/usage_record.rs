//! The usage record: one per request that reached the gateway with a valid key.

use crate::Usage;

/// What one request consumed and how it went.
///
/// The record id is the request id (`x-request-id` on the response), so a person can go from a
/// response they received to its record and its log line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UsageRecord {
    /// Request id: a UUIDv7, so ids sort by time.
    pub id: String,
    /// When the request arrived, in Unix milliseconds.
    pub created_at_ms: i64,
    /// The key that made the request; `None` for the bootstrap admin key.
    pub key_id: Option<String>,
    /// The key's user, as it was when the request was made.
    #[serde(default)]
    pub user_id: Option<String>,
    /// The team the request is charged to, as it was when the request was made: a team key's
    /// team, else the first (by id) of its user's teams.
    #[serde(default)]
    pub team_id: Option<String>,
    /// The public model name the client asked for.
    pub model: String,
    /// The deployment that served it, if one was reached.
    pub deployment: Option<String>,
    /// Which API was called, e.g. `chat.completions`.
    pub endpoint: String,
    /// The HTTP status sent to the client, or 499 when the client went away mid-stream.
    pub status: u16,
    /// The error code, when the request failed.
    pub error_code: Option<String>,
    /// Token counts.
    pub usage: Usage,
    /// Whether any count is an estimate rather than the upstream's figure.
    pub estimated: bool,
    /// Whether the response was streamed.
    pub streamed: bool,
    /// From arrival to the last byte sent, in milliseconds.
    pub latency_ms: u64,
    /// From arrival to the first byte of the upstream's response body, in milliseconds.
    pub ttft_ms: Option<u64>,
    /// Answered from the response cache: the tokens are the stored answer's, and no
    /// deployment spent them.
    #[serde(default)]
    pub cache_hit: bool,
    /// What it cost at the serving deployment's price, in micro-dollars (see
    /// [`crate::Price::cost`]); 0 without a price, and for cache hits.
    #[serde(default)]
    pub cost_micro_usd: u64,
    /// What the same tokens would have cost at the first `[savings]` reference model's list
    /// price, in micro-dollars (0 without a reference). Savings are this minus the cost.
    #[serde(default)]
    pub reference_cost_micro_usd: u64,
    /// Where the serving deployment runs, when one was reached: the data policy's view of
    /// whether the prompt left the company.
    #[serde(default)]
    pub deployment_location: Option<crate::Location>,
    /// Credentials found in the request on its way to an external deployment, counted by kind
    /// (`aws_access_key`, `github_token`…). Never a value.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub secrets_found: std::collections::BTreeMap<String, u32>,
    /// What the data policy did about them, when any were found.
    #[serde(default)]
    pub secrets_action: Option<crate::SecretAction>,
}

/// The status recorded when the client disconnected before the response was complete
/// (nginx's "client closed request").
pub const STATUS_CLIENT_CLOSED: u16 = 499;
