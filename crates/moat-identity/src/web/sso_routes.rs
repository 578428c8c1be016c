//! `/sso/login` and `/sso/callback`: signing in through the identity provider, and
//! provisioning the person on their first visit.

use axum::extract::{Query, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use moat_core::{TeamRole, UserKind};
use moat_store::{Match, SsoLogin, TeamRecord, UserRecord};
use serde::Deserialize;
use serde_json::json;

use super::{
    WebState, audit_event, cookie, equal, failed, now_ms, pages, redirect, safe_next, set_cookie, start_session,
};
use crate::secrets::hash_secret;
use crate::sso::{Identity, Sso, SsoError};

/// The cookie that ties the provider's callback to the browser that started the sign-in.
const STATE_COOKIE: &str = "moat_sso_state";
/// How long a person may take at the identity provider.
const SIGN_IN_WINDOW_MS: i64 = 10 * 60 * 1000;

#[derive(Debug, Deserialize)]
pub(super) struct StartQuery {
    next: Option<String>,
}

fn refused(status: StatusCode, text: &str) -> Response {
    (status, Html(pages::message("Single sign-on failed", text))).into_response()
}

/// `GET /sso/login`: off to the identity provider.
pub(super) async fn start(State(state): State<WebState>, Query(query): Query<StartQuery>) -> Response {
    let Some(sso) = state.sso.clone() else {
        return refused(StatusCode::NOT_FOUND, "Single sign-on is not set up on this moat.");
    };
    let started = match sso.start().await {
        Ok(started) => started,
        Err(SsoError(text)) => return refused(StatusCode::BAD_GATEWAY, &text),
    };
    let login = SsoLogin {
        state_hash: hash_secret(&started.state).to_vec(),
        nonce: started.nonce,
        verifier: started.verifier,
        next: safe_next(query.next.as_deref()),
        expires_at_ms: now_ms().saturating_add(SIGN_IN_WINDOW_MS),
    };
    if let Err(error) = state.store.insert_sso_login(&login).await {
        return failed(error);
    }
    let mut response = redirect(&started.url);
    // Lax, so the cookie comes back on the provider's top-level redirect to the callback.
    let cookie =
        set_cookie(&state.config, STATE_COOKIE, &started.state, Some(std::time::Duration::from_secs(600)), "Lax");
    response.headers_mut().append(SET_COOKIE, cookie);
    response
}

#[derive(Debug, Deserialize)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

/// `GET /sso/callback`: the provider sends the person back with a code.
pub(super) async fn callback(
    State(state): State<WebState>,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Response {
    let Some(sso) = state.sso.clone() else {
        return refused(StatusCode::NOT_FOUND, "Single sign-on is not set up on this moat.");
    };
    if let Some(error) = query.error {
        let detail = query.error_description.unwrap_or_default();
        return refused(StatusCode::UNAUTHORIZED, &format!("The identity provider said: {error} {detail}"));
    }
    let (Some(code), Some(returned_state)) = (query.code, query.state) else {
        return refused(StatusCode::BAD_REQUEST, "The identity provider sent no code.");
    };
    // The state must be the one this browser was given: no sign-in can be started elsewhere
    // and finished here.
    if !cookie(&headers, STATE_COOKIE).is_some_and(|c| equal(&c, &returned_state)) {
        return refused(StatusCode::BAD_REQUEST, "This sign-in was not started in this browser; start again.");
    }
    let login = match state.store.take_sso_login(&hash_secret(&returned_state)).await {
        Ok(Some(login)) if now_ms() < login.expires_at_ms => login,
        Ok(_) => return refused(StatusCode::BAD_REQUEST, "This sign-in expired or was already used; start again."),
        Err(error) => return failed(error),
    };
    let identity = match sso.finish(&code, &login.verifier, &login.nonce).await {
        Ok(identity) => identity,
        Err(SsoError(text)) => return refused(StatusCode::UNAUTHORIZED, &text),
    };
    let user = match provision(&state, &sso, &identity).await {
        Ok(Ok(user)) => user,
        Ok(Err(text)) => return refused(StatusCode::FORBIDDEN, &text),
        Err(error) => return failed(error),
    };
    let mut response = start_session(&state, &user, "sso", &login.next).await;
    response
        .headers_mut()
        .append(SET_COOKIE, set_cookie(&state.config, STATE_COOKIE, "", Some(std::time::Duration::ZERO), "Lax"));
    response
}

/// Finds or creates the person, and brings their role and mapped teams in line with their
/// groups. `Ok(Err(text))` refuses them.
async fn provision(
    state: &WebState,
    sso: &Sso,
    identity: &Identity,
) -> Result<Result<UserRecord, String>, moat_store::StoreError> {
    let store = &state.store;
    let mapped_role = sso.role_for(&identity.groups);
    let user = match store.user_for_sign_in(&identity.email).await? {
        Some((user, _)) if !user.active => return Ok(Err("Your moat account is deactivated; ask an admin.".into())),
        Some((user, _)) if user.kind == UserKind::Service => return Ok(Err("Service accounts do not sign in.".into())),
        Some((user, _)) => match mapped_role.filter(|r| *r != user.org_role) {
            Some(role) => {
                let before = json!({ "org_role": user.org_role.as_str() });
                let updated = store.update_user(&user.id, &user.name, role).await?.unwrap_or(user);
                let after = json!({ "org_role": updated.org_role.as_str(), "via": "sso groups" });
                store
                    .append_audit(&audit_event(
                        &updated.id,
                        "user.update",
                        ("user", &updated.id),
                        Some(before),
                        Some(after),
                    ))
                    .await?;
                updated
            }
            None => user,
        },
        None => {
            // An invitation to this address decides the role and team of the first sign-in.
            if let Some(invitation) = store.open_invitation_for(&identity.email, now_ms()).await? {
                return super::invite::join(store, &invitation).await;
            }
            let name = identity.name.clone().unwrap_or_else(|| identity.email.clone());
            let role = mapped_role.unwrap_or(sso.config().default_role);
            super::provision_person(store, &identity.email, &name, role, "sso").await?
        }
    };
    // Teams the configuration maps from groups follow the groups; other teams are moat's own.
    let memberships = store.memberships_of_user(&user.id).await?;
    for (group, team_name) in &sso.config().group_teams {
        let team =
            match store.find_teams(&Match { name: Some(team_name.clone()), ..Match::default() }, 0, 1).await?.0.pop() {
                Some(team) => team,
                None if identity.groups.contains(group) => {
                    let team = TeamRecord {
                        id: format!("team_{}", uuid::Uuid::now_v7().simple()),
                        name: team_name.clone(),
                        created_at_ms: now_ms(),
                        external_id: None,
                    };
                    let team = store.insert_team(&team).await?;
                    store
                        .append_audit(&audit_event(
                            &user.id,
                            "team.create",
                            ("team", &team.id),
                            None,
                            Some(json!({ "name": team.name, "via": "sso groups" })),
                        ))
                        .await?;
                    team
                }
                None => continue,
            };
        let member = memberships.iter().find(|m| m.team_id == team.id);
        let target = format!("{}/{}", team.id, user.id);
        match (identity.groups.contains(group), member) {
            (true, None) => super::join_team(store, &user.id, &team.id, TeamRole::Member, "sso groups").await?,
            (false, Some(member)) => {
                store.remove_member(&team.id, &user.id).await?;
                store
                    .append_audit(&audit_event(
                        &user.id,
                        "membership.delete",
                        ("membership", &target),
                        Some(json!({ "role": member.role.as_str() })),
                        None,
                    ))
                    .await?;
            }
            _ => {}
        }
    }
    Ok(Ok(user))
}
