//! The OAuth 2.0 device authorization grant (RFC 8628) behind `moat login`: the CLI asks for a
//! code, the person approves it in the browser, and the CLI's next poll receives a personal,
//! expiring key.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use moat_core::{ModelAccess, Role};
use moat_store::{DeviceGrant, GrantStatus, NewKey};
use rand::Rng;
use serde::Deserialize;
use serde_json::json;

use super::{WebState, audit_event, equal, failed, form, millis, now_ms, pages, redirect, signed_in};
use crate::secrets::{display_prefix, generate_secret, hash_secret, random_token};

/// The RFC 8628 grant type the CLI polls with.
pub const DEVICE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Letters that cannot be mistaken for each other (no vowels, so no words), as RFC 8628 §6.1
/// suggests.
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

fn user_code() -> String {
    let mut rng = rand::rng();
    let letter =
        |rng: &mut rand::rngs::ThreadRng| char::from(USER_CODE_ALPHABET[rng.random_range(0..USER_CODE_ALPHABET.len())]);
    let first: String = (0..4).map(|_| letter(&mut rng)).collect();
    let second: String = (0..4).map(|_| letter(&mut rng)).collect();
    format!("{first}-{second}")
}

/// What people type: any case, with or without the dash or spaces.
fn normalize(code: &str) -> String {
    let letters: String = code.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_uppercase()).collect();
    if letters.len() == 8 { format!("{}-{}", &letters[..4], &letters[4..]) } else { letters }
}

fn oauth_error(error: &str, description: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": error, "error_description": description }))).into_response()
}

#[derive(Debug, Deserialize)]
struct StartForm {
    client_id: Option<String>,
}

/// `POST /oauth/device/code`.
pub(super) async fn start(State(state): State<WebState>, headers: HeaderMap, body: Bytes) -> Response {
    let client = form::<StartForm>(&body).and_then(|f| f.client_id).unwrap_or_else(|| "moat CLI".to_owned());
    let device_code = random_token();
    let now = now_ms();
    let grant = DeviceGrant {
        device_code_hash: hash_secret(&device_code).to_vec(),
        user_code: user_code(),
        client_name: client.chars().take(64).collect(),
        created_at_ms: now,
        expires_at_ms: now.saturating_add(millis(state.config.device_grant_lifetime)),
        interval_secs: i64::try_from(state.config.device_poll_interval.as_secs().max(1)).unwrap_or(5),
        last_polled_at_ms: None,
        status: GrantStatus::Pending,
        user_id: None,
    };
    if let Err(error) = state.store.insert_grant(&grant).await {
        return failed(error);
    }
    let base = public_base(&headers);
    Json(json!({
        "device_code": device_code,
        "user_code": grant.user_code,
        "verification_uri": format!("{base}/device"),
        "verification_uri_complete": format!("{base}/device?user_code={}", grant.user_code),
        "expires_in": state.config.device_grant_lifetime.as_secs(),
        "interval": grant.interval_secs,
    }))
    .into_response()
}

/// The base URL the person's browser should open: as the CLI reached moat.
fn public_base(headers: &HeaderMap) -> String {
    let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1:4000");
    let scheme = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).unwrap_or("http");
    let scheme = if scheme == "https" { "https" } else { "http" };
    format!("{scheme}://{host}")
}

#[derive(Debug, Deserialize)]
struct TokenForm {
    grant_type: String,
    device_code: String,
}

/// `POST /oauth/token`: the CLI's poll.
pub(super) async fn token(State(state): State<WebState>, body: Bytes) -> Response {
    let Some(request) = form::<TokenForm>(&body) else {
        return oauth_error("invalid_request", "send grant_type and device_code as a form");
    };
    if request.grant_type != DEVICE_GRANT_TYPE {
        return oauth_error("unsupported_grant_type", "only the device code grant is supported");
    }
    let hash = hash_secret(&request.device_code);
    let grant = match state.store.grant_by_device_code(&hash).await {
        Ok(Some(grant)) => grant,
        Ok(None) => return oauth_error("invalid_grant", "unknown device code"),
        Err(error) => return failed(error),
    };
    let now = now_ms();
    if now >= grant.expires_at_ms {
        return oauth_error("expired_token", "the code expired; run `moat login` again");
    }
    let too_soon = grant.last_polled_at_ms.is_some_and(|last| now - last < grant.interval_secs * 1000);
    if let Err(error) = state.store.poll_grant(&hash, now).await {
        return failed(error);
    }
    match grant.status {
        GrantStatus::Pending if too_soon => oauth_error("slow_down", "poll less often"),
        GrantStatus::Pending => oauth_error("authorization_pending", "waiting for approval in the browser"),
        GrantStatus::Denied => oauth_error("access_denied", "the sign-in was denied"),
        GrantStatus::Issued => oauth_error("invalid_grant", "this code was already used"),
        GrantStatus::Approved => issue(&state, &grant, &hash).await,
    }
}

