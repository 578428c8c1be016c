//! Prompt logging policies end to end: a team that logs in full has each exchange sealed at
//! rest and readable only by admins, every read audited; `metadata` and `none` keep no
//! content; `full` is refused wherever there is no master key to encrypt with.

use std::time::Duration;

use moat_testkit::{FakeUpstream, Reply};
use serde_json::{Value, json};

use crate::support::{
    ADMIN_KEY, ENCRYPTION_KEY, TestGateway, assert_openai_error, captured_logs, chat, default_config,
};

const ENCRYPTED: &str = "\n[encryption]\nkey = { env = \"MOAT_TEST_ENCRYPTION_KEY\" }\n";

/// A team with its own policy, and a key of the team.
async fn team_with_policy(gateway: &TestGateway, name: &str, policy: Value) -> (String, String) {
    let team = gateway.admin_post("teams", json!({ "name": name })).await.json::<Value>().await.expect("json");
    let team_id = team["id"].as_str().expect("id").to_owned();
    let put = gateway.put_team_policy(&team_id, &policy).await;
    assert_eq!(put.status(), 200, "{}", put.text().await.unwrap_or_default());
    let (_, key) = gateway.create_key(json!({ "name": format!("{name}-app"), "team_id": team_id })).await;
    (team_id, key)
}

fn ask(content: &str) -> Value {
    json!({ "model": "m", "messages": [{ "role": "user", "content": content }] })
}

async fn prompt_of(gateway: &TestGateway, key: &str, request_id: &str) -> reqwest::Response {
    let url = format!("{}/admin/v1/usage/{request_id}/prompt", gateway.url);
    gateway.http.get(url).bearer_auth(key).send().await.expect("send")
}

/// The logged exchange of `request_id`, once its settlement has stored it.
async fn logged(gateway: &TestGateway, request_id: &str) -> Value {
    for _ in 0..100 {
        let response = prompt_of(gateway, ADMIN_KEY, request_id).await;
        if response.status() == 200 {
            return response.json().await.expect("json");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no prompt log for {request_id}");
}

#[tokio::test]
async fn a_team_that_logs_in_full_has_each_exchange_sealed_and_read_back_only_by_admins() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&format!("{}{ENCRYPTED}", default_config(&upstream))).await;
    let policy = json!({ "prompts": "full", "prompt_retention_days": 7 });
    let (team_id, key) = team_with_policy(&gateway, "legal", policy).await;

    upstream.push(Reply::chat("The contract renews on 1 March.", None));
    let response = gateway.post("/v1/chat/completions", &key, &ask("When does the Initech contract renew?")).await;
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"].to_str().expect("ascii").to_owned();

    let log = logged(&gateway, &request_id).await;
    assert_eq!(log["request_id"], request_id);
    assert_eq!(log["team_id"], team_id);
    assert_eq!(log["request"]["messages"][0]["content"], "When does the Initech contract renew?");
    assert_eq!(log["completion"], "The contract renews on 1 March.");
    let created = log["created_at"].as_str().expect("created_at");
    let expires = log["expires_at"].as_str().expect("expires_at");
    assert!(expires > created, "{created} .. {expires}");

    // Content is for admins only: not the team's own key, not a reader without a role.
    let member = prompt_of(&gateway, &key, &request_id).await;
    assert_openai_error(member, 403, "admin_required").await;

    // Every read is audited, found or not.
    let missing = prompt_of(&gateway, ADMIN_KEY, "req_that_never_was").await;
    assert_openai_error(missing, 404, "not_found").await;
    let audit: Value = gateway.admin_get("audit?action=prompt.read").await.json().await.expect("json");
    let reads = audit["data"].as_array().expect("data");
    assert!(reads.len() >= 2, "{audit}");
    assert!(reads.iter().any(|e| e["target_id"] == request_id), "{audit}");

    // At rest the exchange is sealed: the SQLite file and its write-ahead log hold no part of
    // it, and neither do the logs nor the metrics.
    if let Some(path) = gateway.store_url.strip_prefix("sqlite://") {
        for file in [path.to_owned(), format!("{path}-wal")] {
            let bytes = std::fs::read(&file).unwrap_or_default();
            assert!(!bytes.windows(7).any(|w| w == b"Initech"), "plaintext prompt in {file}");
            assert!(!bytes.windows(8).any(|w| w == b"renews o"), "plaintext completion in {file}");
        }
    }
    let metrics = gateway.http.get(format!("{}/metrics", gateway.url)).send().await.expect("send");
    let metrics = metrics.text().await.expect("text");
    assert!(metrics.contains(r#"moat_prompt_logs_total{result="stored"} 1"#), "{metrics}");
    for place in [metrics, captured_logs()] {
        assert!(!place.contains("Initech") && !place.contains(ENCRYPTION_KEY));
    }
}

#[tokio::test]
async fn metadata_and_none_keep_no_content() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&format!("{}{ENCRYPTED}", default_config(&upstream))).await;
    let (_, private) = team_with_policy(&gateway, "hr", json!({ "prompts": "none" })).await;
    let default = gateway.client_key().await;
    let mut ids = Vec::new();
    for key in [&private, &default] {
        upstream.push(Reply::chat("noted", None));
        let response = gateway.post("/v1/chat/completions", key, &chat("m")).await;
        assert_eq!(response.status(), 200);
        ids.push(response.headers()["x-request-id"].to_str().expect("ascii").to_owned());
    }
    // Both are in the usage ledger (budgets and chargeback need it), neither has content.
    let records = gateway.usage(2).await;
    assert_eq!(records.len(), 2);
    for id in &ids {
        assert_openai_error(prompt_of(&gateway, ADMIN_KEY, id).await, 404, "not_found").await;
    }
}

