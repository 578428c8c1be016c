//! The OpenAI Responses API, translated to chat completions.

use moat_testkit::{FakeUpstream, FakeUsage, Reply};
use serde_json::{Value, json};

use crate::support::{TestGateway, assert_openai_error};

fn request(stream: bool) -> Value {
    json!({
        "model": "m",
        "instructions": "You are Codex.",
        "input": [{ "type": "message", "role": "user", "content": [{ "type": "input_text", "text": "list files" }] }],
        "store": false,
        "stream": stream,
    })
}

#[tokio::test]
async fn responses_are_translated_to_chat_and_back() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let key = gateway.client_key().await;
    upstream.push(Reply::chat("Here they are.", Some(FakeUsage { prompt: 40, completion: 5, cached: 8 })));
    let response = gateway.post("/v1/responses", &key, &request(false)).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.expect("json");
    assert_eq!(answer["object"], "response");
    assert_eq!(answer["status"], "completed");
    assert_eq!(answer["output"][0]["content"][0]["text"], "Here they are.");
    assert_eq!(answer["usage"]["input_tokens"], 40);
    assert_eq!(answer["usage"]["input_tokens_details"]["cached_tokens"], 8);

    let sent = upstream.requests()[0].json();
    assert_eq!(upstream.requests()[0].path, "chat/completions");
    assert_eq!(
        sent["messages"],
        json!([{ "role": "system", "content": "You are Codex." }, { "role": "user", "content": "list files" }])
    );
    assert!(sent.get("store").is_none(), "Responses-only fields are not sent to a chat upstream");

    let record = &gateway.usage(1).await[0];
    assert_eq!(record["endpoint"], "responses");
    assert_eq!((record["input_tokens"].as_u64(), record["output_tokens"].as_u64()), (Some(40), Some(5)));
}

#[tokio::test]
async fn response_streams_are_translated_event_by_event() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let key = gateway.client_key().await;
    upstream.push(Reply::chat_stream(&["Hel", "lo"], Some(FakeUsage { prompt: 9, completion: 2, cached: 0 })));
    let text = gateway.post("/v1/responses", &key, &request(true)).await.text().await.expect("body");
    let events: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(events.first(), Some(&"response.created"));
    assert_eq!(events.iter().filter(|e| **e == "response.output_text.delta").count(), 2);
    assert_eq!(events.last(), Some(&"response.completed"), "{text}");
    let completed = text.rsplit("data: ").next().expect("last data");
    let completed: Value = serde_json::from_str(completed.trim()).expect("json");
    assert_eq!(completed["response"]["output"][0]["content"][0]["text"], "Hello");
    assert_eq!(completed["response"]["usage"]["output_tokens"], 2);
    let record = &gateway.usage(1).await[0];
    assert_eq!((record["input_tokens"].as_u64(), record["output_tokens"].as_u64()), (Some(9), Some(2)));
    assert_eq!(record["streamed"], true);
}

#[tokio::test]
async fn bad_responses_requests_get_openai_errors() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let key = gateway.client_key().await;
    let body = json!({ "model": "m", "input": [{ "type": "computer_call" }] });
    assert_openai_error(gateway.post("/v1/responses", &key, &body).await, 400, "invalid_request").await;
    assert_openai_error(gateway.post("/v1/responses", &key, &json!({ "input": "hi" })).await, 400, "invalid_request")
        .await;
    assert_eq!(upstream.calls(), 0);
}

