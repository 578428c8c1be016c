//! Budgets and limits through the whole gateway: reservations, refusals in each dialect,
//! rate-limit headers, alerts, the admin API, counters that are down, and many concurrent
//! streams against one small budget on one replica and on three sharing Redis.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use moat_testkit::{FakeUpstream, FakeUsage, Reply};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::{TestGateway, assert_openai_error, captured_logs, default_config};

/// `m` at $1 per million input and $2 per million output tokens: a micro-dollar per input
/// token, two per output token.
fn priced_config(upstream: &FakeUpstream, extra: &str) -> String {
    default_config(upstream).replace(
        "upstream_model = \"upstream-m\"",
        "upstream_model = \"upstream-m\"\n        price = { input = 1.0, output = 2.0 }",
    ) + extra
}

/// A chat request allowing at most `max_tokens` of output. Its prompt, "hello there friend"
/// (18 bytes), is estimated at 5 tokens.
fn chat_max(max_tokens: u64, stream: bool) -> Value {
    json!({
        "model": "m", "max_tokens": max_tokens, "stream": stream,
        "messages": [{ "role": "user", "content": "hello there friend" }],
    })
}

async fn created(response: reqwest::Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, 201, "{body}");
    body
}

/// Waits until the budget's settled spend is `expected` micro-dollars (settlement runs after
/// the response), and returns the budget.
async fn spend_reaches(gateway: &TestGateway, budget: &str, expected: u64) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        last = gateway.admin_get(&format!("budgets/{budget}")).await.json().await.expect("json");
        if last["current"]["spent_micro_usd"] == expected {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("spend never reached {expected}: {last}");
}

#[tokio::test]
async fn a_used_up_budget_refuses_in_the_callers_dialect_and_says_why() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&priced_config(&upstream, "")).await;
    let (key_id, key) = gateway.create_key(json!({ "name": "capped" })).await;
    let budget = created(
        gateway
            .admin_post(
                "budgets",
                json!({ "scope": "key", "scope_id": key_id, "amount_usd": "0.0001", "period": "month",
                        "time_zone": "Europe/Paris" }),
            )
            .await,
    )
    .await;
    assert_eq!(budget["amount_micro_usd"], 100);
    assert_eq!(budget["thresholds"], json!([50, 80, 100]));
    let id = budget["id"].as_str().expect("id").to_owned();
    // Each request: 12 input + 7 output tokens (the fake's default) = 12 + 14 = 26 µ$; each
    // reserves 5 + 2 × 10 = 25 µ$.
    for n in 1..=3 {
        let response = gateway.post("/v1/chat/completions", &key, &chat_max(10, false)).await;
        assert_eq!(response.status(), 200, "request {n}");
        spend_reaches(&gateway, &id, 26 * n).await;
    }
    // 78 spent + 25 reserved > 100.
    let refused = gateway.post("/v1/chat/completions", &key, &chat_max(10, false)).await;
    let retry_after: u64 =
        refused.headers()["retry-after"].to_str().expect("ascii").parse().expect("seconds until the month ends");
    assert!(retry_after > 0 && retry_after <= 31 * 24 * 3600, "{retry_after}");
    let body = assert_openai_error(refused, 402, "budget_exceeded").await;
    assert_eq!(body["error"]["type"], "insufficient_quota");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains("$0.000078 of $0.0001") && message.contains("$0.000025"), "{message}");
    // The same refusal in Anthropic's shape ("hi": 1 token, + 2 × 12 = 25 µ$ reserved).
    let messages = json!({ "model": "m", "max_tokens": 12, "messages": [{ "role": "user", "content": "hi" }] });
    let refused = gateway.post("/v1/messages", &key, &messages).await;
    assert_eq!(refused.status(), 402);
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "billing_error", "{body}");
    // Refusals are usage records too, and cost nothing.
    let records = gateway.usage(5).await;
    assert_eq!(records[0]["status"], 402);
    assert_eq!(records[0]["error_code"], "budget_exceeded");
    assert_eq!(records[0]["cost_micro_usd"], 0);
    assert_eq!(upstream.calls(), 3, "refused requests never reach the upstream");

    // A reset starts the period's spend again; the budget then admits.
    let reset: Value = gateway.admin_post(&format!("budgets/{id}/reset"), json!({})).await.json().await.expect("json");
    assert_eq!(reset["current"]["spent_micro_usd"], 0, "{reset}");
    assert!(reset["reset_at"].is_string());
    assert_eq!(gateway.post("/v1/chat/completions", &key, &chat_max(10, false)).await.status(), 200);
    spend_reaches(&gateway, &id, 26).await;
}

