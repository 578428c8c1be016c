//! `/admin/v1/invitations`: inviting people by e-mail with a role (and a team). The link carries
//! a random token of which only the hash is stored; it works once, until it expires. With SMTP
//! configured the link goes by e-mail; otherwise the admin gets it in the answer to pass on.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use moat_core::{Action, ErrorCode, OrgRole, TeamRole};
use moat_store::Invitation;
use serde::Deserialize;
use serde_json::{Value, json};

use super::caller::Caller;
use super::{invalid, not_found, page_limit, parse_body, store_failed};
use crate::error::ApiError;
use crate::state::AppState;
use crate::time::{format_ms, now_ms};

/// How long an invitation works when `expires_in` is not given.
const DEFAULT_LIFETIME: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateInvitation {
    email: String,
    #[serde(default)]
    org_role: Option<String>,
    #[serde(default)]
    team_id: Option<String>,
    #[serde(default)]
    team_role: Option<String>,
    #[serde(default)]
    expires_in: Option<String>,
}

fn invitation_json(invitation: &Invitation) -> Value {
    let now = now_ms();
    let status = match (invitation.accepted_at_ms, invitation.revoked_at_ms) {
        (Some(_), _) => "accepted",
        (_, Some(_)) => "revoked",
        _ if now >= invitation.expires_at_ms => "expired",
        _ => "open",
    };
    json!({
        "id": invitation.id,
        "email": invitation.email,
        "org_role": invitation.org_role.as_str(),
        "team_id": invitation.team.as_ref().map(|(team, _)| team),
        "team_role": invitation.team.as_ref().map(|(_, role)| role.as_str()),
        "invited_by": invitation.invited_by,
        "created_at": format_ms(invitation.created_at_ms),
        "expires_at": format_ms(invitation.expires_at_ms),
        "status": status,
    })
}

/// The base URL people reach moat at, as the admin reached it.
fn public_base(headers: &HeaderMap) -> String {
    let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or("127.0.0.1:4000");
    let https = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()) == Some("https");
    format!("{}://{host}", if https { "https" } else { "http" })
}

pub(crate) async fn create_invitation(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: CreateInvitation = parse_body(&body, "invitation")?;
    let email = request.email.trim().to_lowercase();
    if !email.contains('@') || email.len() > 254 {
        return Err(invalid("`email` must be an e-mail address", "email"));
    }
    let role = OrgRole::parse(request.org_role.as_deref().unwrap_or("member"))
        .ok_or_else(|| invalid("`org_role` must be `owner`, `admin`, `member` or `viewer`", "org_role"))?;
    caller.must(&Action::CreateUser(role))?;
    let team = match &request.team_id {
        None => None,
        Some(team) => {
            if state.store.team_by_id(team).await.map_err(store_failed)?.is_none() {
                return Err(invalid(format!("no team has the id `{team}`"), "team_id"));
            }
            let team_role = TeamRole::parse(request.team_role.as_deref().unwrap_or("member"))
                .ok_or_else(|| invalid("`team_role` must be `team-admin` or `member`", "team_role"))?;
            caller.must(&Action::ManageMembers { team, user: "" })?;
            Some((team.clone(), team_role))
        }
    };
    let lifetime = match &request.expires_in {
        None => DEFAULT_LIFETIME,
        Some(text) => {
            humantime::parse_duration(text).map_err(|_| invalid("`expires_in` must be like `7d`", "expires_in"))?
        }
    };
    let token = moat_identity::secrets::random_token();
    let now = now_ms();
    let invitation = Invitation {
        id: format!("inv_{}", uuid::Uuid::now_v7().simple()),
        token_hash: moat_identity::secrets::hash_secret(&token).to_vec(),
        email,
        org_role: role,
        team,
        invited_by: caller.actor.user_id.clone(),
        created_at_ms: now,
        expires_at_ms: now.saturating_add(i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX)),
        accepted_at_ms: None,
        revoked_at_ms: None,
    };
    state.store.insert_invitation(&invitation).await.map_err(store_failed)?;
    let mut view = invitation_json(&invitation);
    caller.audit(&state, "invitation.create", ("invitation", &invitation.id), None, Some(&view)).await?;
    let url = format!("{}/invite/{token}", public_base(&headers));
    match &state.mailer {
        Some(mailer) => {
            let text = format!(
                "You are invited to moat, your company's gateway to its AI models.\n\nJoin here: {url}\n\nThe link works once and expires {}.\n",
                format_ms(invitation.expires_at_ms)
            );
            if let Err(error) = mailer.send(&invitation.email, "Your invitation to moat", &text).await {
                tracing::error!(%error, "the invitation e-mail could not be sent");
                // The invitation stands; the admin can pass the link on.
                view["url"] = json!(url);
                view["emailed"] = json!(false);
                view["email_error"] = json!(error);
            } else {
                view["emailed"] = json!(true);
            }
        }
        None => {
            view["url"] = json!(url);
            view["emailed"] = json!(false);
        }
    }
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// `GET /admin/v1/invitations` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InvitationQuery {
    /// `open` for the invitations whose link still works; all of them otherwise.
    #[serde(default)]
    status: Option<String>,
    /// An invitation id: older invitations only (the next page).
    #[serde(default)]
    before: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

pub(crate) async fn list_invitations(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    query: Result<Query<InvitationQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.must(&Action::ReadOrg)?;
    let Query(query) = query.map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.body_text()))?;
    let limit = page_limit(query.limit)?;
    let open_at = match query.status.as_deref() {
        None => None,
        Some("open") => Some(now_ms()),
        Some(_) => return Err(invalid("`status` can only be `open`", "status")),
    };
    let invitations =
        state.store.list_invitations(open_at, query.before.as_deref(), limit).await.map_err(store_failed)?;
    let next = (invitations.len() == limit as usize).then(|| invitations.last().map(|i| i.id.clone())).flatten();
    let data: Vec<Value> = invitations.iter().map(invitation_json).collect();
    Ok(Json(json!({ "data": data, "next_before": next })).into_response())
}

pub(crate) async fn revoke_invitation(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let invitation =
        state.store.invitation_by_id(&id).await.map_err(store_failed)?.ok_or_else(|| not_found("invitation", &id))?;
    caller.must(&Action::CreateUser(invitation.org_role))?;
    if !state.store.close_invitation(&id, now_ms(), true).await.map_err(store_failed)? {
        return Err(invalid("the invitation is no longer open", "id"));
    }
    let before = invitation_json(&invitation);
    caller.audit(&state, "invitation.revoke", ("invitation", &id), Some(&before), None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
