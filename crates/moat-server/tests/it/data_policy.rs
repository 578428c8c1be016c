//! Data policies end to end: credentials in prompts bound for an external deployment are
//! redacted or blocked and counted by kind; `internal_only` and allow-lists keep a team's
//! traffic on the deployments it may reach; the policy API is role-checked and audited.

use moat_testkit::{FakeUpstream, Reply};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, TestGateway, assert_openai_error, captured_logs};

/// A made-up GitHub token and database password, as a coding agent pastes a `.env` file.
fn leaked_env() -> (String, String, String) {
    let token = format!("ghp_{}", "k7Q2m9X4p1Z8".repeat(3));
    let password = "Tr0ub4dor-and-3".to_owned();
    let env =
        format!("please fix my config:\nGITHUB_TOKEN={token}\nDATABASE_URL=postgres://app:{password}@db:5432/app\n");
    (env, token, password)
}

/// Two deployments of the same fake server: `inside` (loopback, so internal) and `outside`
/// (declared external). Model `ext` reaches only `outside`, `int` only `inside`, and `both`
/// tries `outside` first, then `inside`.
fn config(inside: &FakeUpstream, outside: &FakeUpstream, policy: &str) -> String {
    format!(
        r#"
        [routing]
        max_attempts = 2

        {policy}

        [[deployments]]
        name = "inside"
        url = "{inside}"
        upstream_model = "up"
        tokenize_url = "{inside_tokenize}"

        [[deployments]]
        name = "outside"
        url = "{outside}"
        upstream_model = "up"
        location = "external"
        tokenize_url = "{outside_tokenize}"

        [[models]]
        name = "ext"
        deployments = ["outside"]

        [[models]]
        name = "int"
        deployments = ["inside"]

        [[models]]
        name = "both"
        deployments = ["outside", {{ name = "inside", tier = 1 }}]
        "#,
        inside = inside.base_url(),
        outside = outside.base_url(),
        inside_tokenize = inside.tokenize_url(),
        outside_tokenize = outside.tokenize_url(),
    )
}

fn chat_with(model: &str, content: &str) -> Value {
    json!({ "model": model, "messages": [{ "role": "user", "content": content }] })
}

fn sent_content(upstream: &FakeUpstream) -> String {
    let requests = upstream.requests();
    let last = requests.last().expect("the upstream got a request");
    last.json()["messages"][0]["content"].as_str().expect("content").to_owned()
}

async fn usage_of(gateway: &TestGateway, n: u64) -> Vec<Value> {
    gateway.usage(n).await
}

