//! Anthropic Messages in, OpenAI chat completions upstream.
//!
//! What maps, and how:
//! - `system` (string or blocks, and `role: "system"` messages inside `messages`) → system
//!   messages; text, image (base64 or URL), `tool_use` and `tool_result` blocks → chat content
//!   parts, `tool_calls` and `role: "tool"` messages (a `tool_result` with `is_error` is
//!   prefixed `Error: `); assistant `thinking` blocks → `reasoning_content` (signatures are
//!   moat's to drop: an OpenAI upstream cannot check them).
//! - `tools` → function tools (server tools with a `type` are dropped), `tool_choice` auto / any /
//!   tool / none → auto / required / named / none, `disable_parallel_tool_use` →
//!   `parallel_tool_calls: false`, `stop_sequences` → `stop`, `max_tokens`, `temperature`,
//!   `top_p`, `top_k` as they are. `thinking` → `reasoning_effort`: an `enabled` budget under
//!   4096 tokens is `low`, under 16384 `medium`, else `high`; `adaptive` takes
//!   `output_config.effort` (`max` → `high`), `medium` without one; `disabled` sends nothing.
//!   `metadata`, `cache_control` and `context_management` have no chat equivalent and are
//!   dropped on purpose.
//! - Responses: `reasoning_content`/`reasoning` → a `thinking` block, `content` → a `text`
//!   block, `tool_calls` → `tool_use` blocks; `finish_reason` stop / length / tool_calls →
//!   `stop_reason` end_turn / max_tokens / tool_use, and `stop_sequence` (naming it) when the
//!   upstream says one of the client's stop sequences ended the answer (vLLM's `stop_reason`,
//!   SGLang's `matched_stop`); usage with cache reads split out of input.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::TranslateError;
use super::shared::{assistant_message, copy_renamed, effort_for_budget, matched_stop, named_stop, tool_use_block};
use crate::sse::encode_frame;

fn text_of_blocks(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn image_part(block: &Value) -> Option<Value> {
    let source = block.get("source")?;
    let url = match source.get("type").and_then(Value::as_str)? {
        "base64" => format!(
            "data:{};base64,{}",
            source.get("media_type").and_then(Value::as_str).unwrap_or("image/png"),
            source.get("data").and_then(Value::as_str)?
        ),
        "url" => source.get("url").and_then(Value::as_str)?.to_owned(),
        _ => return None,
    };
    Some(json!({ "type": "image_url", "image_url": { "url": url } }))
}

/// The chat-completions body for a Messages request `body`, sent as `upstream_model`.
pub fn request(body: &Value, upstream_model: &str) -> Result<Value, TranslateError> {
    let object = body.as_object().ok_or_else(|| TranslateError("the request body must be a JSON object".into()))?;
    let mut messages = Vec::new();
    if let Some(system) = object.get("system") {
        let text = text_of_blocks(system);
        if !text.is_empty() {
            messages.push(json!({ "role": "system", "content": text }));
        }
    }
    let turns = object
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| TranslateError("`messages` must be an array".into()))?;
    for (i, turn) in turns.iter().enumerate() {
        let role = turn.get("role").and_then(Value::as_str).unwrap_or_default();
        let content = turn.get("content").unwrap_or(&Value::Null);
        match role {
            "system" => messages.push(json!({ "role": "system", "content": text_of_blocks(content) })),
            "user" => user_turn(content, &mut messages),
            "assistant" => messages.push(assistant_turn(content)),
            other => {
                return Err(TranslateError(format!("messages[{i}].role `{other}` is not user, assistant or system")));
            }
        }
    }

    let mut out = Map::new();
    out.insert("model".into(), Value::String(upstream_model.to_owned()));
    out.insert("messages".into(), Value::Array(messages));
    copy_renamed(
        object,
        &mut out,
        &[
            ("max_tokens", "max_tokens"),
            ("temperature", "temperature"),
            ("top_p", "top_p"),
            ("top_k", "top_k"),
            ("stop_sequences", "stop"),
        ],
    );
    if let Some(tools) = object.get("tools").and_then(Value::as_array) {
        let functions: Vec<Value> = tools
            .iter()
            .filter(|t| t.get("type").is_none_or(|k| k == "custom"))
            .filter_map(|tool| {
                let mut parameters = tool.get("input_schema").cloned().unwrap_or_else(|| json!({ "type": "object" }));
                if let Some(schema) = parameters.as_object_mut() {
                    schema.remove("$schema");
                }
                Some(json!({ "type": "function", "function": {
                    "name": tool.get("name")?.clone(),
                    "description": tool.get("description").cloned().unwrap_or(Value::Null),
                    "parameters": parameters,
                }}))
            })
            .collect();
        if !functions.is_empty() {
            out.insert("tools".into(), Value::Array(functions));
        }
    }
    if let Some(choice) = object.get("tool_choice") {
        let mapped = match choice.get("type").and_then(Value::as_str) {
            Some("auto") => Some(json!("auto")),
            Some("any") => Some(json!("required")),
            Some("none") => Some(json!("none")),
            Some("tool") => choice.get("name").map(|name| json!({ "type": "function", "function": { "name": name } })),
            _ => None,
        };
        if let Some(mapped) = mapped {
            out.insert("tool_choice".into(), mapped);
        }
        if choice.get("disable_parallel_tool_use") == Some(&Value::Bool(true)) {
            out.insert("parallel_tool_calls".into(), Value::Bool(false));
        }
    }
    if let Some(effort) = reasoning_effort(object) {
        out.insert("reasoning_effort".into(), Value::String(effort.to_owned()));
    }
    if object.get("stream") == Some(&Value::Bool(true)) {
        out.insert("stream".into(), Value::Bool(true));
        out.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    Ok(Value::Object(out))
}

/// The `reasoning_effort` a request's `thinking` asks for, if any.
fn reasoning_effort(object: &Map<String, Value>) -> Option<&'static str> {
    let thinking = object.get("thinking")?;
    match thinking.get("type").and_then(Value::as_str)? {
        "enabled" => Some(effort_for_budget(thinking.get("budget_tokens").and_then(Value::as_u64).unwrap_or(0))),
        "adaptive" => Some(match object.get("output_config").and_then(|c| c.get("effort")).and_then(Value::as_str) {
            Some("low") => "low",
            Some("high" | "max") => "high",
            _ => "medium",
        }),
        _ => None,
    }
}

