//! `/admin/v1/keys`: virtual keys, each owned by a user or a team.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use moat_core::{Action, ErrorCode, KeyOwner, ModelAccess, Role};
use moat_store::{KeyFilter, KeyReader, KeyRecord, NewKey};
use serde::Deserialize;
use serde_json::{Value, json};

use super::caller::Caller;
use super::{invalid, names, not_found, page_limit, parse_body, store_failed};
use crate::auth::{display_prefix, generate_secret, hash_secret};
use crate::error::ApiError;
use crate::state::AppState;
use crate::time::{format_ms, now_ms, parse_rfc3339_ms};

/// Longest key name accepted.
const MAX_NAME_CHARS: usize = 200;

/// `POST /admin/v1/keys` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    name: String,
    #[serde(default)]
    owner: Option<String>,
    /// The user the key belongs to; the caller's own user when neither this nor `team_id`
    /// is given.
    #[serde(default)]
    user_id: Option<String>,
    /// The team the key belongs to.
    #[serde(default)]
    team_id: Option<String>,
    /// Public model names; absent or null means every model.
    #[serde(default)]
    models: Option<Vec<String>>,
    #[serde(default)]
    role: Option<String>,
    /// RFC 3339 instant.
    #[serde(default)]
    expires_at: Option<String>,
    /// A duration such as `30d` or `12h`, from now.
    #[serde(default)]
    expires_in: Option<String>,
}

/// What a key is now: `revoked`, `expired`, or `active`.
fn key_status(key: &KeyRecord, now_ms: i64) -> &'static str {
    if key.revoked_at_ms.is_some() {
        "revoked"
    } else if key.expires_at_ms.is_some_and(|at| at <= now_ms) {
        "expired"
    } else {
        "active"
    }
}

pub(super) fn key_json(key: &KeyRecord) -> Value {
    json!({
        "status": key_status(key, now_ms()),
        "id": key.id,
        "name": key.name,
        "owner": key.owner,
        "user_id": key.user_id,
        "team_id": key.team_id,
        "role": key.role.as_str(),
        "prefix": key.prefix,
        "models": match &key.models { ModelAccess::All => Value::Null, ModelAccess::Only(m) => json!(m) },
        "created_at": format_ms(key.created_at_ms),
        "expires_at": key.expires_at_ms.map(format_ms),
        "revoked_at": key.revoked_at_ms.map(format_ms),
    })
}

/// Whose a stored key is, for authorization.
pub(super) fn owner_of(key: &KeyRecord) -> KeyOwner {
    match (&key.user_id, &key.team_id, key.user_state) {
        (Some(id), _, Some((_, role))) => KeyOwner::User { id: id.clone(), role },
        (_, Some(team), _) => KeyOwner::Team(team.clone()),
        _ => KeyOwner::Unowned,
    }
}

