//! Fault injection: one test per way an upstream fails, each asserting what the client sees,
//! which deployments were tried and how often, and the usage record left behind.

use std::time::{Duration, Instant};

use moat_testkit::{ClosingUpstream, FakeUpstream, FakeUsage, Reply, StreamEnd};
use serde_json::{Value, json};

use crate::support::{TestGateway, assert_openai_error, chat};

/// Model `m`: `primary` (tier 0, short timeouts) then `backup` (tier 1). Model `solo`:
/// `primary` alone. Retries on, with short backoffs; three failures mark a deployment down
/// for 400 ms.
fn config(primary_url: &str, backup_url: &str) -> String {
    format!(
        r#"
        [routing]
        max_attempts = 3
        backoff_base = "10ms"
        backoff_max = "50ms"
        retry_deadline = "5s"
        breaker_failures = 3
        breaker_cooldown = "400ms"

        [[deployments]]
        name = "primary"
        url = "{primary_url}"
        upstream_model = "x"
        first_byte_timeout = "300ms"
        idle_timeout = "300ms"
        timeout = "5s"

        [[deployments]]
        name = "backup"
        url = "{backup_url}"
        upstream_model = "x"

        [[models]]
        name = "m"
        deployments = ["primary", {{ name = "backup", tier = 1 }}]

        [[models]]
        name = "solo"
        deployments = ["primary"]
        "#
    )
}

struct Bench {
    primary: FakeUpstream,
    backup: FakeUpstream,
    gateway: TestGateway,
    key: String,
}

async fn bench() -> Bench {
    let primary = FakeUpstream::start().await;
    let backup = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&config(&primary.base_url(), &backup.base_url())).await;
    let key = gateway.client_key().await;
    Bench { primary, backup, gateway, key }
}

fn streaming(model: &str) -> Value {
    let mut body = chat(model);
    body["stream"] = json!(true);
    body
}

async fn deployment_health(gateway: &TestGateway, name: &str) -> String {
    let page: Value = gateway.admin_get("deployments").await.json().await.expect("json");
    let deployment = page["data"].as_array().expect("data").iter().find(|d| d["name"] == name).cloned();
    deployment.and_then(|d| d["health"].as_str().map(str::to_owned)).unwrap_or_default()
}

#[tokio::test]
async fn a_refused_connection_moves_to_the_next_deployment() {
    let backup = FakeUpstream::start().await;
    let gateway =
        TestGateway::start_with(&config(&crate::support::dead_upstream_url().await, &backup.base_url())).await;
    let key = gateway.client_key().await;
    assert_eq!(gateway.post("/v1/chat/completions", &key, &chat("m")).await.status(), 200);
    assert_eq!(backup.calls(), 1);
    let record = &gateway.usage(1).await[0];
    assert_eq!((record["deployment"].as_str(), record["status"].as_u64()), (Some("backup"), Some(200)));
}

#[tokio::test]
async fn a_reset_before_the_first_byte_is_retried_elsewhere() {
    let closing = ClosingUpstream::start().await;
    let backup = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&config(&closing.base_url(), &backup.base_url())).await;
    let key = gateway.client_key().await;
    backup.push(Reply::chat_stream(&["fine"], Some(FakeUsage { prompt: 3, completion: 1, cached: 0 })));
    let response = gateway.post("/v1/chat/completions", &key, &streaming("m")).await;
    assert_eq!(response.status(), 200);
    assert!(response.text().await.expect("body").contains("[DONE]"));
    assert_eq!((closing.accepted(), backup.calls()), (1, 1));
    let record = &gateway.usage(1).await[0];
    assert_eq!((record["deployment"].as_str(), record["status"].as_u64()), (Some("backup"), Some(200)));
    let metrics = gateway.http.get(format!("{}/metrics", gateway.url)).send().await.expect("send");
    let metrics = metrics.text().await.expect("text");
    assert!(metrics.contains("moat_upstream_retries_total{model=\"m\"} 1"), "{metrics}");
}

#[tokio::test]
async fn a_reset_after_the_first_byte_ends_the_stream_with_an_error_and_is_not_retried() {
    let b = bench().await;
    let usage = Some(FakeUsage { prompt: 5, completion: 2, cached: 0 });
    let reply = Reply::chat_stream(&["Hel", "lo"], usage).truncated(2).ending(StreamEnd::Reset);
    b.primary.push(reply.with_gap(Duration::from_millis(30)));
    let text = b.gateway.post("/v1/chat/completions", &b.key, &streaming("m")).await.text().await.expect("body");
    assert!(text.contains("\"Hel\"") && text.contains("\"lo\""), "what was generated arrived: {text}");
    let last = text.trim_end().rsplit("data: ").next().expect("last frame");
    let error: Value = serde_json::from_str(last).expect("an error frame ends the stream");
    assert_eq!(error["error"]["code"], "upstream_error", "{text}");
    assert_eq!((b.primary.calls(), b.backup.calls()), (1, 0), "no retry once bytes reached the client");
    let record = &b.gateway.usage(1).await[0];
    assert_eq!((record["status"].as_u64(), record["error_code"].as_str()), (Some(502), Some("upstream_error")));
    assert!(record["output_tokens"].as_u64().is_some_and(|n| n > 0), "what was generated is counted: {record}");
}

