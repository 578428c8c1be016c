//! The wire dialects moat speaks, on both sides of the gateway.

/// An API dialect: how requests, responses, streams and errors are shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// OpenAI's chat completions, completions and embeddings.
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
}

impl Dialect {
    /// The name used in configuration.
    pub const fn as_str(self) -> &'static str {
        match self {
            Dialect::OpenAi => "openai",
            Dialect::Anthropic => "anthropic",
        }
    }
}
