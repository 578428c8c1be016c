//! People signing in with a browser, and `moat login`'s device flow (RFC 8628).
//!
//! Sessions live in the store; the cookie carries 256 random bits and only their hash is kept.
//! Cookies are `HttpOnly`, `SameSite=Lax` and (unless configured off for plain-HTTP
//! development) `Secure`. Every form carries a CSRF token: the session's for signed-in forms,
//! a double-submit cookie for the sign-in form. Sessions end after an idle period, after an
//! absolute lifetime, on sign-out, and when their user is deactivated.

mod device;
mod invite;
mod pages;
mod sso_routes;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use moat_core::UserKind;
use moat_core::audit::AuditEvent;
use moat_store::{SessionRecord, Store, StoreError, UserRecord};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::secrets::{hash_secret, random_token};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "moat_session";
/// The sign-in form's double-submit CSRF cookie.
pub(crate) const CSRF_COOKIE: &str = "moat_csrf";

/// How sign-in behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebConfig {
    /// A session unused this long ends.
    pub session_idle: Duration,
    /// A session ends this long after sign-in, used or not.
    pub session_lifetime: Duration,
    /// Whether cookies are marked `Secure` (sent over HTTPS only).
    pub secure_cookies: bool,
    /// Least time between two polls of a device grant.
    pub device_poll_interval: Duration,
    /// How long a device grant waits for approval.
    pub device_grant_lifetime: Duration,
    /// How long a key issued to `moat login` lives.
    pub device_key_lifetime: Duration,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            session_idle: Duration::from_secs(8 * 3600),
            session_lifetime: Duration::from_secs(7 * 24 * 3600),
            secure_cookies: true,
            device_poll_interval: Duration::from_secs(5),
            device_grant_lifetime: Duration::from_secs(600),
            device_key_lifetime: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// What the sign-in routes need from the gateway.
#[derive(Clone)]
pub struct WebState {
    store: Store,
    config: WebConfig,
    /// Called after keys changed, so key caches forget at once.
    keys_changed: Arc<dyn Fn() + Send + Sync>,
    /// Single sign-on, when configured.
    sso: Option<Arc<crate::sso::Sso>>,
}

impl std::fmt::Debug for WebState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebState").field("config", &self.config).finish_non_exhaustive()
    }
}

impl WebState {
    /// Sign-in over `store`.
    pub fn new(store: Store, config: WebConfig, keys_changed: Arc<dyn Fn() + Send + Sync>) -> Self {
        WebState { store, config, keys_changed, sso: None }
    }

    /// Adds single sign-on through an OpenID Connect provider.
    pub fn with_sso(mut self, sso: crate::sso::Sso) -> Self {
        self.sso = Some(Arc::new(sso));
        self
    }
}

/// The sign-in, sign-out and device-flow routes.
pub fn router(state: WebState) -> Router {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/invite/{token}", get(invite::page).post(invite::accept))
        .route("/sso/login", get(sso_routes::start))
        .route("/sso/callback", get(sso_routes::callback))
        .route("/device", get(device::page).post(device::decide))
        .route("/oauth/device/code", post(device::start))
        .route("/oauth/token", post(device::token))
        .with_state(state)
}

pub(crate) fn now_ms() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis()))
        .unwrap_or(i64::MAX)
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A store failure: logged once, shown as a plain error page.
fn failed(error: StoreError) -> Response {
    tracing::error!(%error, "sign-in store operation failed");
    (StatusCode::INTERNAL_SERVER_ERROR, Html(pages::message("Something went wrong", "Try again in a moment.")))
        .into_response()
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn set_cookie(config: &WebConfig, name: &str, value: &str, max_age: Option<Duration>, same_site: &str) -> HeaderValue {
    let mut text = format!("{name}={value}; Path=/; HttpOnly; SameSite={same_site}");
    if let Some(age) = max_age {
        text.push_str(&format!("; Max-Age={}", age.as_secs()));
    }
    if config.secure_cookies {
        text.push_str("; Secure");
    }
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static("moat_invalid=; Path=/"))
}

fn equal(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A signed-in person: their session and user.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The session (its `csrf` is what this person's forms must echo).
    pub session: SessionRecord,
    /// Whose session.
    pub user: UserRecord,
}

impl SignedIn {
    /// Whether `token` is this session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, token: &str) -> bool {
        equal(&self.session.csrf, token)
    }
}

