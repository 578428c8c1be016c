//! Same-dialect passthrough, stream relay and metering.

use futures_util::StreamExt;
use moat_testkit::{FakeUpstream, FakeUsage, Reply};
use serde_json::{Value, json};

use crate::support::{TestGateway, UPSTREAM_SECRET, chat};

#[tokio::test]
async fn passes_bodies_through_with_only_the_model_rewritten() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let key = gateway.client_key().await;
    let body = json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }], "temperature": 0.25, "vendor_extension": { "a": [1, 2] } });
    let response = gateway.post("/v1/chat/completions", &key, &body).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("x-request-id").is_some());
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["choices"][0]["message"]["content"], "Hello from the fake upstream.");

    let sent = &upstream.requests()[0];
    assert_eq!(sent.path, "chat/completions");
    let mut expected = body.clone();
    expected["model"] = json!("upstream-m");
    assert_eq!(sent.json(), expected, "only `model` changes");
    assert_eq!(
        sent.headers.get("authorization").and_then(|v| v.to_str().ok()),
        Some(format!("Bearer {UPSTREAM_SECRET}").as_str())
    );
    assert_eq!(sent.headers.get("x-tenant").and_then(|v| v.to_str().ok()), Some("acme"));
    assert_ne!(
        sent.headers.get("authorization").and_then(|v| v.to_str().ok()),
        Some(format!("Bearer {key}").as_str()),
        "the client's moat key never goes upstream"
    );

    let records = gateway.usage(1).await;
    let record = &records[0];
    assert_eq!(record["model"], "m");
    assert_eq!(record["deployment"], "fake");
    assert_eq!(record["endpoint"], "chat.completions");
    assert_eq!(record["status"], 200);
    assert_eq!(record["input_tokens"], 12);
    assert_eq!(record["output_tokens"], 7);
    assert_eq!(record["estimated"], false);
    assert_eq!(record["streamed"], false);
}

async fn read_stream(response: reqwest::Response) -> String {
    let mut body = String::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        body.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
    }
    body
}

fn data_payloads(body: &str) -> Vec<String> {
    body.split("\n\n").filter_map(|frame| frame.strip_prefix("data: ")).map(str::to_owned).collect()
}

#[tokio::test]
async fn streams_are_relayed_and_the_usage_chunk_is_stripped_unless_asked_for() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let key = gateway.client_key().await;
    let usage = FakeUsage { prompt: 9, completion: 3, cached: 2 };

    upstream.push(Reply::chat_stream(&["Hel", "lo", "!"], Some(usage)));
    let mut body = chat("m");
    body["stream"] = json!(true);
    let response = gateway.post("/v1/chat/completions", &key, &body).await;
    assert_eq!(response.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("text/event-stream"));
    let text = read_stream(response).await;
    let payloads = data_payloads(&text);
    assert_eq!(payloads.len(), 5, "three content chunks, the finish chunk and [DONE]: {text}");
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"));
    assert!(!text.contains("\"usage\""), "the client did not ask for usage: {text}");
    let sent = upstream.requests()[0].json();
    assert_eq!(sent["stream_options"], json!({ "include_usage": true }), "moat always asks for usage");

    upstream.push(Reply::chat_stream(&["Hi"], Some(usage)));
    body["stream_options"] = json!({ "include_usage": true });
    let text = read_stream(gateway.post("/v1/chat/completions", &key, &body).await).await;
    let payloads = data_payloads(&text);
    let usage_chunk: Value = serde_json::from_str(&payloads[payloads.len() - 2]).expect("usage chunk");
    assert_eq!(usage_chunk["usage"]["prompt_tokens"], 9, "kept when the client asked: {text}");

    let records = gateway.usage(2).await;
    for record in &records {
        assert_eq!(record["streamed"], true);
        assert_eq!(record["input_tokens"], 9);
        assert_eq!(record["output_tokens"], 3);
        assert_eq!(record["cached_tokens"], 2);
        assert_eq!(record["estimated"], false);
        assert!(record["ttft_ms"].as_u64().is_some());
    }
}

#[tokio::test]
async fn frames_arrive_as_the_upstream_sends_them() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let key = gateway.client_key().await;
    // The last frame never comes: if moat buffered the stream, the first would never arrive.
    upstream.push(Reply::chat_stream(&["first"], None).ending(moat_testkit::StreamEnd::Hang));
    let mut body = chat("m");
    body["stream"] = json!(true);
    let response = gateway.post("/v1/chat/completions", &key, &body).await;
    let mut stream = response.bytes_stream();
    let first = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
        .await
        .expect("the first frame is relayed before the stream ends")
        .expect("a chunk")
        .expect("ok");
    assert!(String::from_utf8_lossy(&first).contains("first"));
}

#[tokio::test]
async fn missing_usage_is_counted_with_the_tokenizer_and_marked_estimated() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let key = gateway.client_key().await;
    upstream.push(Reply::chat("one two three four five", None));
    let response = gateway.post("/v1/chat/completions", &key, &chat("m")).await;
    assert_eq!(response.status(), 200);
    let record = &gateway.usage(1).await[0];
    assert_eq!(record["estimated"], true);
    assert_eq!(record["input_tokens"], 3, "the fake tokenizer counts the prompt's three words");
    assert_eq!(record["output_tokens"], 5);
    assert_eq!(upstream.tokenize_calls(), 2);
}

