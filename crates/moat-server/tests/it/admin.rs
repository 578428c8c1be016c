//! The admin API: keys and usage.

use moat_testkit::FakeUpstream;
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, TestGateway, assert_openai_error, chat};

#[tokio::test]
async fn key_lifecycle_through_the_api() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let response = gateway
        .admin_post("keys", json!({ "name": "ci", "owner": "team-a", "models": ["m"], "expires_in": "30d" }))
        .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.expect("json");
    let id = created["id"].as_str().expect("id").to_owned();
    let secret = created["key"].as_str().expect("secret").to_owned();
    assert!(secret.starts_with("moat_sk_"));
    assert_eq!(created["models"], json!(["m"]));
    assert_eq!(created["owner"], "team-a");
    assert!(created["expires_at"].is_string());
    assert!(secret.starts_with(created["prefix"].as_str().expect("prefix")));

    let listed: Value = gateway.admin_get("keys").await.json().await.expect("json");
    let listed_key = &listed["data"][0];
    assert_eq!(listed_key["id"], id.as_str());
    assert!(listed_key.get("key").is_none(), "the secret is shown only at creation");
    assert!(!listed.to_string().contains(&secret));

    let fetched: Value = gateway.admin_get(&format!("keys/{id}")).await.json().await.expect("json");
    assert_eq!(fetched["name"], "ci");

    let revoked = gateway
        .http
        .delete(format!("{}/admin/v1/keys/{id}", gateway.url))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("send");
    let revoked: Value = revoked.json().await.expect("json");
    assert!(revoked["revoked_at"].is_string());
    let active: Value = gateway.admin_get("keys").await.json().await.expect("json");
    assert_eq!(active["data"].as_array().map(Vec::len), Some(0));
    let all: Value = gateway.admin_get("keys?include_revoked=true").await.json().await.expect("json");
    assert_eq!(all["data"].as_array().map(Vec::len), Some(1));

    assert_openai_error(gateway.admin_get("keys/key_missing").await, 404, "not_found").await;
    let response = gateway
        .http
        .delete(format!("{}/admin/v1/keys/key_missing", gateway.url))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("send");
    assert_openai_error(response, 404, "not_found").await;
}

#[tokio::test]
async fn keys_list_a_page_at_a_time_by_owner_and_name_their_owners() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let json_of = |response: reqwest::Response| async move { response.json::<Value>().await.expect("json") };
    let team = json_of(gateway.admin_post("teams", json!({ "name": "Red" })).await).await;
    let ana = json_of(gateway.admin_post("users", json!({ "email": "ana@example.com" })).await).await;
    let bot = json_of(gateway.admin_post("users", json!({ "email": "ci@example.com", "kind": "service" })).await).await;
    let (ana_key, _) = gateway.create_key(json!({ "name": "ana-laptop", "user_id": ana["id"] })).await;
    let (red_key, _) = gateway.create_key(json!({ "name": "red-deploy", "team_id": team["id"] })).await;
    let (bot_key, _) = gateway.create_key(json!({ "name": "ci-runner", "user_id": bot["id"] })).await;
    let (loose_key, _) = gateway.create_key(json!({ "name": "loose" })).await;

    // Newest first, two a page, each page pointing at the next.
    let ids = |page: &Value| -> Vec<String> {
        page["data"].as_array().expect("data").iter().map(|k| k["id"].as_str().expect("id").to_owned()).collect()
    };
    let first = json_of(gateway.admin_get("keys?limit=2").await).await;
    assert_eq!(ids(&first), [loose_key.clone(), bot_key.clone()], "{first}");
    let next = first["next_before"].as_str().expect("a next page");
    let second = json_of(gateway.admin_get(&format!("keys?limit=2&before={next}")).await).await;
    assert_eq!(ids(&second), [red_key.clone(), ana_key.clone()], "{second}");
    let next = second["next_before"].as_str().expect("a full page may have more");
    let last = json_of(gateway.admin_get(&format!("keys?limit=2&before={next}")).await).await;
    assert_eq!((ids(&last).len(), last["next_before"].clone()), (0, Value::Null), "{last}");

    // Each key names its owner: a person, a service account, a team, or nobody.
    let all = json_of(gateway.admin_get("keys").await).await;
    let by_id =
        |id: &str| all["data"].as_array().expect("data").iter().find(|k| k["id"] == id).cloned().expect("listed");
    let ana_view = by_id(&ana_key);
    assert_eq!((&ana_view["user_email"], &ana_view["user_kind"]), (&json!("ana@example.com"), &json!("person")));
    let bot_view = by_id(&bot_key);
    assert_eq!((&bot_view["user_email"], &bot_view["user_kind"]), (&json!("ci@example.com"), &json!("service")));
    let red_view = by_id(&red_key);
    assert_eq!((&red_view["team_name"], &red_view["user_email"]), (&json!("Red"), &Value::Null));
    assert_eq!((&by_id(&loose_key)["team_name"], &by_id(&loose_key)["user_email"]), (&Value::Null, &Value::Null));
    assert_eq!(all["next_before"], Value::Null, "four keys fit the default page");
    let one = json_of(gateway.admin_get(&format!("keys/{red_key}")).await).await;
    assert_eq!((&one["team_name"], &one["status"]), (&json!("Red"), &json!("active")));

    // Filtered by team or by user, and revoked keys only when asked for, marked as such.
    let red = json_of(gateway.admin_get(&format!("keys?team_id={}", team["id"].as_str().expect("id"))).await).await;
    assert_eq!(ids(&red), [red_key]);
    let revoke = gateway.http.delete(format!("{}/admin/v1/keys/{ana_key}", gateway.url)).bearer_auth(ADMIN_KEY);
    assert_eq!(revoke.send().await.expect("send").status(), 200);
    let ana_id = ana["id"].as_str().expect("id");
    let active = json_of(gateway.admin_get(&format!("keys?user_id={ana_id}")).await).await;
    assert_eq!(ids(&active).len(), 0);
    let with_revoked = json_of(gateway.admin_get(&format!("keys?user_id={ana_id}&include_revoked=true")).await).await;
    assert_eq!((ids(&with_revoked), &with_revoked["data"][0]["status"]), (vec![ana_key], &json!("revoked")));
    let hostile = json_of(gateway.admin_get("keys?team_id=x%27%20OR%20%271%27%3D%271").await).await;
    assert_eq!(ids(&hostile).len(), 0, "a filter is a value, never SQL");

    for bad in ["keys?limit=0", "keys?limit=1001", "keys?owner=ana"] {
        assert_openai_error(gateway.admin_get(bad).await, 400, "invalid_request").await;
    }
}

