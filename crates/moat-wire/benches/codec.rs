//! Micro-benchmarks for what every streamed or translated request pays per byte: the SSE
//! decoder and encoder, and the Anthropic ↔ OpenAI translators (requests and 100-chunk
//! streams). `cargo bench -p moat-wire`; criterion reports each against its previous run, and
//! instruction counts for them come from `valgrind --tool=callgrind` on the bench binary.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use moat_wire::sse::{SseDecoder, encode_frame};
use moat_wire::translate::{AnswerContext, RequestOptions, Translation};
use serde_json::{Value, json};

/// Chunks in a benchmarked stream, as in the load benchmark's streaming scenario.
const CHUNKS: usize = 100;

/// One OpenAI chat-completions chunk's `data:` payload, carrying a word.
fn chat_chunk(n: usize) -> String {
    json!({
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": 1_790_000_000,
        "model": "gemma-3-27b",
        "choices": [{ "index": 0, "delta": { "content": format!("word{n} ") }, "finish_reason": null }]
    })
    .to_string()
}

/// A whole chat stream's `data:` payloads: a role chunk, the words, the finish, the usage
/// chunk.
fn chat_stream() -> Vec<String> {
    let mut frames = vec![
        json!({ "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_790_000_000, "model": "gemma-3-27b",
                "choices": [{ "index": 0, "delta": { "role": "assistant", "content": "" }, "finish_reason": null }] })
        .to_string(),
    ];
    frames.extend((0..CHUNKS).map(chat_chunk));
    frames.push(
        json!({ "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_790_000_000, "model": "gemma-3-27b",
                "choices": [{ "index": 0, "delta": {}, "finish_reason": "stop" }] })
        .to_string(),
    );
    frames.push(
        json!({ "id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1_790_000_000, "model": "gemma-3-27b",
                "choices": [], "usage": { "prompt_tokens": 1200, "completion_tokens": 200, "total_tokens": 1400 } })
        .to_string(),
    );
    frames
}

/// A whole Anthropic Messages stream: `(event, data)` pairs.
fn messages_stream() -> Vec<(&'static str, String)> {
    let mut frames = vec![
        (
            "message_start",
            json!({ "type": "message_start", "message": { "id": "msg_bench", "type": "message", "role": "assistant",
            "model": "claude-like", "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": { "input_tokens": 1200, "output_tokens": 1 } } })
            .to_string(),
        ),
        (
            "content_block_start",
            json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } })
                .to_string(),
        ),
    ];
    frames.extend((0..CHUNKS).map(|n| {
        let delta = json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": format!("word{n} ") } });
        ("content_block_delta", delta.to_string())
    }));
    frames.push(("content_block_stop", json!({ "type": "content_block_stop", "index": 0 }).to_string()));
    frames.push((
        "message_delta",
        json!({ "type": "message_delta", "delta": { "stop_reason": "end_turn", "stop_sequence": null }, "usage": { "output_tokens": 200 } })
            .to_string(),
    ));
    frames.push(("message_stop", json!({ "type": "message_stop" }).to_string()));
    frames
}

/// A coding agent's Anthropic request: a system prompt, two tools, and ten turns.
fn messages_request() -> Value {
    let turns: Vec<Value> = (0..10)
        .map(|n| {
            let role = if n % 2 == 0 { "user" } else { "assistant" };
            json!({ "role": role, "content": [{ "type": "text", "text": format!("turn {n}: {}", "some source code ".repeat(40)) }] })
        })
        .collect();
    json!({
        "model": "claude-sonnet-4-6",
        "max_tokens": 4096,
        "system": [{ "type": "text", "text": "You are a coding agent. ".repeat(50) }],
        "tools": [
            { "name": "read_file", "description": "Reads a file.", "input_schema": { "type": "object", "properties": { "path": { "type": "string" } }, "required": ["path"] } },
            { "name": "run", "description": "Runs a command.", "input_schema": { "type": "object", "properties": { "command": { "type": "string" } }, "required": ["command"] } }
        ],
        "messages": turns,
        "stream": true
    })
}

/// The same conversation as an OpenAI chat request.
fn chat_request() -> Value {
    let mut messages = vec![json!({ "role": "system", "content": "You are a coding agent. ".repeat(50) })];
    messages.extend((0..10).map(|n| {
        let role = if n % 2 == 0 { "user" } else { "assistant" };
        json!({ "role": role, "content": format!("turn {n}: {}", "some source code ".repeat(40)) })
    }));
    json!({
        "model": "gemma-3-27b",
        "max_tokens": 4096,
        "messages": messages,
        "tools": [
            { "type": "function", "function": { "name": "read_file", "description": "Reads a file.", "parameters": { "type": "object", "properties": { "path": { "type": "string" } } } } }
        ],
        "stream": true,
        "stream_options": { "include_usage": true }
    })
}