#[tokio::test]
async fn a_slow_first_byte_times_out_with_its_own_code() {
    let b = bench().await;
    b.primary.push(Reply::chat_stream(&["late"], None).with_gap(Duration::from_secs(2)));
    let started = Instant::now();
    let response = b.gateway.post("/v1/chat/completions", &b.key, &streaming("m")).await;
    assert_openai_error(response, 504, "upstream_first_byte_timeout").await;
    assert!(started.elapsed() < Duration::from_millis(1500), "the 300 ms limit fired: {:?}", started.elapsed());
    assert_eq!((b.primary.calls(), b.backup.calls()), (1, 0), "the upstream may still be working: not retried");
    let record = &b.gateway.usage(1).await[0];
    assert_eq!(record["error_code"], "upstream_first_byte_timeout");
}

#[tokio::test]
async fn a_hung_connection_times_out_and_is_recorded() {
    let b = bench().await;
    b.primary.push(Reply::Hang);
    let started = Instant::now();
    let response = b.gateway.post("/v1/chat/completions", &b.key, &chat("m")).await;
    assert_openai_error(response, 504, "upstream_first_byte_timeout").await;
    assert!(started.elapsed() < Duration::from_millis(1500), "{:?}", started.elapsed());
    assert_eq!(b.backup.calls(), 0);
    let record = &b.gateway.usage(1).await[0];
    assert_eq!((record["status"].as_u64(), record["deployment"].as_str()), (Some(504), Some("primary")));
}

#[tokio::test]
async fn an_idle_stream_ends_with_an_idle_timeout_event() {
    let b = bench().await;
    let usage = Some(FakeUsage { prompt: 5, completion: 2, cached: 0 });
    b.primary.push(Reply::chat_stream(&["one ", "two"], usage).truncated(2).ending(StreamEnd::Hang));
    let text = b.gateway.post("/v1/chat/completions", &b.key, &streaming("m")).await.text().await.expect("body");
    assert!(text.contains("\"two\""), "{text}");
    let error: Value = serde_json::from_str(text.trim_end().rsplit("data: ").next().expect("frame")).expect("json");
    assert_eq!(error["error"]["code"], "upstream_idle_timeout", "{text}");
    let record = &b.gateway.usage(1).await[0];
    assert_eq!((record["status"].as_u64(), record["error_code"].as_str()), (Some(504), Some("upstream_idle_timeout")));
    assert_eq!(b.backup.calls(), 0);
}

#[tokio::test]
async fn a_burst_of_500s_takes_a_deployment_down_until_its_probe_succeeds() {
    let b = bench().await;
    for _ in 0..3 {
        b.primary.push(Reply::error(500, "boom"));
    }
    for _ in 0..3 {
        let response = b.gateway.post("/v1/chat/completions", &b.key, &chat("m")).await;
        assert_openai_error(response, 502, "upstream_error").await;
    }
    assert_eq!((b.primary.calls(), b.backup.calls()), (3, 0), "a 500 is not retried");
    assert_eq!(deployment_health(&b.gateway, "primary").await, "down");

    for _ in 0..4 {
        assert_eq!(b.gateway.post("/v1/chat/completions", &b.key, &chat("m")).await.status(), 200);
    }
    assert_eq!((b.primary.calls(), b.backup.calls()), (3, 4), "a down deployment gets nothing");
    let response = b.gateway.post("/v1/chat/completions", &b.key, &chat("solo")).await;
    let body = assert_openai_error(response, 502, "upstream_unavailable").await;
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("down")), "{body}");

    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(deployment_health(&b.gateway, "primary").await, "probing");
    assert_eq!(b.gateway.post("/v1/chat/completions", &b.key, &chat("m")).await.status(), 200);
    assert_eq!((b.primary.calls(), b.backup.calls()), (4, 4), "the probe went to the primary and passed");
    assert_eq!(deployment_health(&b.gateway, "primary").await, "up");

    let records = b.gateway.usage(9).await;
    let by_deployment = |name: &str| records.iter().filter(|r| r["deployment"] == name).count();
    assert_eq!((by_deployment("primary"), by_deployment("backup")), (4, 4));
    let metrics = b.gateway.http.get(format!("{}/metrics", b.gateway.url)).send().await.expect("send");
    let metrics = metrics.text().await.expect("text");
    assert!(metrics.contains("moat_deployment_breaker_opened{deployment=\"primary\"} 1"), "{metrics}");
    assert!(metrics.contains("moat_deployment_up{deployment=\"primary\"} 1"), "{metrics}");
}

