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
    ) + r#"
[savings]
references = [
    { model = "claude-sonnet-4-6", provider = "anthropic" },
    { model = "our-frontier", provider = "acme" },
]

[[prices]]
model = "our-frontier"
provider = "acme"
kind = "frontier"
input_per_mtok = 10.0
output_per_mtok = 30.0
"#;
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
    let records = gateway.usage(4).await;
    let first_at = records.iter().filter_map(|r| r["created_at"].as_str()).min().expect("created_at").to_owned();

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
    // Each reference, priced from the row's token sums: 2,000 × $10 + 200 × $30 per million.
    let second = &rows[0]["references"][1];
    assert_eq!(
        (second["model"].as_str(), second["cost_micro_usd"].as_u64()),
        (Some("our-frontier"), Some(26_000)),
        "{report}"
    );
    assert_eq!(second["savings_micro_usd"], 23_800);
    assert_eq!(rows[0]["references"][0]["cost_micro_usd"], 9_000, "the first reference, the same by either route");
    assert_eq!(report["total"]["requests"], 4);
    assert_eq!(report["total"]["cost_usd"], "$0.0033");
    assert_eq!(report["reference"]["model"], "claude-sonnet-4-6");
    assert!(report["total"]["latency_p50_ms"].is_u64(), "{report}");
    // The fake upstream answers at once: every measured first byte is in the first bucket.
    assert_eq!(report["total"]["ttft_p50_ms"], 25, "{report}");

    let by_model_day: Value = gateway.admin_get("reports/usage?by=model,day").await.json().await.expect("json");
    let row = &by_model_day["data"][0];
    assert_eq!(row["model"], "m");
    assert!(row["day"].as_str().is_some_and(|d| d.ends_with("T00:00:00Z")), "{row}");
    // People and keys are named: e-mails and key names, looked up for the rows shown.
    let by_user_key: Value = gateway.admin_get("reports/usage?by=user,key&limit=1").await.json().await.expect("json");
    let row = &by_user_key["data"][0];
    assert_eq!(
        (row["user_name"].as_str(), row["key_name"].as_str()),
        (Some("red@acme.test"), Some("red-key")),
        "{row}"
    );
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
        "month,team_id,team_name,requests,errors,input_tokens,cached_tokens,output_tokens,cost_usd,measured_cost_usd,\
         reference_cost_usd,savings_usd,measured_savings_usd"
    );
    // No GPU pool here: the measured cost is the recorded one.
    assert_eq!(lines[1], format!("{month},{red},red,2,0,2000,0,200,0.0022,0.0022,0.009,0.0068,0.0068"));
    assert_eq!(lines.len(), 3, "{csv}");

    // Months in a time zone: the month that holds now in Kiritimati (UTC+14) has the rows,
    // labelled with that month; a bad zone is refused.
    let kiritimati = jiff::Timestamp::now().to_zoned(jiff::tz::TimeZone::get("Pacific/Kiritimati").expect("zone"));
    let local_month = kiritimati.strftime("%Y-%m").to_string();
    let csv = gateway
        .admin_get(&format!("reports/chargeback?month={local_month}&tz=Pacific/Kiritimati"))
        .await
        .text()
        .await
        .expect("text");
    assert!(csv.lines().nth(1).is_some_and(|l| l.starts_with(&format!("{local_month},{red},red,2,"))), "{csv}");
    let bad = gateway.admin_get("reports/chargeback?tz=Mars/Olympus").await;
    assert_openai_error(bad, 400, "invalid_request").await;
    // `to` on an hour's start stops there: the hour before the first record's holds nothing.
    let this_hour = format!("{}00:00Z", &first_at[..14]);
    let hour_ms = chrono_free_ms(&this_hour);
    let before: Value = gateway
        .admin_get(&format!("reports/usage?from={}&to={this_hour}", crate::support::rfc3339_of_ms(hour_ms - 3_600_000)))
        .await
        .json()
        .await
        .expect("json");
    assert_eq!(before["total"]["requests"], 0, "{before}");
    assert_eq!(before["to"], this_hour.as_str());
}

