//! Token usage of one request, the unit everything else (metering, cost, budgets) is built on.

use serde::{Deserialize, Serialize};

/// Tokens one request consumed, by kind.
///
/// Counts follow the OpenAI convention: `cached` (cache reads) and `cache_write` (tokens written
/// to a prompt cache) are parts of `input`, and `reasoning` is part of `output`, so none is
/// added on top. Anthropic's separate cache counts are folded into `input` when read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens, cached ones included.
    pub input: u64,
    /// Generated tokens, reasoning included.
    pub output: u64,
    /// Prompt tokens read from the upstream's cache.
    pub cached: u64,
    /// Prompt tokens written to the upstream's cache.
    pub cache_write: u64,
    /// Generated tokens the model spent reasoning.
    pub reasoning: u64,
}

impl Usage {
    /// Combines two partial reports of the same request field by field, keeping the larger
    /// count. Streams report cumulative counts in pieces (Anthropic's `message_start` has the
    /// input, `message_delta` the output), so the maximum is the total.
    pub fn merge_max(self, other: Usage) -> Usage {
        Usage {
            input: self.input.max(other.input),
            output: self.output.max(other.output),
            cached: self.cached.max(other.cached),
            cache_write: self.cache_write.max(other.cache_write),
            reasoning: self.reasoning.max(other.reasoning),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_reports_merge_to_the_totals() {
        let start = Usage { input: 100, output: 1, cached: 40, cache_write: 10, reasoning: 0 };
        let delta = Usage { output: 57, ..Usage::default() };
        assert_eq!(start.merge_max(delta), Usage { input: 100, output: 57, cached: 40, cache_write: 10, reasoning: 0 });
        assert_eq!(delta.merge_max(start), start.merge_max(delta));
    }
}
