//! The web console in a real browser: headless Chromium signs in with a password, reads the
//! dashboard over traffic that went through moat to llama.cpp's `llama-server`, finds a request
//! in the usage explorer, creates a team and invites someone into it, sets a budget, makes a key
//! and sees it once, uses it, and opens the agent setup page (and, between, adds an existing
//! person to the team, lists invitations, and reads the models and settings pages). A screenshot of each page is
//! written under `target/tmp/console-screenshots/` (and to `$MOAT_SCREENSHOTS` when set).

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a test fails loudly on what it set up itself")]

mod browser;
mod support;

use std::path::PathBuf;

use browser::Browser;
use serde_json::{Value, json};
use support::{
    ADMIN_KEY, llama_and_model, start_llama, start_moat, two_free_ports, venv, wait_for_record, wait_healthy,
};

const PASSWORD: &str = "correct horse battery staple";

/// Where screenshots go: the test build's scratch folder, and `$MOAT_SCREENSHOTS` if set.
fn screenshot_paths(name: &str) -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots").join(name)];
    if let Some(dir) = std::env::var_os("MOAT_SCREENSHOTS") {
        paths.push(PathBuf::from(dir).join(name));
    }
    paths
}

async fn screenshot(browser: &Browser, name: &str) {
    for path in screenshot_paths(name) {
        browser.screenshot(&path).await;
    }
}