#[tokio::test]
async fn credentials_bound_outside_are_redacted_and_counted_by_kind_never_by_value() {
    let (inside, outside) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let gateway = TestGateway::start_with(&config(&inside, &outside, "")).await;
    let key = gateway.client_key().await;
    let (env, token, password) = leaked_env();

    outside.push(Reply::chat("done", None));
    let response = gateway.post("/v1/chat/completions", &key, &chat_with("ext", &env)).await;
    assert_eq!(response.status(), 200);
    let sent = sent_content(&outside);
    assert!(!sent.contains(&token) && !sent.contains(&password), "a secret left: {sent}");
    assert!(sent.contains("GITHUB_TOKEN=[REDACTED:github_token:1]"), "{sent}");
    assert!(sent.contains("postgres://app:[REDACTED:database_password:1]@db:5432/app"), "{sent}");
    // The prompt's tokens were not counted by the external deployment's tokenizer: it would
    // have seen the prompt whole.
    assert_eq!(outside.tokenize_calls(), 0);

    // The same prompt to an internal deployment leaves as written, and nothing is counted.
    inside.push(Reply::chat("done", None));
    let response = gateway.post("/v1/chat/completions", &key, &chat_with("int", &env)).await;
    assert_eq!(response.status(), 200);
    assert!(sent_content(&inside).contains(&token));

    let records = usage_of(&gateway, 2).await;
    let (internal, external) = (&records[0], &records[1]);
    assert_eq!(external["deployment_location"], "external");
    assert_eq!(external["secrets_found"], json!({ "database_password": 1, "github_token": 1 }));
    assert_eq!(external["secrets_action"], "redact");
    assert_eq!(internal["deployment_location"], "internal");
    assert_eq!(internal["secrets_found"], json!({}));
    assert_eq!(internal["secrets_action"], Value::Null);

    let metrics = gateway.http.get(format!("{}/metrics", gateway.url)).send().await.expect("send");
    let metrics = metrics.text().await.expect("text");
    assert!(metrics.contains(r#"moat_secrets_found_total{kind="github_token",action="redact"} 1"#), "{metrics}");
    for place in [&metrics, &captured_logs(), &records.iter().map(Value::to_string).collect::<String>()] {
        assert!(!place.contains(&token) && !place.contains(&password), "a secret in metrics, logs or records");
    }
}

#[tokio::test]
async fn block_keeps_credentials_inside_or_refuses_in_the_clients_dialect() {
    let (inside, outside) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let gateway = TestGateway::start_with(&config(&inside, &outside, "[policy]\nsecrets = \"block\"")).await;
    let key = gateway.client_key().await;
    let (env, token, _) = leaked_env();

    // `both` would go outside first; with credentials in the prompt it is served inside.
    inside.push(Reply::chat("done", None));
    let response = gateway.post("/v1/chat/completions", &key, &chat_with("both", &env)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(outside.calls(), 0);
    assert_eq!(inside.calls(), 1);

    // `ext` has nowhere else to go: refused, naming the kinds and never the values.
    let response = gateway.post("/v1/chat/completions", &key, &chat_with("ext", &env)).await;
    let body = assert_openai_error(response, 400, "secret_detected").await;
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains("github_token ×1") && !message.contains(&token), "{message}");
    let messages = json!({ "model": "ext", "max_tokens": 16, "messages": [{ "role": "user", "content": env }] });
    let response = gateway.post("/v1/messages", &key, &messages).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert_eq!(outside.calls(), 0, "nothing went outside");

    // A clean prompt still goes outside.
    outside.push(Reply::chat("done", None));
    let response = gateway.post("/v1/chat/completions", &key, &chat_with("ext", "what is a monad?")).await;
    assert_eq!(response.status(), 200);

    // count_tokens follows the policy too: counted here rather than sent outside.
    let count = json!({ "model": "ext", "messages": [{ "role": "user", "content": env }] });
    let response = gateway.post("/v1/messages/count_tokens", &key, &count).await;
    assert_eq!(response.status(), 200);
    assert_eq!(outside.calls(), 1, "only the clean prompt went outside");

    let records = gateway.usage(4).await;
    let blocked: Vec<&Value> = records.iter().filter(|r| r["secrets_action"] == "block").collect();
    assert_eq!(blocked.len(), 3, "{records:?}");
    assert!(blocked.iter().any(|r| r["status"] == 200 && r["deployment"] == "inside"));
    assert!(blocked.iter().filter(|r| r["error_code"] == "secret_detected").count() == 2);
}

#[tokio::test]
async fn a_teams_policy_keeps_its_traffic_on_the_deployments_it_allows() {
    let (inside, outside) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let gateway = TestGateway::start_with(&config(&inside, &outside, "")).await;
    let team = gateway.admin_post("teams", json!({ "name": "finance" })).await.json::<Value>().await.expect("json");
    let team_id = team["id"].as_str().expect("id").to_owned();
    let (_, key) = gateway.create_key(json!({ "name": "finance-app", "team_id": team_id })).await;
    let policy_path = format!("{}/admin/v1/teams/{team_id}/policy", gateway.url);
    let admin = |method: Method, body: Option<Value>| {
        let mut request = gateway.http.request(method, &policy_path).bearer_auth(ADMIN_KEY);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };

    let current: Value = admin(Method::GET, None).await.expect("send").json().await.expect("json");
    assert_eq!(current["source"], "default");
    assert_eq!(
        current["policy"],
        json!({ "internal_only": false, "secrets": "redact", "prompts": "metadata", "prompt_retention_days": 30 })
    );

    let set = admin(Method::PUT, Some(json!({ "internal_only": true, "secrets": "block" }))).await.expect("send");
    assert_eq!(set.status(), 200);
    let set: Value = set.json().await.expect("json");
    assert_eq!(set["source"], "team");

    let response = gateway.post("/v1/chat/completions", &key, &chat_with("ext", "hello")).await;
    let body = assert_openai_error(response, 403, "policy_denied").await;
    assert_eq!(body["error"]["param"], "model");
    inside.push(Reply::chat("done", None));
    let response = gateway.post("/v1/chat/completions", &key, &chat_with("both", "hello")).await;
    assert_eq!(response.status(), 200);
    assert_eq!((outside.calls(), inside.calls()), (0, 1));
    // Other callers still follow the default.
    let other = gateway.client_key().await;
    outside.push(Reply::chat("done", None));
    assert_eq!(gateway.post("/v1/chat/completions", &other, &chat_with("ext", "hello")).await.status(), 200);

    // An allow-list: only `outside`.
    let set = admin(Method::PUT, Some(json!({ "deployments": ["outside"] }))).await.expect("send");
    assert_eq!(set.status(), 200);
    let response = gateway.post("/v1/chat/completions", &key, &chat_with("int", "hello")).await;
    assert_openai_error(response, 403, "policy_denied").await;

    // Refused: unknown deployments, unknown fields, unknown actions, hostile names.
    for bad in [
        json!({ "deployments": ["nowhere"] }),
        json!({ "internal": true }),
        json!({ "secrets": "warn" }),
        json!({ "deployments": ["x' OR '1'='1"] }),
    ] {
        let response = admin(Method::PUT, Some(bad.clone())).await.expect("send");
        assert_eq!(response.status(), 400, "{bad}");
    }

    let cleared = admin(Method::DELETE, None).await.expect("send");
    assert_eq!(cleared.status(), 204);
    assert_eq!(admin(Method::DELETE, None).await.expect("send").status(), 404);
    outside.push(Reply::chat("done", None));
    assert_eq!(gateway.post("/v1/chat/completions", &key, &chat_with("ext", "hello")).await.status(), 200);

    let audit: Value = gateway.admin_get("audit?action=team.policy.").await.json().await.expect("json");
    let actions: Vec<&str> =
        audit["data"].as_array().expect("data").iter().filter_map(|e| e["action"].as_str()).collect();
    assert_eq!(actions, ["team.policy.delete", "team.policy.put", "team.policy.put"]);
    let no_team = gateway.http.get(format!("{}/admin/v1/teams/team_nope/policy", gateway.url)).bearer_auth(ADMIN_KEY);
    assert_eq!(no_team.send().await.expect("send").status(), 404);
}

#[tokio::test]
async fn a_policy_naming_a_missing_deployment_is_a_config_error() {
    let (inside, outside) = (FakeUpstream::start().await, FakeUpstream::start().await);
    let text = config(&inside, &outside, "[policy]\ndeployments = [\"gone\"]\nsecrets = \"shred\"");
    let error = moat_server::config::load_from_str(&text, "test", &Default::default()).expect_err("refused");
    let error = error.to_string();
    assert!(error.contains("policy.deployments[0]") && error.contains("policy.secrets"), "{error}");
}
