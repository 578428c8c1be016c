//! The OpenAI Responses API in (what Codex CLI and OpenCode's `openai` provider speak), chat
//! completions upstream.
//!
//! What maps, and how:
//! - `instructions` → a system message; `input` as a string → a user message; input items:
//!   messages (`input_text`, `output_text`, `input_image` parts; `developer` → system),
//!   `function_call` → assistant `tool_calls` (consecutive calls merge into one message),
//!   `function_call_output` → `tool` messages; `reasoning` items are not replayed.
//! - function `tools` (flattened in the Responses API) → chat function tools (other tool types
//!   are dropped); `tool_choice`; `max_output_tokens` → `max_tokens`; `temperature`, `top_p`,
//!   `parallel_tool_calls`; `reasoning.effort` → `reasoning_effort`. `store`,
//!   `prompt_cache_key`, `reasoning.summary`, `text`, `include` and `metadata` have no chat
//!   equivalent and are dropped on purpose.
//! - Answers: reasoning → a `reasoning` item with a summary, text → a `message` item with
//!   `output_text`, tool calls → `function_call` items; `finish_reason` length →
//!   `status: "incomplete"`; usage as `input_tokens`/`output_tokens` with details.
//! - Streams: `response.created`, `response.in_progress`, per item `response.output_item.added`
//!   → deltas (`response.output_text.delta`, `response.function_call_arguments.delta`,
//!   `response.reasoning_summary_text.delta`) → the matching `.done` events →
//!   `response.output_item.done`, then `response.completed` carrying the whole response and its
//!   usage. Every event has its `event:` line and a `sequence_number`.

use serde_json::{Map, Value, json};

use super::TranslateError;
use super::shared::copy_renamed;
use crate::sse::encode_frame;

fn content_parts(content: &Value) -> Value {
    match content {
        Value::Array(parts) => {
            let converted: Vec<Value> = parts
                .iter()
                .filter_map(|part| match part.get("type").and_then(Value::as_str) {
                    Some("input_text" | "output_text" | "text") => {
                        Some(json!({ "type": "text", "text": part.get("text").cloned().unwrap_or_default() }))
                    }
                    Some("input_image") => {
                        let url = part.get("image_url").and_then(Value::as_str)?;
                        Some(json!({ "type": "image_url", "image_url": { "url": url } }))
                    }
                    _ => None,
                })
                .collect();
            if converted.iter().all(|p| p["type"] == "text") {
                Value::String(converted.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("\n"))
            } else {
                Value::Array(converted)
            }
        }
        other => Value::String(other.as_str().unwrap_or_default().to_owned()),
    }
}