/// A user turn: tool results become `tool` messages (they must follow the assistant's calls),
/// the rest one user message.
fn user_turn(content: &Value, messages: &mut Vec<Value>) {
    let Value::Array(blocks) = content else {
        messages.push(json!({ "role": "user", "content": content.as_str().unwrap_or_default() }));
        return;
    };
    let mut parts = Vec::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("tool_result") => {
                let mut text = text_of_blocks(block.get("content").unwrap_or(&Value::Null));
                if block.get("is_error") == Some(&Value::Bool(true)) {
                    text = format!("Error: {text}");
                }
                messages.push(json!({
                    "role": "tool",
                    "tool_call_id": block.get("tool_use_id").cloned().unwrap_or(Value::Null),
                    "content": text,
                }));
            }
            Some("text") => {
                parts.push(json!({ "type": "text", "text": block.get("text").cloned().unwrap_or_default() }))
            }
            Some("image") => parts.extend(image_part(block)),
            _ => {}
        }
    }
    if parts.is_empty() {
        return;
    }
    let only_text = parts.iter().all(|p| p["type"] == "text");
    let content = if only_text {
        Value::String(parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n"))
    } else {
        Value::Array(parts)
    };
    messages.push(json!({ "role": "user", "content": content }));
}

fn assistant_turn(content: &Value) -> Value {
    match content {
        Value::Array(blocks) => assistant_message(blocks, false),
        other => json!({ "role": "assistant", "content": other.as_str().unwrap_or_default() }),
    }
}

fn stop_reason(finish_reason: Option<&str>, stop_sequence: Option<&str>) -> &'static str {
    match finish_reason {
        Some("length") => "max_tokens",
        Some("tool_calls" | "function_call") => "tool_use",
        _ if stop_sequence.is_some() => "stop_sequence",
        _ => "end_turn",
    }
}

/// Anthropic usage from OpenAI usage: cache reads are reported beside input, not inside it.
fn usage_json(usage: Option<&Value>) -> Value {
    let get = |v: Option<&Value>| v.and_then(Value::as_u64).unwrap_or(0);
    let prompt = get(usage.and_then(|u| u.get("prompt_tokens")));
    let cached = get(usage.and_then(|u| u.pointer("/prompt_tokens_details/cached_tokens")));
    json!({
        "input_tokens": prompt.saturating_sub(cached),
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
        "output_tokens": get(usage.and_then(|u| u.get("completion_tokens"))),
    })
}