#[tokio::test]
async fn without_a_tokenizer_usage_is_estimated_from_text() {
    let upstream = FakeUpstream::start().await;
    let config = crate::support::default_config(&upstream)
        .replace(&format!("tokenize_url = \"{}\"", upstream.tokenize_url()), "");
    let gateway = TestGateway::start_with(&config).await;
    let key = gateway.client_key().await;
    upstream.push(Reply::chat("abcdefgh", None));
    gateway.post("/v1/chat/completions", &key, &chat("m")).await;
    let record = &gateway.usage(1).await[0];
    assert_eq!(record["estimated"], true);
    assert_eq!(record["input_tokens"], 5, "18 bytes of prompt at 4 bytes a token, rounded up");
    assert_eq!(record["output_tokens"], 2);
    assert_eq!(upstream.tokenize_calls(), 0);
}

#[tokio::test]
async fn completions_and_embeddings_are_proxied_and_metered() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let key = gateway.client_key().await;
    let response = gateway.post("/v1/completions", &key, &json!({ "model": "m", "prompt": "once upon" })).await;
    assert_eq!(response.status(), 200);
    let response = gateway.post("/v1/embeddings", &key, &json!({ "model": "m", "input": "embed me" })).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["data"][0]["embedding"], json!([0.1, 0.2, 0.3]));
    let paths: Vec<_> = upstream.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["completions", "embeddings"]);
    let records = gateway.usage(2).await;
    let by_endpoint = |name: &str| records.iter().find(|r| r["endpoint"] == name).cloned().expect("record");
    assert_eq!(by_endpoint("completions")["output_tokens"], 2);
    assert_eq!(by_endpoint("embeddings")["input_tokens"], 4);
    assert_eq!(by_endpoint("embeddings")["output_tokens"], 0);
}

#[tokio::test]
async fn an_unreachable_deployment_fails_over_to_the_next() {
    let live = FakeUpstream::start().await;
    let dead_url = crate::support::dead_upstream_url().await;
    let config = format!(
        r#"
        [[deployments]]
        name = "dead"
        url = "{dead_url}"
        upstream_model = "x"
        [[deployments]]
        name = "live"
        url = "{}"
        upstream_model = "x"
        [[models]]
        name = "m"
        deployments = ["dead", "live"]
        "#,
        live.base_url()
    );
    let gateway = TestGateway::start_with(&config).await;
    let key = gateway.client_key().await;
    for _ in 0..2 {
        assert_eq!(gateway.post("/v1/chat/completions", &key, &chat("m")).await.status(), 200);
    }
    let records = gateway.usage(2).await;
    assert!(records.iter().all(|r| r["deployment"] == "live" && r["status"] == 200));
}

#[tokio::test]
async fn a_deployments_stop_sequences_are_added_to_every_request() {
    let upstream = FakeUpstream::start().await;
    let config = crate::support::default_config(&upstream)
        .replace("timeout = \"5s\"", "timeout = \"5s\"\n        stop = [\"<|im_end|>\"]");
    let gateway = TestGateway::start_with(&config).await;
    let key = gateway.client_key().await;
    let mut body = chat("m");
    gateway.post("/v1/chat/completions", &key, &body).await;
    body["stop"] = json!("END");
    gateway.post("/v1/chat/completions", &key, &body).await;
    body["stop"] = json!(["<|im_end|>", "END"]);
    gateway.post("/v1/chat/completions", &key, &body).await;
    let stops: Vec<Value> = upstream.requests().iter().map(|r| r.json()["stop"].clone()).collect();
    assert_eq!(stops, [json!(["<|im_end|>"]), json!(["END", "<|im_end|>"]), json!(["<|im_end|>", "END"])]);
}

#[tokio::test]
async fn silent_streams_get_keepalive_comments_that_clients_ignore() {
    let upstream = FakeUpstream::start().await;
    let config = crate::support::default_config(&upstream).replace("[server]", "[server]\nstream_keepalive = \"50ms\"");
    let gateway = TestGateway::start_with(&config).await;
    let key = gateway.client_key().await;
    upstream.push(
        Reply::chat_stream(&["slow"], Some(FakeUsage { prompt: 3, completion: 1, cached: 0 }))
            .with_gap(std::time::Duration::from_millis(300)),
    );
    let mut body = chat("m");
    body["stream"] = json!(true);
    let text = read_stream(gateway.post("/v1/chat/completions", &key, &body).await).await;
    assert!(text.contains(": keep-alive\n\n"), "{text}");
    let payloads = data_payloads(&text.replace(": keep-alive\n\n", ""));
    assert_eq!(payloads.last().map(String::as_str), Some("[DONE]"), "the stream itself is intact");
    let record = &gateway.usage(1).await[0];
    assert_eq!(record["status"], 200);
}
