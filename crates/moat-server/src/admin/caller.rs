//! Who calls the admin API: the key's user with their roles, where they call from, and the
//! audit record each change leaves.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use moat_core::audit::AuditEvent;
use moat_core::{Action, Actor, ErrorCode};
use serde_json::Value;

use super::store_failed;
use crate::error::ApiError;
use crate::state::AppState;
use crate::time::now_ms;

/// The authenticated caller of an admin route.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub(crate) actor: Actor,
    pub(crate) key_id: Option<String>,
    source: Option<String>,
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<AppState>) -> Result<Self, Self::Rejection> {
        // The web console, in process, for a signed-in person: act as exactly that user.
        if let Some(on_behalf) = parts.extensions.get::<moat_identity::web::OnBehalfOf>() {
            let actor = user_actor(state, &on_behalf.user_id).await?;
            return Ok(Caller { actor, key_id: None, source: on_behalf.source.clone() });
        }
        let principal = state.keys.authenticate_admin(&parts.headers, now_ms()).await?;
        let source = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip().to_string());
        let actor = match &principal.user_id {
            // The break-glass key, and admin keys made before users existed.
            None => Actor::break_glass(),
            Some(user_id) => user_actor(state, user_id).await?,
        };
        Ok(Caller { actor, key_id: principal.key_id, source })
    }
}

/// An active user's roles, read now (a role change or deactivation applies at once).
async fn user_actor(state: &AppState, user_id: &str) -> Result<Actor, ApiError> {
    let user = state.store.user_by_id(user_id).await.map_err(store_failed)?;
    let Some(user) = user.filter(|u| u.active) else {
        return Err(ApiError::new(ErrorCode::KeyRevoked, "the user is deactivated"));
    };
    let teams = state.store.memberships_of_user(user_id).await.map_err(store_failed)?;
    Ok(Actor {
        user_id: Some(user.id),
        org_role: user.org_role,
        teams: teams.into_iter().map(|m| (m.team_id, m.role)).collect(),
    })
}

impl Caller {
    /// Refuses `action` with `403 permission_denied` unless the caller's roles allow it.
    pub(crate) fn must(&self, action: &Action<'_>) -> Result<(), ApiError> {
        self.actor.may(action).map_err(|denied| ApiError::new(ErrorCode::PermissionDenied, denied.0))
    }

    /// Appends the change to the audit log. A change whose record cannot be written is
    /// reported as failed, so no change goes unrecorded silently.
    pub(crate) async fn audit(
        &self,
        state: &AppState,
        action: &str,
        target: (&str, &str),
        before: Option<&Value>,
        after: Option<&Value>,
    ) -> Result<(), ApiError> {
        let event = AuditEvent {
            id: format!("aud_{}", uuid::Uuid::now_v7().simple()),
            at_ms: now_ms(),
            actor_user_id: self.actor.user_id.clone(),
            actor_key_id: self.key_id.clone(),
            source: self.source.clone(),
            action: action.to_owned(),
            target_type: target.0.to_owned(),
            target_id: target.1.to_owned(),
            before: before.map(Value::to_string),
            after: after.map(Value::to_string),
        };
        state.store.append_audit(&event).await.map_err(|error| {
            tracing::error!(%error, action, "the audit record of a change could not be written");
            ApiError::internal()
        })?;
        Ok(())
    }
}