/// The chat-completions body for a Responses request `body`, sent as `upstream_model`.
pub fn request(body: &Value, upstream_model: &str) -> Result<Value, TranslateError> {
    let object = body.as_object().ok_or_else(|| TranslateError("the request body must be a JSON object".into()))?;
    let mut messages: Vec<Value> = Vec::new();
    if let Some(instructions) = object.get("instructions").and_then(Value::as_str).filter(|s| !s.is_empty()) {
        messages.push(json!({ "role": "system", "content": instructions }));
    }
    match object.get("input") {
        Some(Value::String(text)) => messages.push(json!({ "role": "user", "content": text })),
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let kind = item.get("type").and_then(Value::as_str).unwrap_or("message");
                match kind {
                    "message" => {
                        let role = match item.get("role").and_then(Value::as_str).unwrap_or("user") {
                            "developer" | "system" => "system",
                            "assistant" => "assistant",
                            _ => "user",
                        };
                        messages.push(json!({ "role": role, "content": content_parts(item.get("content").unwrap_or(&Value::Null)) }));
                    }
                    "function_call" => {
                        let call = json!({
                            "id": item.get("call_id").cloned().unwrap_or(Value::Null),
                            "type": "function",
                            "function": {
                                "name": item.get("name").cloned().unwrap_or(Value::Null),
                                "arguments": item.get("arguments").cloned().unwrap_or_else(|| json!("{}")),
                            },
                        });
                        let merged =
                            messages.last_mut().filter(|m| m["role"] == "assistant" && m.get("tool_calls").is_some());
                        match merged.and_then(|m| m["tool_calls"].as_array_mut()) {
                            Some(calls) => calls.push(call),
                            None => messages.push(json!({ "role": "assistant", "content": "", "tool_calls": [call] })),
                        }
                    }
                    "function_call_output" => {
                        let output = match item.get("output") {
                            Some(Value::String(s)) => s.clone(),
                            Some(other) => {
                                content_parts(other).as_str().map_or_else(|| other.to_string(), str::to_owned)
                            }
                            None => String::new(),
                        };
                        messages.push(json!({
                            "role": "tool",
                            "tool_call_id": item.get("call_id").cloned().unwrap_or(Value::Null),
                            "content": output,
                        }));
                    }
                    "reasoning" => {}
                    other => return Err(TranslateError(format!("input[{i}] has the unsupported type `{other}`"))),
                }
            }
        }
        _ => return Err(TranslateError("`input` must be a string or an array of items".into())),
    }
    let mut out = Map::new();
    out.insert("model".into(), Value::String(upstream_model.to_owned()));
    out.insert("messages".into(), Value::Array(messages));
    copy_renamed(
        object,
        &mut out,
        &[
            ("max_output_tokens", "max_tokens"),
            ("temperature", "temperature"),
            ("top_p", "top_p"),
            ("parallel_tool_calls", "parallel_tool_calls"),
        ],
    );
    let tools: Vec<Value> = object
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| t.get("type").and_then(Value::as_str) == Some("function"))
        .map(|tool| {
            json!({ "type": "function", "function": {
                "name": tool.get("name").cloned().unwrap_or(Value::Null),
                "description": tool.get("description").cloned().unwrap_or(Value::Null),
                "parameters": tool.get("parameters").cloned().unwrap_or_else(|| json!({ "type": "object" })),
            }})
        })
        .collect();
    if !tools.is_empty() {
        out.insert("tools".into(), Value::Array(tools));
        match object.get("tool_choice") {
            Some(Value::String(choice)) => {
                out.insert("tool_choice".into(), Value::String(choice.clone()));
            }
            Some(Value::Object(choice)) if choice.get("type").and_then(Value::as_str) == Some("function") => {
                let name = choice.get("name").cloned().unwrap_or(Value::Null);
                out.insert("tool_choice".into(), json!({ "type": "function", "function": { "name": name } }));
            }
            _ => {}
        }
    }
    if let Some(effort) = object.get("reasoning").and_then(|r| r.get("effort")).and_then(Value::as_str) {
        out.insert("reasoning_effort".into(), Value::String(effort.to_owned()));
    }
    if object.get("stream") == Some(&Value::Bool(true)) {
        out.insert("stream".into(), Value::Bool(true));
        out.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    Ok(Value::Object(out))
}

fn usage_json(usage: Option<&Value>) -> Value {
    let get = |pointer: &str| usage.and_then(|u| u.pointer(pointer)).and_then(Value::as_u64).unwrap_or(0);
    let input = get("/prompt_tokens");
    let output = get("/completion_tokens");
    json!({
        "input_tokens": input,
        "input_tokens_details": { "cached_tokens": get("/prompt_tokens_details/cached_tokens") },
        "output_tokens": output,
        "output_tokens_details": { "reasoning_tokens": get("/completion_tokens_details/reasoning_tokens") },
        "total_tokens": input + output,
    })
}

/// The response envelope around `output`.
fn envelope(id: &str, model: &str, created: u64, status: &str, output: Vec<Value>, usage: Value) -> Value {
    let mut response = json!({
        "id": id,
        "object": "response",
        "created_at": created,
        "status": status,
        "model": model,
        "output": output,
        "parallel_tool_calls": true,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
    });
    if status == "incomplete" {
        response["incomplete_details"] = json!({ "reason": "max_output_tokens" });
    }
    response
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({
        "type": "message", "id": id, "status": status, "role": "assistant",
        "content": [{ "type": "output_text", "text": text, "annotations": [] }],
    })
}

fn reasoning_item(id: &str, text: &str) -> Value {
    json!({ "type": "reasoning", "id": id, "summary": [{ "type": "summary_text", "text": text }] })
}

fn function_item(id: &str, call_id: &Value, name: &Value, arguments: &str, status: &str) -> Value {
    json!({ "type": "function_call", "id": id, "call_id": call_id, "name": name, "arguments": arguments, "status": status })
}