#[tokio::test]
async fn a_429_moves_on_at_once_or_waits_its_retry_after_on_the_same_deployment() {
    let b = bench().await;
    b.primary.push(Reply::error(429, "busy").with_header("retry-after", "30"));
    assert_eq!(b.gateway.post("/v1/chat/completions", &b.key, &chat("m")).await.status(), 200);
    assert_eq!((b.primary.calls(), b.backup.calls()), (1, 1), "another deployment owes nothing to the first");

    b.primary.push(Reply::error(429, "busy").with_header("retry-after", "1"));
    let started = Instant::now();
    assert_eq!(b.gateway.post("/v1/chat/completions", &b.key, &chat("solo")).await.status(), 200);
    assert!(started.elapsed() >= Duration::from_secs(1), "retry-after honoured: {:?}", started.elapsed());
    assert_eq!(b.primary.calls(), 3);

    b.primary.push(Reply::error(429, "busy").with_header("retry-after", "30"));
    let response = b.gateway.post("/v1/chat/completions", &b.key, &chat("solo")).await;
    assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("30"));
    assert_openai_error(response, 429, "upstream_rate_limited").await;
    assert_eq!(b.primary.calls(), 4, "a wait past the 5 s deadline is the client's to make");

    let records = b.gateway.usage(3).await;
    let statuses: Vec<u64> = records.iter().filter_map(|r| r["status"].as_u64()).collect();
    assert_eq!(statuses, [429, 200, 200], "one record per request, however many attempts");
}

#[tokio::test]
async fn malformed_stream_frames_pass_through_and_usage_is_estimated() {
    let b = bench().await;
    let frames = [
        "data: {not json\n\n",
        ": a comment\n\n",
        "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"fine words\"}}]}\n\n",
        "event: odd\ndata: [1, 2\n\n",
        "data: [DONE]\n\n",
    ];
    let frames = frames.iter().map(|f| (*f).to_owned()).collect();
    b.primary.push(Reply::Stream { frames, gap: Duration::ZERO, end: StreamEnd::Done });
    let response = b.gateway.post("/v1/chat/completions", &b.key, &streaming("m")).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("body");
    assert!(text.contains("{not json") && text.ends_with("data: [DONE]\n\n"), "{text}");
    let record = &b.gateway.usage(1).await[0];
    assert_eq!((record["status"].as_u64(), record["estimated"].as_bool()), (Some(200), Some(true)));
    assert!(record["output_tokens"].as_u64().is_some_and(|n| n > 0), "{record}");
}

#[tokio::test]
async fn truncated_json_reaches_pass_through_clients_as_sent_and_fails_translation_cleanly() {
    let b = bench().await;
    let truncated = r#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"hal"#;
    let raw = || Reply::Raw { status: 200, content_type: "application/json".into(), body: truncated.into() };
    b.primary.push(raw());
    let response = b.gateway.post("/v1/chat/completions", &b.key, &chat("m")).await;
    assert_eq!(response.text().await.expect("body"), truncated, "a pass-through body is the upstream's");

    b.primary.push(raw());
    let body = json!({ "model": "m", "max_tokens": 10, "messages": [{ "role": "user", "content": "hi" }] });
    let response = b.gateway.post("/v1/messages", &b.key, &body).await;
    assert_eq!(response.status(), 502);
    let error: Value = response.json().await.expect("json");
    assert_eq!((error["type"].as_str(), error["error"]["type"].as_str()), (Some("error"), Some("api_error")));
    let records = b.gateway.usage(2).await;
    assert_eq!(records[0]["error_code"], "upstream_error");
    assert_eq!((records[1]["status"].as_u64(), records[1]["estimated"].as_bool()), (Some(200), Some(true)));
}

