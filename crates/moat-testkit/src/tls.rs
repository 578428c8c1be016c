//! A private PKI for TLS tests: a CA, a server certificate for `localhost`/`127.0.0.1`, and a
//! client certificate, all made fresh per test; and a listener that terminates TLS, offers
//! HTTP/2 and HTTP/1.1 by ALPN, and (optionally) requires a client certificate.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Certificates for one test, as PEM.
pub struct TestPki {
    /// The CA certificate that signed the others (what a client trusts).
    pub ca_pem: String,
    /// The client certificate, for mutual TLS.
    pub client_cert_pem: String,
    /// The client certificate's private key.
    pub client_key_pem: String,
    server_cert: CertificateDer<'static>,
    server_key: Vec<u8>,
    /// The server certificate and key as PEM.
    server_pem: (String, String),
    ca_der: CertificateDer<'static>,
}

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    panic!("test PKI: {what}: {e}")
}

impl TestPki {
    /// A new CA with a server and a client certificate.
    pub fn generate() -> Self {
        let ca_key = KeyPair::generate().unwrap_or_else(|e| fail("CA key", e));
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| fail("CA params", e));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.distinguished_name.push(DnType::CommonName, "moat test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = ca_params.self_signed(&ca_key).unwrap_or_else(|e| fail("CA cert", e));

        let server_key = KeyPair::generate().unwrap_or_else(|e| fail("server key", e));
        let server_params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap_or_else(|e| fail("server params", e));
        let server = server_params.signed_by(&server_key, &ca, &ca_key).unwrap_or_else(|e| fail("server cert", e));

        let client_key = KeyPair::generate().unwrap_or_else(|e| fail("client key", e));
        let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| fail("params", e));
        client_params.distinguished_name.push(DnType::CommonName, "moat gateway");
        let client = client_params.signed_by(&client_key, &ca, &ca_key).unwrap_or_else(|e| fail("client cert", e));

        TestPki {
            ca_pem: ca.pem(),
            client_cert_pem: client.pem(),
            client_key_pem: client_key.serialize_pem(),
            server_pem: (server.pem(), server_key.serialize_pem()),
            server_cert: server.der().clone(),
            server_key: server_key.serialize_der(),
            ca_der: ca.der().clone(),
        }
    }

    /// The server certificate (for `localhost` and `127.0.0.1`), as PEM, for a server under
    /// test to serve.
    pub fn server_cert_pem(&self) -> String {
        self.server_pem.0.clone()
    }

    /// The server certificate's private key, as PKCS#8 PEM.
    pub fn server_key_pem(&self) -> String {
        self.server_pem.1.clone()
    }

    /// The server certificate, DER-encoded: what a client sees as the peer's certificate.
    pub fn server_cert_der(&self) -> Vec<u8> {
        self.server_cert.to_vec()
    }

    /// A rustls server configuration with this PKI's server certificate, offering h2 and
    /// http/1.1; with `require_client_cert`, only clients with a certificate from the CA get in.
    pub(crate) fn server_config(&self, require_client_cert: bool) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap_or_else(|e| fail("protocol versions", e));
        let builder = if require_client_cert {
            let mut roots = RootCertStore::empty();
            roots.add(self.ca_der.clone()).unwrap_or_else(|e| fail("client roots", e));
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .unwrap_or_else(|e| fail("client verifier", e));
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.server_key.clone()));
        let mut config =
            builder.with_single_cert(vec![self.server_cert.clone()], key).unwrap_or_else(|e| fail("server config", e));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// Accepts TCP connections and completes a TLS handshake on each; failed handshakes (a client
/// without the required certificate) are counted and dropped.
pub(crate) struct TlsListener {
    pub(crate) tcp: TcpListener,
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) connections: Arc<AtomicUsize>,
    pub(crate) refused: Arc<AtomicUsize>,
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else { continue };
            match self.acceptor.accept(tcp).await {
                Ok(tls) => {
                    self.connections.fetch_add(1, Ordering::SeqCst);
                    return (tls, addr);
                }
                Err(_) => {
                    self.refused.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
