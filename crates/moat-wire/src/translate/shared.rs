//! Mappings more than one translation needs: Anthropic content blocks to an OpenAI assistant
//! message and back, thinking budgets to reasoning effort and back, which stop sequence ended
//! an answer, and copying parameters that only change their name.

use serde_json::{Map, Value, json};

/// An OpenAI tool call as an Anthropic `tool_use` block; arguments that are not JSON become `{}`.
pub(crate) fn tool_use_block(call: &Value) -> Value {
    let arguments = call.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("{}");
    json!({
        "type": "tool_use",
        "id": call.get("id").cloned().unwrap_or(Value::Null),
        "name": call.pointer("/function/name").cloned().unwrap_or(Value::Null),
        "input": serde_json::from_str::<Value>(arguments).unwrap_or_else(|_| json!({})),
    })
}

/// Anthropic content blocks folded into one OpenAI assistant message: `text` blocks into
/// `content`, `thinking` into `reasoning_content`, `tool_use` into `tool_calls`. With
/// `null_content_for_calls`, a message of calls only has `content: null` (what an OpenAI
/// answer carries) instead of `""` (what a replayed history turn carries).
pub(crate) fn assistant_message(blocks: &[Value], null_content_for_calls: bool) -> Value {
    let mut text = String::new();
    let mut reasoning = String::new();
    let mut calls = Vec::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(block.get("text").and_then(Value::as_str).unwrap_or_default()),
            Some("thinking") => reasoning.push_str(block.get("thinking").and_then(Value::as_str).unwrap_or_default()),
            Some("tool_use") => calls.push(json!({
                "id": block.get("id").cloned().unwrap_or(Value::Null),
                "type": "function",
                "function": {
                    "name": block.get("name").cloned().unwrap_or(Value::Null),
                    "arguments": block.get("input").map_or_else(|| "{}".to_owned(), Value::to_string),
                },
            })),
            _ => {}
        }
    }
    let content =
        if null_content_for_calls && text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) };
    let mut message = json!({ "role": "assistant", "content": content });
    if !reasoning.is_empty() {
        message["reasoning_content"] = Value::String(reasoning);
    }
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    message
}

/// Copies each present, non-null `from` member of `source` into `out` as `to`.
pub(crate) fn copy_renamed(source: &Map<String, Value>, out: &mut Map<String, Value>, pairs: &[(&str, &str)]) {
    for (from, to) in pairs {
        if let Some(value) = source.get(*from).filter(|v| !v.is_null()) {
            out.insert((*to).into(), value.clone());
        }
    }
}

/// The `reasoning_effort` for an Anthropic thinking budget: the canonical form keeps effort,
/// the coarser of the two, since OpenAI-dialect servers take nothing finer.
pub(crate) fn effort_for_budget(budget_tokens: u64) -> &'static str {
    match budget_tokens {
        0..4096 => "low",
        4096..16384 => "medium",
        _ => "high",
    }
}

/// The Anthropic thinking budget for a `reasoning_effort`, or `None` for no thinking.
pub(crate) fn budget_for_effort(effort: &str) -> Option<u64> {
    match effort {
        "minimal" | "low" => Some(1024),
        "medium" => Some(4096),
        "high" => Some(16_384),
        "xhigh" | "max" => Some(32_768),
        _ => None,
    }
}

/// The stop sequence an OpenAI-dialect upstream says ended a choice, if it is one the client
/// asked for. vLLM names it in `stop_reason`, SGLang in `matched_stop`; others say nothing.
pub(crate) fn matched_stop(choice: Option<&Value>, client_stops: &[String]) -> Option<String> {
    let choice = choice?;
    let field = |name: &str| choice.get(name).and_then(Value::as_str);
    named_stop(field("finish_reason"), ["stop_reason", "matched_stop"].into_iter().find_map(field), client_stops)
}

/// The stop sequence `named` by the upstream, if the choice ended on a stop and it is one the
/// client asked for.
pub(crate) fn named_stop(finish_reason: Option<&str>, named: Option<&str>, client_stops: &[String]) -> Option<String> {
    if finish_reason.is_some_and(|r| r != "stop") {
        return None;
    }
    let named = named?;
    client_stops.iter().any(|s| s == named).then(|| named.to_owned())
}