#[tokio::test]
async fn full_logging_is_refused_without_a_master_key() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let team = gateway.admin_post("teams", json!({ "name": "ops" })).await.json::<Value>().await.expect("json");
    let team_id = team["id"].as_str().expect("id");
    for (body, param) in [
        (json!({ "prompts": "full" }), "prompts"),
        (json!({ "prompts": "metadata", "prompt_retention_days": 0 }), "prompt_retention_days"),
    ] {
        let put = gateway.put_team_policy(team_id, &body).await;
        let error = assert_openai_error(put, 400, "invalid_request").await;
        assert_eq!(error["error"]["param"], param, "{error}");
    }
    let no_vault = prompt_of(&gateway, ADMIN_KEY, "req_x").await;
    let error = assert_openai_error(no_vault, 404, "not_found").await;
    assert!(error["error"]["message"].as_str().is_some_and(|m| m.contains("[encryption]")), "{error}");

    let text = format!("{}\n[policy]\nprompts = \"full\"\n", default_config(&upstream));
    let env = std::collections::HashMap::from([("FAKE_UPSTREAM_KEY".to_owned(), "x".to_owned())]);
    let error = moat_server::config::load_from_str(&text, "test", &env).expect_err("refused").to_string();
    assert!(error.contains("policy.prompts") && error.contains("[encryption] key"), "{error}");
    let bad_key = format!("{}\n[encryption]\nkey = {{ env = \"SHORT_KEY\" }}\n", default_config(&upstream));
    let env = std::collections::HashMap::from([
        ("FAKE_UPSTREAM_KEY".to_owned(), "x".to_owned()),
        ("SHORT_KEY".to_owned(), "dG9vIHNob3J0".to_owned()),
    ]);
    let error = moat_server::config::load_from_str(&bad_key, "test", &env).expect_err("refused").to_string();
    assert!(error.contains("encryption.key") && error.contains("32 random bytes"), "{error}");
    assert!(!error.contains("dG9vIHNob3J0"), "the key's text is never echoed: {error}");
}

/// Runs `sql` on the gateway's database behind its back.
async fn execute(gateway: &TestGateway, sql: &str) {
    use sqlx::Connection as _;
    if gateway.store_url.starts_with("postgres") {
        let mut connection = sqlx::PgConnection::connect(&gateway.store_url).await.expect("connect");
        sqlx::query(sql).execute(&mut connection).await.expect(sql);
    } else {
        let mut connection = sqlx::SqliteConnection::connect(&gateway.store_url).await.expect("connect");
        sqlx::query(sql).execute(&mut connection).await.expect(sql);
    }
}

#[tokio::test]
async fn an_exchange_logged_while_the_database_is_briefly_away_is_stored_when_it_is_back() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&format!("{}{ENCRYPTED}", default_config(&upstream))).await;
    let (_, key) = team_with_policy(&gateway, "audit", json!({ "prompts": "full" })).await;
    execute(&gateway, "ALTER TABLE prompt_logs RENAME TO prompt_logs_away").await;
    upstream.push(Reply::chat("logged late", None));
    let response = gateway.post("/v1/chat/completions", &key, &ask("kept through an outage")).await;
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    tokio::time::sleep(Duration::from_millis(600)).await;
    execute(&gateway, "ALTER TABLE prompt_logs_away RENAME TO prompt_logs").await;
    let log = logged(&gateway, &request_id).await;
    assert_eq!(log["completion"], "logged late");
    let metrics = gateway.http.get(format!("{}/metrics", gateway.url)).send().await.expect("send");
    let metrics = metrics.text().await.expect("text");
    assert!(metrics.contains(r#"moat_prompt_logs_total{result="stored"} 1"#), "{metrics}");
    assert!(!metrics.contains(r#"result="lost""#), "{metrics}");
}