#[tokio::test]
async fn weights_three_to_one_split_traffic_three_to_one() {
    let heavy = FakeUpstream::start().await;
    let light = FakeUpstream::start().await;
    let config = format!(
        r#"
        [[deployments]]
        name = "heavy"
        url = "{}"
        upstream_model = "x"
        [[deployments]]
        name = "light"
        url = "{}"
        upstream_model = "x"
        [[models]]
        name = "m"
        deployments = [{{ name = "heavy", weight = 3 }}, {{ name = "light", weight = 1 }}]
        "#,
        heavy.base_url(),
        light.base_url()
    );
    let gateway = TestGateway::start_with(&config).await;
    let key = gateway.client_key().await;
    let requests = 200;
    for _ in 0..requests {
        assert_eq!(gateway.post("/v1/chat/completions", &key, &chat("m")).await.status(), 200);
    }
    // Expected 150 : 50; four standard deviations (about 6.1 each) either side.
    assert_eq!(heavy.calls() + light.calls(), requests);
    assert!((126..=174).contains(&heavy.calls()), "heavy got {} of {requests}", heavy.calls());
}

/// One deployment serving model `m`.
fn single(name: &str, url: &str) -> String {
    format!(
        r#"
        [[deployments]]
        name = "{name}"
        url = "{url}"
        upstream_model = "x"
        [[models]]
        name = "m"
        deployments = ["{name}"]
        "#
    )
}

#[tokio::test]
async fn a_config_reload_under_load_drops_no_request() {
    let old = FakeUpstream::start().await;
    let new = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&single("old", &old.base_url())).await;
    let key = gateway.client_key().await;
    // One request first, so the key is cached and the streams below reach the upstream
    // before any plain request (the upstream hands out its scripted replies in arrival order).
    assert_eq!(gateway.post("/v1/chat/completions", &key, &chat("m")).await.status(), 200);
    // Streams that are still running when the reload lands, then plain requests throughout.
    let usage = Some(FakeUsage { prompt: 3, completion: 3, cached: 0 });
    for _ in 0..10 {
        old.push(Reply::chat_stream(&["a", "b", "c"], usage).with_gap(Duration::from_millis(60)));
    }
    let streams = (0..10).map(|_| async {
        let response = gateway.post("/v1/chat/completions", &key, &streaming("m")).await;
        (response.status().as_u16(), response.text().await.unwrap_or_default().contains("[DONE]"))
    });
    let (gateway_ref, key_ref) = (&gateway, &key);
    let requests = (0..60).map(|i| async move {
        tokio::time::sleep(Duration::from_millis(20 + 5 * i)).await;
        gateway_ref.post("/v1/chat/completions", key_ref, &chat("m")).await.status().as_u16()
    });
    let reload = async {
        tokio::time::sleep(Duration::from_millis(120)).await;
        gateway.reload(&single("new", &new.base_url()));
    };
    let (streams, statuses, ()) =
        tokio::join!(futures_util::future::join_all(streams), futures_util::future::join_all(requests), reload);
    assert!(streams.iter().all(|(status, done)| *status == 200 && *done), "{streams:?}");
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(old.calls() > 10 && new.calls() > 0, "both served: old {}, new {}", old.calls(), new.calls());
    assert_eq!(old.calls() + new.calls(), 71);
    let records = gateway.usage(71).await;
    assert!(records.iter().all(|r| r["status"] == 200), "one successful record per request");
    assert_eq!(gateway.post("/v1/chat/completions", &key, &chat("m")).await.status(), 200);
    assert_eq!(new.calls() + old.calls(), 72);
    assert_eq!(gateway.usage(1).await[0]["deployment"], "new", "after the reload, only the new deployment serves");
}

#[tokio::test]
async fn active_health_checks_take_a_deployment_down_and_bring_it_back() {
    let primary = FakeUpstream::start().await;
    let backup = FakeUpstream::start().await;
    let config = config(&primary.base_url(), &backup.base_url()).replace(
        "breaker_cooldown = \"400ms\"",
        "breaker_cooldown = \"60s\"\n        health_check_interval = \"50ms\"",
    );
    let gateway = TestGateway::start_with(&config).await;
    let key = gateway.client_key().await;
    primary.set_healthy(false);
    let deadline = Instant::now() + Duration::from_secs(5);
    while deployment_health(&gateway, "primary").await != "down" {
        assert!(Instant::now() < deadline, "three failed checks take it down");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gateway.post("/v1/chat/completions", &key, &chat("m")).await.status(), 200);
    assert_eq!((primary.calls(), backup.calls()), (0, 1), "no traffic to a deployment its checks say is down");

    primary.set_healthy(true);
    while deployment_health(&gateway, "primary").await != "up" {
        assert!(Instant::now() < deadline, "a passing check brings it back without waiting out the cooldown");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gateway.post("/v1/chat/completions", &key, &chat("m")).await.status(), 200);
    assert_eq!(primary.calls(), 1);
    assert!(backup.health_checks() > 0, "every deployment is checked");
}
