//! What the gateway takes from an upstream's answer, whatever its dialect.

use moat_core::Usage;

/// The usage and generated text found in one response body or one stream chunk.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ResponseView {
    /// Usage, when the upstream reported it here.
    pub usage: Option<Usage>,
    /// Generated text (content, reasoning, tool-call arguments), for counting when no usage
    /// is reported.
    pub generated_text: String,
    /// Whether the body had a `choices` array with at least one entry. A stream chunk with
    /// usage and no choices is the usage-only chunk that `include_usage` adds.
    pub has_choices: bool,
}
