//! What a deployment's tokens cost, in integer micro-dollars so sums never drift.

/// Prices per million tokens, in micro-dollars (`1_000_000` = $1.00 per million tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Price {
    /// Uncached input tokens.
    pub input: u64,
    /// Output tokens (reasoning included).
    pub output: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write: u64,
}

impl Price {
    /// One number to rank deployments by for the lowest-cost strategy: a million input plus a
    /// million output tokens.
    pub fn routing_cost(&self) -> u64 {
        self.input.saturating_add(self.output)
    }
}
