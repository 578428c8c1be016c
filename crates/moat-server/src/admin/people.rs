//! `/admin/v1/users` and `/admin/v1/teams`: people, service accounts, teams and memberships.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use moat_core::{Action, ErrorCode, OrgRole, TeamRole, UserKind};
use moat_store::{Match, MemberRecord, NewUser, TeamRecord, UserRecord};
use serde::Deserialize;
use serde_json::{Value, json};

use super::caller::Caller;
use super::{MAX_PAGE, invalid, not_found, page_limit, parse_body, store_failed};
use crate::error::ApiError;
use crate::state::AppState;
use crate::time::{format_ms, now_ms};

/// Longest name or e-mail accepted.
const MAX_TEXT_CHARS: usize = 254;

pub(super) fn user_json(user: &UserRecord) -> Value {
    json!({
        "id": user.id,
        "email": user.email,
        "name": user.name,
        "kind": user.kind.as_str(),
        "org_role": user.org_role.as_str(),
        "active": user.active,
        "created_at": format_ms(user.created_at_ms),
        "deactivated_at": user.deactivated_at_ms.map(format_ms),
    })
}

fn team_json(team: &TeamRecord) -> Value {
    json!({ "id": team.id, "name": team.name, "created_at": format_ms(team.created_at_ms) })
}

/// A team's members with who they are, so a team page needs no second lookup per person.
async fn members_json(state: &AppState, members: &[MemberRecord]) -> Result<Value, ApiError> {
    let ids: Vec<String> = members.iter().map(|m| m.user_id.clone()).collect();
    let users = state.store.users_by_ids(&ids).await.map_err(store_failed)?;
    let by_id: std::collections::HashMap<&str, &UserRecord> = users.iter().map(|u| (u.id.as_str(), u)).collect();
    Ok(members
        .iter()
        .map(|m| {
            let user = by_id.get(m.user_id.as_str());
            json!({
                "user_id": m.user_id,
                "role": m.role.as_str(),
                "email": user.map(|u| u.email.as_str()),
                "name": user.map(|u| u.name.as_str()),
                "active": user.map(|u| u.active),
            })
        })
        .collect())
}

fn text(value: &str, param: &'static str) -> Result<String, ApiError> {
    let value = value.trim();
    if value.is_empty() || value.chars().count() > MAX_TEXT_CHARS {
        return Err(invalid(format!("`{param}` must have 1 to {MAX_TEXT_CHARS} characters"), param));
    }
    Ok(value.to_owned())
}

