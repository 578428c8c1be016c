//! The Anthropic Messages API: passthrough to Anthropic-dialect deployments, count_tokens,
//! and errors in the Anthropic shape.

use std::time::Duration;

use futures_util::StreamExt;
use moat_testkit::{FakeUpstream, FakeUsage, Reply, StreamEnd};
use serde_json::{Value, json};

use crate::support::{TestGateway, UPSTREAM_SECRET};

fn config(anthropic: &FakeUpstream, openai: &FakeUpstream, timeout: &str) -> String {
    format!(
        r#"
        [routing]
        max_attempts = 1

        [[deployments]]
        name = "anthropic-fake"
        url = "{}"
        dialects = ["anthropic"]
        upstream_model = "upstream-claude"
        api_key = {{ env = "FAKE_UPSTREAM_KEY" }}
        anthropic_beta = ["claude-code-20250219"]
        tokenize_url = "{}"
        timeout = "{timeout}"

        [[deployments]]
        name = "openai-fake"
        url = "{}"
        upstream_model = "x"
        tokenize_url = "{}"

        [[models]]
        name = "claude-sonnet"
        deployments = ["anthropic-fake"]

        [[models]]
        name = "chat-only"
        deployments = ["openai-fake"]
        "#,
        anthropic.base_url(),
        anthropic.tokenize_url(),
        openai.base_url(),
        openai.tokenize_url(),
    )
}

async fn setup(timeout: &str) -> (FakeUpstream, FakeUpstream, TestGateway, String) {
    let anthropic = FakeUpstream::start().await;
    let openai = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&config(&anthropic, &openai, timeout)).await;
    let key = gateway.client_key().await;
    (anthropic, openai, gateway, key)
}

fn message(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "max_tokens": 64,
        "system": [{ "type": "text", "text": "be brief", "cache_control": { "type": "ephemeral" } }],
        "messages": [{ "role": "user", "content": "hello there friend" }],
        "thinking": { "type": "adaptive" },
        "metadata": { "user_id": "{\"session\":\"abc\"}" },
        "stream": stream,
    })
}

/// Claude Code's request: `?beta=true`, `x-api-key`, a version and a list of betas.
async fn post_messages(gateway: &TestGateway, key: &str, body: &Value) -> reqwest::Response {
    gateway
        .http
        .post(format!("{}/v1/messages?beta=true", gateway.url))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "claude-code-20250219,interleaved-thinking-2025-05-14")
        .json(body)
        .send()
        .await
        .expect("send")
}

async fn assert_anthropic_error(response: reqwest::Response, status: u16, error_type: &str) -> Value {
    assert_eq!(response.status().as_u16(), status);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], error_type, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
    body
}

#[tokio::test]
async fn messages_pass_through_with_only_the_model_rewritten() {
    let (anthropic, _openai, gateway, key) = setup("5s").await;
    let body = message("claude-sonnet", false);
    let response = post_messages(&gateway, &key, &body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["content"][0]["text"], "Hello from the fake upstream.");

    let sent = &anthropic.requests()[0];
    assert_eq!(sent.path, "messages");
    let mut expected = body.clone();
    expected["model"] = json!("upstream-claude");
    assert_eq!(sent.json(), expected, "thinking, cache_control and metadata are forwarded untouched");
    let header = |name: &str| sent.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(header("x-api-key").as_deref(), Some(UPSTREAM_SECRET));
    assert_eq!(header("anthropic-version").as_deref(), Some("2023-06-01"));
    assert_eq!(header("anthropic-beta").as_deref(), Some("claude-code-20250219"), "only allowed betas are forwarded");

    let record = &gateway.usage(1).await[0];
    assert_eq!(record["endpoint"], "messages");
    assert_eq!(record["model"], "claude-sonnet");
    assert_eq!(record["deployment"], "anthropic-fake");
    assert_eq!((record["input_tokens"].as_u64(), record["output_tokens"].as_u64()), (Some(12), Some(7)));
    assert_eq!(record["estimated"], false);
}