/// Issues the personal key for an approved grant, once.
async fn issue(state: &WebState, grant: &DeviceGrant, hash: &[u8]) -> Response {
    let Some(user_id) = grant.user_id.clone() else { return oauth_error("invalid_grant", "no approver") };
    match state.store.move_grant(hash, GrantStatus::Approved, GrantStatus::Issued, None).await {
        Ok(true) => {}
        Ok(false) => return oauth_error("invalid_grant", "this code was already used"),
        Err(error) => return failed(error),
    }
    let user = match state.store.user_by_id(&user_id).await {
        Ok(Some(user)) if user.active => user,
        Ok(_) => return oauth_error("access_denied", "the approving user is deactivated"),
        Err(error) => return failed(error),
    };
    let secret = generate_secret();
    let now = now_ms();
    let lifetime = state.config.device_key_lifetime;
    let key = NewKey {
        id: format!("key_{}", uuid::Uuid::now_v7().simple()),
        name: format!("{} via moat login", grant.client_name),
        owner: Some(user.email.clone()),
        user_id: Some(user.id.clone()),
        team_id: None,
        role: Role::Client,
        secret_hash: hash_secret(&secret).to_vec(),
        prefix: display_prefix(&secret),
        models: ModelAccess::All,
        created_at_ms: now,
        expires_at_ms: Some(now.saturating_add(millis(lifetime))),
    };
    let record = match state.store.insert_key(&key).await {
        Ok(record) => record,
        Err(error) => return failed(error),
    };
    (state.keys_changed)();
    let after =
        json!({ "id": record.id, "name": record.name, "user_id": user.id, "role": "client", "via": "device flow" });
    let event = audit_event(&user.id, "key.create", ("key", &record.id), None, Some(after));
    if let Err(error) = state.store.append_audit(&event).await {
        return failed(error);
    }
    Json(json!({ "access_token": secret, "token_type": "Bearer", "expires_in": lifetime.as_secs() })).into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct DeviceQuery {
    user_code: Option<String>,
}

/// `GET /device`: asks the signed-in person to confirm the code (signing in first).
pub(super) async fn page(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(query): Query<DeviceQuery>,
) -> Response {
    let signed = match signed_in(&state, &headers).await {
        Ok(Some(signed)) => signed,
        Ok(None) => {
            let next = match &query.user_code {
                Some(code) => format!("/device?user_code={}", normalize(code)),
                None => "/device".to_owned(),
            };
            return redirect(&format!("/login?next={}", urlencode(&next)));
        }
        Err(error) => return failed(error),
    };
    let Some(code) = query.user_code.as_deref().map(normalize) else {
        return Html(pages::enter_code(None)).into_response();
    };
    match live_grant(&state, &code).await {
        Ok(Some(grant)) => {
            Html(pages::confirm_device(&signed.user.email, &grant.user_code, &grant.client_name, &signed.session.csrf))
                .into_response()
        }
        Ok(None) => (
            StatusCode::NOT_FOUND,
            Html(pages::enter_code(Some("No pending sign-in has this code; check it, or run `moat login` again."))),
        )
            .into_response(),
        Err(response) => response,
    }
}

async fn live_grant(state: &WebState, code: &str) -> Result<Option<DeviceGrant>, Response> {
    match state.store.grant_by_user_code(code).await {
        Ok(grant) => Ok(grant.filter(|g| g.status == GrantStatus::Pending && now_ms() < g.expires_at_ms)),
        Err(error) => Err(failed(error)),
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => char::from(b).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[derive(Debug, Deserialize)]
struct DecisionForm {
    csrf: String,
    user_code: String,
    decision: String,
}

/// `POST /device`: the person approves or denies.
pub(super) async fn decide(State(state): State<WebState>, headers: HeaderMap, body: Bytes) -> Response {
    let signed = match signed_in(&state, &headers).await {
        Ok(Some(signed)) => signed,
        Ok(None) => return redirect("/login?next=/device"),
        Err(error) => return failed(error),
    };
    let Some(request) = form::<DecisionForm>(&body) else {
        return (StatusCode::BAD_REQUEST, Html(pages::enter_code(Some("Something was missing; try again."))))
            .into_response();
    };
    if !equal(&request.csrf, &signed.session.csrf) {
        return (StatusCode::FORBIDDEN, Html(pages::message("Not approved", "The form expired; reload the page.")))
            .into_response();
    }
    let grant = match live_grant(&state, &normalize(&request.user_code)).await {
        Ok(Some(grant)) => grant,
        Ok(None) => {
            return (StatusCode::NOT_FOUND, Html(pages::enter_code(Some("That code is no longer pending."))))
                .into_response();
        }
        Err(response) => return response,
    };
    let (to, action, text) = match request.decision.as_str() {
        "approve" => {
            (GrantStatus::Approved, "device.approve", "Approved. Return to your terminal: it now has your key.")
        }
        _ => (GrantStatus::Denied, "device.deny", "Denied. Nothing was given to the device."),
    };
    match state.store.move_grant(&grant.device_code_hash, GrantStatus::Pending, to, Some(&signed.user.id)).await {
        Ok(true) => {}
        Ok(false) => {
            return (StatusCode::CONFLICT, Html(pages::message("Already decided", "This code was already used.")))
                .into_response();
        }
        Err(error) => return failed(error),
    }
    let event = audit_event(
        &signed.user.id,
        action,
        ("device_grant", &grant.user_code),
        None,
        Some(json!({ "client": grant.client_name })),
    );
    if let Err(error) = state.store.append_audit(&event).await {
        return failed(error);
    }
    Html(pages::message(if to == GrantStatus::Approved { "Approved" } else { "Denied" }, text)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_unambiguous_and_read_in_any_form() {
        let code = user_code();
        assert_eq!(code.len(), 9);
        assert!(code.chars().all(|c| c == '-' || USER_CODE_ALPHABET.contains(&(c as u8))), "{code}");
        assert_eq!(normalize("bcdf ghjk"), "BCDF-GHJK");
        assert_eq!(normalize("BCDF-GHJK"), "BCDF-GHJK");
        assert_eq!(urlencode("/device?user_code=AB-CD"), "/device%3Fuser_code%3DAB-CD");
    }
}