#[tokio::test]
async fn key_requests_are_validated() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let cases = [
        (json!({ "name": "" }), "name"),
        (json!({ "name": "x", "models": ["no-such-model"] }), "models"),
        (json!({ "name": "x", "role": "root" }), "role"),
        (json!({ "name": "x", "expires_in": "soon" }), "expires_in"),
        (json!({ "name": "x", "expires_at": "2001-01-01T00:00:00Z" }), "expires_at"),
        (json!({ "name": "x", "expires_at": "2100-01-01T00:00:00Z", "expires_in": "1d" }), "expires_at"),
    ];
    for (body, param) in cases {
        let error = assert_openai_error(gateway.admin_post("keys", body.clone()).await, 400, "invalid_request").await;
        assert_eq!(error["error"]["param"], param, "{body}");
    }
    assert_openai_error(
        gateway.admin_post("keys", json!({ "name": "x", "colour": "red" })).await,
        400,
        "invalid_request",
    )
    .await;
    let response = gateway
        .http
        .post(format!("{}/admin/v1/keys", gateway.url))
        .bearer_auth(ADMIN_KEY)
        .body("{oops")
        .send()
        .await
        .expect("send");
    assert_openai_error(response, 400, "invalid_json").await;
    let response = gateway.http.get(format!("{}/admin/v1/keys", gateway.url)).send().await.expect("send");
    assert_openai_error(response, 401, "missing_api_key").await;
}

