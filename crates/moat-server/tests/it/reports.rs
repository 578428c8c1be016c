//! Reports from the hourly rollups: spend, tokens and savings by team, model and day, and the
//! monthly chargeback CSV.

use moat_testkit::{FakeUpstream, FakeUsage, Reply};
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, TestGateway, assert_openai_error, chat, default_config};

async fn created(response: reqwest::Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.expect("json");
    assert_eq!(status, 201, "{body}");
    body
}

/// A team with one member and that member's key.
async fn team_with_key(gateway: &TestGateway, name: &str) -> (String, String) {
    let team = created(gateway.admin_post("teams", json!({ "name": name })).await).await;
    let user = created(gateway.admin_post("users", json!({ "email": format!("{name}@acme.test") })).await).await;
    let (team_id, user_id) = (team["id"].as_str().expect("id"), user["id"].as_str().expect("id"));
    let joined = gateway
        .http
        .put(format!("{}/admin/v1/teams/{team_id}/members/{user_id}", gateway.url))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({ "role": "member" }))
        .send()
        .await
        .expect("send");
    assert!(joined.status().is_success());
    let (_, key) = gateway.create_key(json!({ "name": format!("{name}-key"), "user_id": user_id })).await;
    (team_id.to_owned(), key)
}

#[tokio::test]
async fn reports_show_spend_and_savings_by_team_and_model_and_chargeback_exports_them() {
    let upstream = FakeUpstream::start().await;
    // $1 per million tokens of any kind, against Claude Sonnet 4.6 ($3 in, $15 out per million).
    let config = default_config(&upstream).replace(
        "upstream_model = \"upstream-m\"",
        "upstream_model = \"upstream-m\"\n        cost = { per_mtok = 1.0 }",
    ) + "\n[savings]\nreferences = [{ model = \"claude-sonnet-4-6\", provider = \"anthropic\" }]\n";
    let gateway = TestGateway::start_with(&config).await;
    let (red, red_key) = team_with_key(&gateway, "red").await;
    let (_blue, blue_key) = team_with_key(&gateway, "blue").await;
    let usage = FakeUsage { prompt: 1_000, completion: 100, cached: 0 };
    for _ in 0..3 {
        upstream.push(Reply::chat("hi", Some(usage)));
    }
    for key in [&red_key, &red_key, &blue_key] {
        assert_eq!(gateway.post("/v1/chat/completions", key, &chat("m")).await.status(), 200);
    }
    upstream.push(Reply::error(500, "boom"));
    assert_eq!(gateway.post("/v1/chat/completions", &blue_key, &chat("m")).await.status(), 502);
    gateway.usage(4).await;

    let report: Value = gateway.admin_get("reports/usage?by=team").await.json().await.expect("json");
    let rows = report["data"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{report}");
    // Largest cost first: red's two requests, 1,100 tokens × $1/M each.
    assert_eq!(rows[0]["team"], red.as_str());
    assert_eq!(rows[0]["team_name"], "red");
    assert_eq!(rows[0]["requests"], 2);
    assert_eq!(rows[0]["cost_micro_usd"], 2_200);
    // 1,000 × $3 + 100 × $15 = 4,500 µ$ each at the reference.
    assert_eq!(rows[0]["reference_cost_micro_usd"], 9_000);
    assert_eq!(rows[0]["savings_micro_usd"], 6_800);
    assert_eq!(rows[0]["savings_percent"], 75.6);
    assert_eq!(rows[1]["errors"], 1);
    assert_eq!(report["total"]["requests"], 4);
    assert_eq!(report["total"]["cost_usd"], "$0.0033");
    assert_eq!(report["reference"]["model"], "claude-sonnet-4-6");
    assert!(report["total"]["latency_p50_ms"].is_u64(), "{report}");

    let by_model_day: Value = gateway.admin_get("reports/usage?by=model,day").await.json().await.expect("json");
    let row = &by_model_day["data"][0];
    assert_eq!(row["model"], "m");
    assert!(row["day"].as_str().is_some_and(|d| d.ends_with("T00:00:00Z")), "{row}");
    let narrowed: Value = gateway.admin_get(&format!("reports/usage?team={red}")).await.json().await.expect("json");
    assert_eq!(narrowed["total"]["requests"], 2);
    let bad = gateway.admin_get("reports/usage?by=planet").await;
    assert_openai_error(bad, 400, "invalid_request").await;

    let month = &crate::support::now_rfc3339()[..7];
    let csv = gateway.admin_get(&format!("reports/chargeback?month={month}")).await;
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.expect("text");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "month,team_id,team_name,requests,errors,input_tokens,cached_tokens,output_tokens,cost_usd,reference_cost_usd,savings_usd"
    );
    assert_eq!(lines[1], format!("{month},{red},red,2,0,2000,0,200,0.0022,0.009,0.0068"));
    assert_eq!(lines.len(), 3, "{csv}");
}