/// The Responses answer for a chat-completions `response`; `model` is the client's name.
pub fn response(response: &Value, model: &str, created: u64) -> Value {
    let id = response.get("id").and_then(Value::as_str).unwrap_or("translated");
    let choice = response.pointer("/choices/0");
    let message = choice.and_then(|c| c.get("message"));
    let mut output = Vec::new();
    if let Some(reasoning) = message
        .and_then(|m| m.get("reasoning_content").or_else(|| m.get("reasoning")))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        output.push(reasoning_item(&format!("rs_{id}"), reasoning));
    }
    if let Some(text) = message.and_then(|m| m.get("content")).and_then(Value::as_str).filter(|s| !s.is_empty()) {
        output.push(message_item(&format!("msg_{id}"), text, "completed"));
    }
    for (i, call) in
        message.and_then(|m| m.get("tool_calls")).and_then(Value::as_array).into_iter().flatten().enumerate()
    {
        output.push(function_item(
            &format!("fc_{id}_{i}"),
            call.get("id").unwrap_or(&Value::Null),
            call.pointer("/function/name").unwrap_or(&Value::Null),
            call.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("{}"),
            "completed",
        ));
    }
    let status = match choice.and_then(|c| c.get("finish_reason")).and_then(Value::as_str) {
        Some("length") => "incomplete",
        _ => "completed",
    };
    envelope(&format!("resp_{id}"), model, created, status, output, usage_json(response.get("usage")))
}

/// An output item being streamed.
#[derive(Debug)]
enum Item {
    Reasoning { id: String, text: String },
    Message { id: String, text: String },
    Function { id: String, call_id: Value, name: Value, arguments: String, openai_index: u64 },
}

/// The stream state machine: chat chunks in, Responses events out.
#[derive(Debug)]
pub struct StreamTranslator {
    model: String,
    created: u64,
    id: String,
    sequence: u64,
    started: bool,
    finished: bool,
    open: Option<(usize, Item)>,
    done: Vec<Value>,
    finish_reason: Option<String>,
    usage: Option<Value>,
}

impl StreamTranslator {
    /// A translator for one stream; `model` is the client's name, `created` the Unix time.
    pub fn new(model: &str, created: u64) -> Self {
        StreamTranslator {
            model: model.to_owned(),
            created,
            id: "resp_translated".into(),
            sequence: 0,
            started: false,
            finished: false,
            open: None,
            done: Vec::new(),
            finish_reason: None,
            usage: None,
        }
    }

    fn emit(&mut self, out: &mut Vec<u8>, kind: &str, mut data: Value) {
        data["type"] = Value::String(kind.to_owned());
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        out.extend_from_slice(&encode_frame(Some(kind), &data.to_string()));
    }

    fn start(&mut self, out: &mut Vec<u8>) {
        if self.started {
            return;
        }
        self.started = true;
        let response = envelope(&self.id, &self.model, self.created, "in_progress", Vec::new(), Value::Null);
        self.emit(out, "response.created", json!({ "response": response }));
        let response = envelope(&self.id, &self.model, self.created, "in_progress", Vec::new(), Value::Null);
        self.emit(out, "response.in_progress", json!({ "response": response }));
    }

    /// Closes the open item with its `.done` events.
    fn close(&mut self, out: &mut Vec<u8>) {
        let Some((index, item)) = self.open.take() else { return };
        let done = match item {
            Item::Reasoning { id, text } => {
                let part = json!({ "type": "summary_text", "text": text });
                self.emit(
                    out,
                    "response.reasoning_summary_text.done",
                    json!({ "item_id": id, "output_index": index, "summary_index": 0, "text": text }),
                );
                self.emit(
                    out,
                    "response.reasoning_summary_part.done",
                    json!({ "item_id": id, "output_index": index, "summary_index": 0, "part": part }),
                );
                reasoning_item(&id, &text)
            }
            Item::Message { id, text } => {
                let part = json!({ "type": "output_text", "text": text, "annotations": [] });
                self.emit(
                    out,
                    "response.output_text.done",
                    json!({ "item_id": id, "output_index": index, "content_index": 0, "text": text }),
                );
                self.emit(
                    out,
                    "response.content_part.done",
                    json!({ "item_id": id, "output_index": index, "content_index": 0, "part": part }),
                );
                message_item(&id, &text, "completed")
            }
            Item::Function { id, call_id, name, arguments, .. } => {
                self.emit(
                    out,
                    "response.function_call_arguments.done",
                    json!({ "item_id": id, "output_index": index, "arguments": arguments }),
                );
                function_item(&id, &call_id, &name, &arguments, "completed")
            }
        };
        self.emit(out, "response.output_item.done", json!({ "output_index": index, "item": done }));
        self.done.push(done);
    }