#[tokio::test]
async fn usage_records_carry_the_contract_fields_and_filter_and_page() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let (a_id, a) = gateway.create_key(json!({ "name": "a" })).await;
    let (_, b) = gateway.create_key(json!({ "name": "b" })).await;
    for key in [&a, &b, &a] {
        assert_eq!(gateway.post("/v1/chat/completions", key, &chat("m")).await.status(), 200);
    }
    let records = gateway.usage(3).await;
    for field in [
        "id",
        "key_id",
        "model",
        "deployment",
        "status",
        "input_tokens",
        "output_tokens",
        "cached_tokens",
        "reasoning_tokens",
        "latency_ms",
        "ttft_ms",
        "estimated",
        "created_at",
    ] {
        assert!(records[0].get(field).is_some(), "missing `{field}` in {}", records[0]);
    }
    let ids: Vec<_> = records.iter().map(|r| r["id"].as_str().expect("id").to_owned()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable_by(|x, y| y.cmp(x));
    assert_eq!(ids, sorted, "newest first");

    let only_a: Value = gateway.admin_get(&format!("usage?key_id={a_id}")).await.json().await.expect("json");
    assert_eq!(only_a["data"].as_array().map(Vec::len), Some(2));
    // Each record names its key, read for the page's keys only.
    assert!(only_a["data"].as_array().expect("data").iter().all(|r| r["key_name"] == "a"), "{only_a}");
    let page: Value = gateway.admin_get("usage?limit=2").await.json().await.expect("json");
    assert_eq!(page["data"].as_array().map(Vec::len), Some(2));
    let next = page["next_before"].as_str().expect("a next page");
    let rest: Value = gateway.admin_get(&format!("usage?limit=2&before={next}")).await.json().await.expect("json");
    assert_eq!(rest["data"].as_array().map(Vec::len), Some(1));
    assert!(rest["next_before"].is_null());
    let future: Value = gateway.admin_get("usage?from=2999-01-01T00:00:00Z").await.json().await.expect("json");
    assert_eq!(future["data"].as_array().map(Vec::len), Some(0));

    assert_openai_error(gateway.admin_get("usage?limit=0").await, 400, "invalid_request").await;
    assert_openai_error(gateway.admin_get("usage?from=yesterday").await, 400, "invalid_request").await;
    assert_openai_error(gateway.admin_get("usage?bogus=1").await, 400, "invalid_request").await;
}

#[tokio::test]
async fn the_price_catalog_is_listed_with_config_rows_applied_to_admins_only() {
    let upstream = FakeUpstream::start().await;
    let config = crate::support::default_config(&upstream)
        + r#"
        [[prices]]
        model = "our-fine-tune"
        provider = "in-house"
        kind = "open-weight"
        input_per_mtok = 0.05
        output_per_mtok = 0.2
        as_of = "2026-11-28"
        source = "our GPU invoice"
        "#;
    let gateway = TestGateway::start_with(&config).await;
    let listed: Value = gateway.admin_get("prices?provider=in-house").await.json().await.expect("json");
    let rows = listed["data"].as_array().expect("data");
    assert_eq!(rows.len(), 1, "{listed}");
    assert_eq!(rows[0]["model"], "our-fine-tune");
    assert_eq!(rows[0]["per_mtok"]["input"], 0.05);
    assert_eq!(rows[0]["per_mtok"]["cache_read"], 0.05, "no cache price: cached tokens cost input");
    let frontier: Value = gateway.admin_get("prices?kind=frontier").await.json().await.expect("json");
    let frontier = frontier["data"].as_array().expect("data");
    assert!(!frontier.is_empty() && frontier.iter().all(|r| r["kind"] == "frontier" && r["source"] != ""));
    assert!(listed["gpus"].as_array().is_some_and(|g| !g.is_empty()), "GPU rates are listed");

    let member = gateway.client_key().await;
    let refused =
        gateway.http.get(format!("{}/admin/v1/prices", gateway.url)).bearer_auth(&member).send().await.expect("send");
    assert_eq!(refused.status(), 403);
}

#[tokio::test]
async fn each_usage_record_carries_its_cost_at_the_deployments_price() {
    let upstream = FakeUpstream::start().await;
    let config = crate::support::default_config(&upstream).replace(
        "upstream_model = \"upstream-m\"",
        "upstream_model = \"upstream-m\"\n        price = { input = 1.0, output = 2.0, cache_read = 0.5 }",
    );
    let gateway = TestGateway::start_with(&config).await;
    let key = gateway.client_key().await;
    upstream.push(moat_testkit::Reply::chat(
        "cached",
        Some(moat_testkit::FakeUsage { prompt: 1_000, completion: 100, cached: 400 }),
    ));
    assert_eq!(gateway.post("/v1/chat/completions", &key, &chat("m")).await.status(), 200);
    assert_eq!(gateway.post("/v1/chat/completions", &key, &chat("m")).await.status(), 200);
    let records = gateway.usage(2).await;
    // 600 uncached × $1/M + 400 cached × $0.50/M + 100 output × $2/M = 600 + 200 + 200 µ$.
    assert_eq!(records[1]["cost_micro_usd"], 1_000, "{}", records[1]);
    // The default reply: 12 input × $1/M + 7 output × $2/M.
    assert_eq!(records[0]["cost_micro_usd"], 26, "{}", records[0]);
}

