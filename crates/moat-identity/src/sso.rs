//! OpenID Connect sign-in: the authorization code flow with PKCE (S256), discovery, ID tokens
//! checked against the provider's JWKS (fetched again when a token names a key it does not
//! hold, which is how providers rotate keys), and the `state` and `nonce` checks. The person
//! is provisioned on first sign-in, kept to the allowed e-mail domains, and given the teams and
//! role their identity-provider groups map to.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use base64::Engine;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use moat_core::OrgRole;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::sync::RwLock;

/// How long discovery documents and keys are trusted before they are fetched again.
const METADATA_TTL: Duration = Duration::from_secs(3600);

/// What the SSO configuration says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoConfig {
    /// The provider's issuer URL (its discovery document is under it).
    pub issuer: String,
    /// moat's client id at the provider.
    pub client_id: String,
    /// moat's client secret, for confidential clients.
    pub client_secret: Option<String>,
    /// Where the provider sends people back: moat's `/sso/callback`.
    pub redirect_url: String,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// E-mail domains allowed in; empty: any.
    pub allowed_domains: Vec<String>,
    /// The ID-token claim that lists the person's groups.
    pub groups_claim: String,
    /// The role of people whose groups map to none.
    pub default_role: OrgRole,
    /// Group → organisation role (the highest wins).
    pub group_roles: BTreeMap<String, OrgRole>,
    /// Group → team name (created on first use).
    pub group_teams: BTreeMap<String, String>,
}

/// Why a sign-in through the provider failed; the text is safe to show.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SsoError(pub String);

fn fail(text: impl Into<String>) -> SsoError {
    SsoError(text.into())
}

#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

/// The person an ID token describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The provider's subject id.
    pub subject: String,
    /// Their e-mail (lower case).
    pub email: String,
    /// Their name, when given.
    pub name: Option<String>,
    /// Their groups.
    pub groups: Vec<String>,
}

/// The OIDC client: configuration, and the provider's metadata and keys, cached.
#[derive(Debug)]
pub struct Sso {
    config: SsoConfig,
    egress: crate::egress::EgressPolicy,
    http: reqwest::Client,
    discovery: RwLock<Option<(Discovery, Instant)>>,
    keys: RwLock<Option<(JwkSet, Instant)>>,
}

/// The start of a sign-in: where to send the browser, and what to remember until it returns.
#[derive(Debug, Clone)]
pub struct Start {
    /// The provider's authorization URL with every parameter.
    pub url: String,
    /// The `state` (kept hashed, and in a cookie of the browser that started).
    pub state: String,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE verifier.
    pub verifier: String,
}

impl Sso {
    /// A client for `config`, connecting only where `egress` allows (the provider's
    /// discovery document names the token and key endpoints, so they are checked as well).
    pub fn new(config: SsoConfig, egress: crate::egress::EgressPolicy) -> Result<Self, SsoError> {
        let http =
            egress.client(Duration::from_secs(15)).map_err(|e| fail(format!("cannot build the HTTP client: {e}")))?;
        Ok(Sso { config, egress, http, discovery: RwLock::new(None), keys: RwLock::new(None) })
    }

    /// The configuration.
    pub fn config(&self) -> &SsoConfig {
        &self.config
    }

    async fn discovery(&self) -> Result<Discovery, SsoError> {
        if let Some((doc, at)) = self.discovery.read().await.as_ref()
            && at.elapsed() < METADATA_TTL
        {
            return Ok(doc.clone());
        }
        let url = format!("{}/.well-known/openid-configuration", self.config.issuer.trim_end_matches('/'));
        let doc: Discovery = self.get_json(&url).await?;
        if doc.issuer.trim_end_matches('/') != self.config.issuer.trim_end_matches('/') {
            return Err(fail("the provider's discovery document names another issuer"));
        }
        for endpoint in [&doc.token_endpoint, &doc.jwks_uri] {
            self.egress.check_url(endpoint).map_err(fail)?;
        }
        *self.discovery.write().await = Some((doc.clone(), Instant::now()));
        Ok(doc)
    }

    async fn get_json<T: for<'de> Deserialize<'de>>(&self, url: &str) -> Result<T, SsoError> {
        let response = self.http.get(url).send().await.map_err(|error| {
            fail(crate::egress::refusal_in(&error).unwrap_or_else(|| "the identity provider cannot be reached".into()))
        })?;
        if !response.status().is_success() {
            return Err(fail(format!("the identity provider answered {}", response.status())));
        }
        response.json().await.map_err(|_| fail("the identity provider's answer is not what OpenID Connect says"))
    }

