//! OpenAI chat completions in, Anthropic Messages upstream: the reverse of
//! [`super::messages_to_chat`], so OpenAI-speaking tools can use an Anthropic-speaking
//! deployment.
//!
//! What maps, and how:
//! - `system`/`developer` messages → `system`; user text and `image_url` parts (data URLs →
//!   base64 sources, others → URL sources) → blocks; assistant `content` and `tool_calls` →
//!   `text` and `tool_use` blocks; `role: "tool"` messages → `tool_result` blocks in a user turn.
//!   Consecutive turns of one role are merged, since Anthropic requires alternation.
//!   Assistant `reasoning_content` is not replayed (Anthropic needs a signature moat cannot make).
//! - `max_tokens`/`max_completion_tokens` → `max_tokens` (required there; 4096 when absent),
//!   `temperature`, `top_p`, `stop` → `stop_sequences`, function `tools` → tools with
//!   `input_schema`, `tool_choice` auto/required/none/named → auto/any/none/tool,
//!   `parallel_tool_calls: false` → `disable_parallel_tool_use`, `reasoning_effort` →
//!   `thinking` enabled with a budget (low 1024, medium 4096, high 16384 tokens; kept under
//!   `max_tokens`, and left out when `max_tokens` leaves no room or `temperature` is not 1,
//!   which Anthropic refuses with thinking).
//! - Answers: `text` → `content`, `thinking` → `reasoning_content`, `tool_use` → `tool_calls`;
//!   `stop_reason` end_turn/stop_sequence/max_tokens/tool_use → `finish_reason`
//!   stop/stop/length/tool_calls, with the matched sequence in the choice's `stop_reason` (as
//!   vLLM reports it); usage with cache counts folded into `prompt_tokens`.

use serde_json::{Map, Value, json};

use super::TranslateError;
use super::shared::{assistant_message, budget_for_effort, copy_renamed, tool_use_block};
use crate::sse::encode_frame;

/// `max_tokens` sent when the client gave none: Anthropic requires one.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

fn text_of(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("\n")
        }
        _ => String::new(),
    }
}

fn image_block(part: &Value) -> Option<Value> {
    let url = part.pointer("/image_url/url").and_then(Value::as_str)?;
    if let Some(rest) = url.strip_prefix("data:") {
        let (media_type, data) = rest.split_once(";base64,")?;
        return Some(
            json!({ "type": "image", "source": { "type": "base64", "media_type": media_type, "data": data } }),
        );
    }
    Some(json!({ "type": "image", "source": { "type": "url", "url": url } }))
}

fn user_blocks(content: &Value) -> Vec<Value> {
    match content {
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| match part.get("type").and_then(Value::as_str) {
                Some("text") => Some(json!({ "type": "text", "text": part.get("text").cloned().unwrap_or_default() })),
                Some("image_url") => image_block(part),
                _ => None,
            })
            .collect(),
        other => vec![json!({ "type": "text", "text": other.as_str().unwrap_or_default() })],
    }
}

/// Appends `blocks` as a turn of `role`, merging into the previous turn when it has the same role.
fn push_turn(turns: &mut Vec<Value>, role: &str, blocks: Vec<Value>) {
    if blocks.is_empty() {
        return;
    }
    if let Some(last) = turns.last_mut()
        && last["role"] == role
        && let Some(content) = last["content"].as_array_mut()
    {
        content.extend(blocks);
        return;
    }
    turns.push(json!({ "role": role, "content": blocks }));
}