/// The Messages response for a chat-completions `response`; `model` is the client's name and
/// `client_stops` its stop sequences.
pub fn response(response: &Value, model: &str, client_stops: &[String]) -> Value {
    let choice = response.pointer("/choices/0");
    let message = choice.and_then(|c| c.get("message"));
    let mut content = Vec::new();
    if let Some(reasoning) = message
        .and_then(|m| m.get("reasoning_content").or_else(|| m.get("reasoning")))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        content.push(json!({ "type": "thinking", "thinking": reasoning, "signature": "" }));
    }
    if let Some(text) = message.and_then(|m| m.get("content")).and_then(Value::as_str).filter(|s| !s.is_empty()) {
        content.push(json!({ "type": "text", "text": text }));
    }
    for call in message.and_then(|m| m.get("tool_calls")).and_then(Value::as_array).into_iter().flatten() {
        content.push(tool_use_block(call));
    }
    let id = response.get("id").and_then(Value::as_str).unwrap_or("translated");
    let stop_sequence = matched_stop(choice, client_stops);
    let finish_reason = choice.and_then(|c| c.get("finish_reason")).and_then(Value::as_str);
    json!({
        "id": format!("msg_{id}"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(finish_reason, stop_sequence.as_deref()),
        "stop_sequence": stop_sequence,
        "usage": usage_json(response.get("usage")),
    })
}

/// The content block being streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Text(usize),
    Thinking(usize),
    Tool(usize),
}

/// The stream state machine: OpenAI chat chunks in, Anthropic events out, in the order
/// clients parse them: `message_start`, `ping`, per block `content_block_start` →
/// `content_block_delta`… → `content_block_stop`, then `message_delta` (stop reason and final
/// usage) and `message_stop`.
#[derive(Debug)]
pub struct StreamTranslator {
    model: String,
    input_tokens_hint: u64,
    started: bool,
    finished: bool,
    open: Option<Block>,
    next_index: usize,
    /// OpenAI tool-call index → Anthropic block index.
    tools: Vec<(u64, usize)>,
    finish_reason: Option<String>,
    client_stops: Vec<String>,
    stop_sequence: Option<String>,
    usage: Option<Value>,
}

impl StreamTranslator {
    /// A translator for one stream. `input_tokens_hint` is the prompt's token count, counted
    /// before the upstream reports it, for `message_start`.
    pub fn new(model: &str, input_tokens_hint: u64) -> Self {
        StreamTranslator {
            model: model.to_owned(),
            input_tokens_hint,
            started: false,
            finished: false,
            open: None,
            next_index: 0,
            tools: Vec::new(),
            finish_reason: None,
            client_stops: Vec::new(),
            stop_sequence: None,
            usage: None,
        }
    }

    /// The client's stop sequences, so that one ending the answer is reported by name.
    pub fn with_stop_sequences(mut self, stops: Vec<String>) -> Self {
        self.client_stops = stops;
        self
    }

    fn emit(out: &mut Vec<u8>, event: &str, data: Value) {
        out.extend_from_slice(&encode_frame(Some(event), &data.to_string()));
    }

    fn start(&mut self, id: &str, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        Self::emit(
            out,
            "message_start",
            json!({ "type": "message_start", "message": {
                "id": format!("msg_{id}"), "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": { "input_tokens": self.input_tokens_hint, "output_tokens": 0 },
            }}),
        );
        Self::emit(out, "ping", json!({ "type": "ping" }));
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if let Some(block) = self.open.take() {
            let index = match block {
                Block::Text(i) | Block::Thinking(i) | Block::Tool(i) => i,
            };
            if let Block::Thinking(_) = block {
                Self::emit(
                    out,
                    "content_block_delta",
                    json!({ "type": "content_block_delta", "index": index, "delta": { "type": "signature_delta", "signature": "" } }),
                );
            }
            Self::emit(out, "content_block_stop", json!({ "type": "content_block_stop", "index": index }));
        }
    }

    fn open_block(&mut self, out: &mut Vec<u8>, block: impl Fn(usize) -> Block, content_block: Value) -> usize {
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some(block(index));
        Self::emit(
            out,
            "content_block_start",
            json!({ "type": "content_block_start", "index": index, "content_block": content_block }),
        );
        index
    }

