//! Virtual keys: generating secrets, hashing them, and resolving a presented key to a
//! [`Principal`].
//!
//! A secret is `moat_sk_` plus 256 random bits; only its SHA-256 is stored (a fast hash is
//! right for high-entropy secrets, unlike passwords). Lookups go through a short-lived cache so
//! the request path rarely touches the database; revocation clears the cache, so a revoked key
//! stops working on this replica at once.

use std::time::Duration;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use moat_core::{ErrorCode, ModelAccess, Principal, Role};
use moat_store::{KeyRecord, Store};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

pub use moat_identity::secrets::{KEY_PREFIX, display_prefix, generate_secret, hash_secret};

/// The header Anthropic-style clients send keys in.
pub const X_API_KEY: &str = "x-api-key";
/// How long a resolved key is trusted without asking the store again.
const CACHE_TTL: Duration = Duration::from_secs(30);

/// The key a request presents: `Authorization: Bearer` first, then `x-api-key`.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let value = value.trim();
        if value.len() > 7 && value[..7].eq_ignore_ascii_case("bearer ") {
            return Some(value[7..].trim());
        }
    }
    headers.get(X_API_KEY).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// Resolves presented keys to principals.
#[derive(Debug, Clone)]
pub(crate) struct KeyResolver {
    store: Store,
    /// Each key with the teams its requests count toward.
    cache: moka::sync::Cache<[u8; 32], Option<(KeyRecord, Vec<String>)>>,
    env_admin_hash: Option<[u8; 32]>,
    /// Tells other replicas when keys change (Redis), once fan-out is configured and started.
    announcer: crate::fanout::Announcer,
}

impl KeyResolver {
    pub(crate) fn new(store: Store, env_admin_key: Option<&str>) -> Self {
        KeyResolver {
            store,
            cache: moka::sync::Cache::builder().max_capacity(100_000).time_to_live(CACHE_TTL).build(),
            env_admin_hash: env_admin_key.map(hash_secret),
            announcer: crate::fanout::Announcer::default(),
        }
    }

    /// The principal behind the request's key, or the error to answer with.
    pub(crate) async fn authenticate(&self, headers: &HeaderMap, now_ms: i64) -> Result<Principal, ApiError> {
        let Some(secret) = presented_key(headers) else {
            return Err(ApiError::new(
                ErrorCode::MissingApiKey,
                "no API key: send it as `Authorization: Bearer <key>` or `x-api-key: <key>`",
            ));
        };
        let hash = hash_secret(secret);
        if let Some(admin) = &self.env_admin_hash
            && bool::from(admin.ct_eq(&hash))
        {
            return Ok(Principal {
                key_id: None,
                user_id: None,
                team_id: None,
                teams: Vec::new(),
                role: Role::Admin,
                models: ModelAccess::All,
            });
        }
        let record = match self.cache.get(&hash) {
            Some(record) => record,
            None => {
                let failed = |error: moat_store::StoreError| {
                    tracing::error!(%error, "key lookup failed");
                    ApiError::internal()
                };
                let record = match self.store.key_by_hash(&hash).await.map_err(failed)? {
                    Some(key) => {
                        let teams = match (&key.team_id, &key.user_id) {
                            (Some(team), _) => vec![team.clone()],
                            (None, Some(user)) => self
                                .store
                                .memberships_of_user(user)
                                .await
                                .map_err(failed)?
                                .into_iter()
                                .map(|m| m.team_id)
                                .collect(),
                            (None, None) => Vec::new(),
                        };
                        Some((key, teams))
                    }
                    None => None,
                };
                self.cache.insert(hash, record.clone());
                record
            }
        };
        let Some((key, teams)) = record else {
            return Err(ApiError::new(ErrorCode::InvalidApiKey, "the API key is not valid"));
        };
        if key.revoked_at_ms.is_some_and(|t| t <= now_ms) {
            return Err(ApiError::new(ErrorCode::KeyRevoked, format!("the API key `{}` was revoked", key.id)));
        }
        if key.expires_at_ms.is_some_and(|t| t <= now_ms) {
            return Err(ApiError::new(ErrorCode::KeyExpired, format!("the API key `{}` has expired", key.id)));
        }
        if key.user_state.is_some_and(|(active, _)| !active) {
            return Err(ApiError::new(
                ErrorCode::KeyRevoked,
                format!("the API key `{}` belongs to a deactivated user", key.id),
            ));
        }
        Ok(Principal {
            key_id: Some(key.id),
            user_id: key.user_id,
            team_id: key.team_id,
            teams,
            role: key.role,
            models: key.models,
        })
    }

    /// The caller, who must hold an admin key.
    pub(crate) async fn authenticate_admin(&self, headers: &HeaderMap, now_ms: i64) -> Result<Principal, ApiError> {
        let principal = self.authenticate(headers, now_ms).await?;
        if principal.role != Role::Admin {
            return Err(ApiError::new(ErrorCode::AdminRequired, "this route needs an admin key"));
        }
        Ok(principal)
    }

    /// Forgets every cached key after a key or user changed, here and (through Redis, when
    /// configured) on every other replica.
    pub(crate) fn invalidate(&self) {
        self.cache.invalidate_all();
        if let Some(announce) = self.announcer.get() {
            let _ = announce.send(());
        }
    }

    /// Forgets every cached key here only: another replica announced a change.
    pub(crate) fn invalidate_local(&self) {
        self.cache.invalidate_all();
    }

    /// Connects [`KeyResolver::invalidate`] to the other replicas.
    pub(crate) fn announce_through(&self, sender: tokio::sync::mpsc::UnboundedSender<()>) {
        let _ = self.announcer.set(sender);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn keys_are_read_from_bearer_then_x_api_key() {
        let mut headers = HeaderMap::new();
        assert_eq!(presented_key(&headers), None);
        headers.insert(X_API_KEY, HeaderValue::from_static("xk"));
        assert_eq!(presented_key(&headers), Some("xk"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("bearer  bk "));
        assert_eq!(presented_key(&headers), Some("bk"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(presented_key(&headers), Some("xk"), "non-bearer schemes fall back to x-api-key");
    }
}
