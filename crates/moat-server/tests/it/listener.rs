//! The listener facing clients: TLS termination with HSTS and certificate reload, and the
//! limits that keep one client from holding or flooding moat (connections, header count and
//! size, slow headers, slow bodies).

use std::time::Duration;

use moat_testkit::{FakeUpstream, TestPki};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::{TestGateway, default_config};

/// The gateway's address, for raw connections.
fn address(gateway: &TestGateway) -> String {
    gateway.url.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (or `within` passes); what it sent.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0) | Err(_)) => return Some(String::from_utf8_lossy(&seen).into_owned()),
            Ok(Ok(n)) => seen.extend_from_slice(&buffer[..n]),
            Err(_) => return None,
        }
    }
}

fn with_server(upstream: &FakeUpstream, server: &str) -> String {
    default_config(upstream).replace("[server]\n", &format!("[server]\n{server}\n"))
}

/// A client that trusts each PKI's CA and reports the certificate it was served. A new one for
/// each check: an HTTP/2 connection would otherwise be reused, with the certificate it began with.
fn tls_client(pkis: &[&TestPki]) -> reqwest::Client {
    let mut builder = reqwest::Client::builder().tls_info(true);
    for pki in pkis {
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).expect("ca"));
    }
    builder.build().expect("client")
}

async fn served_certificate(pkis: &[&TestPki], url: &str) -> (reqwest::Response, Vec<u8>) {
    let response = tls_client(pkis).get(url).send().await.expect("an HTTPS answer");
    let certificate = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("a peer certificate")
        .to_vec();
    (response, certificate)
}

#[tokio::test]
async fn moat_terminates_tls_sends_hsts_and_serves_a_renewed_certificate_without_restarting() {
    let (first, renewed) = (TestPki::generate(), TestPki::generate());
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, first.server_cert_pem()).expect("write");
    std::fs::write(&key, first.server_key_pem()).expect("write");
    let upstream = FakeUpstream::start().await;
    let tls = format!(
        "[server.tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\nreload_interval = \"1s\"\n",
        cert.display(),
        key.display()
    );
    let config = format!("{}\n{tls}", default_config(&upstream));
    let gateway = TestGateway::start_with(&config).await;
    let https = gateway.url.replace("http://127.0.0.1", "https://localhost");
    let client = [&first, &renewed];

    let (response, served) = served_certificate(&client, &format!("{https}/healthz")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_2, "HTTP/2 by ALPN");
    assert_eq!(response.headers()["strict-transport-security"], "max-age=31536000");
    assert_eq!(served, first.server_cert_der());
    // Plain HTTP on the TLS port is not served.
    let plain = gateway.http.get(format!("{}/healthz", gateway.url)).send().await;
    assert!(plain.is_err() || plain.is_ok_and(|r| r.status() != 200));

    // A half-written renewal is refused by a reload (SIGHUP, a config change) and skipped by
    // the periodic check; the current certificate is kept.
    std::fs::write(&cert, "-----BEGIN CERTIFICATE-----\ngarbage").expect("write");
    let refused = gateway.try_reload(&config).expect_err("a reload with a bad certificate is refused");
    assert!(refused.contains("server.tls"), "{refused}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(served_certificate(&client, &format!("{https}/healthz")).await.1, first.server_cert_der());

    // The renewal in place: the periodic check picks it up and new connections get it, with
    // no restart.
    std::fs::write(&cert, renewed.server_cert_pem()).expect("write");
    std::fs::write(&key, renewed.server_key_pem()).expect("write");
    let mut served = Vec::new();
    for _ in 0..100 {
        served = served_certificate(&client, &format!("{https}/healthz")).await.1;
        if served == renewed.server_cert_der() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served, renewed.server_cert_der(), "the renewed certificate is served");
}

