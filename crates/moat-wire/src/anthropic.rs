//! Anthropic Messages bodies: the fields the gateway reads, the `model` rewrite, and usage in
//! messages and stream events.
//!
//! Anthropic reports cache reads and writes beside `input_tokens` rather than inside it; they
//! are folded into the canonical [`Usage`], where `input` includes them.

use moat_core::Usage;
use serde::Deserialize;

use crate::json_object::{JsonObject, RequestError, json_string};
use crate::response_view::ResponseView;

/// The default `anthropic-version` sent upstream when a client sends none.
pub const DEFAULT_VERSION: &str = "2023-06-01";

/// A parsed Messages request that borrows every member it does not need to understand.
#[derive(Debug)]
pub struct AnthropicRequest<'a> {
    object: JsonObject<'a>,
    /// The model name the client asked for.
    pub model: String,
    /// Whether the client asked for a stream.
    pub stream: bool,
}

impl<'a> AnthropicRequest<'a> {
    /// Parses `body`, checking only the fields the gateway relies on.
    pub fn parse(body: &'a [u8]) -> Result<Self, RequestError> {
        let object = JsonObject::parse(body)?;
        let model = object.required_string("model")?;
        let stream = object.field::<Option<bool>>("stream", "a boolean")?.flatten().unwrap_or(false);
        Ok(AnthropicRequest { object, model, stream })
    }

    /// The request's `max_tokens` (required by Anthropic's API, so nearly always set): what
    /// admission reserves for.
    pub fn max_output_tokens(&self) -> Option<u64> {
        self.object.field::<Option<u64>>("max_tokens", "an integer").ok().flatten().flatten()
    }

    /// The body to send to an Anthropic-dialect upstream: `model` replaced and `extra_stop` (a
    /// deployment's own stop sequences) appended to `stop_sequences`, all else verbatim.
    pub fn to_upstream_body(&self, upstream_model: &str, extra_stop: &[String]) -> Vec<u8> {
        let mut replacements = vec![("model", json_string(upstream_model))];
        if let Some(stop) = self.object.stop_with("stop_sequences", extra_stop) {
            replacements.push(("stop_sequences", stop));
        }
        self.object.rewrite(&replacements)
    }

    /// The prompt text (system, messages, tool definitions) for counting input tokens.
    pub fn prompt_text(&self) -> String {
        self.object.text_of(&["system", "messages", "tools"])
    }
}

#[derive(Deserialize, Default)]
struct UsageJson {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
}

impl From<UsageJson> for Usage {
    fn from(u: UsageJson) -> Self {
        let cached = u.cache_read_input_tokens.unwrap_or(0);
        let cache_write = u.cache_creation_input_tokens.unwrap_or(0);
        Usage {
            input: u.input_tokens.unwrap_or(0) + cached + cache_write,
            output: u.output_tokens.unwrap_or(0),
            cached,
            cache_write,
            reasoning: 0,
        }
    }
}

#[derive(Deserialize)]
struct Block {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    input: Option<serde_json::Value>,
}

impl Block {
    fn text_into(self, out: &mut String) {
        for part in [self.text, self.thinking, self.name].into_iter().flatten() {
            out.push_str(&part);
        }
        if let Some(input) = self.input.filter(|v| !v.is_null()) {
            out.push_str(&input.to_string());
        }
    }
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    usage: Option<UsageJson>,
    #[serde(default)]
    content: Vec<Block>,
}

/// Reads a whole (non-streaming) message; `None` when it is not a JSON object.
pub fn read_message(json: &[u8]) -> Option<ResponseView> {
    let message: Message = serde_json::from_slice(json).ok()?;
    let mut view = ResponseView { usage: message.usage.map(Usage::from), has_choices: true, ..ResponseView::default() };
    for block in message.content {
        block.text_into(&mut view.generated_text);
    }
    Some(view)
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    usage: Option<UsageJson>,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    content_block: Option<Block>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    thinking: Option<String>,
    #[serde(default)]
    partial_json: Option<String>,
}

/// Reads one stream event's data; `None` when it is not a JSON object with a `type`.
/// `message_start` carries the input count, `message_delta` the cumulative output count.
pub fn read_event(json: &[u8]) -> Option<ResponseView> {
    let event: Event = serde_json::from_slice(json).ok()?;
    let mut view = ResponseView { has_choices: true, ..ResponseView::default() };
    match event.kind.as_str() {
        "message_start" => view.usage = event.message.and_then(|m| m.usage).map(Usage::from),
        "message_delta" => view.usage = event.usage.map(Usage::from),
        "content_block_start" => {
            if let Some(block) = event.content_block {
                block.text_into(&mut view.generated_text);
            }
        }
        "content_block_delta" => {
            if let Some(delta) = event.delta {
                for part in [delta.text, delta.thinking, delta.partial_json].into_iter().flatten() {
                    view.generated_text.push_str(&part);
                }
            }
        }
        _ => {}
    }
    Some(view)
}

/// The body of a `count_tokens` answer.
pub fn count_tokens_body(input_tokens: u64) -> String {
    serde_json::json!({ "input_tokens": input_tokens }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_cache_counts_into_input() {
        let view = read_message(br#"{"content":[{"type":"text","text":"hi"},{"type":"tool_use","name":"f","input":{"a":1}}],"usage":{"input_tokens":5,"cache_read_input_tokens":40,"cache_creation_input_tokens":3,"output_tokens":7}}"#)
            .expect("message");
        assert_eq!(view.usage, Some(Usage { input: 48, output: 7, cached: 40, cache_write: 3, reasoning: 0 }));
        assert_eq!(view.generated_text, "hif{\"a\":1}");
    }

    #[test]
    fn stream_events_report_input_then_output() {
        let start = read_event(br#"{"type":"message_start","message":{"content":[],"usage":{"input_tokens":26,"cache_read_input_tokens":0,"output_tokens":0}}}"#).expect("event");
        let delta =
            read_event(br#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":6}}"#)
                .expect("event");
        let merged = start.usage.expect("start usage").merge_max(delta.usage.expect("delta usage"));
        assert_eq!(merged, Usage { input: 26, output: 6, ..Usage::default() });
        let text =
            read_event(br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Say"}}"#)
                .expect("event");
        assert_eq!((text.usage, text.generated_text.as_str()), (None, "Say"));
        let json = read_event(
            br#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"a\""}}"#,
        )
        .expect("event");
        assert_eq!(json.generated_text, "{\"a\"");
        assert_eq!(read_event(b"not json"), None);
    }

    #[test]
    fn requests_keep_everything_but_the_model() {
        let body = br#"{"model":"claude-sonnet-4","max_tokens":5,"thinking":{"type":"adaptive"},"system":[{"type":"text","text":"sys","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"hi"}],"stream":true}"#;
        let request = AnthropicRequest::parse(body).expect("valid");
        assert!(request.stream);
        assert_eq!(request.model, "claude-sonnet-4");
        let out = String::from_utf8(request.to_upstream_body("gemma", &[])).expect("utf-8");
        assert_eq!(out, String::from_utf8_lossy(body).replace("claude-sonnet-4", "gemma"));
        assert_eq!(request.prompt_text(), "sys\nhi");
    }
}