#[tokio::test]
async fn message_streams_are_relayed_with_their_event_lines_and_metered() {
    let (anthropic, _openai, gateway, key) = setup("5s").await;
    anthropic.push(Reply::message_stream(&["Hel", "lo"], FakeUsage { prompt: 50, completion: 4, cached: 40 }));
    let text = post_messages(&gateway, &key, &message("claude-sonnet", true)).await.text().await.expect("body");
    let events: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(
        events,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let record = &gateway.usage(1).await[0];
    assert_eq!(record["streamed"], true);
    assert_eq!(record["input_tokens"], 50, "cache reads are folded into input");
    assert_eq!(record["cached_tokens"], 40);
    assert_eq!(record["output_tokens"], 4);
    assert_eq!(record["estimated"], false);
}

#[tokio::test]
async fn errors_take_the_anthropic_shape() {
    let (anthropic, _openai, gateway, key) = setup("5s").await;
    let no_key = gateway
        .http
        .post(format!("{}/v1/messages", gateway.url))
        .header("anthropic-version", "2023-06-01")
        .json(&message("claude-sonnet", false))
        .send()
        .await
        .expect("send");
    assert_anthropic_error(no_key, 401, "authentication_error").await;
    assert_anthropic_error(
        post_messages(&gateway, &key, &message("claude-opus-4", false)).await,
        404,
        "not_found_error",
    )
    .await;
    let bad_json = gateway
        .http
        .post(format!("{}/v1/messages", gateway.url))
        .header("x-api-key", &key)
        .body("{\"model\":")
        .send()
        .await
        .expect("send");
    assert_anthropic_error(bad_json, 400, "invalid_request_error").await;
    // An Anthropic-only deployment cannot serve OpenAI embeddings.
    let embeddings = gateway.post("/v1/embeddings", &key, &json!({ "model": "claude-sonnet", "input": "x" })).await;
    let body = crate::support::assert_openai_error(embeddings, 400, "endpoint_not_supported").await;
    assert_eq!(body["error"]["param"], "model");

    anthropic.push(Reply::error(529, "overloaded").with_header("retry-after", "3"));
    let response = post_messages(&gateway, &key, &message("claude-sonnet", false)).await;
    assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("3"));
    assert_anthropic_error(response, 529, "overloaded_error").await;
    anthropic.push(Reply::error(429, "slow down").with_header("retry-after", "2"));
    let response = post_messages(&gateway, &key, &message("claude-sonnet", false)).await;
    assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("2"));
    assert_anthropic_error(response, 429, "rate_limit_error").await;

    let unknown_route = gateway
        .http
        .post(format!("{}/v1/messages/batches", gateway.url))
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .expect("send");
    assert_anthropic_error(unknown_route, 404, "not_found_error").await;
}

#[tokio::test]
async fn a_stream_that_stalls_ends_with_an_error_event_and_counts_what_was_generated() {
    let (anthropic, _openai, gateway, key) = setup("500ms").await;
    let reply = Reply::message_stream(&["one ", "two three"], FakeUsage { prompt: 20, completion: 3, cached: 0 })
        .truncated(3)
        .ending(StreamEnd::Hang);
    anthropic.push(reply);
    let text = post_messages(&gateway, &key, &message("claude-sonnet", true)).await.text().await.expect("body");
    let last = text.trim_end().rsplit("\n\n").next().expect("a frame");
    assert!(last.starts_with("event: error\ndata: "), "{text}");
    let error: Value = serde_json::from_str(last.trim_start_matches("event: error\ndata: ")).expect("json");
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "api_error");
    let record = &gateway.usage(1).await[0];
    assert_eq!(record["error_code"], "upstream_timeout");
    assert_eq!(record["input_tokens"], 20, "message_start's count is kept");
    assert_eq!(record["output_tokens"], 3, "the output never reported is counted by the tokenizer");
    assert_eq!(record["estimated"], true);
}