#[tokio::test]
async fn a_budget_counts_spend_already_in_the_ledger_after_a_restart() {
    let upstream = FakeUpstream::start().await;
    let config = priced_config(&upstream, "");
    let first = TestGateway::start_with(&config).await;
    let user = created(first.admin_post("users", json!({ "email": "spender@acme.test" })).await).await;
    let user_id = user["id"].as_str().expect("id").to_owned();
    let (_, key) = first.create_key(json!({ "name": "k", "user_id": user_id })).await;
    assert_eq!(first.post("/v1/chat/completions", &key, &chat_max(10, false)).await.status(), 200);
    first.usage(1).await;
    // The budget is set after the spend: the new counter starts from the ledger's 26 µ$.
    let budget = created(
        first
            .admin_post(
                "budgets",
                json!({ "scope": "user", "scope_id": user_id,
                                            "amount_usd": 0.00005, "period": "day" }),
            )
            .await,
    )
    .await;
    assert_eq!(budget["current"]["spent_micro_usd"], 26, "{budget}");
    // A second replica (a restart, as far as counters go) refuses: 26 + 25 > 50.
    let second = first.replica(&config).await;
    let refused = second.post("/v1/chat/completions", &key, &chat_max(10, false)).await;
    assert_openai_error(refused, 402, "budget_exceeded").await;
}

#[tokio::test]
async fn rate_limits_send_headers_and_refuse_with_retry_after_in_each_dialect() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&default_config(&upstream)).await;
    let key = gateway.client_key().await;
    let limit = created(
        gateway
            .admin_post(
                "limits",
                json!({ "scope": "model", "scope_id": "m", "requests_per_minute": 2,
                                          "tokens_per_minute": 100000 }),
            )
            .await,
    )
    .await;
    let header = |r: &reqwest::Response, name: &str| {
        r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned).unwrap_or_default()
    };
    let first = gateway.post("/v1/chat/completions", &key, &chat_max(10, false)).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "x-ratelimit-limit-requests"), "2");
    assert_eq!(header(&first, "x-ratelimit-remaining-requests"), "1");
    assert_eq!(header(&first, "x-ratelimit-limit-tokens"), "100000");
    // 5 prompt tokens + 10 allowed output tokens reserved.
    assert_eq!(header(&first, "x-ratelimit-remaining-tokens"), "99985");
    assert!(header(&first, "x-ratelimit-reset-requests").ends_with('s'));
    let second = gateway.post("/v1/chat/completions", &key, &chat_max(10, false)).await;
    assert_eq!(header(&second, "x-ratelimit-remaining-requests"), "0");
    let refused = gateway.post("/v1/chat/completions", &key, &chat_max(10, false)).await;
    assert_eq!(header(&refused, "x-ratelimit-remaining-requests"), "0");
    let retry_after: u64 = header(&refused, "retry-after").parse().expect("retry-after seconds");
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_openai_error(refused, 429, "rate_limit_exceeded").await;
    let messages = json!({ "model": "m", "max_tokens": 10, "messages": [{ "role": "user", "content": "hi" }] });
    let refused = gateway.post("/v1/messages", &key, &messages).await;
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    assert_eq!(upstream.calls(), 2);

    let read: Value =
        gateway.admin_get(&format!("limits/{}", limit["id"].as_str().expect("id"))).await.json().await.expect("json");
    assert_eq!(read["current"]["requests_last_minute"], 2, "{read}");
    // Settled to the actual 19 tokens each.
    assert_eq!(read["current"]["tokens_last_minute"], 38, "{read}");
    // A reset lets requests through again.
    let id = limit["id"].as_str().expect("id");
    assert_eq!(gateway.admin_post(&format!("limits/{id}/reset"), json!({})).await.status(), 200);
    assert_eq!(gateway.post("/v1/chat/completions", &key, &chat_max(10, false)).await.status(), 200);
}

