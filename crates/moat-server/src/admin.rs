//! The admin API (`/admin/v1`): keys and usage. Every route requires an admin key; the CLI
//! uses only these routes.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use moat_core::{ErrorCode, ModelAccess, Role, UsageRecord};
use moat_store::{KeyRecord, NewKey, UsageFilter};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::{display_prefix, generate_secret, hash_secret};
use crate::error::ApiError;
use crate::state::AppState;
use crate::time::{format_ms, now_ms, parse_rfc3339_ms};

/// Most usage records one page returns.
const MAX_USAGE_PAGE: u32 = 1000;
/// Usage records per page when `limit` is not given.
const DEFAULT_USAGE_PAGE: u32 = 100;
/// Longest key name accepted.
const MAX_NAME_CHARS: usize = 200;

/// `POST /admin/v1/keys` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    name: String,
    #[serde(default)]
    owner: Option<String>,
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

fn key_json(key: &KeyRecord) -> Value {
    json!({
        "id": key.id,
        "name": key.name,
        "owner": key.owner,
        "role": key.role.as_str(),
        "prefix": key.prefix,
        "models": match &key.models { ModelAccess::All => Value::Null, ModelAccess::Only(m) => json!(m) },
        "created_at": format_ms(key.created_at_ms),
        "expires_at": key.expires_at_ms.map(format_ms),
        "revoked_at": key.revoked_at_ms.map(format_ms),
    })
}

fn store_failed(error: moat_store::StoreError) -> ApiError {
    tracing::error!(%error, "store operation failed");
    ApiError::internal()
}

fn invalid(message: impl Into<String>, param: &'static str) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, message).with_param(param)
}

pub(crate) async fn create_key(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let now = now_ms();
    state.keys.authenticate_admin(&headers, now).await?;
    let request: CreateKey = serde_json::from_slice(&body).map_err(|e| {
        let code = if e.is_syntax() || e.is_eof() { ErrorCode::InvalidJson } else { ErrorCode::InvalidRequest };
        ApiError::new(code, format!("invalid key request: {e}"))
    })?;
    let name = request.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(format!("`name` must have 1 to {MAX_NAME_CHARS} characters"), "name"));
    }
    let role = match request.role.as_deref() {
        None => Role::Client,
        Some(role) => Role::parse(role).ok_or_else(|| invalid("`role` must be `client` or `admin`", "role"))?,
    };
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
        role,
        secret_hash: hash_secret(&secret).to_vec(),
        prefix: display_prefix(&secret),
        models,
        created_at_ms: now,
        expires_at_ms,
    };
    let record = state.store.insert_key(&new_key).await.map_err(store_failed)?;
    state.keys.invalidate();
    tracing::info!(key_id = %record.id, role = record.role.as_str(), "key created");
    let mut body = key_json(&record);
    body["key"] = Value::String(secret);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListKeysQuery {
    #[serde(default)]
    include_revoked: bool,
}

pub(crate) async fn list_keys(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<ListKeysQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    state.keys.authenticate_admin(&headers, now_ms()).await?;
    let Query(query) = query.map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.body_text()))?;
    let keys = state.store.list_keys(query.include_revoked).await.map_err(store_failed)?;
    Ok(Json(json!({ "data": keys.iter().map(key_json).collect::<Vec<_>>() })).into_response())
}

pub(crate) async fn get_key(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    state.keys.authenticate_admin(&headers, now_ms()).await?;
    match state.store.key_by_id(&id).await.map_err(store_failed)? {
        Some(key) => Ok(Json(key_json(&key)).into_response()),
        None => Err(ApiError::new(ErrorCode::NotFound, format!("no key has the id `{id}`"))),
    }
}

pub(crate) async fn revoke_key(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let now = now_ms();
    state.keys.authenticate_admin(&headers, now).await?;
    let revoked = state.store.revoke_key(&id, now).await.map_err(store_failed)?;
    state.keys.invalidate();
    match revoked {
        Some(key) => {
            tracing::info!(key_id = %key.id, "key revoked");
            Ok(Json(key_json(&key)).into_response())
        }
        None => Err(ApiError::new(ErrorCode::NotFound, format!("no key has the id `{id}`"))),
    }
}

