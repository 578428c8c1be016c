//! Property tests over the canonical model: into chat completions and back loses nothing both
//! dialects can express, and a streamed answer, however it is cut, accumulates to exactly what
//! the whole-answer translation gives.
//!
//! The generators stay inside what both dialects can say. Left out on purpose, because one
//! side has no place for it: Anthropic `top_k`, `is_error` on tool results (a text prefix on
//! the OpenAI side), thinking signatures and thinking replayed in history, cache-write counts
//! (folded into OpenAI's prompt tokens), and exact thinking budgets (OpenAI keeps only effort).

use proptest::prelude::*;
use serde_json::{Value, json};

use super::fixtures::{feed, split};
use super::{AnswerContext, Translation, chat_to_messages, messages_to_chat};
use crate::sse::encode_frame;

fn word() -> impl Strategy<Value = String> {
    "[a-z]{1,6}( [a-z]{1,6}){0,3}"
}

fn arguments() -> impl Strategy<Value = Value> {
    prop::collection::btree_map(
        "[a-z]{1,5}",
        prop_oneof![word().prop_map(Value::from), any::<u16>().prop_map(Value::from)],
        0..3,
    )
    .prop_map(|map| json!(map))
}

/// An assistant turn: optional text, then zero or more tool calls (at least one of the two).
fn assistant_blocks() -> impl Strategy<Value = Vec<Value>> {
    (prop::option::of(word()), prop::collection::vec((word(), arguments()), 0..3))
        .prop_filter("an assistant turn says something", |(text, calls)| text.is_some() || !calls.is_empty())
        .prop_map(|(text, calls)| {
            let mut blocks: Vec<Value> = text.into_iter().map(|t| json!({ "type": "text", "text": t })).collect();
            for (i, (name, input)) in calls.into_iter().enumerate() {
                blocks.push(json!({ "type": "tool_use", "id": format!("call_{i}"), "name": name.replace(' ', "_"), "input": input }));
            }
            blocks
        })
}

/// A user turn: tool results first (as clients send them), then optional text.
fn user_blocks() -> impl Strategy<Value = Vec<Value>> {
    (prop::collection::vec(word(), 0..3), prop::option::of(word()))
        .prop_filter("a user turn says something", |(results, text)| !results.is_empty() || text.is_some())
        .prop_map(|(results, text)| {
            let mut blocks: Vec<Value> = results
                .into_iter()
                .enumerate()
                .map(|(i, r)| json!({ "type": "tool_result", "tool_use_id": format!("call_{i}"), "content": r }))
                .collect();
            blocks.extend(text.map(|t| json!({ "type": "text", "text": t })));
            blocks
        })
}

fn anthropic_request() -> impl Strategy<Value = Value> {
    let turns = prop::collection::vec((user_blocks(), assistant_blocks()), 1..4);
    let tools = prop::collection::vec(word(), 0..3);
    let choice = prop_oneof![Just(None), Just(Some("auto")), Just(Some("any")), Just(Some("none")), Just(Some("tool"))];
    (prop::option::of(word()), turns, word(), tools, choice, any::<bool>(), prop::option::of(word()), any::<bool>())
        .prop_map(|(system, turns, last, tools, choice, no_parallel, stop, stream)| {
            let mut messages = Vec::new();
            for (user, assistant) in turns {
                messages.push(json!({ "role": "user", "content": user }));
                messages.push(json!({ "role": "assistant", "content": assistant }));
            }
            messages.push(json!({ "role": "user", "content": [{ "type": "text", "text": last }] }));
            let mut body = json!({ "model": "upstream", "max_tokens": 512, "messages": messages });
            if let Some(system) = system {
                body["system"] = json!(system);
            }
            let tools: Vec<Value> = tools
                .iter()
                .map(|t| json!({ "name": t.replace(' ', "_"), "description": t, "input_schema": { "type": "object" } }))
                .collect();
            if let Some(first) = tools.first() {
                let mut tool_choice = match choice {
                    Some("tool") => json!({ "type": "tool", "name": first["name"] }),
                    Some(kind) => json!({ "type": kind }),
                    None if no_parallel => json!({ "type": "auto" }),
                    None => Value::Null,
                };
                if no_parallel && tool_choice["type"] != "none" {
                    tool_choice["disable_parallel_tool_use"] = json!(true);
                }
                if !tool_choice.is_null() {
                    body["tool_choice"] = tool_choice;
                }
                body["tools"] = Value::Array(tools);
            }
            if let Some(stop) = stop {
                body["stop_sequences"] = json!([stop]);
            }
            if stream {
                body["stream"] = json!(true);
            }
            body
        })
}