    /// The id for the next item: its output index, whether or not an item is still open.
    fn next_id(&self, prefix: &str, base: &str) -> String {
        format!("{prefix}_{base}_{}", self.done.len() + usize::from(self.open.is_some()))
    }

    fn open_item(&mut self, out: &mut Vec<u8>, item: Item) {
        self.close(out);
        let index = self.done.len();
        let added = match &item {
            Item::Reasoning { id, .. } => json!({ "type": "reasoning", "id": id, "summary": [] }),
            Item::Message { id, .. } => {
                json!({ "type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": [] })
            }
            Item::Function { id, call_id, name, .. } => function_item(id, call_id, name, "", "in_progress"),
        };
        self.emit(out, "response.output_item.added", json!({ "output_index": index, "item": added }));
        match &item {
            Item::Reasoning { id, .. } => {
                let part = json!({ "type": "summary_text", "text": "" });
                self.emit(
                    out,
                    "response.reasoning_summary_part.added",
                    json!({ "item_id": id, "output_index": index, "summary_index": 0, "part": part }),
                );
            }
            Item::Message { id, .. } => {
                let part = json!({ "type": "output_text", "text": "", "annotations": [] });
                self.emit(
                    out,
                    "response.content_part.added",
                    json!({ "item_id": id, "output_index": index, "content_index": 0, "part": part }),
                );
            }
            Item::Function { .. } => {}
        }
        self.open = Some((index, item));
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
        let Ok(chunk) = serde_json::from_str::<Value>(data) else { return out };
        if !self.started
            && let Some(id) = chunk.get("id").and_then(Value::as_str)
        {
            self.id = format!("resp_{id}");
        }
        self.start(&mut out);
        if let Some(usage) = chunk.get("usage").filter(|u| !u.is_null()) {
            self.usage = Some(usage.clone());
        }
        let Some(choice) = chunk.pointer("/choices/0") else { return out };
        let delta = choice.get("delta").cloned().unwrap_or(Value::Null);
        let base = self.id.trim_start_matches("resp_").to_owned();
        let reasoning = delta
            .get("reasoning_content")
            .or_else(|| delta.get("reasoning"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !reasoning.is_empty() {
            if !matches!(self.open, Some((_, Item::Reasoning { .. }))) {
                self.open_item(&mut out, Item::Reasoning { id: self.next_id("rs", &base), text: String::new() });
            }
            if let Some((index, Item::Reasoning { id, text })) = &mut self.open {
                text.push_str(reasoning);
                let event =
                    json!({ "item_id": id.clone(), "output_index": *index, "summary_index": 0, "delta": reasoning });
                self.emit(&mut out, "response.reasoning_summary_text.delta", event);
            }
        }
        let content = delta.get("content").and_then(Value::as_str).unwrap_or_default();
        if !content.is_empty() {
            if !matches!(self.open, Some((_, Item::Message { .. }))) {
                self.open_item(&mut out, Item::Message { id: self.next_id("msg", &base), text: String::new() });
            }
            if let Some((index, Item::Message { id, text })) = &mut self.open {
                text.push_str(content);
                let event =
                    json!({ "item_id": id.clone(), "output_index": *index, "content_index": 0, "delta": content });
                self.emit(&mut out, "response.output_text.delta", event);
            }
        }
        for call in delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
            let openai_index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
            let is_open = matches!(&self.open, Some((_, Item::Function { openai_index: i, .. })) if *i == openai_index);
            if !is_open {
                let item = Item::Function {
                    id: self.next_id("fc", &base),
                    call_id: call.get("id").cloned().unwrap_or_else(|| json!(format!("call_{openai_index}"))),
                    name: call.pointer("/function/name").cloned().unwrap_or(Value::Null),
                    arguments: String::new(),
                    openai_index,
                };
                self.open_item(&mut out, item);
            }
            let piece = call.pointer("/function/arguments").and_then(Value::as_str).unwrap_or_default();
            if !piece.is_empty()
                && let Some((index, Item::Function { id, arguments, .. })) = &mut self.open
            {
                arguments.push_str(piece);
                let event = json!({ "item_id": id.clone(), "output_index": *index, "delta": piece });
                self.emit(&mut out, "response.function_call_arguments.delta", event);
            }
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(reason.to_owned());
        }
        out
    }

    /// Ends the response: closes the open item and sends `response.completed` (or
    /// `response.incomplete` when the output limit was reached) with the whole response.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        self.start(out);
        self.close(out);
        self.finished = true;
        let status = if self.finish_reason.as_deref() == Some("length") { "incomplete" } else { "completed" };
        let response = envelope(
            &self.id,
            &self.model,
            self.created,
            status,
            std::mem::take(&mut self.done),
            usage_json(self.usage.as_ref()),
        );
        let kind = if status == "incomplete" { "response.incomplete" } else { "response.completed" };
        self.emit(out, kind, json!({ "response": response }));
    }

