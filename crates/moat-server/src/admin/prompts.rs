//! `GET /admin/v1/usage/{id}/prompt`: one logged exchange, opened for an admin.
//!
//! Exchanges are logged only for teams whose policy says `prompts = "full"`. Reading one is
//! for admins and owners, and every read (found or not) is in the audit log: whoever reads a
//! colleague's prompt leaves a trace their auditors can see.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use moat_core::{Action, ErrorCode};
use serde_json::json;

use super::caller::Caller;
use super::store_failed;
use crate::error::ApiError;
use crate::state::AppState;
use crate::time::{format_ms, now_ms};

/// The exchange logged for one request: the request as the client sent it (JSON when it was)
/// and the text the model generated.
pub(crate) async fn get_prompt(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    caller.must(&Action::ReadPrompts)?;
    let Some(vault) = &state.prompt_vault else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "no prompts are logged: full prompt logging needs [encryption] key and a policy with prompts = \"full\"",
        ));
    };
    let log = vault.read(&state.store, &id, now_ms()).await.map_err(store_failed)?;
    let found = json!({ "found": log.is_some() });
    caller.audit(&state, "prompt.read", ("request", &id), None, Some(&found)).await?;
    let Some(log) = log else {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no prompt is logged for the request `{id}` (not logged under its policy, or past retention)"),
        ));
    };
    let request = serde_json::from_str::<serde_json::Value>(&log.request).unwrap_or(json!(log.request));
    Ok(Json(json!({
        "request_id": log.request_id,
        "team_id": log.team_id,
        "created_at": format_ms(log.created_at_ms),
        "expires_at": format_ms(log.expires_at_ms),
        "request": request,
        "completion": log.completion,
    }))
    .into_response())
}