/// Marks a request the web console makes to the admin API in process, on behalf of a
/// signed-in person: the admin API then acts as that user, with exactly their roles. Only
/// code in the process can attach it (request extensions never come from the network).
#[derive(Debug, Clone)]
pub struct OnBehalfOf {
    /// The signed-in user.
    pub user_id: String,
    /// Where the person's request came from, for the audit log.
    pub source: Option<String>,
}

/// The request's session, if it is live: not past its lifetime, not idle too long, its user
/// active. A live session is touched; a dead one is deleted.
pub async fn signed_in(state: &WebState, headers: &HeaderMap) -> Result<Option<SignedIn>, StoreError> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else { return Ok(None) };
    let hash = hash_secret(&token);
    let Some(session) = state.store.session(&hash).await? else { return Ok(None) };
    let now = now_ms();
    let idle_over = now - session.last_seen_at_ms > millis(state.config.session_idle);
    let user = state.store.user_by_id(&session.user_id).await?.filter(|u| u.active);
    match user {
        Some(user) if now < session.expires_at_ms && !idle_over => {
            state.store.touch_session(&hash, now).await?;
            Ok(Some(SignedIn { session, user }))
        }
        _ => {
            state.store.delete_session(&hash).await?;
            Ok(None)
        }
    }
}

/// Where a person lands after signing in or joining, unless a page sent them: the console.
pub(crate) const LANDING: &str = "/ui";

/// Only local paths are followed after sign-in, so the form cannot send a person elsewhere.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => path.to_owned(),
        _ => LANDING.to_owned(),
    }
}

fn redirect(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(to) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// Form bodies: `application/x-www-form-urlencoded`.
fn form<T: for<'de> Deserialize<'de>>(body: &Bytes) -> Option<T> {
    serde_urlencoded::from_bytes(body).ok()
}

#[derive(Debug, Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn login_form(State(state): State<WebState>, headers: HeaderMap, Query(query): Query<NextQuery>) -> Response {
    match signed_in(&state, &headers).await {
        Ok(Some(_)) => return redirect(&safe_next(query.next.as_deref())),
        Ok(None) => {}
        Err(error) => return failed(error),
    }
    login_page(&state, query.next.as_deref(), None, StatusCode::OK)
}

fn login_page(state: &WebState, next: Option<&str>, error: Option<&str>, status: StatusCode) -> Response {
    let csrf = random_token();
    let mut response =
        (status, Html(pages::login(&csrf, &safe_next(next), error, state.sso.is_some()))).into_response();
    response.headers_mut().append(SET_COOKIE, set_cookie(&state.config, CSRF_COOKIE, &csrf, None, "Strict"));
    response
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    email: String,
    password: String,
    csrf: String,
    next: Option<String>,
}

async fn login(State(state): State<WebState>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(request) = form::<LoginForm>(&body) else {
        return login_page(&state, None, Some("Fill in your e-mail and password."), StatusCode::BAD_REQUEST);
    };
    let csrf_ok = cookie(&headers, CSRF_COOKIE).is_some_and(|c| equal(&c, &request.csrf));
    if !csrf_ok {
        return login_page(
            &state,
            request.next.as_deref(),
            Some("The form expired; sign in again."),
            StatusCode::FORBIDDEN,
        );
    }
    let found = match state.store.user_for_sign_in(request.email.trim()).await {
        Ok(found) => found,
        Err(error) => return failed(error),
    };
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), hash),
        None => (None, None),
    };
    let password_ok = crate::password::verify(&request.password, hash.as_deref());
    let Some(user) = user.filter(|u| password_ok && u.active && u.kind == UserKind::Person) else {
        // One answer for every failure: no hint which e-mails exist.
        return login_page(
            &state,
            request.next.as_deref(),
            Some("Wrong e-mail or password."),
            StatusCode::UNAUTHORIZED,
        );
    };
    start_session(&state, &user, "password", &safe_next(request.next.as_deref())).await
}