#[tokio::test]
async fn a_gpu_pool_is_charged_its_hours_shared_by_the_tokens_each_team_used() {
    let upstream = FakeUpstream::start().await;
    // One GPU at $36 an hour rated at 1 M tokens an hour: $36 per million when busy.
    let config = default_config(&upstream).replace(
        "upstream_model = \"upstream-m\"",
        "upstream_model = \"upstream-m\"\n        cost = { gpus = 1, gpu_hour_usd = 36.0, tokens_per_hour = 1000000 }",
    );
    let gateway = TestGateway::start_with(&config).await;
    let (red, red_key) = team_with_key(&gateway, "red").await;
    let (blue, blue_key) = team_with_key(&gateway, "blue").await;
    // Red serves 3,000 tokens, blue 1,000.
    upstream.push(Reply::chat("hi", Some(FakeUsage { prompt: 2_000, completion: 1_000, cached: 0 })));
    upstream.push(Reply::chat("hi", Some(FakeUsage { prompt: 500, completion: 500, cached: 0 })));
    assert_eq!(gateway.post("/v1/chat/completions", &red_key, &chat("m")).await.status(), 200);
    assert_eq!(gateway.post("/v1/chat/completions", &blue_key, &chat("m")).await.status(), 200);
    gateway.usage(2).await;
    // From the start of the previous hour; the pool counts from the first hour it served
    // (this one), up to now.
    let from = crate::support::now_rfc3339();
    let from = format!("{}00:00Z", &from[..14]);
    let from_ms = chrono_free_ms(&from) - 3_600_000;
    let report: Value = gateway
        .admin_get(&format!("reports/usage?by=team&from={}", crate::support::rfc3339_of_ms(from_ms)))
        .await
        .json()
        .await
        .expect("json");
    let pool = &report["pools"][0];
    assert_eq!(pool["deployment"], "fake", "{report}");
    assert_eq!(pool["tokens"], 4_000);
    let period_cost = pool["period_cost_micro_usd"].as_u64().expect("period cost");
    assert!(period_cost > 0 && period_cost <= 36_000_000, "at most this hour of the GPU: {pool}");
    assert!(pool["utilisation_percent"].as_f64().is_some_and(|u| u > 0.0), "{pool}");
    let rows = report["data"].as_array().expect("rows");
    let measured = |team: &str| {
        rows.iter().find(|r| r["team"] == team).and_then(|r| r["measured_cost_micro_usd"].as_u64()).expect("row")
    };
    let (red_cost, blue_cost) = (measured(&red), measured(&blue));
    assert_eq!(red_cost + blue_cost, period_cost, "the pool's hours are charged in full, no more");
    assert!(red_cost.abs_diff(3 * blue_cost) <= 3, "shared 3:1 by tokens: {red_cost} vs {blue_cost}");
    // The recorded cost, at the rated throughput, is far smaller: 4,000 tokens at $36/M.
    assert_eq!(report["total"]["cost_micro_usd"], 144_000);
    assert_eq!(report["total"]["measured_cost_micro_usd"], period_cost);
    // Narrowed to blue, blue still carries only its share (a moment later: the pool's hours
    // run up to now, so its share has grown by the milliseconds in between).
    let blue_only: Value = gateway
        .admin_get(&format!("reports/usage?team={blue}&from={}", crate::support::rfc3339_of_ms(from_ms)))
        .await
        .json()
        .await
        .expect("json");
    let blue_later = blue_only["total"]["measured_cost_micro_usd"].as_u64().expect("measured");
    assert!(blue_later >= blue_cost && blue_later <= blue_cost + blue_cost / 1000, "{blue_later} vs {blue_cost}");
}

/// `YYYY-MM-DDTHH:MM:SSZ` as Unix milliseconds.
fn chrono_free_ms(text: &str) -> i64 {
    let n = |range: std::ops::Range<usize>| text[range].parse::<i64>().expect("number");
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + n(11..13)) * 60 + n(14..16)) * 60_000 + n(17..19) * 1000
}