/// A whole Anthropic answer as an Anthropic-dialect deployment sends it.
fn anthropic_answer() -> impl Strategy<Value = Value> {
    let ending =
        prop_oneof![Just(("end_turn", None)), Just(("max_tokens", None)), Just(("stop_sequence", Some("###")))];
    (prop::option::of(word()), assistant_blocks(), ending, 1..5000u64, 0..5000u64, 0..5000u64).prop_map(
        |(thinking, blocks, (stop_reason, stop_sequence), input, cached, output)| {
            let mut content: Vec<Value> =
                thinking.into_iter().map(|t| json!({ "type": "thinking", "thinking": t, "signature": "" })).collect();
            let calls = blocks.iter().any(|b| b["type"] == "tool_use");
            content.extend(blocks);
            json!({
                "id": "msg_upstream", "type": "message", "role": "assistant", "model": "claude-test",
                "content": content,
                "stop_reason": if calls { "tool_use" } else { stop_reason },
                "stop_sequence": if calls { None } else { stop_sequence },
                "usage": { "input_tokens": input, "cache_read_input_tokens": cached,
                           "cache_creation_input_tokens": 0, "output_tokens": output },
            })
        },
    )
}

/// The event stream an Anthropic deployment sends for `answer`, each text cut in two deltas.
fn anthropic_events(answer: &Value) -> String {
    let mut out = Vec::new();
    let mut emit = |event: &str, data: Value| out.extend(encode_frame(Some(event), &data.to_string()));
    let usage = &answer["usage"];
    let mut start = answer.clone();
    start["content"] = json!([]);
    start["stop_reason"] = Value::Null;
    start["stop_sequence"] = Value::Null;
    start["usage"]["output_tokens"] = json!(1);
    emit("message_start", json!({ "type": "message_start", "message": start }));
    for (index, block) in answer["content"].as_array().into_iter().flatten().enumerate() {
        let halves = |s: &str| {
            let cut = s.char_indices().nth(s.chars().count() / 2).map_or(s.len(), |(i, _)| i);
            [s[..cut].to_owned(), s[cut..].to_owned()]
        };
        let (empty, deltas): (Value, Vec<Value>) = match block["type"].as_str() {
            Some("text") => (
                json!({ "type": "text", "text": "" }),
                halves(block["text"].as_str().unwrap_or_default())
                    .map(|t| json!({ "type": "text_delta", "text": t }))
                    .to_vec(),
            ),
            Some("thinking") => (
                json!({ "type": "thinking", "thinking": "" }),
                halves(block["thinking"].as_str().unwrap_or_default())
                    .map(|t| json!({ "type": "thinking_delta", "thinking": t }))
                    .into_iter()
                    .chain([json!({ "type": "signature_delta", "signature": "" })])
                    .collect(),
            ),
            _ => (
                json!({ "type": "tool_use", "id": block["id"], "name": block["name"], "input": {} }),
                halves(&block["input"].to_string())
                    .map(|j| json!({ "type": "input_json_delta", "partial_json": j }))
                    .to_vec(),
            ),
        };
        emit("content_block_start", json!({ "type": "content_block_start", "index": index, "content_block": empty }));
        for delta in deltas {
            emit("content_block_delta", json!({ "type": "content_block_delta", "index": index, "delta": delta }));
        }
        emit("content_block_stop", json!({ "type": "content_block_stop", "index": index }));
    }
    emit(
        "message_delta",
        json!({ "type": "message_delta",
                "delta": { "stop_reason": answer["stop_reason"], "stop_sequence": answer["stop_sequence"] },
                "usage": { "output_tokens": usage["output_tokens"] } }),
    );
    emit("message_stop", json!({ "type": "message_stop" }));
    String::from_utf8(out).unwrap_or_default()
}

