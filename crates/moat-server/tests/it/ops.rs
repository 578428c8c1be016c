//! Health, readiness, metrics, and what never appears in logs or metrics.

use moat_testkit::{FakeUpstream, Reply};
use serde_json::json;

use crate::support::{ADMIN_KEY, TestGateway, UPSTREAM_SECRET, captured_logs, chat};

#[tokio::test]
async fn health_readiness_and_root_answer() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    for path in ["/healthz", "/readyz", "/"] {
        let response = gateway.http.get(format!("{}{path}", gateway.url)).send().await.expect("send");
        assert_eq!(response.status(), 200, "{path}");
    }
    // Claude Code probes its base URL with HEAD at start-up.
    for path in ["/", "/anthropic"] {
        let response = gateway.http.head(format!("{}{path}", gateway.url)).send().await.expect("send");
        assert!(response.status().is_success(), "HEAD {path}: {}", response.status());
    }
}

#[tokio::test]
async fn metrics_count_requests_tokens_and_upstream_errors() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let key = gateway.client_key().await;
    assert_eq!(gateway.post("/v1/chat/completions", &key, &chat("m")).await.status(), 200);
    upstream.push(Reply::error(503, "down"));
    assert_eq!(gateway.post("/v1/chat/completions", &key, &chat("m")).await.status(), 502);
    gateway.usage(2).await;
    let metrics =
        gateway.http.get(format!("{}/metrics", gateway.url)).send().await.expect("send").text().await.expect("text");
    for line in [
        "moat_http_requests_total{route=\"chat.completions\",status=\"200\"} 1",
        "moat_http_requests_total{route=\"chat.completions\",status=\"502\"} 1",
        "moat_tokens_total{model=\"m\",kind=\"input\"} 12",
        "moat_tokens_total{model=\"m\",kind=\"output\"} 7",
        "moat_upstream_errors_total{deployment=\"fake\",code=\"upstream_error\"} 1",
        "moat_usage_records_written_total 2",
        "moat_usage_write_failures_total 0",
    ] {
        assert!(metrics.contains(line), "missing `{line}` in\n{metrics}");
    }
    assert!(metrics.contains("moat_time_to_first_token_seconds_bucket"));
    assert!(metrics.contains("moat_http_request_duration_seconds_bucket"));
    assert!(!metrics.contains(&key) && !metrics.contains("key_"), "no key or key id in metrics");
}

#[tokio::test]
async fn secrets_never_reach_the_logs() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let (id, secret) = gateway.create_key(json!({ "name": "leak-check" })).await;
    assert_eq!(gateway.post("/v1/chat/completions", &secret, &chat("m")).await.status(), 200);
    upstream.push(Reply::error(400, &format!("bad request, credential {UPSTREAM_SECRET}")));
    gateway.post("/v1/chat/completions", &secret, &chat("m")).await;
    gateway.post("/v1/chat/completions", "moat_sk_wrong-guess-secret", &chat("m")).await;
    gateway
        .http
        .delete(format!("{}/admin/v1/keys/{id}", gateway.url))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("send");
    gateway.usage(2).await;
    let logs = captured_logs();
    assert!(logs.contains(&id), "the key id is logged, so the check below is meaningful");
    for secret in [secret.as_str(), UPSTREAM_SECRET, ADMIN_KEY, "moat_sk_wrong-guess-secret"] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
}

/// The Grafana dashboard shipped in `deploy/grafana` only charts metrics moat exports.
#[tokio::test]
async fn the_shipped_dashboard_charts_only_metrics_moat_exports() {
    let upstream = FakeUpstream::start().await;
    // Traffic that makes every family have a series: a stream (time to first token), a 503
    // that is retried (upstream errors and retries), and a model that caches (cache lookups).
    let config = crate::support::default_config(&upstream)
        .replace("max_attempts = 1", "max_attempts = 2\nbackoff_base = \"1ms\"")
        .replace("deployments = [\"fake\"]", "deployments = [\"fake\"]\ncache = { ttl = \"60s\" }");
    let gateway = TestGateway::start_with(&config).await;
    let key = gateway.client_key().await;
    upstream.push(Reply::error(503, "busy"));
    assert_eq!(gateway.post("/v1/chat/completions", &key, &chat("m")).await.status(), 200);
    upstream.push(Reply::chat_stream(&["hi"], None));
    let mut streaming = chat("m");
    streaming["stream"] = json!(true);
    assert_eq!(gateway.post("/v1/chat/completions", &key, &streaming).await.status(), 200);
    gateway.usage(2).await;
    let exported =
        gateway.http.get(format!("{}/metrics", gateway.url)).send().await.expect("send").text().await.expect("text");
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../../../../deploy/grafana/moat-dashboard.json"))
            .expect("the dashboard is JSON");
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(str::to_owned))
        .collect();
    assert!(exprs.len() >= 9, "{exprs:?}");
    // Every family with a series is declared by a `# TYPE` line.
    let families: Vec<&str> =
        exported.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split_whitespace().next()).collect();
    for expr in &exprs {
        for name in expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("moat_")) {
            // Counters are queried with _total, histograms with _bucket, _sum or _count.
            let known = families.iter().any(|family| {
                ["", "_total", "_bucket", "_sum", "_count"].iter().any(|suffix| name == format!("{family}{suffix}"))
            });
            assert!(known, "the dashboard charts `{name}`, which moat does not export: {families:?}");
        }
    }
}