    /// Translates one upstream frame's `data` payload; returns the client bytes to send.
    pub fn push(&mut self, data: &str) -> Vec<u8> {
        let mut out = Vec::new();
        if self.finished {
            return out;
        }
        if data == crate::openai::STREAM_DONE {
            self.finish(&mut out);
            return out;
        }
        // The usual chunk reads into borrowed fields; any other shape is read as a `Value`.
        if let Ok(chunk) = serde_json::from_str::<ChunkIn<'_>>(data) {
            let choice = chunk.choices.into_iter().next();
            let view = ChunkView {
                id: chunk.id.as_deref(),
                usage: chunk.usage,
                choice: choice.as_ref().map(|choice| {
                    let delta = choice.delta.as_ref();
                    ChoiceView {
                        reasoning: delta
                            .and_then(|d| d.reasoning_content.as_deref().or(d.reasoning.as_deref()))
                            .unwrap_or_default(),
                        text: delta.and_then(|d| d.content.as_deref()).unwrap_or_default(),
                        tool_calls: delta.and_then(|d| d.tool_calls.as_deref()).unwrap_or_default(),
                        finish_reason: choice.finish_reason.as_deref(),
                        matched_stop: [&choice.stop_reason, &choice.matched_stop]
                            .into_iter()
                            .find_map(|v| v.as_ref().and_then(Value::as_str)),
                    }
                }),
            };
            self.apply(view, &mut out);
            return out;
        }
        let Ok(chunk) = serde_json::from_str::<Value>(data) else {
            return out;
        };
        let choice = chunk.pointer("/choices/0");
        let delta = choice.and_then(|c| c.get("delta"));
        let field = |name: &str| delta.and_then(|d| d.get(name)).and_then(Value::as_str);
        let view = ChunkView {
            id: chunk.get("id").and_then(Value::as_str),
            usage: chunk.get("usage").filter(|u| !u.is_null()).cloned(),
            choice: choice.map(|choice| ChoiceView {
                reasoning: field("reasoning_content").or_else(|| field("reasoning")).unwrap_or_default(),
                text: field("content").unwrap_or_default(),
                tool_calls: delta
                    .and_then(|d| d.get("tool_calls"))
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default(),
                finish_reason: choice.get("finish_reason").and_then(Value::as_str),
                matched_stop: ["stop_reason", "matched_stop"]
                    .into_iter()
                    .find_map(|name| choice.get(name).and_then(Value::as_str)),
            }),
        };
        self.apply(view, &mut out);
        out
    }

    /// One chunk's worth of events.
    fn apply(&mut self, chunk: ChunkView<'_>, out: &mut Vec<u8>) {
        self.start(chunk.id.unwrap_or("translated"), out);
        if let Some(usage) = chunk.usage {
            self.usage = Some(usage);
        }
        let Some(choice) = chunk.choice else {
            return;
        };
        if !choice.reasoning.is_empty() {
            let index = match self.open {
                Some(Block::Thinking(i)) => i,
                _ => self.open_block(out, Block::Thinking, json!({ "type": "thinking", "thinking": "" })),
            };
            emit_delta(out, index, ThinkingDelta { thinking: choice.reasoning, kind: "thinking_delta" });
        }
        if !choice.text.is_empty() {
            let index = match self.open {
                Some(Block::Text(i)) => i,
                _ => self.open_block(out, Block::Text, json!({ "type": "text", "text": "" })),
            };
            emit_delta(out, index, TextDelta { text: choice.text, kind: "text_delta" });
        }
        for call in choice.tool_calls {
            let openai_index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            let known = self.tools.iter().find(|(i, _)| *i == openai_index).map(|(_, b)| *b);
            let index = match known {
                Some(index) => index,
                None => {
                    let block = json!({
                        "type": "tool_use",
                        "id": call.get("id").cloned().unwrap_or_else(|| json!(format!("toolu_{openai_index}"))),
                        "name": call.pointer("/function/name").cloned().unwrap_or(Value::Null),
                        "input": {},
                    });
                    let index = self.open_block(out, Block::Tool, block);
                    self.tools.push((openai_index, index));
                    index
                }
            };
            let arguments = call.pointer("/function/arguments").and_then(Value::as_str).unwrap_or_default();
            if !arguments.is_empty() {
                emit_delta(out, index, InputJsonDelta { partial_json: arguments, kind: "input_json_delta" });
            }
        }
        if let Some(reason) = choice.finish_reason {
            self.finish_reason = Some(reason.to_owned());
            self.stop_sequence = named_stop(Some(reason), choice.matched_stop, &self.client_stops);
        }
    }

    /// Ends the message: closes the open block and sends `message_delta` and `message_stop`.
    /// Called at `[DONE]`, or at the end of the upstream stream if it never said `[DONE]`.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        self.start("translated", out);
        self.close(out);
        self.finished = true;
        let mut usage = usage_json(self.usage.as_ref());
        if self.usage.is_none() {
            usage["input_tokens"] = json!(self.input_tokens_hint);
        }
        Self::emit(
            out,
            "message_delta",
            json!({
                "type": "message_delta",
                "delta": {
                    "stop_reason": stop_reason(self.finish_reason.as_deref(), self.stop_sequence.as_deref()),
                    "stop_sequence": self.stop_sequence,
                },
                "usage": usage,
            }),
        );
        Self::emit(out, "message_stop", json!({ "type": "message_stop" }));
    }

    /// Whether `message_stop` was sent.
    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

