//! The exact-match response cache: in the process, and in Redis shared by replicas.

use std::time::Duration;

use moat_testkit::{FakeUpstream, FakeUsage, Reply};
use serde_json::{Value, json};

use crate::support::{TestGateway, chat, default_config};

/// The default config with model `m` caching under `scope`, and `extra` appended.
fn caching_config(upstream: &FakeUpstream, scope: &str, extra: &str) -> String {
    default_config(upstream).replace(
        "deployments = [\"fake\"]",
        &format!("deployments = [\"fake\"]\n        cache = {{ ttl = \"60s\", scope = \"{scope}\" }}"),
    ) + extra
}

/// Redis on this machine, with keys of this test's own.
fn redis_section() -> String {
    format!(
        "\n[redis]\nurl = \"redis://127.0.0.1:6379/0\"\nkey_prefix = \"moat-test-{}\"\n",
        uuid::Uuid::now_v7().simple()
    )
}

async fn ask(gateway: &TestGateway, key: &str, body: &Value) -> (Option<String>, Value) {
    let response = gateway.post("/v1/chat/completions", key, body).await;
    assert_eq!(response.status(), 200);
    let cache = response.headers().get("x-moat-cache").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (cache, response.json().await.expect("json"))
}

async fn metrics(gateway: &TestGateway) -> String {
    gateway.http.get(format!("{}/metrics", gateway.url)).send().await.expect("send").text().await.expect("text")
}

#[tokio::test]
async fn an_identical_request_is_answered_from_the_cache_and_metered_as_a_hit() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&caching_config(&upstream, "key", "")).await;
    let key = gateway.client_key().await;
    upstream.push(Reply::chat("the answer", Some(FakeUsage { prompt: 20, completion: 6, cached: 0 })));

    let (first_cache, first) = ask(&gateway, &key, &chat("m")).await;
    let (second_cache, second) = ask(&gateway, &key, &chat("m")).await;
    assert_eq!((first_cache.as_deref(), second_cache.as_deref()), (Some("miss"), Some("hit")));
    assert_eq!(first, second, "the stored answer, as first sent");
    assert_eq!(upstream.calls(), 1, "the hit never reached the deployment");

    let records = gateway.usage(2).await;
    let (hit, miss) = (&records[0], &records[1]);
    assert_eq!((hit["cache_hit"].as_bool(), miss["cache_hit"].as_bool()), (Some(true), Some(false)));
    assert_eq!(hit["deployment"], Value::Null, "no deployment generated it");
    assert_eq!((hit["input_tokens"].as_u64(), hit["output_tokens"].as_u64()), (Some(20), Some(6)));
    assert_eq!(hit["status"], 200);
    assert!(metrics(&gateway).await.contains("moat_response_cache_lookups_total{model=\"m\",result=\"hit\"} 1"));

    // Any other byte in the body is another request.
    let other = json!({ "model": "m", "messages": [{ "role": "user", "content": "hello there friend!" }] });
    assert_eq!(ask(&gateway, &key, &other).await.0.as_deref(), Some("miss"));
    assert_eq!(upstream.calls(), 2);
}

#[tokio::test]
async fn a_translated_messages_answer_is_cached_in_the_clients_dialect() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&caching_config(&upstream, "key", "")).await;
    let key = gateway.client_key().await;
    let body = json!({ "model": "m", "max_tokens": 64, "messages": [{ "role": "user", "content": "hi" }] });
    let mut answers = Vec::new();
    for _ in 0..2 {
        let response = gateway
            .http
            .post(format!("{}/v1/messages", gateway.url))
            .header("x-api-key", &key)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 200);
        let cache = response.headers()["x-moat-cache"].to_str().expect("ascii").to_owned();
        answers.push((cache, response.json::<Value>().await.expect("json")));
    }
    assert_eq!((answers[0].0.as_str(), answers[1].0.as_str()), ("miss", "hit"));
    assert_eq!(answers[1].1["type"], "message", "the hit is an Anthropic message");
    assert_eq!(answers[0].1, answers[1].1);
    assert_eq!(upstream.calls(), 1);
    let records = gateway.usage(2).await;
    assert_eq!(records[0]["endpoint"], "messages");
    assert_eq!(records[0]["input_tokens"], records[1]["input_tokens"], "the hit carries the answer's tokens");
}