    /// Whether the final event was sent.
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
        fixture["openai_frames"]
            .as_array()
            .expect("frames")
            .iter()
            .map(|f| format!("data: {}\n\n", f.as_str().expect("frame")))
            .collect()
    }

    fn translate_stream(fixture: &Value, pieces: &[&[u8]]) -> Vec<u8> {
        let mut translator = StreamTranslator::new(
            fixture["model"].as_str().expect("model"),
            fixture["created"].as_u64().expect("created"),
        );
        let out = fixtures::feed(pieces, |data| translator.push(data));
        assert!(translator.is_finished());
        out
    }

    #[test]
    fn recorded_fixtures_translate_exactly() {
        let all = fixtures::load("responses_to_chat");
        assert!(all.len() >= 3);
        for (name, fixture) in all {
            match fixture["kind"].as_str() {
                Some("request") => {
                    let got =
                        request(&fixture["responses"], fixture["upstream_model"].as_str().expect("model")).expect("ok");
                    assert_eq!(got, fixture["openai"], "{name}");
                }
                Some("response") => {
                    let got = response(&fixture["openai"], fixture["model"].as_str().expect("model"), 1_700_000_000);
                    assert_eq!(got, fixture["responses"], "{name}");
                }
                Some("stream") => {
                    let upstream = upstream_stream(&fixture);
                    let events = fixtures::frames(&translate_stream(&fixture, &[upstream.as_bytes()]));
                    let names: Vec<Value> = events.iter().map(|(e, _)| Value::String(e.clone())).collect();
                    assert_eq!(Value::Array(names), fixture["event_names"], "{name}");
                    for (i, (event, data)) in events.iter().enumerate() {
                        assert_eq!(data["type"], event.as_str(), "the data names its own event");
                        assert_eq!(data["sequence_number"], i, "sequence numbers count up from 0");
                    }
                    let completed = &events.last().expect("events").1["response"];
                    assert_eq!(completed["status"], "completed");
                    assert_eq!(completed["output"], fixture["completed_output"], "{name}");
                    assert_eq!(completed["usage"], fixture["completed_usage"], "{name}");
                }
                other => panic!("{name}: unknown kind {other:?}"),
            }
        }
    }

    #[test]
    fn plain_string_input_and_length_limits() {
        let body = request(&json!({ "model": "m", "input": "hi" }), "u").expect("ok");
        assert_eq!(body["messages"], json!([{ "role": "user", "content": "hi" }]));
        let cut = response(
            &json!({ "id": "x", "choices": [{ "finish_reason": "length", "message": { "content": "a" } }] }),
            "m",
            0,
        );
        assert_eq!(cut["status"], "incomplete");
        assert_eq!(cut["incomplete_details"]["reason"], "max_output_tokens");
        assert!(request(&json!({ "model": "m", "input": [{ "type": "computer_call" }] }), "u").is_err());
    }

    proptest! {
        /// However the network splits the upstream stream, the client receives the same events.
        #[test]
        fn translation_survives_any_chunking(cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..10)) {
            let fixture = fixtures::load("responses_to_chat").into_iter().find(|(_, f)| f["kind"] == "stream").expect("stream").1;
            let upstream = upstream_stream(&fixture);
            let whole = translate_stream(&fixture, &[upstream.as_bytes()]);
            prop_assert_eq!(translate_stream(&fixture, &fixtures::split(upstream.as_bytes(), &cuts)), whole);
        }
    }
}
