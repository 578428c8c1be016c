//! `GET /admin/v1/usage` and `GET /admin/v1/deployments`: reading what was used and how the
//! deployments are doing.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use moat_core::{Action, ErrorCode, UsageRecord};
use moat_store::UsageFilter;
use serde::Deserialize;
use serde_json::{Value, json};

use super::caller::Caller;
use super::{invalid, names, store_failed};
use crate::error::ApiError;
use crate::state::AppState;
use crate::time::{format_ms, parse_rfc3339_ms};

/// Most usage records one page returns.
const MAX_USAGE_PAGE: u32 = 1000;
/// Usage records per page when `limit` is not given.
const DEFAULT_USAGE_PAGE: u32 = 100;

/// `GET /admin/v1/usage` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UsageQuery {
    limit: Option<u32>,
    /// One request's record, by its id (the `x-request-id` moat answered with).
    id: Option<String>,
    key_id: Option<String>,
    /// Only the records charged to this user (for those who do not read the organisation:
    /// always their own).
    user_id: Option<String>,
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
        "cache_hit": r.cache_hit,
        "cost_micro_usd": r.cost_micro_usd,
        "reference_cost_micro_usd": r.reference_cost_micro_usd,
        "savings_micro_usd": i128::from(r.reference_cost_micro_usd) - i128::from(r.cost_micro_usd),
        "user_id": r.user_id,
        "team_id": r.team_id,
        "deployment_location": r.deployment_location.map(|l| l.as_str()),
        "secrets_found": r.secrets_found,
        "secrets_action": r.secrets_action.map(|a| a.as_str()),
    })
}

pub(crate) async fn list_usage(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    query: Result<Query<UsageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.body_text()))?;
    // Those who do not read the organisation read their own records, and only those.
    let user_id = match caller.must(&Action::ReadOrg) {
        Ok(()) => query.user_id,
        Err(denied) => {
            let Some(me) = caller.actor.user_id.clone() else { return Err(denied) };
            if query.user_id.as_deref().is_some_and(|u| u != me) {
                return Err(ApiError::new(ErrorCode::PermissionDenied, "your role reads only your own usage"));
            }
            Some(me)
        }
    };
    let limit = query.limit.unwrap_or(DEFAULT_USAGE_PAGE);
    if limit == 0 || limit > MAX_USAGE_PAGE {
        return Err(invalid(format!("`limit` must be between 1 and {MAX_USAGE_PAGE}"), "limit"));
    }
    let time = |text: Option<String>, param: &'static str| -> Result<Option<i64>, ApiError> {
        text.map(|t| parse_rfc3339_ms(&t).ok_or_else(|| invalid(format!("`{param}` must be an RFC 3339 time"), param)))
            .transpose()
    };
    let filter = UsageFilter {
        id: query.id,
        key_id: query.key_id,
        user_id,
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
    let key_names = names::key_names(&state, records.iter().filter_map(|r| r.key_id.as_deref())).await?;
    let emails = names::user_emails(&state, records.iter().filter_map(|r| r.user_id.as_deref())).await?;
    let data: Vec<Value> = records
        .iter()
        .map(|r| {
            let mut view = usage_json(r);
            view["key_name"] = json!(r.key_id.as_ref().and_then(|id| key_names.get(id)));
            view["user_email"] = json!(r.user_id.as_ref().and_then(|id| emails.get(id)));
            view
        })
        .collect();
    Ok(Json(json!({ "data": data, "next_before": next })).into_response())
}

/// `GET /admin/v1/deployments`: every deployment with its live health, load and latency.
pub(crate) async fn list_deployments(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Response, ApiError> {
    caller.must(&Action::ReadOrg)?;
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
                "location": spec.location.as_str(),
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
                "cost_model": spec.cost_model.map(|model| match model {
                    moat_core::CostModel::Gpu { gpus, per_gpu_hour, tokens_per_hour } => json!({
                        "kind": "gpu", "gpus": gpus, "gpu_hour_usd": dollars(per_gpu_hour),
                        "tokens_per_hour": tokens_per_hour,
                    }),
                    moat_core::CostModel::PerMillionTokens(per_mtok) => json!({
                        "kind": "per_mtok", "per_mtok_usd": dollars(per_mtok),
                    }),
                }),
            })
        })
        .collect();
    Ok(Json(json!({ "data": data })).into_response())
}

/// Filters of `GET /admin/v1/prices`.
#[derive(Debug, Deserialize)]
pub(crate) struct PriceQuery {
    model: Option<String>,
    provider: Option<String>,
    kind: Option<String>,
}

/// `GET /admin/v1/prices`: the price catalog (shipped rows with the config's `[[prices]]`
/// applied), in dollars per million tokens, with each row's date and source; and GPU rates.
pub(crate) async fn list_prices(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Query(query): Query<PriceQuery>,
) -> Result<Response, ApiError> {
    caller.must(&Action::ReadOrg)?;
    let dollars = |micros: u64| micros as f64 / 1_000_000.0;
    let wanted = |value: &str, filter: &Option<String>| filter.as_deref().is_none_or(|f| f == value);
    let data: Vec<Value> = state
        .price_catalog
        .prices()
        .iter()
        .filter(|p| wanted(&p.model, &query.model) && wanted(&p.provider, &query.provider))
        .filter(|p| wanted(p.kind.as_str(), &query.kind))
        .map(|p| {
            json!({
                "model": p.model,
                "provider": p.provider,
                "kind": p.kind.as_str(),
                "tier": p.tier,
                "per_mtok": {
                    "input": dollars(p.price.input), "output": dollars(p.price.output),
                    "cache_read": dollars(p.price.cache_read), "cache_write": dollars(p.price.cache_write),
                },
                "as_of": p.as_of,
                "source": p.source,
            })
        })
        .collect();
    let gpus: Vec<Value> = state
        .price_catalog
        .gpus()
        .iter()
        .map(|g| json!({ "gpu": g.gpu, "provider": g.provider, "per_hour": dollars(g.per_hour), "as_of": g.as_of }))
        .collect();
    Ok(Json(json!({ "data": data, "gpus": gpus })).into_response())
}

/// `GET /admin/v1/settings`: the running configuration without secrets: what is set at start
/// (sign-in, SSO, SCIM, mail, admission, alerts, savings, retention) and what reloads (routing
/// and each model's policy), read live.
pub(crate) async fn settings(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Response, ApiError> {
    caller.must(&Action::ReadOrg)?;
    let routing = state.routing.load();
    let name = |i: usize| routing.deployments.get(i).map(|d| d.spec().name.clone()).unwrap_or_default();
    let mut view = state.settings_summary.clone();
    let live = crate::config::summary::routing(&routing.catalog, &routing.settings, name);
    if let (Some(view), Value::Object(live)) = (view.as_object_mut(), live) {
        view.extend(live);
    }
    Ok(Json(view).into_response())
}
