//! Data policies in the admin API: the organisation's default (from the config) and each
//! team's own.
//!
//! `GET /admin/v1/policy` reads the default; `GET|PUT|DELETE /admin/v1/teams/{id}/policy`
//! reads, sets or clears a team's. Whoever may read the team reads its policy; only admins
//! and owners change one (a team admin is bound by it, not its author). Every change is
//! audited with the policy before and after, and applies on this replica at once.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use moat_core::{Action, Policy, PromptLogging};
use serde_json::{Value, json};

use super::caller::Caller;
use super::people::visible_team;
use super::{invalid, not_found, parse_body, store_failed};
use crate::error::ApiError;
use crate::state::AppState;
use crate::time::now_ms;

/// `GET /admin/v1/policy`: the policy of teams without their own.
pub(crate) async fn default_policy(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Response, ApiError> {
    caller.must(&Action::ReadOrg)?;
    Ok(Json(json!({ "source": "config", "policy": *state.data_policies.default_policy() })).into_response())
}

/// `GET /admin/v1/teams/{id}/policy`: the policy the team's requests follow, and whether it
/// is the team's own (`source: team`) or the default (`source: default`).
pub(crate) async fn get_team_policy(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    visible_team(&state, &caller, &id).await?;
    Ok(Json(team_policy_json(&state, &id)).into_response())
}

/// `PUT /admin/v1/teams/{id}/policy`: sets the team's own policy, replacing the default for
/// it. Body: `{"internal_only": bool, "deployments": [names] | absent, "secrets": "allow" |
/// "redact" | "block", "prompts": "none" | "metadata" | "full", "prompt_retention_days": n}`;
/// unknown fields and unknown deployment names are refused, and so is `full` without a
/// master key to encrypt with.
pub(crate) async fn put_team_policy(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let policy: Policy = parse_body(&body, "policy")?;
    visible_team(&state, &caller, &id).await?;
    caller.must(&Action::ManagePolicies)?;
    let routing = state.routing.load();
    if let Some(unknown) =
        policy.deployments.iter().flatten().find(|name| !routing.deployments.iter().any(|d| d.spec().name == **name))
    {
        return Err(invalid(format!("no deployment is named `{unknown}`"), "deployments"));
    }
    if policy.prompts == PromptLogging::Full && state.prompt_vault.is_none() {
        return Err(invalid(
            "`full` stores prompts, which are stored only encrypted: set [encryption] key in the config first",
            "prompts",
        ));
    }
    if policy.prompt_retention_days == 0 {
        return Err(invalid("`prompt_retention_days` must be at least 1", "prompt_retention_days"));
    }
    let before = state.data_policies.team(&id).map(|p| json!(*p));
    if !state.store.set_team_policy(&id, Some(&policy), now_ms()).await.map_err(store_failed)? {
        return Err(not_found("team", &id));
    }
    state.data_policies.set_team(&id, Some(policy.clone()));
    let after = json!(policy);
    if before.as_ref() != Some(&after) {
        caller.audit(&state, "team.policy.put", ("team", &id), before.as_ref(), Some(&after)).await?;
    }
    Ok(Json(team_policy_json(&state, &id)).into_response())
}

/// `DELETE /admin/v1/teams/{id}/policy`: the team follows the default again.
pub(crate) async fn delete_team_policy(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    visible_team(&state, &caller, &id).await?;
    caller.must(&Action::ManagePolicies)?;
    let before = state.data_policies.team(&id).map(|p| json!(*p));
    let removed = state.store.set_team_policy(&id, None, now_ms()).await.map_err(store_failed)?;
    state.data_policies.set_team(&id, None);
    if !removed {
        return Err(not_found("team policy", &id));
    }
    caller.audit(&state, "team.policy.delete", ("team", &id), before.as_ref(), None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn team_policy_json(state: &AppState, team_id: &str) -> Value {
    match state.data_policies.team(team_id) {
        Some(policy) => json!({ "team_id": team_id, "source": "team", "policy": *policy }),
        None => json!({ "team_id": team_id, "source": "default", "policy": *state.data_policies.default_policy() }),
    }
}
