//! `/admin/v1/budgets` and `/admin/v1/limits`: set, read, change, reset and delete budgets and
//! limits, each shown with where its counters stand now.
//!
//! Changes apply at once on this replica and within `[admission] refresh_interval` on the
//! others. Amounts are written in dollars (`"25.50"`, exact to the micro-dollar) and returned
//! both ways; reading needs the org-read role, changing the admin or owner role.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use moat_core::budget::{Budget, Limit, Measure, Scope, parse_usd};
use moat_core::{Action, Period};
use serde::Deserialize;
use serde_json::{Value, json};

use super::caller::Caller;
use super::{invalid, names, not_found, parse_body, store_failed};
use crate::admission::dollars;
use crate::error::ApiError;
use crate::state::AppState;
use crate::time::{format_ms, now_ms};

const DEFAULT_THRESHOLDS: [u32; 3] = [50, 80, 100];

/// A dollar amount as JSON: a number or a string.
#[derive(Deserialize)]
#[serde(untagged)]
enum Amount {
    Number(serde_json::Number),
    Text(String),
}

fn micro_usd(amount: &Amount) -> Result<u64, ApiError> {
    let text = match amount {
        Amount::Number(n) => n.to_string(),
        Amount::Text(s) => s.clone(),
    };
    parse_usd(&text).ok_or_else(|| {
        invalid(format!("`{text}` is not a dollar amount (like 25 or \"25.50\", at most 6 decimals)"), "amount_usd")
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewBudget {
    scope: String,
    #[serde(default)]
    scope_id: Option<String>,
    amount_usd: Amount,
    period: String,
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    thresholds: Option<Vec<u32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BudgetChange {
    #[serde(default)]
    amount_usd: Option<Amount>,
    #[serde(default)]
    time_zone: Option<String>,
    #[serde(default)]
    thresholds: Option<Vec<u32>>,
}

fn time_zone(name: &str) -> Result<String, ApiError> {
    moat_core::period::time_zone(name).map(|_| name.to_owned()).ok_or_else(|| {
        invalid(format!("`{name}` is not an IANA time zone (like `Europe/Paris` or `UTC`)"), "time_zone")
    })
}

fn thresholds(mut values: Vec<u32>) -> Result<Vec<u32>, ApiError> {
    if values.iter().any(|&p| p == 0 || p > 1000) {
        return Err(invalid("thresholds are percentages from 1 to 1000", "thresholds"));
    }
    values.sort_unstable();
    values.dedup();
    Ok(values)
}

/// Checks that the budget's or limit's target exists, and returns its id as stored.
async fn target(state: &AppState, scope: Scope, id: Option<String>, for_budget: bool) -> Result<String, ApiError> {
    let id = id.unwrap_or_default();
    let missing = |what: &str| Err(invalid(format!("no {what} has the id `{id}`"), "scope_id"));
    match scope {
        Scope::Org if for_budget => {
            if !id.is_empty() {
                return Err(invalid("an org budget takes no `scope_id`", "scope_id"));
            }
        }
        Scope::Key => {
            if state.store.key_by_id(&id).await.map_err(store_failed)?.is_none() {
                return missing("key");
            }
        }
        Scope::User => {
            if state.store.user_by_id(&id).await.map_err(store_failed)?.is_none() {
                return missing("user");
            }
        }
        Scope::Team => {
            if state.store.team_by_id(&id).await.map_err(store_failed)?.is_none() {
                return missing("team");
            }
        }
        Scope::Model if !for_budget => {
            if state.routing.load().catalog.route(&id).is_none() {
                return Err(invalid(format!("no model is named `{id}`"), "scope_id"));
            }
        }
        _ => {
            let allowed = if for_budget { "key, user, team or org" } else { "key, user, team or model" };
            return Err(invalid(format!("the scope must be {allowed}"), "scope"));
        }
    }
    Ok(id)
}

/// A budget with its current period's spend.
async fn budget_json(state: &AppState, budget: &Budget) -> Value {
    let now = now_ms();
    let window = budget.window(now);
    let check = budget.check(now, 0);
    let counted = state.admission.counters().totals(&check, None).await.ok().filter(|totals| totals.exists);
    let (spent, reserved) = match counted {
        Some(totals) => (Some(totals.settled), totals.reserved),
        // Not counted yet this period (no request since): the ledger says.
        None => {
            (state.store.spend(budget.scope, &budget.scope_id, budget.counts_from(window), window.end_ms).await.ok(), 0)
        }
    };
    let current = spent.map(|spent| {
        let remaining = budget.amount_micro_usd.saturating_sub(spent.saturating_add(reserved));
        let percent = if budget.amount_micro_usd == 0 {
            100.0
        } else {
            // For display only; money itself never goes through a float.
            (spent as f64 * 10_000.0 / budget.amount_micro_usd as f64).round() / 100.0
        };
        json!({
            "period_start": format_ms(window.start_ms),
            "period_end": window.end_ms.map(format_ms),
            "spent_micro_usd": spent,
            "spent_usd": dollars(spent),
            "reserved_micro_usd": reserved,
            "remaining_micro_usd": remaining,
            "remaining_usd": dollars(remaining),
            "percent_used": percent,
        })
    });
    json!({
        "id": budget.id,
        "scope": budget.scope.as_str(),
        "scope_id": budget.scope_id,
        "amount_micro_usd": budget.amount_micro_usd,
        "amount_usd": dollars(budget.amount_micro_usd),
        "period": budget.period.as_str(),
        "time_zone": budget.time_zone,
        "thresholds": budget.thresholds,
        "reset_at": budget.reset_at_ms.map(format_ms),
        "created_at": format_ms(budget.created_at_ms),
        "updated_at": format_ms(budget.updated_at_ms),
        // Null when the counters and the ledger both could not be read.
        "current": current,
    })
}

/// A budget or limit with `scope_name`: its team's name, user's e-mail or key's name.
fn named(mut view: Value, names: &std::collections::HashMap<String, String>) -> Value {
    let name = view["scope_id"].as_str().and_then(|id| names.get(id)).cloned();
    view["scope_name"] = json!(name);
    view
}

fn find_budget(state: &AppState, id: &str) -> Result<Budget, ApiError> {
    state.admission.policies().budgets.iter().find(|b| b.id == id).cloned().ok_or_else(|| not_found("budget", id))
}

/// Re-reads budgets and limits after a change, so it applies at once here.
async fn apply(state: &AppState) -> Result<(), ApiError> {
    state.admission.refresh().await.map_err(store_failed)
}

pub(crate) async fn create_budget(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: NewBudget = parse_body(&body, "budget")?;
    caller.must(&Action::ManageBudgets)?;
    let scope =
        Scope::parse(&request.scope).ok_or_else(|| invalid("the scope must be key, user, team or org", "scope"))?;
    let scope_id = target(&state, scope, request.scope_id, true).await?;
    let period = Period::parse(&request.period)
        .ok_or_else(|| invalid("the period must be day, week, month or none", "period"))?;
    apply(&state).await?;
    if state
        .admission
        .policies()
        .budgets
        .iter()
        .any(|b| b.scope == scope && b.scope_id == scope_id && b.period == period)
    {
        return Err(ApiError::new(
            moat_core::ErrorCode::Conflict,
            format!("{} `{scope_id}` already has a {} budget; change that one", scope.as_str(), period.as_str()),
        ));
    }
    let now = now_ms();
    let budget = Budget {
        id: format!("bud_{}", uuid::Uuid::now_v7().simple()),
        scope,
        scope_id,
        amount_micro_usd: micro_usd(&request.amount_usd)?,
        period,
        time_zone: time_zone(request.time_zone.as_deref().unwrap_or("UTC"))?,
        thresholds: thresholds(request.thresholds.unwrap_or_else(|| DEFAULT_THRESHOLDS.to_vec()))?,
        reset_at_ms: None,
        created_at_ms: now,
        updated_at_ms: now,
    };
    state.store.put_budget(&budget).await.map_err(store_failed)?;
    apply(&state).await?;
    let view = budget_json(&state, &budget).await;
    caller.audit(&state, "budget.create", ("budget", &budget.id), None, Some(&view)).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

pub(crate) async fn list_budgets(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Response, ApiError> {
    caller.must(&Action::ReadOrg)?;
    apply(&state).await?;
    let policies = state.admission.policies();
    let names = names::scope_names(
        &state,
        &policies.budgets.iter().map(|b| (b.scope.as_str(), b.scope_id.as_str())).collect::<Vec<_>>(),
    )
    .await?;
    let mut data = Vec::new();
    for budget in &policies.budgets {
        data.push(named(budget_json(&state, budget).await, &names));
    }
    Ok(Json(json!({ "data": data })).into_response())
}

pub(crate) async fn get_budget(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.must(&Action::ReadOrg)?;
    apply(&state).await?;
    let budget = find_budget(&state, &id)?;
    let names = names::scope_names(&state, &[(budget.scope.as_str(), budget.scope_id.as_str())]).await?;
    Ok(Json(named(budget_json(&state, &budget).await, &names)).into_response())
}

pub(crate) async fn update_budget(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let change: BudgetChange = parse_body(&body, "budget change")?;
    caller.must(&Action::ManageBudgets)?;
    apply(&state).await?;
    let before = find_budget(&state, &id)?;
    let mut budget = before.clone();
    if let Some(amount) = &change.amount_usd {
        budget.amount_micro_usd = micro_usd(amount)?;
    }
    if let Some(zone) = &change.time_zone {
        budget.time_zone = time_zone(zone)?;
    }
    if let Some(values) = change.thresholds {
        budget.thresholds = thresholds(values)?;
    }
    budget.updated_at_ms = now_ms();
    state.store.put_budget(&budget).await.map_err(store_failed)?;
    apply(&state).await?;
    let (before, after) = (budget_json(&state, &before).await, budget_json(&state, &budget).await);
    caller.audit(&state, "budget.update", ("budget", &id), Some(&before), Some(&after)).await?;
    Ok(Json(after).into_response())
}

/// Starts the current period's spend again from zero (requests in flight still settle).
pub(crate) async fn reset_budget(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.must(&Action::ManageBudgets)?;
    apply(&state).await?;
    let before = find_budget(&state, &id)?;
    let now = now_ms();
    let budget = Budget { reset_at_ms: Some(now), updated_at_ms: now, ..before.clone() };
    state.store.put_budget(&budget).await.map_err(store_failed)?;
    let counter = budget.check(now, 0).counter;
    state.admission.counters().reset(&[counter]).await.map_err(|error| {
        tracing::warn!(%error, "cannot reset a budget counter");
        ApiError::new(moat_core::ErrorCode::AdmissionUnavailable, "the budget counters cannot be reached; try again")
    })?;
    apply(&state).await?;
    let (before, after) = (budget_json(&state, &before).await, budget_json(&state, &budget).await);
    caller.audit(&state, "budget.reset", ("budget", &id), Some(&before), Some(&after)).await?;
    Ok(Json(after).into_response())
}

pub(crate) async fn delete_budget(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.must(&Action::ManageBudgets)?;
    apply(&state).await?;
    let before = budget_json(&state, &find_budget(&state, &id)?).await;
    state.store.delete_budget(&id).await.map_err(store_failed)?;
    apply(&state).await?;
    caller.audit(&state, "budget.delete", ("budget", &id), Some(&before), None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewLimit {
    scope: String,
    scope_id: String,
    #[serde(default)]
    requests_per_minute: Option<u64>,
    #[serde(default)]
    tokens_per_minute: Option<u64>,
    #[serde(default)]
    concurrent_requests: Option<u64>,
}

/// A change: a number sets a cap, `null` removes it, an absent field keeps it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitChange {
    #[serde(default, deserialize_with = "present")]
    requests_per_minute: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    tokens_per_minute: Option<Option<u64>>,
    #[serde(default, deserialize_with = "present")]
    concurrent_requests: Option<Option<u64>>,
}

/// Tells a field set to `null` (`Some(None)`) from one left out (`None`).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Option<u64>>, D::Error> {
    Option::<u64>::deserialize(deserializer).map(Some)
}

fn check_caps(limit: &Limit) -> Result<(), ApiError> {
    let caps = [limit.requests_per_minute, limit.tokens_per_minute, limit.concurrent_requests];
    if caps.iter().all(Option::is_none) {
        return Err(invalid(
            "a limit needs at least one of requests_per_minute, tokens_per_minute, concurrent_requests",
            "requests_per_minute",
        ));
    }
    // Redis counts in double-precision Lua numbers: exact up to 2^53.
    if caps.iter().flatten().any(|&cap| cap > 1 << 53) {
        return Err(invalid("a cap may be at most 2^53", "requests_per_minute"));
    }
    Ok(())
}

async fn limit_json(state: &AppState, limit: &Limit) -> Value {
    let mut current = serde_json::Map::new();
    for (measure, check) in limit.checks(0) {
        let name = match measure {
            Measure::Requests => "requests_last_minute",
            Measure::Tokens => "tokens_last_minute",
            _ => "in_flight",
        };
        if let Ok(totals) = state.admission.counters().totals(&check, None).await {
            current.insert(name.into(), json!(totals.settled.saturating_add(totals.reserved)));
        }
    }
    json!({
        "id": limit.id,
        "scope": limit.scope.as_str(),
        "scope_id": limit.scope_id,
        "requests_per_minute": limit.requests_per_minute,
        "tokens_per_minute": limit.tokens_per_minute,
        "concurrent_requests": limit.concurrent_requests,
        "created_at": format_ms(limit.created_at_ms),
        "updated_at": format_ms(limit.updated_at_ms),
        "current": current,
    })
}

fn find_limit(state: &AppState, id: &str) -> Result<Limit, ApiError> {
    state.admission.policies().limits.iter().find(|l| l.id == id).cloned().ok_or_else(|| not_found("limit", id))
}

pub(crate) async fn create_limit(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: NewLimit = parse_body(&body, "limit")?;
    caller.must(&Action::ManageBudgets)?;
    let scope =
        Scope::parse(&request.scope).ok_or_else(|| invalid("the scope must be key, user, team or model", "scope"))?;
    let scope_id = target(&state, scope, Some(request.scope_id), false).await?;
    apply(&state).await?;
    if state.admission.policies().limits.iter().any(|l| l.scope == scope && l.scope_id == scope_id) {
        return Err(ApiError::new(
            moat_core::ErrorCode::Conflict,
            format!("{} `{scope_id}` already has limits; change those", scope.as_str()),
        ));
    }
    let now = now_ms();
    let limit = Limit {
        id: format!("lim_{}", uuid::Uuid::now_v7().simple()),
        scope,
        scope_id,
        requests_per_minute: request.requests_per_minute,
        tokens_per_minute: request.tokens_per_minute,
        concurrent_requests: request.concurrent_requests,
        created_at_ms: now,
        updated_at_ms: now,
    };
    check_caps(&limit)?;
    state.store.put_limit(&limit).await.map_err(store_failed)?;
    apply(&state).await?;
    let view = limit_json(&state, &limit).await;
    caller.audit(&state, "limit.create", ("limit", &limit.id), None, Some(&view)).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

pub(crate) async fn list_limits(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Response, ApiError> {
    caller.must(&Action::ReadOrg)?;
    apply(&state).await?;
    let policies = state.admission.policies();
    let names = names::scope_names(
        &state,
        &policies.limits.iter().map(|b| (b.scope.as_str(), b.scope_id.as_str())).collect::<Vec<_>>(),
    )
    .await?;
    let mut data = Vec::new();
    for limit in &policies.limits {
        data.push(named(limit_json(&state, limit).await, &names));
    }
    Ok(Json(json!({ "data": data })).into_response())
}

pub(crate) async fn get_limit(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.must(&Action::ReadOrg)?;
    apply(&state).await?;
    let limit = find_limit(&state, &id)?;
    let names = names::scope_names(&state, &[(limit.scope.as_str(), limit.scope_id.as_str())]).await?;
    Ok(Json(named(limit_json(&state, &limit).await, &names)).into_response())
}

pub(crate) async fn update_limit(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let change: LimitChange = parse_body(&body, "limit change")?;
    caller.must(&Action::ManageBudgets)?;
    apply(&state).await?;
    let before = find_limit(&state, &id)?;
    let mut limit = before.clone();
    if let Some(value) = change.requests_per_minute {
        limit.requests_per_minute = value;
    }
    if let Some(value) = change.tokens_per_minute {
        limit.tokens_per_minute = value;
    }
    if let Some(value) = change.concurrent_requests {
        limit.concurrent_requests = value;
    }
    check_caps(&limit)?;
    limit.updated_at_ms = now_ms();
    state.store.put_limit(&limit).await.map_err(store_failed)?;
    apply(&state).await?;
    let (before, after) = (limit_json(&state, &before).await, limit_json(&state, &limit).await);
    caller.audit(&state, "limit.update", ("limit", &id), Some(&before), Some(&after)).await?;
    Ok(Json(after).into_response())
}

/// Forgets the requests and tokens counted in the last minute (requests in flight stay).
pub(crate) async fn reset_limit(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.must(&Action::ManageBudgets)?;
    apply(&state).await?;
    let limit = find_limit(&state, &id)?;
    let now = now_ms();
    let buckets: Vec<String> = limit
        .checks(0)
        .into_iter()
        .flat_map(|(_, check)| {
            let window = check.window;
            let previous = match window {
                moat_core::quota::Window::Sliding { length_ms } => Some(window.bucket(&check.counter, now - length_ms)),
                moat_core::quota::Window::Fixed { .. } => None,
            };
            std::iter::once(window.bucket(&check.counter, now)).chain(previous)
        })
        .collect();
    state.admission.counters().reset(&buckets).await.map_err(|error| {
        tracing::warn!(%error, "cannot reset limit counters");
        ApiError::new(moat_core::ErrorCode::AdmissionUnavailable, "the limit counters cannot be reached; try again")
    })?;
    let view = limit_json(&state, &limit).await;
    caller.audit(&state, "limit.reset", ("limit", &id), None, Some(&view)).await?;
    Ok(Json(view).into_response())
}

pub(crate) async fn delete_limit(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.must(&Action::ManageBudgets)?;
    apply(&state).await?;
    let before = limit_json(&state, &find_limit(&state, &id)?).await;
    state.store.delete_limit(&id).await.map_err(store_failed)?;
    apply(&state).await?;
    caller.audit(&state, "limit.delete", ("limit", &id), Some(&before), None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
