//! Connections to upstreams: kept alive and reused, TLS with a private CA, HTTP/2 by ALPN, and
//! client certificates for deployments that require them.

use moat_testkit::{FakeUpstream, TestPki};

use crate::support::{TestGateway, assert_openai_error, chat};

#[tokio::test]
async fn sequential_requests_reuse_one_upstream_connection() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let key = gateway.client_key().await;
    for _ in 0..10 {
        assert_eq!(gateway.post("/v1/chat/completions", &key, &chat("m")).await.status(), 200);
    }
    assert_eq!(upstream.calls(), 10);
    assert_eq!(upstream.connections(), 1, "a keep-alive connection from the deployment's pool");
}

#[tokio::test]
async fn mutual_tls_reaches_a_deployment_that_requires_a_client_certificate() {
    let pki = TestPki::generate();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write pem");
        path.display().to_string()
    };
    let (ca, cert, key) = (
        file("ca.pem", &pki.ca_pem),
        file("moat.pem", &pki.client_cert_pem),
        file("moat-key.pem", &pki.client_key_pem),
    );
    let upstream = FakeUpstream::start_tls(&pki, true).await;
    let config = format!(
        r#"
        [routing]
        max_attempts = 1

        [[deployments]]
        name = "mtls"
        url = "{url}"
        upstream_model = "x"
        tls = {{ ca_file = "{ca}", client_cert_file = "{cert}", client_key_file = "{key}" }}

        [[deployments]]
        name = "no-client-cert"
        url = "{url}"
        upstream_model = "x"
        tls = {{ ca_file = "{ca}" }}

        [[models]]
        name = "m"
        deployments = ["mtls"]

        [[models]]
        name = "anonymous"
        deployments = ["no-client-cert"]
        "#,
        url = upstream.base_url(),
    );
    let gateway = TestGateway::start_with(&config).await;
    let client_key = gateway.client_key().await;
    assert!(upstream.base_url().starts_with("https://"));
    assert_eq!(gateway.post("/v1/chat/completions", &client_key, &chat("m")).await.status(), 200);
    let request = &upstream.requests()[0];
    assert_eq!(request.version, axum::http::Version::HTTP_2, "HTTP/2 where the upstream offers it");

    // Under TLS 1.3 the server refuses a missing certificate after the client thinks the
    // handshake is done: moat sees the connection close before an answer.
    let response = gateway.post("/v1/chat/completions", &client_key, &chat("anonymous")).await;
    assert_openai_error(response, 502, "upstream_error").await;
    assert!(upstream.refused_handshakes() >= 1, "the server refused the handshake without a certificate");
    assert_eq!(upstream.calls(), 1);
}