#[tokio::test]
async fn deployments_that_serve_responses_themselves_get_them_passed_through() {
    let upstream = FakeUpstream::start().await;
    let config = crate::support::default_config(&upstream).replace(
        "upstream_model = \"upstream-m\"",
        "upstream_model = \"upstream-m\"\n        dialects = [\"openai\", \"responses\"]\n        stop = [\"<|im_end|>\"]",
    );
    let gateway = TestGateway::start_with(&config).await;
    let key = gateway.client_key().await;
    let answer: Value = gateway.post("/v1/responses", &key, &request(false)).await.json().await.expect("json");
    assert_eq!(answer["output"][0]["content"][0]["text"], "Hello from the fake upstream.");
    let sent = &upstream.requests()[0];
    assert_eq!(sent.path, "responses");
    let mut expected = request(false);
    expected["model"] = json!("upstream-m");
    assert_eq!(sent.json(), expected, "only the model changes: no stream_options, no stop");

    upstream.push(Reply::responses_stream(&["Hel", "lo"], FakeUsage { prompt: 30, completion: 2, cached: 10 }));
    let text = gateway.post("/v1/responses", &key, &request(true)).await.text().await.expect("body");
    assert!(text.ends_with("\n\n") && text.contains("event: response.completed"), "{text}");
    assert!(upstream.requests()[1].json().get("stream_options").is_none());

    let records = gateway.usage(2).await;
    assert_eq!((records[0]["input_tokens"].as_u64(), records[0]["cached_tokens"].as_u64()), (Some(30), Some(10)));
    assert_eq!(records[0]["output_tokens"], 2);
    assert_eq!(records[0]["streamed"], true);
    assert_eq!((records[1]["input_tokens"].as_u64(), records[1]["output_tokens"].as_u64()), (Some(12), Some(7)));
    assert!(records.iter().all(|r| r["endpoint"] == "responses" && r["estimated"] == false));
}

/// A Responses API client (Codex) on a model served only in the Anthropic dialect: translated
/// through the canonical chat form both ways, streams included.
#[tokio::test]
async fn responses_reach_anthropic_only_deployments_through_the_canonical_form() {
    let anthropic = FakeUpstream::start().await;
    let config = format!(
        r#"
        [[deployments]]
        name = "anthropic-only"
        url = "{}"
        dialects = ["anthropic"]
        upstream_model = "upstream-claude"

        [[models]]
        name = "m"
        deployments = ["anthropic-only"]
        "#,
        anthropic.base_url()
    );
    let gateway = TestGateway::start_with(&config).await;
    let key = gateway.client_key().await;

    anthropic.push(Reply::message("Two files.", FakeUsage { prompt: 30, completion: 3, cached: 10 }));
    let mut body = request(false);
    body["reasoning"] = json!({ "effort": "low", "summary": "auto" });
    body["max_output_tokens"] = json!(8000);
    let answer: Value = gateway.post("/v1/responses", &key, &body).await.json().await.expect("json");
    assert_eq!(answer["object"], "response", "{answer}");
    assert_eq!(answer["output"][0]["content"][0]["text"], "Two files.");
    assert_eq!(answer["usage"]["input_tokens"], 30, "Anthropic's separate cache reads (10) count as input again");
    assert_eq!(answer["usage"]["input_tokens_details"]["cached_tokens"], 10);
    let sent = &anthropic.requests()[0];
    assert_eq!(sent.path, "messages");
    let sent = sent.json();
    assert_eq!(sent["system"], "You are Codex.");
    assert_eq!(sent["messages"], json!([{ "role": "user", "content": [{ "type": "text", "text": "list files" }] }]));
    assert_eq!(sent["max_tokens"], 8000);
    assert_eq!(sent["thinking"], json!({ "type": "enabled", "budget_tokens": 1024 }), "effort becomes a budget");

    anthropic.push(Reply::message_stream(&["Two ", "files."], FakeUsage { prompt: 12, completion: 2, cached: 0 }));
    let text = gateway.post("/v1/responses", &key, &request(true)).await.text().await.expect("body");
    let events: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("event: ")).collect();
    assert_eq!(events.first(), Some(&"response.created"), "{text}");
    assert_eq!(events.iter().filter(|e| **e == "response.output_text.delta").count(), 2, "{text}");
    assert_eq!(events.last(), Some(&"response.completed"), "{text}");
    let completed: Value = serde_json::from_str(text.rsplit("data: ").next().expect("data").trim()).expect("json");
    assert_eq!(completed["response"]["output"][0]["content"][0]["text"], "Two files.");
    assert_eq!(completed["response"]["usage"]["input_tokens"], 12);

    let records = gateway.usage(2).await;
    assert!(records.iter().all(|r| r["endpoint"] == "responses" && r["deployment"] == "anthropic-only"));
    assert_eq!((records[0]["input_tokens"].as_u64(), records[0]["output_tokens"].as_u64()), (Some(12), Some(2)));
    assert_eq!(records[0]["streamed"], true);
    assert_eq!((records[1]["input_tokens"].as_u64(), records[1]["cached_tokens"].as_u64()), (Some(30), Some(10)));
}