#[tokio::test]
async fn a_self_hosted_deployment_is_costed_by_its_gpus_over_their_throughput() {
    let upstream = FakeUpstream::start().await;
    // One GPU at $3.60 an hour serving 1.8 M tokens an hour: $2 per million tokens, any kind.
    let config = crate::support::default_config(&upstream).replace(
        "upstream_model = \"upstream-m\"",
        "upstream_model = \"upstream-m\"\n        cost = { gpus = 1, gpu_hour_usd = 3.6, tokens_per_hour = 1800000 }",
    );
    let gateway = TestGateway::start_with(&config).await;
    let key = gateway.client_key().await;
    assert_eq!(gateway.post("/v1/chat/completions", &key, &chat("m")).await.status(), 200);
    let records = gateway.usage(1).await;
    // The default reply's 12 input + 7 output tokens × $2/M.
    assert_eq!(records[0]["cost_micro_usd"], 38, "{}", records[0]);
    let deployments: Value = gateway.admin_get("deployments").await.json().await.expect("json");
    let model = &deployments["data"][0]["cost_model"];
    assert_eq!(model["kind"], "gpu", "{deployments}");
    assert_eq!(model["tokens_per_hour"], 1_800_000);
    assert_eq!(deployments["data"][0]["price_per_mtok"]["output"], 2.0);
}

#[tokio::test]
async fn each_usage_record_carries_its_reference_cost_and_who_it_is_charged_to() {
    let upstream = FakeUpstream::start().await;
    // A self-hosted pool at $0.50 per million tokens, against Claude Sonnet 4.6's list price
    // ($3 input, $0.30 cache read, $3.75 cache write, $15 output per million).
    let config = crate::support::default_config(&upstream).replace(
        "upstream_model = \"upstream-m\"",
        "upstream_model = \"upstream-m\"\n        cost = { per_mtok = 0.5 }",
    ) + "\n[savings]\nreferences = [{ model = \"claude-sonnet-4-6\", provider = \"anthropic\" }]\n";
    let gateway = TestGateway::start_with(&config).await;
    let user: Value =
        gateway.admin_post("users", json!({ "email": "ref@acme.test" })).await.json().await.expect("json");
    let team: Value = gateway.admin_post("teams", json!({ "name": "platform" })).await.json().await.expect("json");
    let (user_id, team_id) = (user["id"].as_str().expect("id"), team["id"].as_str().expect("id"));
    let member = gateway
        .http
        .put(format!("{}/admin/v1/teams/{team_id}/members/{user_id}", gateway.url))
        .bearer_auth(crate::support::ADMIN_KEY)
        .json(&json!({ "role": "member" }))
        .send()
        .await
        .expect("send");
    assert!(member.status().is_success());
    let (_, key) = gateway.create_key(json!({ "name": "k", "user_id": user_id })).await;
    // 10,000 prompt tokens of which 6,000 from the cache, and 500 output tokens.
    upstream.push(moat_testkit::Reply::chat(
        "hi",
        Some(moat_testkit::FakeUsage { prompt: 10_000, completion: 500, cached: 6_000 }),
    ));
    assert_eq!(gateway.post("/v1/chat/completions", &key, &chat("m")).await.status(), 200);
    let record = &gateway.usage(1).await[0];
    // Actual: 10,500 tokens × $0.50/M = 5,250 µ$. Reference: 4,000 × $3 + 6,000 × $0.30 +
    // 500 × $15 = 12,000 + 1,800 + 7,500 = 21,300 µ$.
    assert_eq!(record["cost_micro_usd"], 5_250, "{record}");
    assert_eq!(record["reference_cost_micro_usd"], 21_300, "{record}");
    assert_eq!(record["savings_micro_usd"], 16_050, "{record}");
    assert_eq!(record["user_id"], user_id);
    assert_eq!(record["team_id"], team_id, "a personal key is charged to its user's team");
}

#[test]
fn a_reference_missing_from_the_catalog_is_a_config_error() {
    let text = "[savings]\nreferences = [{ model = \"gpt-99\", provider = \"openai\" }]\n";
    let error =
        moat_server::config::load_from_str(text, "test", &std::collections::HashMap::new()).expect_err("refused");
    assert!(error.issues.iter().any(|i| i.path == "savings.references[0]" && i.message.contains("gpt-99")), "{error}");
}
