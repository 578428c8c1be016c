//! OpenAI Responses API bodies from upstreams that serve `/responses` themselves: usage and
//! generated text in whole responses and in stream events.

use moat_core::Usage;
use serde::Deserialize;

use crate::response_view::ResponseView;

#[derive(Deserialize, Default)]
struct Details {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct UsageJson {
    #[serde(default)]
    input_tokens: u64,
    #[serde(default)]
    output_tokens: u64,
    #[serde(default)]
    input_tokens_details: Option<Details>,
    #[serde(default)]
    output_tokens_details: Option<Details>,
}

impl From<UsageJson> for Usage {
    fn from(u: UsageJson) -> Self {
        Usage {
            input: u.input_tokens,
            output: u.output_tokens,
            cached: u.input_tokens_details.and_then(|d| d.cached_tokens).unwrap_or(0),
            cache_write: 0,
            reasoning: u.output_tokens_details.and_then(|d| d.reasoning_tokens).unwrap_or(0),
        }
    }
}

#[derive(Deserialize)]
struct ResponseJson {
    #[serde(default)]
    usage: Option<UsageJson>,
    #[serde(default)]
    output: Vec<serde_json::Value>,
}

fn output_text(items: &[serde_json::Value], out: &mut String) {
    for item in items {
        for part in item.get("content").and_then(serde_json::Value::as_array).into_iter().flatten() {
            if let Some(text) = part.get("text").and_then(serde_json::Value::as_str) {
                out.push_str(text);
            }
        }
        if let Some(arguments) = item.get("arguments").and_then(serde_json::Value::as_str) {
            out.push_str(arguments);
        }
    }
}

/// Reads a whole response object; `None` when it is not one.
pub fn read_response(json: &[u8]) -> Option<ResponseView> {
    let response: ResponseJson = serde_json::from_slice(json).ok()?;
    let mut view =
        ResponseView { usage: response.usage.map(Usage::from), has_choices: true, ..ResponseView::default() };
    output_text(&response.output, &mut view.generated_text);
    Some(view)
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    delta: Option<String>,
    #[serde(default)]
    response: Option<ResponseJson>,
}

/// The events that end a Responses stream.
pub fn is_terminal(kind: &str) -> bool {
    matches!(kind, "response.completed" | "response.incomplete" | "response.failed")
}

/// Reads one stream event: text deltas, and usage from the terminal event. Returns the view and
/// whether the event ended the stream.
pub fn read_event(json: &[u8]) -> Option<(ResponseView, bool)> {
    let event: Event = serde_json::from_slice(json).ok()?;
    let mut view = ResponseView { has_choices: true, ..ResponseView::default() };
    let terminal = is_terminal(&event.kind);
    if terminal {
        view.usage = event.response.and_then(|r| r.usage).map(Usage::from);
    } else if event.kind.ends_with(".delta")
        && let Some(delta) = event.delta
    {
        view.generated_text = delta;
    }
    Some((view, terminal))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_usage_and_text_from_responses_and_events() {
        let view = read_response(br#"{"object":"response","output":[{"type":"message","content":[{"type":"output_text","text":"hi"}]},{"type":"function_call","arguments":"{}"}],"usage":{"input_tokens":10,"input_tokens_details":{"cached_tokens":4},"output_tokens":3,"output_tokens_details":{"reasoning_tokens":1}}}"#).expect("response");
        assert_eq!(view.usage, Some(Usage { input: 10, output: 3, cached: 4, cache_write: 0, reasoning: 1 }));
        assert_eq!(view.generated_text, "hi{}");
        let (delta, done) = read_event(br#"{"type":"response.output_text.delta","delta":"He"}"#).expect("event");
        assert_eq!((delta.generated_text.as_str(), done), ("He", false));
        let (end, done) = read_event(
            br#"{"type":"response.completed","response":{"output":[],"usage":{"input_tokens":5,"output_tokens":2}}}"#,
        )
        .expect("event");
        assert!(done);
        assert_eq!(end.usage, Some(Usage { input: 5, output: 2, ..Usage::default() }));
    }
}