pub(crate) async fn create_key(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    let now = now_ms();
    let request: CreateKey = parse_body(&body, "key request")?;
    let name = request.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(format!("`name` must have 1 to {MAX_NAME_CHARS} characters"), "name"));
    }
    let role = match request.role.as_deref() {
        None => Role::Client,
        Some(role) => Role::parse(role).ok_or_else(|| invalid("`role` must be `client` or `admin`", "role"))?,
    };
    let (user_id, team_id) = match (request.user_id, request.team_id) {
        (Some(_), Some(_)) => return Err(invalid("a key belongs to a user or a team, not both", "team_id")),
        (None, None) => (caller.actor.user_id.clone(), None),
        other => other,
    };
    let owner = match (&user_id, &team_id) {
        (Some(id), _) => {
            let user = state.store.user_by_id(id).await.map_err(store_failed)?;
            let user = user.ok_or_else(|| invalid(format!("no user has the id `{id}`"), "user_id"))?;
            if !user.active {
                return Err(invalid(format!("the user `{id}` is deactivated"), "user_id"));
            }
            KeyOwner::User { id: user.id, role: user.org_role }
        }
        (None, Some(team)) => {
            if state.store.team_by_id(team).await.map_err(store_failed)?.is_none() {
                return Err(invalid(format!("no team has the id `{team}`"), "team_id"));
            }
            KeyOwner::Team(team.clone())
        }
        (None, None) => KeyOwner::Unowned,
    };
    caller.must(&Action::CreateKey { owner: &owner, admin_scope: role == Role::Admin })?;
    if role == Role::Admin && team_id.is_some() {
        return Err(invalid("admin-scope keys belong to a user: they act with that user's roles", "role"));
    }
    let models = match request.models {
        None => ModelAccess::All,
        Some(models) => {
            let routing = state.routing.load();
            let known: Vec<&str> = routing.catalog.names().collect();
            if let Some(unknown) = models.iter().find(|m| !known.contains(&m.as_str())) {
                return Err(invalid(format!("no model is named `{unknown}`"), "models"));
            }
            ModelAccess::Only(models)
        }
    };
    let expires_at_ms = match (request.expires_at, request.expires_in) {
        (Some(_), Some(_)) => {
            return Err(invalid("give `expires_at` or `expires_in`, not both", "expires_at"));
        }
        (Some(at), None) => {
            Some(parse_rfc3339_ms(&at).ok_or_else(|| invalid("`expires_at` must be an RFC 3339 time", "expires_at"))?)
        }
        (None, Some(within)) => {
            let within = humantime::parse_duration(&within)
                .map_err(|_| invalid("`expires_in` must be a duration such as `30d` or `12h`", "expires_in"))?;
            Some(now.saturating_add(i64::try_from(within.as_millis()).unwrap_or(i64::MAX)))
        }
        (None, None) => None,
    };
    if expires_at_ms.is_some_and(|t| t <= now) {
        return Err(invalid("the expiry is in the past", "expires_at"));
    }
    let secret = generate_secret();
    let new_key = NewKey {
        id: format!("key_{}", uuid::Uuid::now_v7().simple()),
        name,
        owner: request.owner.map(|o| o.trim().to_owned()).filter(|o| !o.is_empty()),
        user_id,
        team_id,
        role,
        secret_hash: hash_secret(&secret).to_vec(),
        prefix: display_prefix(&secret),
        models,
        created_at_ms: now,
        expires_at_ms,
    };
    let record = state.store.insert_key(&new_key).await.map_err(store_failed)?;
    state.keys.invalidate();
    let view = key_json(&record);
    caller.audit(&state, "key.create", ("key", &record.id), None, Some(&view)).await?;
    tracing::info!(key_id = %record.id, role = record.role.as_str(), "key created");
    let mut body = view;
    body["key"] = Value::String(secret);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /admin/v1/keys` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListKeysQuery {
    #[serde(default)]
    include_revoked: bool,
    /// Only this user's keys.
    #[serde(default)]
    user_id: Option<String>,
    /// Only this team's keys.
    #[serde(default)]
    team_id: Option<String>,
    /// A key id: older keys only (the next page).
    #[serde(default)]
    before: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

/// A page of the keys the caller may see, newest first: every key for those who read the
/// organisation, their own and their teams' for members. Each names its owner (`user_email`,
/// `team_name`); `next_before` is the cursor for the next page.
pub(crate) async fn list_keys(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    query: Result<Query<ListKeysQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.body_text()))?;
    let limit = page_limit(query.limit)?;
    let actor = &caller.actor;
    let visible_to = actor.may(&Action::ReadOrg).is_err().then(|| KeyReader {
        user_id: actor.user_id.clone(),
        team_ids: actor.teams.iter().map(|(team, _)| team.clone()).collect(),
    });
    let filter = KeyFilter {
        include_revoked: query.include_revoked,
        user_id: query.user_id,
        team_id: query.team_id,
        visible_to,
        before_id: query.before,
        limit,
    };
    let keys = state.store.list_keys(&filter).await.map_err(store_failed)?;
    let next = (keys.len() == limit as usize).then(|| keys.last().map(|k| k.id.clone())).flatten();
    // The query already kept only what the caller may see; this is the same rule again, so
    // no change to either can widen what a list shows.
    let visible: Vec<&KeyRecord> = keys.iter().filter(|k| actor.sees_key(&owner_of(k))).collect();
    let data = with_owner_names(&state, &visible).await?;
    Ok(Json(json!({ "data": data, "next_before": next })).into_response())
}

/// Keys as the API shows them, each with its owner's e-mail and kind (`person` or `service`)
/// or its team's name.
async fn with_owner_names(state: &AppState, keys: &[&KeyRecord]) -> Result<Vec<Value>, ApiError> {
    let users = names::users(state, keys.iter().filter_map(|k| k.user_id.as_deref())).await?;
    let teams =
        if keys.iter().any(|k| k.team_id.is_some()) { names::team_names(state).await? } else { Default::default() };
    Ok(keys
        .iter()
        .map(|key| {
            let mut view = key_json(key);
            let user = key.user_id.as_ref().and_then(|id| users.get(id));
            view["user_email"] = json!(user.map(|u| &u.email));
            view["user_kind"] = json!(user.map(|u| u.kind.as_str()));
            view["team_name"] = json!(key.team_id.as_ref().and_then(|id| teams.get(id)));
            view
        })
        .collect())
}

/// A key the caller may see, or `404` as if it did not exist.
async fn visible_key(state: &AppState, caller: &Caller, id: &str) -> Result<KeyRecord, ApiError> {
    match state.store.key_by_id(id).await.map_err(store_failed)? {
        Some(key) if caller.actor.sees_key(&owner_of(&key)) => Ok(key),
        _ => Err(not_found("key", id)),
    }
}

pub(crate) async fn get_key(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let key = visible_key(&state, &caller, &id).await?;
    let mut named = with_owner_names(&state, &[&key]).await?;
    Ok(Json(named.pop().unwrap_or_else(|| key_json(&key))).into_response())
}

pub(crate) async fn revoke_key(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let key = visible_key(&state, &caller, &id).await?;
    caller.must(&Action::ManageKey(&owner_of(&key)))?;
    let revoked = state.store.revoke_key(&id, now_ms()).await.map_err(store_failed)?;
    state.keys.invalidate();
    let Some(revoked) = revoked else { return Err(not_found("key", &id)) };
    let (before, after) = (key_json(&key), key_json(&revoked));
    if key.revoked_at_ms.is_none() {
        caller.audit(&state, "key.revoke", ("key", &id), Some(&before), Some(&after)).await?;
    }
    tracing::info!(key_id = %revoked.id, "key revoked");
    Ok(Json(after).into_response())
}