/// The Messages body for a chat-completions request `body`, sent as `upstream_model`.
pub fn request(body: &Value, upstream_model: &str) -> Result<Value, TranslateError> {
    let object = body.as_object().ok_or_else(|| TranslateError("the request body must be a JSON object".into()))?;
    let messages = object
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| TranslateError("`messages` must be an array".into()))?;
    let mut system = Vec::new();
    let mut turns = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let content = message.get("content").unwrap_or(&Value::Null);
        match message.get("role").and_then(Value::as_str).unwrap_or_default() {
            "system" | "developer" => system.push(text_of(content)),
            "user" => push_turn(&mut turns, "user", user_blocks(content)),
            "assistant" => {
                let mut blocks = Vec::new();
                let text = text_of(content);
                if !text.is_empty() {
                    blocks.push(json!({ "type": "text", "text": text }));
                }
                blocks.extend(
                    message.get("tool_calls").and_then(Value::as_array).into_iter().flatten().map(tool_use_block),
                );
                push_turn(&mut turns, "assistant", blocks);
            }
            "tool" => push_turn(
                &mut turns,
                "user",
                vec![json!({
                    "type": "tool_result",
                    "tool_use_id": message.get("tool_call_id").cloned().unwrap_or(Value::Null),
                    "content": text_of(content),
                })],
            ),
            other => return Err(TranslateError(format!("messages[{i}].role `{other}` is not supported"))),
        }
    }
    let mut out = Map::new();
    out.insert("model".into(), Value::String(upstream_model.to_owned()));
    let max_tokens = object
        .get("max_completion_tokens")
        .or_else(|| object.get("max_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(DEFAULT_MAX_TOKENS);
    out.insert("max_tokens".into(), json!(max_tokens));
    let system: Vec<String> = system.into_iter().filter(|s| !s.is_empty()).collect();
    if !system.is_empty() {
        out.insert("system".into(), Value::String(system.join("\n\n")));
    }
    out.insert("messages".into(), Value::Array(turns));
    copy_renamed(object, &mut out, &[("temperature", "temperature"), ("top_p", "top_p")]);
    match object.get("stop") {
        Some(Value::String(stop)) => {
            out.insert("stop_sequences".into(), json!([stop]));
        }
        Some(Value::Array(stops)) if !stops.is_empty() => {
            out.insert("stop_sequences".into(), Value::Array(stops.clone()));
        }
        _ => {}
    }
    let tools: Vec<Value> = object
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|tool| {
            let function = tool.get("function")?;
            Some(json!({
                "name": function.get("name")?.clone(),
                "description": function.get("description").cloned().unwrap_or(Value::Null),
                "input_schema": function.get("parameters").cloned().unwrap_or_else(|| json!({ "type": "object" })),
            }))
        })
        .collect();
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
    }
    let mut choice = match object.get("tool_choice") {
        Some(Value::String(s)) if s == "required" => Some(json!({ "type": "any" })),
        Some(Value::String(s)) if s == "none" => Some(json!({ "type": "none" })),
        Some(Value::String(s)) if s == "auto" => Some(json!({ "type": "auto" })),
        Some(Value::Object(named)) => {
            named.get("function").and_then(|f| f.get("name")).map(|n| json!({ "type": "tool", "name": n }))
        }
        _ => None,
    };
    if object.get("parallel_tool_calls") == Some(&Value::Bool(false)) {
        let choice = choice.get_or_insert_with(|| json!({ "type": "auto" }));
        choice["disable_parallel_tool_use"] = Value::Bool(true);
    }
    if let Some(choice) = choice {
        out.insert("tool_choice".into(), choice);
    }
    if let Some(thinking) = thinking(object, max_tokens) {
        out.insert("thinking".into(), thinking);
    }
    if object.get("stream") == Some(&Value::Bool(true)) {
        out.insert("stream".into(), Value::Bool(true));
    }
    Ok(Value::Object(out))
}

/// The `thinking` setting for a request's `reasoning_effort`, when Anthropic would accept it:
/// a budget of at least 1024 tokens below `max_tokens`, and no temperature other than 1.
fn thinking(object: &Map<String, Value>, max_tokens: u64) -> Option<Value> {
    let budget = budget_for_effort(object.get("reasoning_effort")?.as_str()?)?;
    let temperature = object.get("temperature").and_then(Value::as_f64);
    if temperature.is_some_and(|t| (t - 1.0).abs() > f64::EPSILON) {
        return None;
    }
    let budget = budget.min(max_tokens.saturating_sub(1));
    (budget >= 1024).then(|| json!({ "type": "enabled", "budget_tokens": budget }))
}

fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") => "length",
        Some("tool_use") => "tool_calls",
        _ => "stop",
    }
}

/// OpenAI usage from Anthropic usage: cache reads and writes are part of `prompt_tokens`.
fn usage_json(usage: &Value) -> Value {
    let get = |key: &str| usage.get(key).and_then(Value::as_u64).unwrap_or(0);
    let cached = get("cache_read_input_tokens");
    let prompt = get("input_tokens") + cached + get("cache_creation_input_tokens");
    let completion = get("output_tokens");
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": { "cached_tokens": cached },
    })
}