async fn admin(http: &reqwest::Client, url: &str, method: reqwest::Method, path: &str, body: Value) -> Value {
    let response = http
        .request(method, format!("{url}/admin/v1/{path}"))
        .bearer_auth(ADMIN_KEY)
        .json(&body)
        .send()
        .await
        .expect("admin call");
    assert!(response.status().is_success(), "{path}: {}", response.status());
    response.json().await.unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_a_browser_over_real_traffic() {
    let venv = venv();
    let (bin_dir, model) = llama_and_model(&venv);
    let (llama_port, moat_port) = two_free_ports();
    let _llama = start_llama(&bin_dir, &model, llama_port, &[]);
    let http = reqwest::Client::new();
    wait_healthy(&http, &format!("http://127.0.0.1:{llama_port}/health")).await;

    let dir = tempfile::tempdir().expect("dir");
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:{moat_port}"

[sign_in]
secure_cookies = false

[savings]
references = [{{ model = "claude-sonnet-4-6", provider = "anthropic" }}]

[[deployments]]
name = "gemma-l40s"
url = "http://127.0.0.1:{llama_port}/v1"
upstream_model = "gemma"
stop = ["<|im_end|>"]
cost = {{ gpus = 1, gpu = "L40S 48GB", tokens_per_hour = 2000000 }}

[[models]]
name = "gemma"
deployments = ["gemma-l40s"]
"#
    );
    let config_path = dir.path().join("moat.toml");
    std::fs::write(&config_path, config).expect("config");
    let (_moat, url) = start_moat(dir.path(), &config_path);

    // An admin with a password, and a team key to make traffic with.
    let ana =
        admin(&http, &url, reqwest::Method::POST, "users", json!({ "email": "ana@acme.test", "org_role": "admin" }))
            .await;
    let ana_id = ana["id"].as_str().expect("id");
    let password = http
        .put(format!("{url}/admin/v1/users/{ana_id}/password"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({ "password": PASSWORD }))
        .send()
        .await
        .expect("password");
    assert_eq!(password.status(), 204);
    admin(&http, &url, reqwest::Method::POST, "users", json!({ "email": "cy@acme.test" })).await;
    let team = admin(&http, &url, reqwest::Method::POST, "teams", json!({ "name": "Platform" })).await;
    let team_key =
        admin(&http, &url, reqwest::Method::POST, "keys", json!({ "name": "ci", "team_id": team["id"] })).await;
    let team_key = team_key["key"].as_str().expect("key");
    let mut request_ids = Vec::new();
    for question in ["Say hi.", "Name a colour.", "Count to three."] {
        let answer = http
            .post(format!("{url}/v1/chat/completions"))
            .bearer_auth(team_key)
            .json(&json!({ "model": "gemma", "max_tokens": 24, "messages": [{ "role": "user", "content": question }] }))
            .send()
            .await
            .expect("chat");
        assert_eq!(answer.status(), 200);
        request_ids.push(answer.headers()["x-request-id"].to_str().expect("request id").to_owned());
    }
    wait_for_record(&http, &url, "", |r| r["status"] == 200).await;
    // The rollups the dashboard reads are written with the records.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let browser = Browser::start().await;
    browser.resize(1280, 1000).await;
    browser.open(&format!("{url}/ui")).await;
    browser.wait_for_url(&format!("{url}/login")).await;
    browser.type_into("#email", "ana@acme.test").await;
    browser.type_into("#password", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser.wait_for_url(&format!("{url}/ui")).await;
    let dashboard = browser.source().await;
    assert!(dashboard.contains("<h1>Dashboard</h1>"), "{dashboard}");
    assert!(dashboard.contains("vs claude-sonnet-4-6"), "{dashboard}");
    assert!(dashboard.contains("Platform"), "the top teams name the team: {dashboard}");
    assert!(dashboard.contains("gemma-l40s"), "the GPU pool and its health: {dashboard}");
    let requests = browser.text("#card-requests .value").await;
    assert!(requests.parse::<u64>().is_ok_and(|n| n >= 3), "{requests}");
    screenshot(&browser, "dashboard.png").await;

    // The usage explorer finds one request by the id moat answered with.
    browser.open(&format!("{url}/ui/usage")).await;
    browser.type_into("#id", &request_ids[1]).await;
    browser.click("#filter").await;
    browser.wait_for_url(&format!("{url}/ui/usage?id=")).await;
    let found = browser.text("#records tbody").await;
    assert!(found.contains(&request_ids[1]) && found.contains("gemma-l40s"), "{found}");
    assert!(!found.contains(&request_ids[0]), "{found}");
    browser.open(&format!("{url}/ui/usage")).await;
    screenshot(&browser, "usage.png").await;

    // A team made in the console, and someone invited into it.
    browser.open(&format!("{url}/ui/teams")).await;
    browser.type_into("#team-name", "Research").await;
    browser.click("#create-team").await;
    browser.wait_for_url(&format!("{url}/ui/teams/team_")).await;
    browser.type_into("#email", "bo@acme.test").await;
    browser.click("#send-invite").await;
    let link = browser.text("#invite-link").await;
    assert!(link.starts_with(&format!("{url}/invite/")), "{link}");
    // And someone already in moat added by e-mail, as the team's admin.
    // The invitation's answer is the team page, at the form's address.
    let research = browser.url().await.trim_end_matches("/invite").to_owned();
    browser.type_into("#member-email", "cy@acme.test").await;
    browser.click("#member-role option[value=team-admin]").await;
    browser.click("#add-member").await;
    browser.wait_for_url(&research).await;
    assert!(browser.text("#members").await.contains("cy@acme.test"));
    let research_id = research.rsplit('/').next().expect("team id");
    let members = admin(&http, &url, reqwest::Method::GET, &format!("teams/{research_id}/members"), Value::Null).await;
    assert_eq!(members["data"][0]["role"], "team-admin", "{members}");
    screenshot(&browser, "team.png").await;
    browser.open(&format!("{url}/ui/invitations")).await;
    let invitations = browser.text("#invitations").await;
    assert!(invitations.contains("bo@acme.test") && invitations.contains("Research"), "{invitations}");
    screenshot(&browser, "invitations.png").await;

    // A budget for the team that made the traffic.
    browser.open(&format!("{url}/ui/budgets")).await;
    browser.type_into("#scope_id", team["id"].as_str().expect("team id")).await;
    browser.type_into("#amount_usd", "250").await;
    browser.click("#set-budget").await;
    browser.wait_for_url(&format!("{url}/ui/budgets")).await;
    let budgets = browser.text("#budgets").await;
    assert!(budgets.contains("$250"), "{budgets}");
    screenshot(&browser, "budgets.png").await;

    // A key made in the console, shown once, works through moat.
    browser.open(&format!("{url}/ui/keys")).await;
    browser.type_into("#name", "ana's laptop").await;
    browser.click("#create-key").await;
    let secret = browser.text("#secret").await;
    assert!(secret.starts_with("moat_sk_"), "{secret}");
    screenshot(&browser, "key-created.png").await;
    let answer = http
        .post(format!("{url}/v1/chat/completions"))
        .bearer_auth(&secret)
        .json(&json!({ "model": "gemma", "max_tokens": 8, "messages": [{ "role": "user", "content": "Hello" }] }))
        .send()
        .await
        .expect("chat");
    assert_eq!(answer.status(), 200);
    browser.open(&format!("{url}/ui/keys")).await;
    let keys = browser.source().await;
    assert!(keys.contains("laptop") && !keys.contains(&secret), "listed, never shown again");
    screenshot(&browser, "keys.png").await;

    // A team key made on the team's page; then every key, each named by its owner.
    browser.open(&format!("{url}/ui/teams/{}", team["id"].as_str().expect("team id"))).await;
    browser.type_into("#team-key-name", "nightly evals").await;
    browser.click("#team-key-create-key").await;
    assert!(browser.text("#secret").await.starts_with("moat_sk_"));
    browser.open(&format!("{url}/ui/all-keys")).await;
    let all = browser.text("#all-keys").await;
    assert!(all.contains("nightly evals") && all.contains("team Platform") && all.contains("ana@acme.test"), "{all}");
    screenshot(&browser, "all-keys.png").await;

    browser.open(&format!("{url}/ui/models")).await;
    let models = browser.text("#models").await;
    assert!(models.contains("gemma-l40s"), "the routing policy: {models}");
    screenshot(&browser, "models.png").await;
    browser.open(&format!("{url}/ui/settings")).await;
    assert!(browser.text("#savings").await.contains("claude-sonnet-4-6"));
    screenshot(&browser, "settings.png").await;

    browser.open(&format!("{url}/ui/connect")).await;
    let connect = browser.source().await;
    assert!(connect.contains(&format!("moat login --server {url}")), "{connect}");
    screenshot(&browser, "connect.png").await;

    // On a phone.
    browser.resize(390, 844).await;
    browser.open(&format!("{url}/ui")).await;
    screenshot(&browser, "dashboard-phone.png").await;
}