/// Opens a session for `user` (signed in by `method`) and sends them on to `next`.
pub(crate) async fn start_session(state: &WebState, user: &UserRecord, method: &str, next: &str) -> Response {
    let token = random_token();
    let now = now_ms();
    let session = SessionRecord {
        id_hash: hash_secret(&token).to_vec(),
        user_id: user.id.clone(),
        csrf: random_token(),
        created_at_ms: now,
        last_seen_at_ms: now,
        expires_at_ms: now.saturating_add(millis(state.config.session_lifetime)),
    };
    if let Err(error) = state.store.insert_session(&session).await {
        return failed(error);
    }
    let event = audit_event(&user.id, "user.sign_in", ("user", &user.id), None, Some(json!({ "method": method })));
    if let Err(error) = state.store.append_audit(&event).await {
        return failed(error);
    }
    let mut response = redirect(next);
    let cookie = set_cookie(&state.config, SESSION_COOKIE, &token, Some(state.config.session_lifetime), "Lax");
    response.headers_mut().append(SET_COOKIE, cookie);
    response
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    csrf: String,
}

async fn logout(State(state): State<WebState>, headers: HeaderMap, body: Bytes) -> Response {
    let signed = match signed_in(&state, &headers).await {
        Ok(signed) => signed,
        Err(error) => return failed(error),
    };
    if let Some(signed) = signed {
        let csrf_ok = form::<CsrfForm>(&body).is_some_and(|f| equal(&f.csrf, &signed.session.csrf));
        if !csrf_ok {
            return (StatusCode::FORBIDDEN, Html(pages::message("Not signed out", "The form expired; try again.")))
                .into_response();
        }
        if let Err(error) = state.store.delete_session(&signed.session.id_hash).await {
            return failed(error);
        }
    }
    let mut response = redirect("/login");
    response
        .headers_mut()
        .append(SET_COOKIE, set_cookie(&state.config, SESSION_COOKIE, "", Some(Duration::ZERO), "Lax"));
    response
}

/// Creates a person's account (on an invitation or a first SSO sign-in) and records it.
pub(crate) async fn provision_person(
    store: &Store,
    email: &str,
    name: &str,
    role: moat_core::OrgRole,
    via: &str,
) -> Result<UserRecord, StoreError> {
    let user = moat_store::NewUser {
        id: format!("usr_{}", uuid::Uuid::now_v7().simple()),
        email: email.to_owned(),
        name: name.to_owned(),
        kind: UserKind::Person,
        org_role: role,
        created_at_ms: now_ms(),
        external_id: None,
    };
    let user = store.insert_user(&user).await?;
    let after = json!({ "email": user.email, "org_role": user.org_role.as_str(), "via": via });
    store.append_audit(&audit_event(&user.id, "user.create", ("user", &user.id), None, Some(after))).await?;
    Ok(user)
}

/// Puts a person in a team with `role` (on an invitation or through SSO groups) and records it.
pub(crate) async fn join_team(
    store: &Store,
    user_id: &str,
    team_id: &str,
    role: moat_core::TeamRole,
    via: &str,
) -> Result<(), StoreError> {
    let member = moat_store::MemberRecord {
        team_id: team_id.to_owned(),
        user_id: user_id.to_owned(),
        role,
        created_at_ms: now_ms(),
    };
    store.put_member(&member).await?;
    let target = format!("{team_id}/{user_id}");
    let after = json!({ "role": role.as_str(), "via": via });
    store
        .append_audit(&audit_event(user_id, "membership.put", ("membership", &target), None, Some(after)))
        .await
        .map(|_| ())
}

/// An audit record of something a signed-in person did.
pub(crate) fn audit_event(
    user_id: &str,
    action: &str,
    target: (&str, &str),
    before: Option<serde_json::Value>,
    after: Option<serde_json::Value>,
) -> AuditEvent {
    AuditEvent {
        id: format!("aud_{}", uuid::Uuid::now_v7().simple()),
        at_ms: now_ms(),
        actor_user_id: Some(user_id.to_owned()),
        actor_key_id: None,
        source: None,
        action: action.to_owned(),
        target_type: target.0.to_owned(),
        target_id: target.1.to_owned(),
        before: before.map(|v| v.to_string()),
        after: after.map(|v| v.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_in_follows_only_local_paths_and_lands_on_the_console() {
        assert_eq!(safe_next(Some("/device?user_code=AB")), "/device?user_code=AB");
        for elsewhere in [None, Some("https://evil.example/"), Some("//evil.example"), Some("/\\evil"), Some("ui")] {
            assert_eq!(safe_next(elsewhere), "/ui", "{elsewhere:?}");
        }
    }
}