/// Folds an Anthropic event stream into the message it describes, as a client SDK does.
fn accumulate_anthropic(bytes: &[u8]) -> Value {
    let mut message = Value::Null;
    let mut partial_json: Vec<String> = Vec::new();
    for (_, event) in super::fixtures::frames(bytes) {
        let index = event["index"].as_u64().and_then(|i| usize::try_from(i).ok()).unwrap_or(0);
        match event["type"].as_str() {
            Some("message_start") => message = event["message"].clone(),
            Some("content_block_start") => {
                if let Some(content) = message["content"].as_array_mut() {
                    content.push(event["content_block"].clone());
                }
                partial_json.push(String::new());
            }
            Some("content_block_delta") => {
                let delta = &event["delta"];
                let block = &mut message["content"][index];
                let append = |block: &mut Value, key: &str, piece: &Value| {
                    let text =
                        format!("{}{}", block[key].as_str().unwrap_or_default(), piece.as_str().unwrap_or_default());
                    block[key] = Value::String(text);
                };
                match delta["type"].as_str() {
                    Some("text_delta") => append(block, "text", &delta["text"]),
                    Some("thinking_delta") => append(block, "thinking", &delta["thinking"]),
                    Some("signature_delta") => block["signature"] = delta["signature"].clone(),
                    Some("input_json_delta") => {
                        partial_json[index].push_str(delta["partial_json"].as_str().unwrap_or_default())
                    }
                    _ => {}
                }
            }
            Some("content_block_stop")
                if message["content"][index]["type"] == "tool_use" && !partial_json[index].is_empty() =>
            {
                message["content"][index]["input"] = serde_json::from_str(&partial_json[index]).unwrap_or(Value::Null);
            }
            Some("message_delta") => {
                message["stop_reason"] = event["delta"]["stop_reason"].clone();
                message["stop_sequence"] = event["delta"]["stop_sequence"].clone();
                for (key, value) in event["usage"].as_object().into_iter().flatten() {
                    message["usage"][key] = value.clone();
                }
            }
            _ => {}
        }
    }
    message
}

/// The `response` a Responses API stream ends with.
fn completed_response(bytes: &[u8]) -> Value {
    super::fixtures::frames(bytes)
        .into_iter()
        .rev()
        .find(|(event, _)| event == "response.completed" || event == "response.incomplete")
        .map(|(_, data)| data["response"].clone())
        .unwrap_or(Value::Null)
}

/// Output items with their opaque ids left out, which streams and whole answers mint apart.
fn output_without_ids(response: &Value) -> Vec<Value> {
    response["output"].as_array().into_iter().flatten().cloned().map(without_id).collect()
}

fn without_id(mut value: Value) -> Value {
    if let Some(object) = value.as_object_mut() {
        object.remove("id");
    }
    value
}