fn sse(c: &mut Criterion) {
    let wire: Vec<u8> = chat_stream()
        .iter()
        .flat_map(|data| encode_frame(None, data).to_vec())
        .chain(b"data: [DONE]\n\n".to_vec())
        .collect();
    let mut group = c.benchmark_group("sse");
    group.throughput(Throughput::Bytes(wire.len() as u64));
    group.bench_function("decode a 100-chunk stream, 1 KiB reads", |b| {
        b.iter(|| {
            let mut decoder = SseDecoder::new();
            let mut frames = 0;
            for read in wire.chunks(1024) {
                decoder.push(read);
                while let Some(frame) = decoder.next_frame() {
                    frames += usize::from(black_box(frame).data.is_some());
                }
            }
            assert_eq!(frames, CHUNKS + 4);
        });
    });
    let chunk = chat_chunk(7);
    group.throughput(Throughput::Elements(1));
    group.bench_function("encode one chunk", |b| b.iter(|| encode_frame(None, black_box(&chunk))));
    group.finish();
}

fn translate(c: &mut Criterion) {
    let context = AnswerContext {
        client_model: "claude-sonnet-4-6".into(),
        created: 1_790_000_000,
        input_tokens_hint: 1200,
        include_usage: true,
        stop_sequences: Vec::new(),
    };
    let mut group = c.benchmark_group("translate");
    let anthropic = messages_request();
    group.bench_function("Anthropic request to chat", |b| {
        b.iter(|| Translation::MessagesToChat.request(black_box(&anthropic), "gemma-3-27b", RequestOptions::default()))
    });
    let chat = chat_request();
    group.bench_function("chat request to Anthropic", |b| {
        b.iter(|| Translation::ChatToMessages.request(black_box(&chat), "claude-like", RequestOptions::default()))
    });
    let chunks = chat_stream();
    group.throughput(Throughput::Elements(CHUNKS as u64));
    group.bench_function("chat stream to Anthropic events, 100 chunks", |b| {
        b.iter(|| {
            let mut stream = Translation::MessagesToChat.stream(&context);
            let mut out = 0;
            for data in &chunks {
                out += stream.push(black_box(data)).len();
            }
            let mut tail = Vec::new();
            stream.finish(&mut tail);
            out + tail.len()
        })
    });
    let events = messages_stream();
    group.bench_function("Anthropic events to chat stream, 100 chunks", |b| {
        b.iter(|| {
            let mut stream = Translation::ChatToMessages.stream(&context);
            let mut out = 0;
            for (_, data) in &events {
                out += stream.push(black_box(data)).len();
            }
            let mut tail = Vec::new();
            stream.finish(&mut tail);
            out + tail.len()
        })
    });
    group.finish();
}

/// A coding agent's turn: a system prompt, a few source files pasted as context, and a question;
/// about 100 kB of JSON, as Claude Code sends after a few tool calls.
fn agent_request(secret: Option<&str>) -> Vec<u8> {
    let mut files = String::new();
    while files.len() < 96 * 1024 {
        files.push_str(include_str!("../src/sse.rs"));
        files.push_str(include_str!("../src/openai.rs"));
    }
    if let Some(secret) = secret {
        files.push_str(&format!(
            "\n# .env\nDATABASE_URL=postgres://app:p4ss-w0rd-9f8e@db:5432/app\nAPI_TOKEN={secret}\n"
        ));
    }
    let body = serde_json::json!({
        "model": "m", "max_tokens": 4096, "stream": true,
        "system": "You are a coding agent.",
        "messages": [{"role": "user", "content": files}],
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

fn secret_scan(c: &mut Criterion) {
    use moat_wire::secret_scan::{SecretScanner, redact};
    let scanner = SecretScanner::shared();
    let clean = agent_request(None);
    let leaking = agent_request(Some(&format!("ghp_{}", "a1B2c3D4e5F6".repeat(3))));
    let mut group = c.benchmark_group("secret_scan");
    group.throughput(Throughput::Bytes(clean.len() as u64));
    group.bench_function("scan a 100 kB agent request, nothing found", |b| b.iter(|| scanner.scan(black_box(&clean))));
    group.bench_function("scan and redact a 100 kB agent request with two secrets", |b| {
        b.iter(|| {
            let findings = scanner.scan(black_box(&leaking));
            redact(&leaking, &findings)
        })
    });
    group.finish();
}

/// The depth check every model request's body goes through before its top level is parsed.
fn json_depth(c: &mut Criterion) {
    use moat_wire::json_object::{JsonObject, MAX_JSON_DEPTH, nesting_within};
    let body = agent_request(None);
    let mut group = c.benchmark_group("json_depth");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("depth check of a 100 kB agent request", |b| {
        b.iter(|| nesting_within(black_box(&body), MAX_JSON_DEPTH))
    });
    group.bench_function("top-level parse of a 100 kB agent request, depth check included", |b| {
        b.iter(|| JsonObject::parse(black_box(&body)).map(|o| o.required_string("model").is_ok()))
    });
    group.finish();
}

criterion_group!(benches, sse, translate, secret_scan, json_depth);
criterion_main!(benches);