/// The chat completion for a Messages `response`; `model` is the client's name and `created`
/// the Unix time to stamp it with.
pub fn response(response: &Value, model: &str, created: u64) -> Value {
    let blocks = response.get("content").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let message = assistant_message(blocks, true);
    let id = response.get("id").and_then(Value::as_str).unwrap_or("translated");
    let mut choice = json!({
        "index": 0,
        "message": message,
        "finish_reason": finish_reason(response.get("stop_reason").and_then(Value::as_str)),
    });
    if let Some(sequence) = response.get("stop_sequence").filter(|s| s.is_string()) {
        choice["stop_reason"] = sequence.clone();
    }
    json!({
        "id": format!("chatcmpl-{id}"),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": usage_json(response.get("usage").unwrap_or(&Value::Null)),
    })
}

/// The stream state machine: Anthropic events in, OpenAI chunks out (role first, then content,
/// reasoning and tool-call deltas with their `index`, a finish chunk, the usage chunk when the
/// client asked for it, and `[DONE]`).
#[derive(Debug)]
pub struct StreamTranslator {
    model: String,
    created: u64,
    include_usage: bool,
    id: String,
    usage: Value,
    /// Anthropic block index → OpenAI tool-call index, for tool blocks.
    tools: Vec<(u64, u64)>,
    finish_reason: Option<&'static str>,
    stop_sequence: Option<Value>,
    finished: bool,
}

impl StreamTranslator {
    /// A translator for one stream; `include_usage` is whether the client asked for the usage
    /// chunk.
    pub fn new(model: &str, created: u64, include_usage: bool) -> Self {
        StreamTranslator {
            model: model.to_owned(),
            created,
            include_usage,
            id: "chatcmpl-translated".into(),
            usage: json!({}),
            tools: Vec::new(),
            finish_reason: None,
            stop_sequence: None,
            finished: false,
        }
    }

    fn chunk(&self, out: &mut Vec<u8>, delta: Value, finish_reason: Option<&str>) {
        let mut choice = json!({ "index": 0, "delta": delta, "finish_reason": finish_reason });
        if let (Some(_), Some(sequence)) = (finish_reason, &self.stop_sequence) {
            choice["stop_reason"] = sequence.clone();
        }
        let chunk = json!({
            "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
            "choices": [choice],
        });
        out.extend_from_slice(&encode_frame(None, &chunk.to_string()));
    }

    /// Merges reported counts; Anthropic reports input in `message_start`, output after.
    fn merge_usage(&mut self, usage: Option<&Value>) {
        for (key, value) in usage.and_then(Value::as_object).into_iter().flatten() {
            if value.as_u64().is_some() {
                self.usage[key] = value.clone();
            }
        }
    }