#[tokio::test]
async fn cache_control_skips_the_lookup_and_failures_are_never_stored() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&caching_config(&upstream, "key", "")).await;
    let key = gateway.client_key().await;
    upstream.push(Reply::error(500, "boom"));
    let failed = gateway.post("/v1/chat/completions", &key, &chat("m")).await;
    assert_eq!(failed.status(), 502);
    assert_eq!(ask(&gateway, &key, &chat("m")).await.0.as_deref(), Some("miss"), "the failure was not stored");
    assert_eq!(ask(&gateway, &key, &chat("m")).await.0.as_deref(), Some("hit"));

    let fresh = gateway
        .http
        .post(format!("{}/v1/chat/completions", gateway.url))
        .bearer_auth(&key)
        .header("cache-control", "no-cache")
        .json(&chat("m"))
        .send()
        .await
        .expect("send");
    assert_eq!(fresh.headers()["x-moat-cache"], "miss");
    assert_eq!(upstream.calls(), 3, "no-cache went to the deployment");

    let streamed =
        json!({ "model": "m", "stream": true, "messages": [{ "role": "user", "content": "hello there friend" }] });
    let response = gateway.post("/v1/chat/completions", &key, &streamed).await;
    assert!(response.headers().get("x-moat-cache").is_none(), "streams are not cached");
}

#[tokio::test]
async fn answers_stay_inside_their_tenant() {
    let upstream = FakeUpstream::start().await;
    let per_key = TestGateway::start_with(&caching_config(&upstream, "key", "")).await;
    let (a, b) = (per_key.client_key().await, per_key.client_key().await);
    assert_eq!(ask(&per_key, &a, &chat("m")).await.0.as_deref(), Some("miss"));
    assert_eq!(ask(&per_key, &b, &chat("m")).await.0.as_deref(), Some("miss"), "another key, another tenant");
    assert_eq!(ask(&per_key, &a, &chat("m")).await.0.as_deref(), Some("hit"));

    let org_wide = TestGateway::start_with(&caching_config(&upstream, "org", "")).await;
    let (c, d) = (org_wide.client_key().await, org_wide.client_key().await);
    assert_eq!(ask(&org_wide, &c, &chat("m")).await.0.as_deref(), Some("miss"));
    assert_eq!(ask(&org_wide, &d, &chat("m")).await.0.as_deref(), Some("hit"), "`org` shares across keys");

    let uncached = TestGateway::start(&upstream).await;
    let key = uncached.client_key().await;
    let response = uncached.post("/v1/chat/completions", &key, &chat("m")).await;
    assert!(response.headers().get("x-moat-cache").is_none(), "models cache only when configured");
}

#[tokio::test]
async fn replicas_share_answers_through_redis_with_a_ttl() {
    let upstream = FakeUpstream::start().await;
    let config = caching_config(&upstream, "org", &redis_section()).replace("ttl = \"60s\"", "ttl = \"1s\"");
    let first = TestGateway::start_with(&config).await;
    let second = first.replica(&config).await;
    let key = first.client_key().await;
    assert_eq!(ask(&first, &key, &chat("m")).await.0.as_deref(), Some("miss"));
    // The answer is stored off the request path; give it a moment to land.
    let mut cache = None;
    for _ in 0..50 {
        cache = ask(&second, &key, &chat("m")).await.0;
        if cache.as_deref() == Some("hit") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(cache.as_deref(), Some("hit"), "the other replica found it in Redis");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(ask(&second, &key, &chat("m")).await.0.as_deref(), Some("miss"), "expired after its ttl");
}

#[tokio::test]
async fn an_unreachable_redis_costs_the_cache_never_the_request() {
    let upstream = FakeUpstream::start().await;
    let dead = crate::support::dead_upstream_url().await.replace("http://", "redis://").replace("/v1", "/0");
    let config = caching_config(&upstream, "org", &format!("\n[redis]\nurl = \"{dead}\"\n"));
    let gateway = TestGateway::start_with(&config).await;
    let key = gateway.client_key().await;
    for _ in 0..3 {
        let started = std::time::Instant::now();
        assert_eq!(ask(&gateway, &key, &chat("m")).await.0.as_deref(), Some("miss"));
        assert!(started.elapsed() < Duration::from_secs(2), "a dead Redis does not hold requests");
    }
    assert_eq!(upstream.calls(), 3);
    assert!(metrics(&gateway).await.contains("result=\"unavailable\""));
}

#[tokio::test]
async fn a_redis_that_comes_back_is_used_again_under_steady_traffic() {
    let upstream = FakeUpstream::start().await;
    let gate = moat_testkit::TcpGate::start("127.0.0.1:6379".parse().expect("addr")).await;
    let redis = format!(
        "\n[redis]\nurl = \"redis://{}/0\"\nkey_prefix = \"moat-test-{}\"\n",
        gate.addr(),
        uuid::Uuid::now_v7().simple()
    );
    let gateway = TestGateway::start_with(&caching_config(&upstream, "org", &redis)).await;
    let key = gateway.client_key().await;
    gate.shut();
    // Requests keep coming, closer together than the 2 s rest after a failure.
    for _ in 0..25 {
        assert_eq!(ask(&gateway, &key, &chat("m")).await.0.as_deref(), Some("miss"));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    gate.open();
    let reopened = std::time::Instant::now();
    let mut hit = false;
    while !hit && reopened.elapsed() < Duration::from_secs(8) {
        hit = ask(&gateway, &key, &chat("m")).await.0.as_deref() == Some("hit");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(hit, "Redis was never tried again: each resting lookup pushed the rest back");
}
