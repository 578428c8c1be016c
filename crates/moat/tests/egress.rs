//! moat's own outbound calls (single sign-on, alert webhooks) connect where the egress policy
//! says and nowhere else: not through a proxy named in the environment, which would resolve
//! names out of reach of the address check.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a test fails loudly on what it set up itself")]

mod support;

use std::net::TcpListener;
use std::time::{Duration, Instant};

/// Connections `listener` accepted within `within`.
fn accepted(listener: &TcpListener, within: Duration) -> usize {
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + within;
    let mut count = 0;
    while Instant::now() < deadline {
        match listener.accept() {
            Ok(_) => count += 1,
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    count
}

#[tokio::test]
async fn sign_on_connects_to_the_provider_directly_even_with_a_proxy_in_the_environment() {
    let provider = TcpListener::bind("127.0.0.1:0").expect("bind");
    let proxy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let provider_url = format!("http://{}", provider.local_addr().expect("addr"));
    let proxy_url = format!("http://{}", proxy.local_addr().expect("addr"));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("moat.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:0"

[egress]
allowed_networks = ["127.0.0.0/8"]

[sso]
issuer = "{provider_url}"
client_id = "moat"
redirect_url = "http://127.0.0.1/sso/callback"
"#
        ),
    )
    .expect("config");
    let env =
        [("HTTP_PROXY", proxy_url.as_str()), ("HTTPS_PROXY", proxy_url.as_str()), ("ALL_PROXY", proxy_url.as_str())];
    let (_moat, url, _log) = support::start_moat_with_env(dir.path(), &config, &env);

    // Starting sign-on fetches the provider's discovery document; the provider never answers
    // here, so the request fails, but the connection shows where moat went.
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(1)).build().expect("client");
    let _ = client.get(format!("{url}/sso/login")).send().await;
    assert!(accepted(&provider, Duration::from_secs(3)) >= 1, "moat connected to the provider");
    assert_eq!(accepted(&proxy, Duration::from_millis(200)), 0, "nothing went through the proxy");
}