proptest! {
    /// Anthropic → chat → Anthropic gives back the request the client wrote.
    #[test]
    fn messages_requests_survive_the_canonical_round_trip(body in anthropic_request()) {
        let canonical = messages_to_chat::request(&body, "upstream").expect("translates");
        let back = chat_to_messages::request(&canonical, "upstream").expect("translates back");
        prop_assert_eq!(back, body);
    }

    /// Chat → Anthropic → chat gives back the chat request (as messages_to_chat writes it).
    #[test]
    fn chat_requests_survive_the_round_trip_through_messages(body in anthropic_request()) {
        let chat = messages_to_chat::request(&body, "upstream").expect("translates");
        let there = chat_to_messages::request(&chat, "upstream").expect("translates");
        prop_assert_eq!(messages_to_chat::request(&there, "upstream").expect("translates back"), chat);
    }

    /// A whole Anthropic answer → chat → Anthropic is the same answer.
    #[test]
    fn messages_answers_survive_the_canonical_round_trip(answer in anthropic_answer()) {
        let canonical = chat_to_messages::response(&answer, "claude-test", 0);
        let back = messages_to_chat::response(&canonical, "claude-test", &["###".to_owned()]);
        prop_assert_eq!(without_id(back), without_id(answer));
    }

    /// An Anthropic stream, cut anywhere, translated into chat chunks and back into Anthropic
    /// events, accumulates to the answer it streamed.
    #[test]
    fn messages_streams_survive_the_canonical_round_trip(
        answer in anthropic_answer(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let upstream = anthropic_events(&answer);
        let context = AnswerContext { client_model: "claude-test".into(), include_usage: true, ..AnswerContext::default() };
        let mut there = Translation::ChatToMessages.stream(&context);
        let chat = feed(&split(upstream.as_bytes(), &cuts), |data| there.push(data));
        prop_assert!(there.is_finished());
        let hint = answer["usage"]["input_tokens"].as_u64().unwrap_or(0);
        let mut back = messages_to_chat::StreamTranslator::new("claude-test", hint).with_stop_sequences(vec!["###".into()]);
        let events = feed(&[&chat], |data| back.push(data));
        prop_assert_eq!(without_id(accumulate_anthropic(&events)), without_id(answer));
    }

    /// A Responses client on an Anthropic deployment: the chained stream, cut anywhere, ends
    /// with exactly the response the whole-answer translation gives.
    #[test]
    fn chained_streams_match_whole_answers(
        answer in anthropic_answer(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let upstream = anthropic_events(&answer);
        let context = AnswerContext { client_model: "codex-model".into(), created: 7, ..AnswerContext::default() };
        let mut stream = Translation::ResponsesToMessages.stream(&context);
        let mut events = feed(&split(upstream.as_bytes(), &cuts), |data| stream.push(data));
        stream.finish(&mut events);
        let whole = Translation::ResponsesToMessages.response(&answer, &context);
        let streamed = completed_response(&events);
        prop_assert!(!whole["output"].as_array().is_none_or(Vec::is_empty));
        prop_assert_eq!(output_without_ids(&streamed), output_without_ids(&whole));
        prop_assert_eq!(&streamed["usage"], &whole["usage"]);
        prop_assert_eq!(&streamed["status"], &whole["status"]);
    }
}

#[test]
fn thinking_settings_cross_as_effort() {
    let body = json!({ "model": "m", "max_tokens": 32000, "messages": [{ "role": "user", "content": "hi" }],
                       "thinking": { "type": "enabled", "budget_tokens": 10000 } });
    let chat = Translation::MessagesToChat.request(&body, "u", super::RequestOptions::default()).expect("translates");
    assert_eq!(chat["reasoning_effort"], "medium");
    let back = chat_to_messages::request(&chat, "u").expect("translates back");
    assert_eq!(back["thinking"], json!({ "type": "enabled", "budget_tokens": 4096 }));

    let adaptive = json!({ "model": "m", "max_tokens": 100, "messages": [{ "role": "user", "content": "hi" }],
                           "thinking": { "type": "adaptive" }, "output_config": { "effort": "max" } });
    let chat =
        Translation::MessagesToChat.request(&adaptive, "u", super::RequestOptions::default()).expect("translates");
    assert_eq!(chat["reasoning_effort"], "high");
    assert_eq!(chat_to_messages::request(&chat, "u").expect("back").get("thinking"), None, "100 tokens leave no room");

    let off = super::RequestOptions { reasoning_effort: false };
    assert_eq!(
        Translation::MessagesToChat.request(&adaptive, "u", off).expect("translates").get("reasoning_effort"),
        None
    );
    let disabled = json!({ "messages": [], "thinking": { "type": "disabled" } });
    assert_eq!(messages_to_chat::request(&disabled, "u").expect("translates").get("reasoning_effort"), None);

    let codex =
        json!({ "input": "hi", "reasoning": { "effort": "high", "summary": "auto" }, "max_output_tokens": 20000 });
    let anthropic =
        Translation::ResponsesToMessages.request(&codex, "u", super::RequestOptions::default()).expect("translates");
    assert_eq!(anthropic["thinking"], json!({ "type": "enabled", "budget_tokens": 16384 }));
    let cold =
        json!({ "messages": [{ "role": "user", "content": "x" }], "reasoning_effort": "high", "temperature": 0.2 });
    assert_eq!(chat_to_messages::request(&cold, "u").expect("translates").get("thinking"), None);
}

#[test]
fn a_matched_client_stop_sequence_is_named_and_others_are_not() {
    let answer = |matched: &str| {
        json!({ "id": "x", "choices": [{ "index": 0, "finish_reason": "stop", "stop_reason": matched,
                "message": { "role": "assistant", "content": "a" } }] })
    };
    let stops = vec!["END".to_owned()];
    let named = messages_to_chat::response(&answer("END"), "m", &stops);
    assert_eq!((named["stop_reason"].as_str(), named["stop_sequence"].as_str()), (Some("stop_sequence"), Some("END")));
    let deployment_stop = messages_to_chat::response(&answer("<|im_end|>"), "m", &stops);
    assert_eq!(deployment_stop["stop_reason"], "end_turn", "a stop moat added is not the client's");
    assert_eq!(deployment_stop["stop_sequence"], Value::Null);
    let sglang = json!({ "id": "x", "choices": [{ "index": 0, "finish_reason": "stop", "matched_stop": "END",
                         "message": { "role": "assistant", "content": "a" } }] });
    assert_eq!(messages_to_chat::response(&sglang, "m", &stops)["stop_sequence"], "END");
}