fn org_role(value: &str) -> Result<OrgRole, ApiError> {
    OrgRole::parse(value)
        .ok_or_else(|| invalid("`org_role` must be `owner`, `admin`, `member` or `viewer`", "org_role"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateUser {
    email: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    org_role: Option<String>,
    #[serde(default)]
    kind: Option<String>,
}

pub(crate) async fn create_user(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: CreateUser = parse_body(&body, "user")?;
    let email = text(&request.email, "email")?;
    if !email.contains('@') || email.starts_with('@') || email.ends_with('@') {
        return Err(invalid("`email` must be an e-mail address", "email"));
    }
    let role = org_role(request.org_role.as_deref().unwrap_or("member"))?;
    let kind = match request.kind.as_deref().unwrap_or("person") {
        "person" => UserKind::Person,
        "service" => UserKind::Service,
        _ => return Err(invalid("`kind` must be `person` or `service`", "kind")),
    };
    caller.must(&Action::CreateUser(role))?;
    let name = match request.name {
        Some(name) => text(&name, "name")?,
        None => email.split('@').next().unwrap_or_default().to_owned(),
    };
    let user = NewUser {
        id: format!("usr_{}", uuid::Uuid::now_v7().simple()),
        email,
        name,
        kind,
        org_role: role,
        created_at_ms: now_ms(),
        external_id: None,
    };
    let user = state.store.insert_user(&user).await.map_err(store_failed)?;
    let view = user_json(&user);
    caller.audit(&state, "user.create", ("user", &user.id), None, Some(&view)).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
    /// Only the user with this e-mail (any case): finding one person among many.
    #[serde(default)]
    email: Option<String>,
}

/// `GET /admin/v1/teams/{id}/members` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MembersQuery {
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

pub(crate) async fn list_users(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.body_text()))?;
    // Team admins find one person by exact e-mail, to add them to their team; listing
    // everyone needs the organisation-reading roles.
    let leads_a_team = caller.actor.teams.iter().any(|(_, role)| *role == TeamRole::TeamAdmin);
    if !(query.email.is_some() && leads_a_team) {
        caller.must(&Action::ReadOrg)?;
    }
    let limit = page_limit(query.limit)?;
    if let Some(email) = query.email {
        let matching = Match { name: Some(email.trim().to_owned()), ..Match::default() };
        let (users, _) = state.store.find_users(&matching, 0, 1).await.map_err(store_failed)?;
        return Ok(Json(json!({ "data": users.iter().map(user_json).collect::<Vec<_>>(), "next_after": null }))
            .into_response());
    }
    let users = state.store.list_users(query.after.as_deref(), limit).await.map_err(store_failed)?;
    let next = (users.len() == limit as usize).then(|| users.last().map(|u| u.id.clone())).flatten();
    Ok(Json(json!({ "data": users.iter().map(user_json).collect::<Vec<_>>(), "next_after": next })).into_response())
}

/// A user the caller may see (themselves, or anyone for those who read the organisation).
async fn visible_user(state: &AppState, caller: &Caller, id: &str) -> Result<UserRecord, ApiError> {
    let own = caller.actor.user_id.as_deref() == Some(id);
    if !own && caller.actor.may(&Action::ReadOrg).is_err() {
        return Err(not_found("user", id));
    }
    state.store.user_by_id(id).await.map_err(store_failed)?.ok_or_else(|| not_found("user", id))
}

pub(crate) async fn get_user(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let user = visible_user(&state, &caller, &id).await?;
    let teams = state.store.memberships_of_user(&id).await.map_err(store_failed)?;
    let mut view = user_json(&user);
    view["teams"] = teams.iter().map(|m| json!({ "team_id": m.team_id, "role": m.role.as_str() })).collect();
    Ok(Json(view).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateUser {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    org_role: Option<String>,
    #[serde(default)]
    active: Option<bool>,
}

/// Renames, changes the role of, or (de)activates a user. Deactivating revokes every key
/// they own at once.
pub(crate) async fn update_user(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: UpdateUser = parse_body(&body, "user update")?;
    let user = visible_user(&state, &caller, &id).await?;
    let before = user_json(&user);
    let name = request.name.as_deref().map(|n| text(n, "name")).transpose()?;
    let role = request.org_role.as_deref().map(org_role).transpose()?;
    if let Some(to) = role.filter(|r| *r != user.org_role) {
        caller.must(&Action::SetRole { user: &id, from: user.org_role, to })?;
    }
    if request.active.is_some_and(|a| a != user.active) {
        caller.must(&Action::SetActive { user: &id, role: user.org_role })?;
    }
    if name.is_some() {
        caller.must(&Action::EditUser { user: &id, role: user.org_role })?;
    }
    let mut updated = user.clone();
    if name.is_some() || role.is_some() {
        let name = name.unwrap_or_else(|| user.name.clone());
        let role = role.unwrap_or(user.org_role);
        updated = state
            .store
            .update_user(&id, &name, role)
            .await
            .map_err(store_failed)?
            .ok_or_else(|| not_found("user", &id))?;
    }
    let mut revoked_keys = 0;
    if let Some(active) = request.active.filter(|a| *a != user.active) {
        let change = state.store.set_user_active(&id, active, now_ms()).await.map_err(store_failed)?;
        let change = change.ok_or_else(|| not_found("user", &id))?;
        revoked_keys = change.revoked_keys;
        updated = change.user;
        // This replica forgets cached keys at once; the others within the cache's lifetime.
        state.keys.invalidate();
    }
    let mut after = user_json(&updated);
    let action = match request.active {
        Some(false) if user.active => "user.deactivate",
        Some(true) if !user.active => "user.reactivate",
        _ => "user.update",
    };
    if before != after {
        caller.audit(&state, action, ("user", &id), Some(&before), Some(&after)).await?;
    }
    after["revoked_keys"] = json!(revoked_keys);
    Ok(Json(after).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetPassword {
    password: String,
}

/// `PUT /admin/v1/users/{id}/password`: sets a local-account password (argon2id). People set
/// their own; admins those of people up to their rank.
pub(crate) async fn set_password(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: SetPassword = parse_body(&body, "password")?;
    let user = visible_user(&state, &caller, &id).await?;
    caller.must(&Action::EditUser { user: &id, role: user.org_role })?;
    if user.kind == UserKind::Service {
        return Err(invalid("service accounts never sign in; they use keys", "password"));
    }
    let hash = moat_identity::password::hash(&request.password).map_err(|e| invalid(e.0, "password"))?;
    state.store.set_password_hash(&id, Some(&hash)).await.map_err(store_failed)?;
    // The audit record says that it changed, never what it is.
    caller.audit(&state, "user.password", ("user", &id), None, Some(&json!({ "password": "set" }))).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateTeam {
    name: String,
}

pub(crate) async fn create_team(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: CreateTeam = parse_body(&body, "team")?;
    caller.must(&Action::ManageTeams)?;
    let team = TeamRecord {
        id: format!("team_{}", uuid::Uuid::now_v7().simple()),
        name: text(&request.name, "name")?,
        created_at_ms: now_ms(),
        external_id: None,
    };
    let team = state.store.insert_team(&team).await.map_err(store_failed)?;
    let view = team_json(&team);
    caller.audit(&state, "team.create", ("team", &team.id), None, Some(&view)).await?;
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Every team for those who read the organisation; the caller's own teams otherwise.
pub(crate) async fn list_teams(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Response, ApiError> {
    let teams = state.store.list_teams().await.map_err(store_failed)?;
    let visible: Vec<Value> =
        teams.iter().filter(|t| caller.actor.may(&Action::ReadTeam(&t.id)).is_ok()).map(team_json).collect();
    Ok(Json(json!({ "data": visible })).into_response())
}

pub(super) async fn visible_team(state: &AppState, caller: &Caller, id: &str) -> Result<TeamRecord, ApiError> {
    if caller.actor.may(&Action::ReadTeam(id)).is_err() {
        return Err(not_found("team", id));
    }
    state.store.team_by_id(id).await.map_err(store_failed)?.ok_or_else(|| not_found("team", id))
}

/// A team with its first [`MAX_PAGE`] members by user id; `members_next_after` when there are
/// more (page through them with `GET /admin/v1/teams/{id}/members`).
pub(crate) async fn get_team(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let team = visible_team(&state, &caller, &id).await?;
    let members = state.store.members_page(&id, None, MAX_PAGE).await.map_err(store_failed)?;
    let mut view = team_json(&team);
    view["members"] = members_json(&state, &members).await?;
    view["members_next_after"] = json!(next_member(&members, MAX_PAGE));
    Ok(Json(view).into_response())
}

fn next_member(page: &[MemberRecord], limit: u32) -> Option<String> {
    (page.len() == limit as usize).then(|| page.last().map(|m| m.user_id.clone())).flatten()
}

/// `GET /admin/v1/teams/{id}/members?after=&limit=`: a team's members by user id, a page at a
/// time, each with who they are.
pub(crate) async fn list_members(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<MembersQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.body_text()))?;
    visible_team(&state, &caller, &id).await?;
    let limit = page_limit(query.limit)?;
    let members = state.store.members_page(&id, query.after.as_deref(), limit).await.map_err(store_failed)?;
    let next = next_member(&members, limit);
    Ok(Json(json!({ "data": members_json(&state, &members).await?, "next_after": next })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutMember {
    #[serde(default)]
    role: Option<String>,
}

/// Adds a user to a team, or changes their role in it.
pub(crate) async fn put_member(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((team_id, user_id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let request: PutMember = if body.is_empty() { PutMember { role: None } } else { parse_body(&body, "membership")? };
    let role = TeamRole::parse(request.role.as_deref().unwrap_or("member"))
        .ok_or_else(|| invalid("`role` must be `team-admin` or `member`", "role"))?;
    visible_team(&state, &caller, &team_id).await?;
    caller.must(&Action::ManageMembers { team: &team_id, user: &user_id })?;
    let user = state.store.user_by_id(&user_id).await.map_err(store_failed)?;
    if !user.is_some_and(|u| u.active) {
        return Err(invalid(format!("no active user has the id `{user_id}`"), "user_id"));
    }
    let current = state.store.membership(&team_id, &user_id).await.map_err(store_failed)?;
    let before = current.map(|m| json!({ "role": m.role.as_str() }));
    let member = MemberRecord { team_id: team_id.clone(), user_id: user_id.clone(), role, created_at_ms: now_ms() };
    state.store.put_member(&member).await.map_err(store_failed)?;
    let after = json!({ "role": role.as_str() });
    if before.as_ref() != Some(&after) {
        let target = format!("{team_id}/{user_id}");
        caller.audit(&state, "membership.put", ("membership", &target), before.as_ref(), Some(&after)).await?;
    }
    Ok(Json(json!({ "team_id": team_id, "user_id": user_id, "role": role.as_str() })).into_response())
}

pub(crate) async fn remove_member(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((team_id, user_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    visible_team(&state, &caller, &team_id).await?;
    caller.must(&Action::ManageMembers { team: &team_id, user: &user_id })?;
    let current = state.store.membership(&team_id, &user_id).await.map_err(store_failed)?;
    let Some(before) = current.map(|m| json!({ "role": m.role.as_str() })) else {
        return Err(not_found("membership", &format!("{team_id}/{user_id}")));
    };
    state.store.remove_member(&team_id, &user_id).await.map_err(store_failed)?;
    let target = format!("{team_id}/{user_id}");
    caller.audit(&state, "membership.delete", ("membership", &target), Some(&before), None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