    /// Translates one upstream event's `data` payload; returns the client bytes to send.
    pub fn push(&mut self, data: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let Ok(event) = serde_json::from_str::<Value>(data) else {
            return out;
        };
        if self.finished {
            return out;
        }
        match event.get("type").and_then(Value::as_str).unwrap_or_default() {
            "message_start" => {
                if let Some(id) = event.pointer("/message/id").and_then(Value::as_str) {
                    self.id = format!("chatcmpl-{id}");
                }
                self.merge_usage(event.pointer("/message/usage"));
                self.chunk(&mut out, json!({ "role": "assistant", "content": "" }), None);
            }
            "content_block_start" => {
                let block = event.get("content_block").unwrap_or(&Value::Null);
                if block.get("type").and_then(Value::as_str) == Some("tool_use") {
                    let index = self.tools.len() as u64;
                    self.tools.push((event.get("index").and_then(Value::as_u64).unwrap_or(0), index));
                    let call = json!({ "index": index, "id": block.get("id"), "type": "function",
                        "function": { "name": block.get("name"), "arguments": "" } });
                    self.chunk(&mut out, json!({ "tool_calls": [call] }), None);
                }
            }
            "content_block_delta" => {
                let delta = event.get("delta").unwrap_or(&Value::Null);
                let piece = |key: &str| delta.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => self.chunk(&mut out, json!({ "content": piece("text") }), None),
                    Some("thinking_delta") => {
                        self.chunk(&mut out, json!({ "reasoning_content": piece("thinking") }), None);
                    }
                    Some("input_json_delta") => {
                        let block = event.get("index").and_then(Value::as_u64).unwrap_or(0);
                        if let Some((_, index)) = self.tools.iter().find(|(b, _)| *b == block) {
                            let call = json!({ "index": index, "function": { "arguments": piece("partial_json") } });
                            self.chunk(&mut out, json!({ "tool_calls": [call] }), None);
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                self.merge_usage(event.get("usage"));
                self.finish_reason = Some(finish_reason(event.pointer("/delta/stop_reason").and_then(Value::as_str)));
                self.stop_sequence = event.pointer("/delta/stop_sequence").filter(|s| s.is_string()).cloned();
            }
            "message_stop" => self.finish(&mut out),
            "error" => {
                let message = event.pointer("/error/message").cloned().unwrap_or_else(|| json!("upstream error"));
                let error = json!({ "error": { "message": message, "type": "server_error", "param": null, "code": "upstream_error" } });
                out.extend_from_slice(&encode_frame(None, &error.to_string()));
                self.finished = true;
            }
            _ => {}
        }
        out
    }

    /// Ends the stream: the finish chunk, the usage chunk if asked for, and `[DONE]`. Called at
    /// `message_stop`, or when the upstream stream ends without one.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.chunk(out, json!({}), Some(self.finish_reason.unwrap_or("stop")));
        if self.include_usage {
            let chunk = json!({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [], "usage": usage_json(&self.usage),
            });
            out.extend_from_slice(&encode_frame(None, &chunk.to_string()));
        }
        out.extend_from_slice(&encode_frame(None, crate::openai::STREAM_DONE));
    }

    /// Whether `[DONE]` was sent.
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::fixtures;
    use proptest::prelude::*;

    fn upstream_stream(fixture: &Value) -> String {
        fixture["anthropic_frames"]
            .as_array()
            .expect("frames")
            .iter()
            .map(|pair| {
                format!("event: {}\ndata: {}\n\n", pair[0].as_str().expect("event"), pair[1].as_str().expect("data"))
            })
            .collect()
    }

    /// Feeds the upstream bytes in `pieces` through the decoder and translator.
    fn translate_stream(fixture: &Value, pieces: &[&[u8]]) -> Vec<u8> {
        let mut translator = StreamTranslator::new(
            fixture["model"].as_str().expect("model"),
            fixture["created"].as_u64().expect("created"),
            fixture["include_usage"].as_bool().expect("include_usage"),
        );
        let out = fixtures::feed(pieces, |data| translator.push(data));
        assert!(translator.is_finished());
        out
    }

    #[test]
    fn recorded_fixtures_translate_exactly() {
        let all = fixtures::load("chat_to_messages");
        assert!(all.len() >= 3);
        for (name, fixture) in all {
            match fixture["kind"].as_str() {
                Some("request") => {
                    let got =
                        request(&fixture["openai"], fixture["upstream_model"].as_str().expect("model")).expect("ok");
                    assert_eq!(got, fixture["anthropic"], "{name}");
                }
                Some("response") => {
                    let got = response(
                        &fixture["anthropic"],
                        fixture["model"].as_str().expect("model"),
                        fixture["created"].as_u64().expect("created"),
                    );
                    assert_eq!(got, fixture["openai"], "{name}");
                }
                Some("stream") => {
                    let upstream = upstream_stream(&fixture);
                    let got: Vec<Value> = fixtures::frames(&translate_stream(&fixture, &[upstream.as_bytes()]))
                        .into_iter()
                        .map(|(_, v)| v)
                        .collect();
                    assert_eq!(Value::Array(got), fixture["openai_chunks"], "{name}");
                }
                other => panic!("{name}: unknown kind {other:?}"),
            }
        }
    }

    #[test]
    fn a_missing_max_tokens_gets_the_default_and_no_usage_chunk_unless_asked() {
        let body = request(&json!({ "messages": [{ "role": "user", "content": "hi" }] }), "u").expect("ok");
        assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS);
        let mut translator = StreamTranslator::new("m", 0, false);
        let mut out = translator.push(r#"{"type":"message_start","message":{"id":"x","usage":{"input_tokens":3}}}"#);
        translator.finish(&mut out);
        let got = fixtures::frames(&out);
        assert!(got.iter().all(|(_, v)| v.get("usage").is_none()), "{got:?}");
        assert_eq!(got.last().map(|(_, v)| v.clone()), Some(Value::String("[DONE]".into())));
    }

    proptest! {
        /// However the network splits the upstream stream, the client receives the same chunks.
        #[test]
        fn translation_survives_any_chunking(cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10)) {
            let fixture = fixtures::load("chat_to_messages").into_iter().find(|(_, f)| f["kind"] == "stream").expect("stream").1;
            let upstream = upstream_stream(&fixture);
            let whole = translate_stream(&fixture, &[upstream.as_bytes()]);
            let pieces = fixtures::split(upstream.as_bytes(), &cuts);
            prop_assert_eq!(translate_stream(&fixture, &pieces), whole);
        }
    }
}
