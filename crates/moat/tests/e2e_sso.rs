//! Single sign-on end to end, as a person meets it: a real OpenID Connect provider (the
//! certified `oidc-provider` package), headless Chromium signing in through it, moat
//! provisioning the person with the teams and role their groups map to; then `moat login`
//! approved in that browser, `moat setup claude-code`, and a real `claude -p` through moat with
//! the personal key, on llama.cpp's `llama-server`.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a test fails loudly on what it set up itself")]
#![allow(clippy::print_stdout, reason = "the test prints what it saw, for the record")]

mod browser;
mod support;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use browser::Browser;
use serde_json::Value;
use support::{
    ADMIN_KEY, Guard, MOAT, llama_and_model, start_llama, start_moat, two_free_ports, venv, wait_for_record,
    wait_healthy,
};

/// Starts the provider from its package under `~/.cache/moat/oidc`.
fn start_provider(port: u16, redirect_uri: &str) -> Guard {
    let dir = PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/moat/oidc");
    assert!(
        dir.join("node_modules/oidc-provider").exists(),
        "no oidc-provider in {}: run scripts/install-e2e-deps",
        dir.display()
    );
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc/provider.mjs"), dir.join("provider.mjs"))
        .expect("copy provider");
    let mut child = Command::new("node")
        .args(["provider.mjs", &port.to_string(), redirect_uri])
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(match std::env::var_os("MOAT_E2E_OIDC_LOG") {
            Some(path) => Stdio::from(std::fs::File::create(path).expect("log file")),
            None => Stdio::null(),
        })
        .spawn()
        .expect("start the OIDC provider");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    while !line.starts_with("ready") {
        line.clear();
        assert!(out.read_line(&mut line).expect("read") > 0, "the OIDC provider did not start");
    }
    // Keep reading: the provider logs notices, and a closed pipe would end it.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    Guard(child)
}

/// Signs `email` in through the provider's pages, from moat's sign-in page.
async fn sign_in_with_sso(browser: &Browser, moat: &str, email: &str) {
    browser.open(&format!("{moat}/login?next=/device")).await;
    browser.click("#sso").await;
    browser.type_into("input[name=login]", email).await;
    browser.type_into("input[name=password]", "any password").await;
    browser.click("button[type=submit]").await;
    // The provider asks for consent once per client.
    browser.click("input[name=prompt][value=consent] ~ button[type=submit]").await;
}

