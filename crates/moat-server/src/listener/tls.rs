//! TLS termination: the served certificate, reloaded from its files without a restart.
//!
//! Certificates are renewed on disk (cert-manager, certbot) every few weeks. The resolver
//! hands each new handshake the certificate loaded last; a reload swaps it in atomically, so
//! connections already open keep theirs and new ones get the renewal. A renewal that does not
//! load (half-written files, a key that does not match) is logged and the current certificate
//! stays, because a gateway that stopped serving TLS would take every agent down with it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use sha2::{Digest, Sha256};

/// Where the certificate comes from and how it is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM: the certificate, then intermediates.
    pub cert_file: PathBuf,
    /// PEM: its private key.
    pub key_file: PathBuf,
    /// How often the files are checked for a renewal.
    pub reload_interval: Duration,
    /// `Strict-Transport-Security` max-age; zero sends none.
    pub hsts_max_age: Duration,
}

/// The certificate in use, and the digest of the files it came from.
#[derive(Debug)]
pub(crate) struct ServedCertificate {
    settings: TlsSettings,
    current: ArcSwap<(Arc<CertifiedKey>, [u8; 32])>,
}

impl ServedCertificate {
    /// Loads the certificate; fails with a message naming the file at fault.
    pub(crate) fn load(settings: TlsSettings) -> Result<Self, String> {
        let (key, digest) = read(&settings.cert_file, &settings.key_file)?;
        Ok(ServedCertificate { settings, current: ArcSwap::from_pointee((Arc::new(key), digest)) })
    }

    /// The server configuration new connections handshake with: TLS 1.2 and 1.3, HTTP/2 and
    /// HTTP/1.1 by ALPN, the certificate from this resolver.
    pub(crate) fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, String> {
        let mut config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("cannot set up TLS: {e}"))?
                .with_no_client_auth()
                .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Re-reads the files; swaps the certificate in when they changed and load. Whether a new
    /// certificate is now served.
    pub(crate) fn reload(&self) -> bool {
        match read(&self.settings.cert_file, &self.settings.key_file) {
            Ok((key, digest)) if digest != self.current.load().1 => {
                self.current.store(Arc::new((Arc::new(key), digest)));
                tracing::info!(cert_file = %self.settings.cert_file.display(), "a renewed TLS certificate is served");
                true
            }
            Ok(_) => false,
            Err(error) => {
                tracing::error!(%error, "the TLS certificate could not be reloaded; the current one is still served");
                false
            }
        }
    }

    /// Checks the files every `reload_interval` until `stop`.
    pub(crate) async fn watch(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.settings.reload_interval) => {}
                () = stop.cancelled() => return,
            }
            self.reload();
        }
    }

    /// The value of `Strict-Transport-Security`, when one is sent.
    pub(crate) fn hsts(&self) -> Option<http::HeaderValue> {
        let seconds = self.settings.hsts_max_age.as_secs();
        (seconds > 0).then(|| http::HeaderValue::from_str(&format!("max-age={seconds}")).ok()).flatten()
    }
}

impl ResolvesServerCert for ServedCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().0.clone())
    }
}

/// Reads and checks a certificate chain and its key, and digests both files.
pub(crate) fn read(cert_file: &Path, key_file: &Path) -> Result<(CertifiedKey, [u8; 32]), String> {
    let cert_pem = std::fs::read(cert_file).map_err(|e| format!("cannot read `{}`: {e}", cert_file.display()))?;
    let key_pem = std::fs::read(key_file).map_err(|e| format!("cannot read `{}`: {e}", key_file.display()))?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| format!("`{}` is not a PEM certificate chain", cert_file.display()))?;
    if chain.is_empty() {
        return Err(format!("`{}` holds no certificate", cert_file.display()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|_| format!("`{}` holds no PEM private key", key_file.display()))?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider)
        .map_err(|e| format!("the certificate and key do not make a usable pair: {e}"))?;
    let digest = Sha256::new().chain_update(&cert_pem).chain_update(&key_pem).finalize().into();
    Ok((certified, digest))
}