#[tokio::test]
async fn a_client_that_leaves_a_message_stream_is_metered() {
    let (anthropic, _openai, gateway, key) = setup("5s").await;
    anthropic.push(
        Reply::message_stream(&["alpha ", "beta"], FakeUsage { prompt: 9, completion: 2, cached: 0 })
            .truncated(3)
            .ending(StreamEnd::Hang),
    );
    let response = post_messages(&gateway, &key, &message("claude-sonnet", true)).await;
    let mut stream = response.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("beta") {
        seen.push_str(&String::from_utf8_lossy(&stream.next().await.expect("more").expect("chunk")));
    }
    drop(stream);
    assert!(anthropic.wait_streams_dropped(1, Duration::from_secs(10)).await);
    let record = &gateway.usage(1).await[0];
    assert_eq!(record["status"], 499);
    assert_eq!(record["input_tokens"], 9);
    assert_eq!(record["output_tokens"], 2);
}

#[tokio::test]
async fn count_tokens_asks_the_deployment_or_its_tokenizer_and_leaves_no_usage_record() {
    let (anthropic, openai, gateway, key) = setup("5s").await;
    let count = |model: &str| {
        let body = json!({ "model": model, "messages": [{ "role": "user", "content": "one two three four" }] });
        gateway
            .http
            .post(format!("{}/v1/messages/count_tokens?beta=true", gateway.url))
            .bearer_auth(&key)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
    };
    let passthrough: Value = count("claude-sonnet").await.expect("send").json().await.expect("json");
    assert_eq!(passthrough, json!({ "input_tokens": 11 }), "the Anthropic-dialect deployment answers itself");
    assert_eq!(anthropic.requests()[0].path, "messages/count_tokens");
    assert_eq!(anthropic.requests()[0].json()["model"], "upstream-claude");

    let tokenized: Value = count("chat-only").await.expect("send").json().await.expect("json");
    assert_eq!(tokenized, json!({ "input_tokens": 4 }), "an OpenAI-only deployment's tokenizer counts the text");
    assert_eq!(openai.tokenize_calls(), 1);

    assert_anthropic_error(count("claude-opus-4").await.expect("send"), 404, "not_found_error").await;

    // Counting is not usage: the only record is the message below.
    assert_eq!(post_messages(&gateway, &key, &message("claude-sonnet", false)).await.status(), 200);
    let endpoints: Vec<_> = gateway.usage(1).await.iter().map(|r| r["endpoint"].clone()).collect();
    assert_eq!(endpoints, [json!("messages")]);
    let records: Value = gateway.admin_get("usage").await.json().await.expect("json");
    assert_eq!(records["data"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn models_list_serves_both_sdks() {
    let (_anthropic, _openai, gateway, key) = setup("5s").await;
    let list: Value = gateway
        .http
        .get(format!("{}/v1/models", gateway.url))
        .header("x-api-key", &key)
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(list["object"], "list");
    assert_eq!(list["has_more"], false);
    assert_eq!(list["first_id"], "claude-sonnet");
    assert_eq!(list["data"][0]["type"], "model");
    assert_eq!(list["data"][0]["object"], "model");
}

#[tokio::test]
async fn messages_for_an_openai_deployment_are_translated_both_ways() {
    let (_anthropic, openai, gateway, key) = setup("5s").await;
    openai.push(Reply::chat("Hi there.", Some(FakeUsage { prompt: 30, completion: 4, cached: 10 })));
    let response = post_messages(&gateway, &key, &message("chat-only", false)).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["type"], "message");
    assert_eq!(answer["model"], "chat-only", "the client's model name, not the upstream's");
    assert_eq!(answer["content"], json!([{ "type": "text", "text": "Hi there." }]));
    assert_eq!(answer["stop_reason"], "end_turn");
    assert_eq!(answer["usage"]["input_tokens"], 20);
    assert_eq!(answer["usage"]["cache_read_input_tokens"], 10);

    let sent = &openai.requests()[0];
    assert_eq!(sent.path, "chat/completions");
    let chat = sent.json();
    assert_eq!(chat["model"], "x");
    assert_eq!(chat["messages"][0], json!({ "role": "system", "content": "be brief" }));
    assert_eq!(chat["messages"][1], json!({ "role": "user", "content": "hello there friend" }));
    assert!(sent.headers.get("anthropic-beta").is_none(), "no Anthropic headers reach an OpenAI upstream");
    assert_eq!(chat["reasoning_effort"], "medium", "adaptive thinking without an effort is medium");

    let record = &gateway.usage(1).await[0];
    assert_eq!(record["endpoint"], "messages");
    assert_eq!(record["deployment"], "openai-fake");
    assert_eq!((record["input_tokens"].as_u64(), record["cached_tokens"].as_u64()), (Some(30), Some(10)));
    assert_eq!(record["output_tokens"], 4);
}

#[tokio::test]
async fn translated_streams_carry_the_counted_input_in_message_start() {
    let (_anthropic, openai, gateway, key) = setup("5s").await;
    openai.push(Reply::chat_stream(&["Hel", "lo"], Some(FakeUsage { prompt: 9, completion: 2, cached: 0 })));
    let text = post_messages(&gateway, &key, &message("chat-only", true)).await.text().await.expect("body");
    let mut decoder = moat_wire::sse::SseDecoder::new();
    decoder.push(text.as_bytes());
    let events: Vec<(String, Value)> = std::iter::from_fn(|| decoder.next_frame())
        .map(|f| (f.event.expect("event line"), serde_json::from_str(&f.data.expect("data")).expect("json")))
        .collect();
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(
        events[0].1["message"]["usage"]["input_tokens"], 5,
        "counted by the tokenizer before the upstream answers"
    );
    assert_eq!(events[6].1["usage"]["input_tokens"], 9, "the upstream's own figure at the end");
    assert_eq!(events[6].1["usage"]["output_tokens"], 2);
    assert_eq!(openai.requests()[0].json()["stream_options"], json!({ "include_usage": true }));
    let record = &gateway.usage(1).await[0];
    assert_eq!((record["input_tokens"].as_u64(), record["output_tokens"].as_u64()), (Some(9), Some(2)));
    assert_eq!(record["estimated"], false);
}

#[tokio::test]
async fn aliases_map_client_model_names_to_company_models() {
    let anthropic = FakeUpstream::start().await;
    let openai = FakeUpstream::start().await;
    let config = config(&anthropic, &openai, "5s").replace(
        "name = \"chat-only\"\n        deployments = [\"openai-fake\"]",
        "name = \"chat-only\"\n        deployments = [\"openai-fake\"]\n        aliases = [\"claude-*-haiku-*\", \"claude-haiku-*\"]",
    );
    let gateway = TestGateway::start_with(&config).await;
    let (_, key) = gateway.create_key(json!({ "name": "narrow", "models": ["chat-only"] })).await;
    let response = post_messages(&gateway, &key, &message("claude-haiku-4-5-20251001", false)).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["model"], "claude-haiku-4-5-20251001", "the client sees the name it asked for");
    assert_eq!(openai.calls(), 1, "served by the aliased model's deployment");
    let record = &gateway.usage(1).await[0];
    assert_eq!(record["model"], "chat-only", "usage is recorded under the public model");
    // Keys are checked against the model the alias resolves to.
    assert_anthropic_error(
        post_messages(&gateway, &key, &message("claude-sonnet", false)).await,
        403,
        "permission_error",
    )
    .await;
    assert_anthropic_error(
        post_messages(&gateway, &key, &message("claude-opus-4", false)).await,
        404,
        "not_found_error",
    )
    .await;
}

#[tokio::test]
async fn chat_completions_for_an_anthropic_deployment_are_translated_both_ways() {
    let (anthropic, _openai, gateway, key) = setup("5s").await;
    anthropic.push(Reply::message("Hello.", FakeUsage { prompt: 50, completion: 3, cached: 30 }));
    let body = json!({ "model": "claude-sonnet", "messages": [{ "role": "system", "content": "be brief" }, { "role": "user", "content": "hi" }] });
    let answer: Value = gateway.post("/v1/chat/completions", &key, &body).await.json().await.expect("json");
    assert_eq!(answer["object"], "chat.completion");
    assert_eq!(answer["model"], "claude-sonnet");
    assert_eq!(answer["choices"][0]["message"]["content"], "Hello.");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(answer["usage"]["prompt_tokens"], 50);
    assert_eq!(answer["usage"]["prompt_tokens_details"]["cached_tokens"], 30);
    let sent = &anthropic.requests()[0];
    assert_eq!(sent.path, "messages");
    assert_eq!(sent.json()["system"], "be brief");
    assert_eq!(sent.json()["max_tokens"], 4096, "Anthropic requires max_tokens; moat supplies a default");
    assert_eq!(sent.headers.get("anthropic-version").and_then(|v| v.to_str().ok()), Some("2023-06-01"));
    assert_eq!(sent.headers.get("x-api-key").and_then(|v| v.to_str().ok()), Some(UPSTREAM_SECRET));

    anthropic.push(Reply::message_stream(&["Hel", "lo"], FakeUsage { prompt: 9, completion: 2, cached: 0 }));
    let mut streaming = body.clone();
    streaming["stream"] = json!(true);
    streaming["stream_options"] = json!({ "include_usage": true });
    let text = gateway.post("/v1/chat/completions", &key, &streaming).await.text().await.expect("body");
    let payloads: Vec<&str> = text.split("\n\n").filter_map(|f| f.strip_prefix("data: ")).collect();
    assert_eq!(payloads.last(), Some(&"[DONE]"), "{text}");
    let chunks: Vec<Value> = payloads.iter().filter_map(|p| serde_json::from_str(p).ok()).collect();
    let content: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(content, "Hello");
    let usage = chunks.iter().find_map(|c| c.get("usage").filter(|u| !u.is_null())).expect("usage chunk");
    assert_eq!((usage["prompt_tokens"].as_u64(), usage["completion_tokens"].as_u64()), (Some(9), Some(2)));

    let records = gateway.usage(2).await;
    assert!(records.iter().all(|r| r["endpoint"] == "chat.completions" && r["deployment"] == "anthropic-fake"));
    assert_eq!((records[0]["input_tokens"].as_u64(), records[0]["output_tokens"].as_u64()), (Some(9), Some(2)));
    assert_eq!((records[1]["input_tokens"].as_u64(), records[1]["cached_tokens"].as_u64()), (Some(50), Some(30)));
}

#[tokio::test]
async fn the_anthropic_prefix_serves_the_same_routes() {
    let (_anthropic, _openai, gateway, key) = setup("5s").await;
    let response = gateway
        .http
        .post(format!("{}/anthropic/v1/messages?beta=true", gateway.url))
        .header("x-api-key", &key)
        .header("anthropic-version", "2023-06-01")
        .json(&message("claude-sonnet", false))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    let count = gateway
        .http
        .post(format!("{}/anthropic/v1/messages/count_tokens", gateway.url))
        .header("x-api-key", &key)
        .json(&json!({ "model": "claude-sonnet", "messages": [{ "role": "user", "content": "hi" }] }))
        .send()
        .await
        .expect("send");
    assert_eq!(count.status(), 200);
}

/// vLLM names the stop sequence that ended an answer; a Messages client gets
/// `stop_reason: "stop_sequence"` with it, whole or streamed.
#[tokio::test]
async fn a_client_stop_sequence_named_by_the_upstream_becomes_stop_sequence() {
    let (_anthropic, openai, gateway, key) = setup("5s").await;
    let vllm_answer = json!({
        "id": "cmpl-1", "object": "chat.completion", "model": "x",
        "choices": [{ "index": 0, "finish_reason": "stop", "stop_reason": "END",
                      "message": { "role": "assistant", "content": "done" } }],
        "usage": { "prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6 },
    });
    openai.push(Reply::Json { status: 200, body: vllm_answer, headers: Vec::new() });
    let mut body = message("chat-only", false);
    body["stop_sequences"] = json!(["END"]);
    let answer: Value = post_messages(&gateway, &key, &body).await.json().await.expect("json");
    assert_eq!(
        (answer["stop_reason"].as_str(), answer["stop_sequence"].as_str()),
        (Some("stop_sequence"), Some("END"))
    );
    assert_eq!(openai.requests()[0].json()["stop"], json!(["END"]));

    let frames = [
        r#"{"id":"c","choices":[{"index":0,"delta":{"content":"done"},"finish_reason":null}]}"#,
        r#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"stop","stop_reason":"END"}]}"#,
        r#"{"id":"c","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1,"total_tokens":6}}"#,
    ];
    let stream: Vec<String> = frames.iter().map(|f| format!("data: {f}\n\n")).collect();
    openai.push(Reply::Stream { frames: stream, gap: Duration::ZERO, end: StreamEnd::Done });
    body["stream"] = json!(true);
    let text = post_messages(&gateway, &key, &body).await.text().await.expect("body");
    let delta = text.lines().find(|l| l.contains(r#""type":"message_delta""#)).expect("message_delta");
    let delta: Value = serde_json::from_str(delta.trim_start_matches("data: ")).expect("json");
    assert_eq!(delta["delta"], json!({ "stop_reason": "stop_sequence", "stop_sequence": "END" }), "{text}");
}

/// Anthropic reports cache reads beside `input_tokens`, where OpenAI counts them inside
/// `prompt_tokens`: both must cost the same for the same tokens.
#[tokio::test]
async fn cached_tokens_cost_the_same_whichever_convention_the_upstream_reports_them_in() {
    let (anthropic, openai) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let price = "price = { input = 3.0, output = 15.0, cache_read = 0.3 }";
    let config = config(&anthropic, &openai, "5s")
        .replace(
            "upstream_model = \"upstream-claude\"",
            &format!("upstream_model = \"upstream-claude\"\n        {price}"),
        )
        .replace("upstream_model = \"x\"", &format!("upstream_model = \"x\"\n        {price}"));
    let gateway = TestGateway::start_with(&config).await;
    let key = gateway.client_key().await;
    // 1,000 prompt tokens of which 400 read from the cache, and 100 output tokens, told each way.
    let usage = FakeUsage { prompt: 1_000, completion: 100, cached: 400 };
    anthropic.push(Reply::message("hi", usage));
    openai.push(Reply::chat("hi", Some(usage)));
    let messages =
        json!({ "model": "claude-sonnet", "max_tokens": 50, "messages": [{ "role": "user", "content": "hi" }] });
    assert_eq!(gateway.post("/v1/messages", &key, &messages).await.status(), 200);
    assert_eq!(gateway.post("/v1/chat/completions", &key, &crate::support::chat("chat-only")).await.status(), 200);
    let records = gateway.usage(2).await;
    for record in &records {
        // 600 × $3/M + 400 × $0.30/M + 100 × $15/M = 1,800 + 120 + 1,500 µ$.
        assert_eq!(record["cost_micro_usd"], 3_420, "{record}");
        assert_eq!((record["input_tokens"].as_u64(), record["cached_tokens"].as_u64()), (Some(1_000), Some(400)));
    }
}