#[tokio::test]
async fn a_certificate_that_does_not_load_is_a_config_error() {
    let upstream = FakeUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::generate();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&cert, pki.server_cert_pem()).expect("write");
    std::fs::write(&key, TestPki::generate().server_key_pem()).expect("write");
    for (cert_file, key_file, expect) in [
        (cert.display().to_string(), "/nonexistent/tls.key".to_owned(), "cannot read"),
        (cert.display().to_string(), key.display().to_string(), "do not make a usable pair"),
    ] {
        let text = format!(
            "{}\n[server.tls]\ncert_file = \"{cert_file}\"\nkey_file = \"{key_file}\"\n",
            default_config(&upstream)
        );
        let env = std::collections::HashMap::from([("FAKE_UPSTREAM_KEY".to_owned(), "x".to_owned())]);
        let error = moat_server::config::load_from_str(&text, "test", &env).expect_err("refused").to_string();
        assert!(error.contains("server.tls") && error.contains(expect), "{error}");
    }
}

#[tokio::test]
async fn too_many_or_too_large_headers_are_refused_with_431() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&with_server(&upstream, "max_headers = 20\nmax_header_bytes = 16384")).await;
    let many: String = (0..30).map(|i| format!("x-h{i}: v\r\n")).collect();
    let large = format!("x-big: {}\r\n", "a".repeat(20_000));
    for extra in [many, large] {
        let mut stream = TcpStream::connect(address(&gateway)).await.expect("connect");
        let request = format!("GET /healthz HTTP/1.1\r\nhost: moat\r\n{extra}\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let answer = read_until_closed(&mut stream, Duration::from_secs(10)).await.expect("answered");
        assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    }
    // An ordinary request is still served.
    assert_eq!(gateway.http.get(format!("{}/healthz", gateway.url)).send().await.expect("send").status(), 200);
}

#[tokio::test]
async fn a_client_that_sends_headers_too_slowly_is_disconnected() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&with_server(&upstream, "header_read_timeout = \"500ms\"")).await;
    let mut stream = TcpStream::connect(address(&gateway)).await.expect("connect");
    stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: moat\r\nx-slow: ").await.expect("write");
    // The rest never comes; moat closes the connection rather than wait forever.
    let answer = read_until_closed(&mut stream, Duration::from_secs(20)).await;
    assert!(answer.is_some(), "the slow client's connection is still open");
}

#[tokio::test]
async fn a_body_sent_too_slowly_gets_a_request_timeout_in_the_clients_dialect() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&with_server(&upstream, "body_read_timeout = \"500ms\"")).await;
    let mut stream = TcpStream::connect(address(&gateway)).await.expect("connect");
    let head =
        "POST /v1/messages HTTP/1.1\r\nhost: moat\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n";
    stream.write_all(head.as_bytes()).await.expect("write");
    stream.write_all(b"{\"model\": \"m\"").await.expect("write");
    let mut buffer = vec![0u8; 8192];
    let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buffer))
        .await
        .expect("answered before the test's own deadline")
        .expect("read");
    let answer = String::from_utf8_lossy(&buffer[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""type":"error""#) && answer.contains("server.body_read_timeout"), "{answer}");
}

#[tokio::test]
async fn connections_past_the_limit_are_closed_on_arrival_and_counted() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start_with(&with_server(&upstream, "max_connections = 2")).await;
    let first = TcpStream::connect(address(&gateway)).await.expect("connect");
    let _second = TcpStream::connect(address(&gateway)).await.expect("connect");
    // Give the accept loop time to take both before the third arrives.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut third = TcpStream::connect(address(&gateway)).await.expect("the kernel accepts it");
    let _ = third.write_all(b"GET /healthz HTTP/1.1\r\nhost: moat\r\n\r\n").await;
    let answer = read_until_closed(&mut third, Duration::from_secs(10)).await.expect("closed");
    assert!(answer.is_empty(), "nothing is served past the limit: {answer}");

    // Once a connection closes, there is room again.
    drop(first);
    let mut metrics = String::new();
    for _ in 0..50 {
        if let Ok(response) = reqwest::Client::new().get(format!("{}/metrics", gateway.url)).send().await {
            metrics = response.text().await.expect("text");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(metrics.contains("moat_connections_refused_total 1"), "{metrics}");
    assert!(metrics.contains("moat_connections_open 2"), "{metrics}");
}