#[tokio::test]
async fn a_concurrency_limit_frees_its_slot_when_a_stream_ends_or_is_abandoned() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&default_config(&upstream)).await;
    let (key_id, key) = gateway.create_key(json!({ "name": "one-at-a-time" })).await;
    created(
        gateway.admin_post("limits", json!({ "scope": "key", "scope_id": key_id, "concurrent_requests": 1 })).await,
    )
    .await;
    upstream.push(Reply::chat_stream(&["a", "b", "c"], None).with_gap(Duration::from_millis(300)));
    let streaming = gateway.post("/v1/chat/completions", &key, &chat_max(10, true)).await;
    assert_eq!(streaming.status(), 200);
    let refused = gateway.post("/v1/chat/completions", &key, &chat_max(10, false)).await;
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_openai_error(refused, 429, "rate_limit_exceeded").await;
    // The client walks away mid-stream: the meter settles and the slot frees.
    drop(streaming);
    let mut admitted = false;
    for _ in 0..50 {
        let response = gateway.post("/v1/chat/completions", &key, &chat_max(10, false)).await;
        if response.status() == 200 {
            admitted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(admitted, "the abandoned stream's slot was never freed");
}

#[tokio::test]
async fn the_admin_api_validates_budgets_and_limits() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let cases = [
        (json!({ "scope": "org", "amount_usd": 10, "period": "fortnight" }), "period"),
        (json!({ "scope": "org", "amount_usd": "ten", "period": "month" }), "amount_usd"),
        (json!({ "scope": "org", "amount_usd": 10, "period": "month", "time_zone": "Mars/Base" }), "time_zone"),
        (json!({ "scope": "team", "scope_id": "team_nope", "amount_usd": 10, "period": "month" }), "scope_id"),
        (json!({ "scope": "model", "scope_id": "m", "amount_usd": 10, "period": "month" }), "scope"),
        (json!({ "scope": "org", "amount_usd": 10, "period": "month", "thresholds": [0] }), "thresholds"),
    ];
    for (body, param) in cases {
        let response = gateway.admin_post("budgets", body.clone()).await;
        let error = assert_openai_error(response, 400, "invalid_request").await;
        assert_eq!(error["error"]["param"], param, "{body}: {error}");
    }
    let org =
        created(gateway.admin_post("budgets", json!({ "scope": "org", "amount_usd": 10, "period": "month" })).await)
            .await;
    assert_eq!(org["time_zone"], "UTC");
    let again = gateway.admin_post("budgets", json!({ "scope": "org", "amount_usd": 5, "period": "month" })).await;
    assert_openai_error(again, 409, "conflict").await;
    let id = org["id"].as_str().expect("id");
    let changed: Value = gateway
        .http
        .patch(format!("{}/admin/v1/budgets/{id}", gateway.url))
        .bearer_auth(crate::support::ADMIN_KEY)
        .json(&json!({ "amount_usd": "12.5", "thresholds": [90, 10, 90] }))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("json");
    assert_eq!(changed["amount_usd"], "$12.50");
    assert_eq!(changed["thresholds"], json!([10, 90]));
    let list: Value = gateway.admin_get("budgets").await.json().await.expect("json");
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1));

    let no_caps = gateway.admin_post("limits", json!({ "scope": "model", "scope_id": "m" })).await;
    assert_openai_error(no_caps, 400, "invalid_request").await;
    let unknown_model =
        gateway.admin_post("limits", json!({ "scope": "model", "scope_id": "nope", "requests_per_minute": 1 })).await;
    assert_openai_error(unknown_model, 400, "invalid_request").await;
    let deleted = gateway
        .http
        .delete(format!("{}/admin/v1/budgets/{id}", gateway.url))
        .bearer_auth(crate::support::ADMIN_KEY)
        .send()
        .await
        .expect("send");
    assert_eq!(deleted.status(), 204);
    let audit: Value = gateway.admin_get("audit?limit=10").await.json().await.expect("json");
    let actions: Vec<&str> =
        audit["data"].as_array().expect("data").iter().filter_map(|e| e["action"].as_str()).collect();
    assert!(
        actions.contains(&"budget.create") && actions.contains(&"budget.update") && actions.contains(&"budget.delete"),
        "{actions:?}"
    );
}