    /// The authorization URL for a new sign-in.
    pub async fn start(&self) -> Result<Start, SsoError> {
        let discovery = self.discovery().await?;
        let (state, nonce, verifier) =
            (crate::secrets::random_token(), crate::secrets::random_token(), crate::secrets::random_token());
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let query = serde_urlencoded::to_string([
            ("response_type", "code"),
            ("client_id", self.config.client_id.as_str()),
            ("redirect_uri", self.config.redirect_url.as_str()),
            ("scope", &self.config.scopes.join(" ")),
            ("state", &state),
            ("nonce", &nonce),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
        ])
        .map_err(|_| fail("cannot build the authorization URL"))?;
        let separator = if discovery.authorization_endpoint.contains('?') { '&' } else { '?' };
        Ok(Start { url: format!("{}{separator}{query}", discovery.authorization_endpoint), state, nonce, verifier })
    }

    /// Redeems the authorization `code` and checks the ID token (signature, issuer,
    /// audience, expiry, `nonce`); returns the person it describes.
    pub async fn finish(&self, code: &str, verifier: &str, nonce: &str) -> Result<Identity, SsoError> {
        let discovery = self.discovery().await?;
        let mut request = self.http.post(&discovery.token_endpoint).form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.config.redirect_url.as_str()),
            ("code_verifier", verifier),
            ("client_id", self.config.client_id.as_str()),
        ]);
        if let Some(secret) = &self.config.client_secret {
            request = request.basic_auth(&self.config.client_id, Some(secret));
        }
        let response = request.send().await.map_err(|_| fail("the identity provider cannot be reached"))?;
        if !response.status().is_success() {
            return Err(fail(format!("the identity provider refused the sign-in code ({})", response.status())));
        }
        let tokens: Value = response.json().await.map_err(|_| fail("the token answer is not JSON"))?;
        let id_token = tokens.get("id_token").and_then(Value::as_str).ok_or_else(|| fail("no ID token came back"))?;
        let claims = self.verify(id_token, &discovery).await?;
        if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
            return Err(fail("the ID token's nonce does not match this sign-in"));
        }
        self.identity(&claims)
    }

    async fn verify(&self, id_token: &str, discovery: &Discovery) -> Result<Value, SsoError> {
        let header = jsonwebtoken::decode_header(id_token).map_err(|_| fail("the ID token is malformed"))?;
        if !matches!(
            header.alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
                | Algorithm::ES256
                | Algorithm::ES384
                | Algorithm::EdDSA
        ) {
            return Err(fail("the ID token is not signed with a public-key algorithm"));
        }
        let key = self.key(header.kid.as_deref(), &discovery.jwks_uri).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[discovery.issuer.as_str()]);
        validation.set_audience(&[self.config.client_id.as_str()]);
        validation.leeway = 60;
        jsonwebtoken::decode::<Value>(id_token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| fail(format!("the ID token does not verify: {e}")))
    }

    /// The signing key `kid`, fetching the key set again once when it is not known (rotation).
    async fn key(&self, kid: Option<&str>, jwks_uri: &str) -> Result<DecodingKey, SsoError> {
        for refresh in [false, true] {
            let cached = self
                .keys
                .read()
                .await
                .as_ref()
                .filter(|(_, at)| !refresh && at.elapsed() < METADATA_TTL)
                .map(|(k, _)| k.clone());
            let set = match cached {
                Some(set) => set,
                None => {
                    let set: JwkSet = self.get_json(jwks_uri).await?;
                    *self.keys.write().await = Some((set.clone(), Instant::now()));
                    set
                }
            };
            let found = match kid {
                Some(kid) => set.find(kid),
                None => set.keys.first(),
            };
            if let Some(jwk) = found {
                return DecodingKey::from_jwk(jwk).map_err(|_| fail("the provider's signing key cannot be used"));
            }
        }
        Err(fail("the ID token is signed with a key the provider does not publish"))
    }

    fn identity(&self, claims: &Value) -> Result<Identity, SsoError> {
        let subject = claims.get("sub").and_then(Value::as_str).ok_or_else(|| fail("the ID token has no subject"))?;
        let email = claims
            .get("email")
            .or_else(|| claims.get("preferred_username"))
            .and_then(Value::as_str)
            .filter(|e| e.contains('@'))
            .ok_or_else(|| fail("the identity provider sent no e-mail address; add the `email` scope"))?
            .to_lowercase();
        if claims.get("email_verified") == Some(&Value::Bool(false)) {
            return Err(fail("the identity provider has not verified this e-mail address"));
        }
        let domain = email.rsplit('@').next().unwrap_or_default();
        if !self.config.allowed_domains.is_empty()
            && !self.config.allowed_domains.iter().any(|d| d.eq_ignore_ascii_case(domain))
        {
            return Err(fail(format!("people from {domain} may not sign in to this moat")));
        }
        let groups = match claims.get(&self.config.groups_claim) {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            Some(Value::String(one)) => vec![one.clone()],
            _ => Vec::new(),
        };
        Ok(Identity {
            subject: subject.to_owned(),
            email,
            name: claims.get("name").and_then(Value::as_str).map(str::to_owned),
            groups,
        })
    }

    /// The role `groups` map to, if any maps.
    pub fn role_for(&self, groups: &[String]) -> Option<OrgRole> {
        groups.iter().filter_map(|g| self.config.group_roles.get(g)).copied().max()
    }
}
