//! Sign-in state: password hashes, browser sessions and device-flow grants.

use crate::{Store, StoreError, UserRecord, on_backend};

/// A browser session (the cookie's secret is never stored, only its hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 of the cookie's secret.
    pub id_hash: Vec<u8>,
    /// Whose session.
    pub user_id: String,
    /// The token forms must echo (CSRF protection).
    pub csrf: String,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    /// Last request, for the idle timeout.
    pub last_seen_at_ms: i64,
    /// The absolute end.
    pub expires_at_ms: i64,
}

/// Where a device grant stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantStatus {
    /// Waiting for a person to approve it.
    Pending,
    /// Approved; the key is not issued yet.
    Approved,
    /// Refused.
    Denied,
    /// The key was issued: the grant is spent.
    Issued,
}

impl GrantStatus {
    fn as_str(self) -> &'static str {
        match self {
            GrantStatus::Pending => "pending",
            GrantStatus::Approved => "approved",
            GrantStatus::Denied => "denied",
            GrantStatus::Issued => "issued",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(GrantStatus::Pending),
            "approved" => Some(GrantStatus::Approved),
            "denied" => Some(GrantStatus::Denied),
            "issued" => Some(GrantStatus::Issued),
            _ => None,
        }
    }
}

/// An OAuth 2.0 device authorization grant (RFC 8628).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceGrant {
    /// SHA-256 of the device code the CLI polls with.
    pub device_code_hash: Vec<u8>,
    /// The code the person types or confirms in the browser.
    pub user_code: String,
    /// What asked (shown to the person).
    pub client_name: String,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    /// After this the grant is dead.
    pub expires_at_ms: i64,
    /// Least seconds between polls.
    pub interval_secs: i64,
    /// The last poll.
    pub last_polled_at_ms: Option<i64>,
    /// Where it stands.
    pub status: GrantStatus,
    /// Who approved or denied it.
    pub user_id: Option<String>,
}

/// An SSO sign-in between the redirect to the identity provider and its callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsoLogin {
    /// SHA-256 of the `state` parameter.
    pub state_hash: Vec<u8>,
    /// The `nonce` the ID token must carry.
    pub nonce: String,
    /// The PKCE code verifier.
    pub verifier: String,
    /// Where to go after sign-in.
    pub next: String,
    /// Unix milliseconds after which the callback is refused.
    pub expires_at_ms: i64,
}

impl Store {
    /// Remembers an SSO sign-in in progress.
    pub async fn insert_sso_login(&self, login: &SsoLogin) -> Result<(), StoreError> {
        on_backend!(self, s => s.insert_sso_login(login))
    }

    /// Takes (reads and deletes) the SSO sign-in for a state: each state is used once.
    pub async fn take_sso_login(&self, state_hash: &[u8]) -> Result<Option<SsoLogin>, StoreError> {
        on_backend!(self, s => s.take_sso_login(state_hash))
    }

    /// Sets (or, with `None`, removes) a user's password hash.
    pub async fn set_password_hash(&self, user_id: &str, hash: Option<&str>) -> Result<bool, StoreError> {
        on_backend!(self, s => s.set_password_hash(user_id, hash))
    }

    /// A user by e-mail (any case) with their password hash, for sign-in.
    pub async fn user_for_sign_in(&self, email: &str) -> Result<Option<(UserRecord, Option<String>)>, StoreError> {
        on_backend!(self, s => s.user_for_sign_in(email))
    }

    /// Stores a new session.
    pub async fn insert_session(&self, session: &SessionRecord) -> Result<(), StoreError> {
        on_backend!(self, s => s.insert_session(session))
    }

    /// A session by its hash.
    pub async fn session(&self, id_hash: &[u8]) -> Result<Option<SessionRecord>, StoreError> {
        on_backend!(self, s => s.session(id_hash))
    }

    /// Records activity on a session.
    pub async fn touch_session(&self, id_hash: &[u8], now_ms: i64) -> Result<(), StoreError> {
        on_backend!(self, s => s.touch_session(id_hash, now_ms))
    }

    /// Ends a session.
    pub async fn delete_session(&self, id_hash: &[u8]) -> Result<(), StoreError> {
        on_backend!(self, s => s.delete_session(id_hash))
    }

    /// Stores a new device grant.
    pub async fn insert_grant(&self, grant: &DeviceGrant) -> Result<(), StoreError> {
        on_backend!(self, s => s.insert_grant(grant))
    }

    /// A device grant by the code the person sees.
    pub async fn grant_by_user_code(&self, user_code: &str) -> Result<Option<DeviceGrant>, StoreError> {
        on_backend!(self, s => s.grant_by("user_code", user_code.as_bytes()))
    }

    /// A device grant by the hash of the code the CLI polls with.
    pub async fn grant_by_device_code(&self, device_code_hash: &[u8]) -> Result<Option<DeviceGrant>, StoreError> {
        on_backend!(self, s => s.grant_by("device_code_hash", device_code_hash))
    }

    /// Moves a grant from `from` to `to` (and records who decided), only if it is still in
    /// `from`; whether it moved. Concurrent polls thus issue at most one key.
    pub async fn move_grant(
        &self,
        device_code_hash: &[u8],
        from: GrantStatus,
        to: GrantStatus,
        user_id: Option<&str>,
    ) -> Result<bool, StoreError> {
        on_backend!(self, s => s.move_grant(device_code_hash, from.as_str(), to.as_str(), user_id))
    }

    /// Records a poll.
    pub async fn poll_grant(&self, device_code_hash: &[u8], now_ms: i64) -> Result<(), StoreError> {
        on_backend!(self, s => s.poll_grant(device_code_hash, now_ms))
    }
}

pub(crate) fn grant_status(s: &str) -> Result<GrantStatus, StoreError> {
    GrantStatus::parse(s).ok_or_else(|| StoreError::Corrupt { table: "device_grants", detail: format!("status `{s}`") })
}