/// A webhook receiver on loopback that records what it is sent.
async fn webhook_receiver() -> (String, Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>>) {
    let received: Arc<Mutex<Vec<(axum::http::HeaderMap, String)>>> = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let sink = sink.clone();
            async move {
                sink.lock().expect("lock").push((headers, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    #[allow(clippy::disallowed_methods, reason = "the receiver lives as long as the test")]
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

#[tokio::test]
async fn each_threshold_alerts_once_through_a_signed_webhook() {
    let upstream = FakeUpstream::start().await;
    let (url, received) = webhook_receiver().await;
    let (slack_url, slack) = webhook_receiver().await;
    let hooks = format!(
        "\n[egress]\nallowed_networks = [\"127.0.0.0/8\"]\n\
         \n[[alerts.webhooks]]\nurl = \"{url}\"\nsecret = {{ env = \"FAKE_UPSTREAM_KEY\" }}\n\
         \n[[alerts.webhooks]]\nurl = \"{slack_url}\"\nformat = \"slack\"\n"
    );
    let gateway = TestGateway::start_with(&priced_config(&upstream, &hooks)).await;
    let (key_id, key) = gateway.create_key(json!({ "name": "alerted" })).await;
    // 26 µ$ a request against 100 µ$: 50 % is reached by the 2nd request, 80 % by the 4th.
    let budget = created(
        gateway
            .admin_post(
                "budgets",
                json!({ "scope": "key", "scope_id": key_id, "amount_usd": "0.0001",
                                            "period": "week", "thresholds": [50, 80] }),
            )
            .await,
    )
    .await;
    let id = budget["id"].as_str().expect("id");
    for n in 1..=3 {
        assert_eq!(gateway.post("/v1/chat/completions", &key, &chat_max(1, false)).await.status(), 200);
        spend_reaches(&gateway, id, 26 * n).await;
    }
    // 3 × 26 = 78 reached 50 % only; the 4th request (estimate 5 + 2 = 7) reaches 80 %.
    assert_eq!(gateway.post("/v1/chat/completions", &key, &chat_max(1, false)).await.status(), 200);
    spend_reaches(&gateway, id, 104).await;
    for _ in 0..100 {
        if received.lock().expect("lock").len() >= 2 && slack.lock().expect("lock").len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let received = received.lock().expect("lock").clone();
    assert_eq!(received.len(), 2, "one alert per threshold: {received:?}\n{}", captured_logs());
    let mut thresholds = Vec::new();
    for (headers, body) in &received {
        assert_eq!(headers["x-moat-event"], "budget.threshold_reached");
        let signature = headers["x-moat-signature"].to_str().expect("ascii");
        let (t, v1) = signature.trim_start_matches("t=").split_once(",v1=").expect("t=…,v1=…");
        let mut mac = Hmac::<Sha256>::new_from_slice(crate::support::UPSTREAM_SECRET.as_bytes()).expect("key");
        mac.update(format!("{t}.{body}").as_bytes());
        let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(v1, expected, "the signature verifies");
        let event: Value = serde_json::from_str(body).expect("json");
        assert_eq!(event["type"], "budget.threshold_reached");
        assert_eq!(event["budget"]["id"], id);
        assert_eq!(event["budget"]["period"], "week");
        thresholds.push(event["threshold_percent"].as_u64().expect("threshold"));
    }
    thresholds.sort_unstable();
    assert_eq!(thresholds, vec![50, 80]);
    let slack = slack.lock().expect("lock").clone();
    assert_eq!(slack.len(), 2);
    let text: Value = serde_json::from_str(&slack[0].1).expect("json");
    assert!(text["text"].as_str().is_some_and(|t| t.contains("weekly budget")), "{text}");
    assert!(!slack[0].0.contains_key("x-moat-signature"), "no secret, no signature");
}

#[tokio::test]
async fn counters_that_are_down_refuse_budgeted_requests_and_admit_limited_ones() {
    let upstream = FakeUpstream::start().await;
    let dead = crate::support::dead_upstream_url().await;
    let port = dead.trim_start_matches("http://127.0.0.1:").trim_end_matches("/v1");
    let config = priced_config(&upstream, &format!("\n[redis]\nurl = \"redis://127.0.0.1:{port}/0\"\n"));
    let gateway = TestGateway::start_with(&config).await;
    let (budgeted_id, budgeted) = gateway.create_key(json!({ "name": "budgeted" })).await;
    let (limited_id, limited) = gateway.create_key(json!({ "name": "limited" })).await;
    created(
        gateway
            .admin_post(
                "budgets",
                json!({ "scope": "key", "scope_id": budgeted_id, "amount_usd": 1, "period": "month" }),
            )
            .await,
    )
    .await;
    created(
        gateway.admin_post("limits", json!({ "scope": "key", "scope_id": limited_id, "requests_per_minute": 1 })).await,
    )
    .await;
    let refused = gateway.post("/v1/chat/completions", &budgeted, &chat_max(10, false)).await;
    assert_eq!(refused.headers()["retry-after"], "5");
    assert_openai_error(refused, 503, "admission_unavailable").await;
    // Limits fail open: both requests pass, uncounted.
    for _ in 0..2 {
        assert_eq!(gateway.post("/v1/chat/completions", &limited, &chat_max(10, false)).await.status(), 200);
    }
    let ready: Value =
        gateway.http.get(format!("{}/readyz", gateway.url)).send().await.expect("send").json().await.expect("json");
    assert_eq!(ready["status"], "ready", "a replica stays in rotation: {ready}");
    assert_eq!(ready["counters"], json!({ "store": "redis", "status": "unavailable" }));
    let metrics =
        gateway.http.get(format!("{}/metrics", gateway.url)).send().await.expect("send").text().await.expect("text");
    assert!(metrics.contains("moat_admission_counters_up 0"), "{metrics}");
    assert!(metrics.contains("moat_admissions_total{outcome=\"refused_unavailable\"} 1"), "{metrics}");
    assert!(metrics.contains("moat_admissions_total{outcome=\"uncounted\"} 2"), "{metrics}");
}

/// Fires 200 concurrent streams at `gateways` (round robin) under one key with a 1000 µ$
/// budget, and checks the settled spend never passes the budget.
async fn many_streams_against_one_budget(upstream: &FakeUpstream, gateways: &[TestGateway]) {
    let first = &gateways[0];
    let (key_id, key) = first.create_key(json!({ "name": "crowd" })).await;
    let budget = created(
        first
            .admin_post(
                "budgets",
                json!({ "scope": "key", "scope_id": key_id, "amount_usd": "0.001", "period": "day" }),
            )
            .await,
    )
    .await;
    let id = budget["id"].as_str().expect("id").to_owned();
    // Other replicas re-read budgets every 100 ms.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Each stream reports 5 input and 8 output tokens: 5 + 16 = 21 µ$ against a 25 µ$ estimate.
    for _ in 0..200 {
        upstream.push(
            Reply::chat_stream(&["one ", "two ", "three"], Some(FakeUsage { prompt: 5, completion: 8, cached: 0 }))
                .with_gap(Duration::from_millis(40)),
        );
    }
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..200 {
        let gateway = &gateways[n % gateways.len()];
        let (http, url, key) = (gateway.http.clone(), gateway.url.clone(), key.clone());
        tasks.spawn(async move {
            let response = http
                .post(format!("{url}/v1/chat/completions"))
                .bearer_auth(&key)
                .json(&chat_max(10, true))
                .send()
                .await
                .expect("send");
            let status = response.status().as_u16();
            let body = response.text().await.expect("body");
            (status, body)
        });
    }
    let (mut admitted, mut refused) = (0_u64, 0_u64);
    while let Some(result) = tasks.join_next().await {
        let (status, body) = result.expect("task");
        match status {
            200 => {
                assert!(body.contains("data: [DONE]"), "{body}");
                admitted += 1;
            }
            402 => refused += 1,
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert!(admitted >= 1 && refused >= 1, "admitted {admitted}, refused {refused}");
    // Reservations of 25 µ$ each: at most 40 fit in 1000 µ$ at once, and streams that settle
    // (at 21 µ$) before the last requests arrive free room, so never more than 1000 / 21 = 47.
    assert!(admitted <= 47, "admitted {admitted}");
    let settled = spend_reaches(first, &id, admitted * 21).await;
    let spent = settled["current"]["spent_micro_usd"].as_u64().expect("spent");
    assert!(spent <= 1000, "settled spend {spent} passed the 1000 µ$ budget");
    // Every replica writes its own records to the shared store.
    let mut records = Vec::new();
    for _ in 0..100 {
        let page: Value = first.admin_get("usage?limit=200").await.json().await.expect("json");
        records = page["data"].as_array().expect("data").clone();
        if records.len() == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(records.len(), 200, "every request has a record");
    let total: u64 = records.iter().filter_map(|r| r["cost_micro_usd"].as_u64()).sum();
    assert_eq!(total, spent, "the ledger and the counter agree");
}

#[tokio::test]
async fn two_hundred_concurrent_streams_never_overspend_a_small_budget() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&priced_config(&upstream, "")).await;
    many_streams_against_one_budget(&upstream, std::slice::from_ref(&gateway)).await;
}

#[tokio::test]
async fn three_replicas_sharing_redis_never_overspend_a_small_budget() {
    let upstream = FakeUpstream::start().await;
    let prefix = format!("moat-test-budget-{}", uuid::Uuid::now_v7().simple());
    let config = priced_config(
        &upstream,
        &format!(
            "\n[redis]\nurl = \"redis://127.0.0.1:6379/0\"\nkey_prefix = \"{prefix}\"\n\
             \n[admission]\nrefresh_interval = \"100ms\"\n"
        ),
    );
    let first = TestGateway::start_with(&config).await;
    let second = first.replica(&config).await;
    let third = first.replica(&config).await;
    many_streams_against_one_budget(&upstream, &[first, second, third]).await;
}