/// A chat chunk as the stream translator reads it, borrowed from the frame where it can be.
#[derive(Deserialize)]
struct ChunkIn<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: Option<Value>,
    #[serde(borrow, default)]
    choices: Vec<ChoiceIn<'a>>,
}

#[derive(Deserialize)]
struct ChoiceIn<'a> {
    #[serde(borrow, default)]
    delta: Option<DeltaIn<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
    /// vLLM's matched stop string (or the token id that stopped it).
    #[serde(default)]
    stop_reason: Option<Value>,
    /// SGLang's.
    #[serde(default)]
    matched_stop: Option<Value>,
}

#[derive(Deserialize)]
struct DeltaIn<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning: Option<Cow<'a, str>>,
    #[serde(default)]
    tool_calls: Option<Vec<Value>>,
}

/// What one chunk says, whichever way it was read.
struct ChunkView<'a> {
    id: Option<&'a str>,
    usage: Option<Value>,
    choice: Option<ChoiceView<'a>>,
}

struct ChoiceView<'a> {
    reasoning: &'a str,
    text: &'a str,
    tool_calls: &'a [Value],
    finish_reason: Option<&'a str>,
    /// The stop sequence the server says ended the answer.
    matched_stop: Option<&'a str>,
}

/// A `content_block_delta` event, written without building a `Value` (fields in the order
/// `json!` would write them).
#[derive(Serialize)]
struct BlockDelta<D> {
    delta: D,
    index: usize,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct TextDelta<'a> {
    text: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct ThinkingDelta<'a> {
    thinking: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct InputJsonDelta<'a> {
    partial_json: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

/// Appends a `content_block_delta` frame: the per-token event, so it skips `Value` and an
/// intermediate string.
fn emit_delta(out: &mut Vec<u8>, index: usize, delta: impl Serialize) {
    out.extend_from_slice(b"event: content_block_delta\ndata: ");
    let event = BlockDelta { delta, index, kind: "content_block_delta" };
    if serde_json::to_writer(&mut *out, &event).is_err() {
        // Serialising borrowed strings and integers cannot fail; an empty object keeps the
        // frame well formed if it ever did.
        out.extend_from_slice(b"{}");
    }
    out.extend_from_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn fixtures() -> Vec<(String, Value)> {
        crate::translate::fixtures::load("messages_to_chat")
    }

    /// Decodes translated bytes back into (event, data) pairs.
    fn events(bytes: &[u8]) -> Vec<(String, Value)> {
        crate::translate::fixtures::frames(bytes)
    }

    fn translate_stream(fixture: &Value) -> Vec<u8> {
        let stops: Vec<String> = serde_json::from_value(fixture["stop_sequences"].clone()).unwrap_or_default();
        let mut translator = StreamTranslator::new(
            fixture["model"].as_str().expect("model"),
            fixture["input_tokens_hint"].as_u64().expect("hint"),
        )
        .with_stop_sequences(stops);
        let mut out = Vec::new();
        for frame in fixture["openai_frames"].as_array().expect("frames") {
            out.extend(translator.push(frame.as_str().expect("frame")));
        }
        assert!(translator.is_finished());
        out
    }

    #[test]
    fn recorded_fixtures_translate_exactly() {
        let all = fixtures();
        assert!(all.len() >= 3, "fixtures found: {}", all.len());
        for (name, fixture) in all {
            match fixture["kind"].as_str() {
                Some("request") => {
                    let got = request(&fixture["anthropic"], fixture["upstream_model"].as_str().expect("model"))
                        .expect("translates");
                    assert_eq!(got, fixture["openai"], "{name}");
                }
                Some("response") => {
                    let stops: Vec<String> =
                        serde_json::from_value(fixture["stop_sequences"].clone()).unwrap_or_default();
                    let got = response(&fixture["openai"], fixture["model"].as_str().expect("model"), &stops);
                    assert_eq!(got, fixture["anthropic"], "{name}");
                }
                Some("stream") => {
                    let got = events(&translate_stream(&fixture));
                    let expected: Vec<(String, Value)> = fixture["anthropic_events"]
                        .as_array()
                        .expect("events")
                        .iter()
                        .map(|pair| (pair[0].as_str().expect("name").to_owned(), pair[1].clone()))
                        .collect();
                    assert_eq!(got, expected, "{name}");
                }
                other => panic!("{name}: unknown kind {other:?}"),
            }
        }
    }

    #[test]
    fn a_stream_without_done_still_ends_the_message() {
        let mut translator = StreamTranslator::new("m", 7);
        let mut out = translator.push(r#"{"id":"x","choices":[{"index":0,"delta":{"content":"hi"}}]}"#);
        translator.finish(&mut out);
        let names: Vec<String> = events(&out).into_iter().map(|(e, _)| e).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "ping",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let last_usage = &events(&out)[5].1["usage"];
        assert_eq!(last_usage["input_tokens"], 7, "without upstream usage the counted input stands");
    }

    #[test]
    fn chunks_of_either_shape_give_the_same_events() {
        let stream = |frames: &[&str]| {
            let mut translator = StreamTranslator::new("m", 1).with_stop_sequences(vec!["END".into()]);
            let mut out: Vec<u8> = frames.iter().flat_map(|f| translator.push(f)).collect();
            translator.finish(&mut out);
            events(&out)
        };
        // The usual shape, read into borrowed fields: vLLM's reasoning field, then text, then
        // the stop sequence that ended it.
        let usual = stream(&[
            r#"{"id":"a","choices":[{"delta":{"reasoning_content":null,"reasoning":"think"}}]}"#,
            r#"{"id":"a","choices":[{"delta":{"content":"hi"}}]}"#,
            r#"{"id":"a","choices":[{"delta":{},"finish_reason":"stop","stop_reason":"END"}]}"#,
        ]);
        // The same with fields of unexpected types, which only a `Value` reads.
        let odd = stream(&[
            r#"{"id":"a","x":1,"choices":[{"delta":{"reasoning_content":null,"reasoning":"think","content":[]}}]}"#,
            r#"{"id":"a","choices":[{"delta":{"content":"hi","tool_calls":7}}]}"#,
            r#"{"id":"a","choices":[{"delta":{},"finish_reason":"stop","stop_reason":"END","matched_stop":3}]}"#,
        ]);
        assert_eq!(usual, odd);
        let names: Vec<&str> = usual.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names.iter().filter(|n| **n == "content_block_delta").count(), 3, "thinking, signature, text");
        assert_eq!(usual[3].1["delta"], json!({ "type": "thinking_delta", "thinking": "think" }));
        let last = &usual[usual.len() - 2].1;
        assert_eq!(last["delta"], json!({ "stop_reason": "stop_sequence", "stop_sequence": "END" }));
    }

    #[test]
    fn bad_requests_are_refused_with_a_reason() {
        assert_eq!(request(&json!({ "model": "m" }), "u"), Err(TranslateError("`messages` must be an array".into())));
        assert!(request(&json!({ "messages": [{ "role": "robot", "content": "x" }] }), "u").is_err());
    }

    proptest! {
        /// However the network splits the upstream stream, the client receives the same events.
        #[test]
        fn translation_survives_any_chunking(cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10)) {
            let fixture = fixtures().into_iter().find(|(_, f)| f["kind"] == "stream").expect("a stream fixture").1;
            let upstream: String = fixture["openai_frames"].as_array().expect("frames").iter()
                .map(|f| format!("data: {}\n\n", f.as_str().expect("frame"))).collect();
            let mut translator = StreamTranslator::new(fixture["model"].as_str().expect("model"), fixture["input_tokens_hint"].as_u64().expect("hint"));
            let pieces = crate::translate::fixtures::split(upstream.as_bytes(), &cuts);
            let out = crate::translate::fixtures::feed(&pieces, |data| translator.push(data));
            prop_assert_eq!(out, translate_stream(&fixture));
        }
    }
}
