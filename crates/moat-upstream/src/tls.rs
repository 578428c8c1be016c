//! TLS settings for connections to deployments.

use std::sync::{Arc, OnceLock};

use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::ExposeSecret;

use crate::UpstreamTls;

/// The public roots (Mozilla's, compiled in: a container image may have no system store).
fn public_roots() -> rustls::RootCertStore {
    rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() }
}

fn builder() -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, String> {
    ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))
}

/// The configuration for `tls`: the public roots plus its CA certificates, and its client
/// certificate when it has one. Deployments without settings of their own share one
/// configuration, built on first use, rather than a root store each. ALPN is left to the
/// connector, which offers HTTP/2 and HTTP/1.1.
pub(crate) fn client_config(tls: &UpstreamTls) -> Result<Arc<ClientConfig>, String> {
    static PLAIN: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    if tls.ca_pem.is_none() && tls.client_identity_pem.is_none() {
        if let Some(config) = PLAIN.get() {
            return Ok(Arc::clone(config));
        }
        let config = builder()?.with_root_certificates(public_roots()).with_no_client_auth();
        return Ok(Arc::clone(PLAIN.get_or_init(|| Arc::new(config))));
    }
    let mut roots = public_roots();
    if let Some(pem) = &tls.ca_pem {
        let certificates = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| "the TLS CA file holds no valid PEM certificate".to_string())?;
        if certificates.is_empty() {
            return Err("the TLS CA file holds no valid PEM certificate".into());
        }
        for certificate in certificates {
            roots.add(certificate).map_err(|e| format!("the TLS CA file holds an unusable certificate: {e}"))?;
        }
    }
    let builder = builder()?.with_root_certificates(roots);
    let config = match &tls.client_identity_pem {
        None => builder.with_no_client_auth(),
        Some(pem) => {
            let invalid = || "the TLS client certificate or key is not valid PEM".to_string();
            let pem = pem.expose_secret().as_bytes();
            let chain = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|_| invalid())?;
            let key = PrivateKeyDer::from_pem_slice(pem).map_err(|_| invalid())?;
            if chain.is_empty() {
                return Err(invalid());
            }
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("the TLS client certificate is unusable: {e}"))?
        }
    };
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn deployments_without_settings_share_one_configuration() {
        let a = client_config(&UpstreamTls::default()).expect("config");
        let b = client_config(&UpstreamTls::default()).expect("config");
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn unreadable_pem_is_refused_with_a_reason() {
        let ca = UpstreamTls { ca_pem: Some("not a certificate".into()), client_identity_pem: None };
        assert_eq!(client_config(&ca).err().as_deref(), Some("the TLS CA file holds no valid PEM certificate"));
        let identity =
            UpstreamTls { ca_pem: None, client_identity_pem: Some(SecretString::from("-----BEGIN nothing")) };
        assert_eq!(
            client_config(&identity).err().as_deref(),
            Some("the TLS client certificate or key is not valid PEM")
        );
    }
}