/// `GET /admin/v1/usage` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsageQuery {
    limit: Option<u32>,
    key_id: Option<String>,
    model: Option<String>,
    deployment: Option<String>,
    status: Option<u16>,
    /// RFC 3339, inclusive.
    from: Option<String>,
    /// RFC 3339, exclusive.
    to: Option<String>,
    /// A record id: return older records only (the next page).
    before: Option<String>,
}

fn usage_json(r: &UsageRecord) -> Value {
    json!({
        "id": r.id,
        "created_at": format_ms(r.created_at_ms),
        "key_id": r.key_id,
        "model": r.model,
        "deployment": r.deployment,
        "endpoint": r.endpoint,
        "status": r.status,
        "error_code": r.error_code,
        "input_tokens": r.usage.input,
        "output_tokens": r.usage.output,
        "cached_tokens": r.usage.cached,
        "cache_write_tokens": r.usage.cache_write,
        "reasoning_tokens": r.usage.reasoning,
        "estimated": r.estimated,
        "streamed": r.streamed,
        "latency_ms": r.latency_ms,
        "ttft_ms": r.ttft_ms,
    })
}

pub(crate) async fn list_usage(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    query: Result<Query<UsageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    state.keys.authenticate_admin(&headers, now_ms()).await?;
    let Query(query) = query.map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.body_text()))?;
    let limit = query.limit.unwrap_or(DEFAULT_USAGE_PAGE);
    if limit == 0 || limit > MAX_USAGE_PAGE {
        return Err(invalid(format!("`limit` must be between 1 and {MAX_USAGE_PAGE}"), "limit"));
    }
    let time = |text: Option<String>, param: &'static str| -> Result<Option<i64>, ApiError> {
        text.map(|t| parse_rfc3339_ms(&t).ok_or_else(|| invalid(format!("`{param}` must be an RFC 3339 time"), param)))
            .transpose()
    };
    let filter = UsageFilter {
        key_id: query.key_id,
        model: query.model,
        deployment: query.deployment,
        status: query.status,
        from_ms: time(query.from, "from")?,
        to_ms: time(query.to, "to")?,
        before_id: query.before,
        limit,
    };
    let records = state.store.query_usage(&filter).await.map_err(store_failed)?;
    let next = (records.len() == limit as usize).then(|| records.last().map(|r| r.id.clone())).flatten();
    Ok(Json(json!({ "data": records.iter().map(usage_json).collect::<Vec<_>>(), "next_before": next })).into_response())
}

/// `GET /admin/v1/deployments`: every deployment with its live health, load and latency.
pub(crate) async fn list_deployments(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    state.keys.authenticate_admin(&headers, now_ms()).await?;
    let routing = state.routing.load();
    let now = std::time::Instant::now();
    let data: Vec<Value> = routing
        .deployments
        .iter()
        .enumerate()
        .map(|(i, deployment)| {
            let spec = deployment.spec();
            let models: Vec<&str> = routing
                .catalog
                .names()
                .filter(|name| {
                    routing.catalog.route(name).is_some_and(|r| r.members.iter().any(|m| m.deployment.0 == i))
                })
                .collect();
            let dollars = |micros: u64| micros as f64 / 1_000_000.0;
            json!({
                "name": spec.name,
                "url": spec.base_url,
                "dialects": spec.dialects.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
                "upstream_model": spec.upstream_model,
                "models": models,
                "health": deployment.live.health(now).as_str(),
                "consecutive_failures": deployment.live.consecutive_failures(),
                "times_down": deployment.live.times_opened(),
                "in_flight": deployment.live.in_flight(),
                "ttft_ms": deployment.live.ttft().map(|t| t.as_millis()),
                "context_window": spec.context_window,
                "price_per_mtok": {
                    "input": dollars(spec.price.input), "output": dollars(spec.price.output),
                    "cache_read": dollars(spec.price.cache_read), "cache_write": dollars(spec.price.cache_write),
                },
            })
        })
        .collect();
    Ok(Json(json!({ "data": data })).into_response())
}