async fn admin_get(http: &reqwest::Client, url: &str, path: &str) -> Value {
    http.get(format!("{url}/admin/v1/{path}"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sso_then_moat_login_then_claude_code_with_the_personal_key() {
    let venv = venv();
    let (bin_dir, model) = llama_and_model(&venv);
    let (llama_port, moat_port) = two_free_ports();
    let oidc_port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
    let moat = format!("http://127.0.0.1:{moat_port}");
    let _llama = start_llama(&bin_dir, &model, llama_port, &[]);
    let _provider = start_provider(oidc_port, &format!("{moat}/sso/callback"));
    let http = reqwest::Client::new();
    wait_healthy(&http, &format!("http://127.0.0.1:{llama_port}/health")).await;

    let dir = tempfile::tempdir().expect("dir");
    std::fs::write(dir.path().join("sso-secret"), "moat-sso-secret-for-tests").expect("secret");
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:{moat_port}"

[sign_in]
secure_cookies = false
device_poll_interval = "1s"

[egress]
allowed_networks = ["127.0.0.0/8"]   # the identity provider runs on this machine

[sso]
issuer = "http://127.0.0.1:{oidc_port}"
client_id = "moat"
client_secret = {{ file = "{secret}" }}
redirect_url = "{moat}/sso/callback"
scopes = ["openid", "email", "profile", "groups"]
allowed_domains = ["acme.test"]

[sso.group_roles]
moat-admins = "admin"

[sso.group_teams]
engineering = "Engineering"

[[deployments]]
name = "cc-chat"
url = "http://127.0.0.1:{llama_port}/v1"
upstream_model = "gemma"
stop = ["<|im_end|>", "\n"]
tokenize_url = "http://127.0.0.1:{llama_port}/tokenize"

[[models]]
name = "sso-model"
deployments = ["cc-chat"]
"#,
        secret = dir.path().join("sso-secret").display(),
    );
    let config_path = dir.path().join("moat.toml");
    std::fs::write(&config_path, config).expect("config");
    let (_moat, url) = start_moat(dir.path(), &config_path);
    assert_eq!(url, moat);

    // Ana signs in through the provider and lands in moat, provisioned from her groups.
    let browser = Browser::start().await;
    sign_in_with_sso(&browser, &moat, "ana@acme.test").await;
    browser.wait_for_url(&format!("{moat}/device")).await;
    assert!(browser.source().await.contains("Connect a device"));
    let users = admin_get(&http, &moat, "users").await;
    let ana = users["data"]
        .as_array()
        .expect("users")
        .iter()
        .find(|u| u["email"] == "ana@acme.test")
        .expect("ana provisioned")
        .clone();
    assert_eq!(ana["org_role"], "admin", "moat-admins maps to admin: {ana}");
    let teams = admin_get(&http, &moat, "teams").await;
    let engineering = teams["data"]
        .as_array()
        .expect("teams")
        .iter()
        .find(|t| t["name"] == "Engineering")
        .expect("team made")
        .clone();
    let team = admin_get(&http, &moat, &format!("teams/{}", engineering["id"].as_str().expect("id"))).await;
    assert_eq!(team["members"][0]["user_id"], ana["id"]);

    // moat login, approved in the same browser.
    let home = tempfile::tempdir().expect("home");
    let mut login = Command::new(MOAT)
        .args(["login", "--server", &moat])
        .env_clear()
        .env("HOME", home.path())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("moat login");
    let mut said = BufReader::new(login.stderr.take().expect("stderr"));
    let code = loop {
        let mut line = String::new();
        assert!(said.read_line(&mut line).expect("read") > 0, "moat login ended early");
        if let Some(code) = line.split("shows the code ").nth(1) {
            break code.trim().to_owned();
        }
    };
    browser.open(&format!("{moat}/device?user_code={code}")).await;
    assert!(browser.source().await.contains(&code), "the browser shows the code to compare");
    browser.click("#approve").await;
    assert!(tokio::task::spawn_blocking(move || login.wait()).await.expect("join").expect("wait").success());

    // moat setup claude-code, then Claude Code through moat with the personal key.
    let setup = Command::new(MOAT)
        .args(["setup", "claude-code", "--model", "sso-model"])
        .env_clear()
        .env("HOME", home.path())
        .output()
        .expect("moat setup");
    assert!(setup.status.success(), "{}", String::from_utf8_lossy(&setup.stderr));
    let result = support::claude_in(home.path()).await;
    assert_eq!(result["is_error"], false, "Claude Code with the personal key: {result}");
    let record = wait_for_record(&http, &moat, "model=sso-model", |r| r["status"] == 200).await;
    let keys = admin_get(&http, &moat, "keys").await;
    let personal =
        keys["data"].as_array().expect("keys").iter().find(|k| k["id"] == record["key_id"]).expect("the key").clone();
    assert_eq!(
        (personal["user_id"].clone(), personal["role"].as_str()),
        (ana["id"].clone(), Some("client")),
        "{personal}"
    );
    println!("SSO → moat login → Claude Code: usage record {record}");

    // Someone from another domain is turned away; after the provider rotates its signing key,
    // Bo still signs in (moat fetches the new key) and joins Engineering as a member.
    let outsider = Browser::start().await;
    sign_in_with_sso(&outsider, &moat, "eve@evil.test").await;
    outsider.wait_for_url(&format!("{moat}/sso/callback")).await;
    assert!(outsider.source().await.contains("evil.test may not sign in"));
    http.post(format!("http://127.0.0.1:{oidc_port}/rotate")).send().await.expect("rotate");
    let bo_browser = Browser::start().await;
    sign_in_with_sso(&bo_browser, &moat, "bo@acme.test").await;
    bo_browser.wait_for_url(&format!("{moat}/device")).await;
    let users = admin_get(&http, &moat, "users").await;
    let bo =
        users["data"].as_array().expect("users").iter().find(|u| u["email"] == "bo@acme.test").expect("bo").clone();
    assert_eq!(bo["org_role"], "member");
    assert!(!users["data"].as_array().expect("users").iter().any(|u| u["email"] == "eve@evil.test"));
    let audit = admin_get(&http, &moat, "audit?action=user.sign_in").await;
    assert_eq!(audit["data"].as_array().map(Vec::len), Some(2), "{audit}");
}
