//! Every failure answers in the OpenAI error shape with its code from the table.

use std::time::Duration;

use moat_testkit::{FakeUpstream, Reply};
use serde_json::json;

use crate::support::{TestGateway, UPSTREAM_SECRET, assert_openai_error, chat};

#[tokio::test]
async fn malformed_requests() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let key = gateway.client_key().await;
    let raw = |body: &'static str| {
        gateway.http.post(format!("{}/v1/chat/completions", gateway.url)).bearer_auth(&key).body(body).send()
    };
    assert_openai_error(raw("{\"model\": ").await.expect("send"), 400, "invalid_json").await;
    assert_openai_error(raw("[]").await.expect("send"), 400, "invalid_json").await;
    assert_openai_error(raw("{\"messages\": []}").await.expect("send"), 400, "invalid_request").await;
    assert_openai_error(raw("{\"model\": 7}").await.expect("send"), 400, "invalid_request").await;
    let body =
        assert_openai_error(gateway.post("/v1/chat/completions", &key, &chat("nope")).await, 404, "model_not_found")
            .await;
    assert_eq!(body["error"]["param"], "model");
    assert_eq!(upstream.calls(), 0);
}

#[tokio::test]
async fn bodies_over_the_limit() {
    let upstream = FakeUpstream::start().await;
    let config = crate::support::default_config(&upstream).replace("[server]", "[server]\nmax_body_bytes = 1024");
    let gateway = TestGateway::start_with(&config).await;
    let key = gateway.client_key().await;
    let big = json!({ "model": "m", "messages": [{ "role": "user", "content": "x".repeat(4096) }] });
    assert_openai_error(gateway.post("/v1/chat/completions", &key, &big).await, 413, "body_too_large").await;
    // Without a Content-Length the limit still holds.
    let chunks = futures_util::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(vec![b' '; 512])));
    let response = gateway
        .http
        .post(format!("{}/v1/chat/completions", gateway.url))
        .bearer_auth(&key)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("send");
    assert_openai_error(response, 413, "body_too_large").await;
}

#[tokio::test]
async fn unknown_routes_and_methods() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let response = gateway.http.get(format!("{}/v1/nothing-here", gateway.url)).send().await.expect("send");
    assert_openai_error(response, 404, "not_found").await;
    let response = gateway.http.get(format!("{}/v1/chat/completions", gateway.url)).send().await.expect("send");
    assert_openai_error(response, 405, "method_not_allowed").await;
}

#[tokio::test]
async fn upstream_failures_map_to_their_codes() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let key = gateway.client_key().await;
    let body = chat("m");
    let call = || gateway.post("/v1/chat/completions", &key, &body);

    upstream.push(Reply::error(500, "boom"));
    let body = assert_openai_error(call().await, 502, "upstream_error").await;
    assert!(!body.to_string().contains("boom"), "5xx bodies are not passed on: {body}");

    upstream.push(Reply::error(429, "slow down").with_header("retry-after", "7"));
    let response = call().await;
    assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("7"));
    assert_openai_error(response, 429, "upstream_rate_limited").await;

    upstream.push(Reply::error(401, &format!("Incorrect API key provided: {UPSTREAM_SECRET}")));
    let body = assert_openai_error(call().await, 502, "upstream_auth_failed").await;
    assert!(!body.to_string().contains(UPSTREAM_SECRET));

    upstream.push(Reply::error(400, &format!("prompt too long for context; key was {UPSTREAM_SECRET}")));
    let body = assert_openai_error(call().await, 400, "upstream_bad_request").await;
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains("prompt too long for context"), "the upstream's reason helps the caller: {message}");
    assert!(!message.contains(UPSTREAM_SECRET), "but never the deployment's credential: {message}");

    let records = gateway.usage(4).await;
    let codes: Vec<_> = records.iter().map(|r| r["error_code"].as_str().unwrap_or("-").to_owned()).collect();
    assert_eq!(codes, ["upstream_bad_request", "upstream_auth_failed", "upstream_rate_limited", "upstream_error"]);
    assert!(
        records.iter().all(|r| r["input_tokens"] == 0 && r["estimated"] == false),
        "nothing was generated, nothing is counted"
    );
}

#[tokio::test]
async fn an_upstream_redirect_is_a_failure_and_is_not_followed() {
    let upstream = FakeUpstream::start().await;
    let elsewhere = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let key = gateway.client_key().await;
    let location = format!("{}/chat/completions", elsewhere.base_url());
    upstream.push(Reply::error(307, "moved").with_header("location", &location));
    let body =
        assert_openai_error(gateway.post("/v1/chat/completions", &key, &chat("m")).await, 502, "upstream_error").await;
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("redirect"), "the reason is named: {message}");
    assert!(!message.contains(&location), "where it pointed is not passed on: {message}");
    assert_eq!(elsewhere.calls(), 0, "the prompt and the credential never went where the redirect pointed");
}

#[tokio::test]
async fn unreachable_and_slow_upstreams() {
    let dead_url = crate::support::dead_upstream_url().await;
    let slow = FakeUpstream::start().await;
    let config = format!(
        r#"
        [[deployments]]
        name = "dead"
        url = "{dead_url}"
        upstream_model = "x"
        [[deployments]]
        name = "slow"
        url = "{}"
        upstream_model = "x"
        timeout = "300ms"
        [[models]]
        name = "dead"
        deployments = ["dead"]
        [[models]]
        name = "slow"
        deployments = ["slow"]
        "#,
        slow.base_url()
    );
    let gateway = TestGateway::start_with(&config).await;
    let key = gateway.client_key().await;
    assert_openai_error(gateway.post("/v1/chat/completions", &key, &chat("dead")).await, 502, "upstream_unavailable")
        .await;
    slow.push(Reply::Hang);
    let started = std::time::Instant::now();
    assert_openai_error(gateway.post("/v1/chat/completions", &key, &chat("slow")).await, 504, "upstream_timeout").await;
    assert!(started.elapsed() < Duration::from_secs(5), "the deployment's timeout applies");
}

#[tokio::test]
async fn a_stream_that_breaks_ends_with_an_error_frame() {
    let upstream = FakeUpstream::start().await;
    let config = crate::support::default_config(&upstream).replace("timeout = \"5s\"", "timeout = \"500ms\"");
    let gateway = TestGateway::start_with(&config).await;
    let key = gateway.client_key().await;
    upstream.push(Reply::chat_stream(&["partial"], None).ending(moat_testkit::StreamEnd::Hang));
    let mut body = chat("m");
    body["stream"] = json!(true);
    let text = gateway.post("/v1/chat/completions", &key, &body).await.text().await.expect("body");
    assert!(text.contains("partial"), "{text}");
    let last = text.trim_end().rsplit("\n\n").next().expect("a frame");
    let error: serde_json::Value =
        serde_json::from_str(last.trim_start_matches("data: ")).expect("error frame is JSON");
    assert_eq!(error["error"]["code"], "upstream_timeout");
    let record = &gateway.usage(1).await[0];
    assert_eq!(record["status"], 504);
    assert_eq!(record["error_code"], "upstream_timeout");
    assert_eq!(record["estimated"], true, "generated text was seen but no usage: counted");
    assert_eq!(record["output_tokens"], 1);
}
