//! Token usage of one request, the unit everything else (metering, cost, budgets) is built on.

use serde::{Deserialize, Serialize};

/// Tokens one request consumed, by kind.
///
/// Counts follow the OpenAI convention: `cached` is the part of `input` served from a prompt
/// cache and `reasoning` the part of `output` spent thinking, so neither is added on top.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens, cached ones included.
    pub input: u64,
    /// Generated tokens, reasoning included.
    pub output: u64,
    /// Prompt tokens read from the upstream's cache.
    pub cached: u64,
    /// Generated tokens the model spent reasoning.
    pub reasoning: u64,
}
