//! SCIM 2.0 provisioning (`/scim/v2`): identity providers create, update and deactivate users
//! and groups; groups are moat's teams.
//!
//! A user's `userName` is moat's e-mail. Deactivating a user (`active: false`, or `DELETE`,
//! which moat treats as deactivation so usage stays attributable) revokes every key they own at
//! once. Group members join their team as `member`; a team-admin role set in moat survives
//! provisioning. Every change is written to the audit log with the actor `scim`.

pub mod filter;
pub mod patch;
mod resources;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use moat_core::audit::AuditEvent;
use moat_core::{OrgRole, TeamRole, UserKind};
use moat_store::{Match, MemberRecord, NewUser, Store, StoreError, TeamRecord, UserProfile, UserRecord};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use filter::Resource;
use patch::{GroupChange, UserDraft, group_changes, member_ids};
use resources::{group_json, list_json, user_json};

/// Most resources one page returns.
const MAX_PAGE: u32 = 1000;

/// What the SCIM endpoints need from the gateway.
#[derive(Clone)]
pub struct ScimState {
    store: Store,
    token_hash: [u8; 32],
    /// Called after keys were revoked, so key caches forget them at once.
    keys_revoked: Arc<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for ScimState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScimState")
    }
}

impl ScimState {
    /// SCIM over `store`, for clients presenting `token`; `keys_revoked` runs after a
    /// deactivation revoked keys.
    pub fn new(store: Store, token: &str, keys_revoked: Arc<dyn Fn() + Send + Sync>) -> Self {
        ScimState { store, token_hash: Sha256::digest(token.as_bytes()).into(), keys_revoked }
    }
}

/// The `/scim/v2` routes.
pub fn router(state: ScimState) -> Router {
    Router::new()
        .route("/scim/v2/ServiceProviderConfig", get(service_provider_config))
        .route("/scim/v2/ResourceTypes", get(resource_types))
        .route("/scim/v2/Schemas", get(schemas))
        .route("/scim/v2/Users", get(list_users).post(create_user))
        .route("/scim/v2/Users/{id}", get(get_user).put(replace_user).patch(patch_user).delete(delete_user))
        .route("/scim/v2/Groups", get(list_groups).post(create_group))
        .route("/scim/v2/Groups/{id}", get(get_group).put(replace_group).patch(patch_group).delete(delete_group))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

/// A SCIM error response (RFC 7644 §3.12).
#[derive(Debug)]
struct ScimError {
    status: StatusCode,
    scim_type: Option<&'static str>,
    detail: String,
}

impl ScimError {
    fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        ScimError { status, scim_type: None, detail: detail.into() }
    }

    fn typed(status: StatusCode, scim_type: &'static str, detail: impl Into<String>) -> Self {
        ScimError { status, scim_type: Some(scim_type), detail: detail.into() }
    }

    fn not_found(what: &str, id: &str) -> Self {
        ScimError::new(StatusCode::NOT_FOUND, format!("no {what} has the id `{id}`"))
    }
}

impl From<StoreError> for ScimError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(what) => {
                ScimError::typed(StatusCode::CONFLICT, "uniqueness", format!("{what} is already taken"))
            }
            error => {
                tracing::error!(%error, "SCIM store operation failed");
                ScimError::new(StatusCode::INTERNAL_SERVER_ERROR, "moat failed to handle this request")
            }
        }
    }
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let Some(kind) = self.scim_type {
            body["scimType"] = json!(kind);
        }
        scim_response(self.status, &body)
    }
}

fn scim_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/scim+json"));
    response
}

type Scim = Result<Response, ScimError>;

async fn require_token(State(state): State<ScimState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(|token| Sha256::digest(token.trim().as_bytes()));
    match presented {
        Some(hash) if bool::from(hash.as_slice().ct_eq(&state.token_hash)) => next.run(request).await,
        _ => ScimError::new(StatusCode::UNAUTHORIZED, "a valid SCIM bearer token is required").into_response(),
    }
}

fn parse(body: &Bytes) -> Result<Value, ScimError> {
    serde_json::from_slice(body)
        .map_err(|e| ScimError::typed(StatusCode::BAD_REQUEST, "invalidSyntax", format!("the body is not JSON: {e}")))
}

fn bad_value(error: impl std::fmt::Display) -> ScimError {
    ScimError::typed(StatusCode::BAD_REQUEST, "invalidValue", error.to_string())
}

fn now_ms() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis()))
        .unwrap_or(i64::MAX)
}

/// Writes one audit record for a SCIM change.
async fn audit(
    state: &ScimState,
    source: Option<SocketAddr>,
    action: &str,
    target: (&str, &str),
    before: Option<&Value>,
    after: Option<&Value>,
) -> Result<(), ScimError> {
    let event = AuditEvent {
        id: format!("aud_{}", uuid::Uuid::now_v7().simple()),
        at_ms: now_ms(),
        actor_user_id: None,
        actor_key_id: Some("scim".into()),
        source: source.map(|s| s.ip().to_string()),
        action: action.to_owned(),
        target_type: target.0.to_owned(),
        target_id: target.1.to_owned(),
        before: before.map(Value::to_string),
        after: after.map(Value::to_string),
    };
    state.store.append_audit(&event).await?;
    Ok(())
}

/// The client's address, when the server records it.
struct Source(Option<SocketAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Source(parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| *addr)))
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListQuery {
    filter: Option<String>,
    start_index: Option<u32>,
    count: Option<u32>,
    excluded_attributes: Option<String>,
    attributes: Option<String>,
}

impl ListQuery {
    /// (offset, limit) from SCIM's 1-based `startIndex` and `count`.
    fn page(&self) -> (u32, u32) {
        (self.start_index.unwrap_or(1).max(1) - 1, self.count.unwrap_or(100).min(MAX_PAGE))
    }

    fn matching(&self, resource: Resource) -> Result<Match, ScimError> {
        match &self.filter {
            None => Ok(Match::default()),
            Some(filter) => filter::parse(filter, resource)
                .map_err(|e| ScimError::typed(StatusCode::BAD_REQUEST, "invalidFilter", e.0)),
        }
    }

    fn wants_members(&self) -> bool {
        let mentions = |list: &Option<String>| {
            list.as_deref().is_some_and(|l| l.split(',').any(|a| a.trim().eq_ignore_ascii_case("members")))
        };
        !mentions(&self.excluded_attributes) && (self.attributes.is_none() || mentions(&self.attributes))
    }
}

async fn service_provider_config() -> Response {
    scim_response(
        StatusCode::OK,
        &json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": { "supported": true },
            "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
            "filter": { "supported": true, "maxResults": MAX_PAGE },
            "changePassword": { "supported": false },
            "sort": { "supported": false },
            "etag": { "supported": false },
            "authenticationSchemes": [{
                "type": "oauthbearertoken", "name": "OAuth Bearer Token",
                "description": "The token set in moat's [scim] configuration", "primary": true,
            }],
        }),
    )
}

async fn resource_types() -> Response {
    let kind = |name: &str, schema: &str| {
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
            "id": name, "name": name, "endpoint": format!("/{name}s"), "schema": schema,
        })
    };
    let types = [
        kind("User", "urn:ietf:params:scim:schemas:core:2.0:User"),
        kind("Group", "urn:ietf:params:scim:schemas:core:2.0:Group"),
    ];
    scim_response(StatusCode::OK, &list_json(&types, 2, 0))
}

async fn schemas() -> Response {
    let schema = |id: &str, name: &str| json!({ "id": id, "name": name });
    let schemas = [
        schema("urn:ietf:params:scim:schemas:core:2.0:User", "User"),
        schema("urn:ietf:params:scim:schemas:core:2.0:Group", "Group"),
    ];
    scim_response(StatusCode::OK, &list_json(&schemas, 2, 0))
}

async fn user_resource(state: &ScimState, user: &UserRecord) -> Result<Value, ScimError> {
    let memberships = state.store.memberships_of_user(&user.id).await?;
    let mut groups = Vec::new();
    for membership in memberships {
        if let Some(team) = state.store.team_by_id(&membership.team_id).await? {
            groups.push(team);
        }
    }
    Ok(user_json(user, &groups))
}

async fn list_users(State(state): State<ScimState>, Query(query): Query<ListQuery>) -> Scim {
    let matching = query.matching(Resource::User)?;
    let (offset, limit) = query.page();
    let (users, total) = state.store.find_users(&matching, offset, limit).await?;
    let mut resources = Vec::with_capacity(users.len());
    for user in &users {
        resources.push(user_resource(&state, user).await?);
    }
    Ok(scim_response(StatusCode::OK, &list_json(&resources, total, offset)))
}

async fn existing_user(state: &ScimState, id: &str) -> Result<UserRecord, ScimError> {
    state.store.user_by_id(id).await?.ok_or_else(|| ScimError::not_found("user", id))
}

async fn get_user(State(state): State<ScimState>, Path(id): Path<String>) -> Scim {
    let user = existing_user(&state, &id).await?;
    Ok(scim_response(StatusCode::OK, &user_resource(&state, &user).await?))
}

async fn create_user(State(state): State<ScimState>, Source(info): Source, body: Bytes) -> Scim {
    let draft = UserDraft::from_resource(&parse(&body)?).map_err(bad_value)?;
    let user = NewUser {
        id: format!("usr_{}", uuid::Uuid::now_v7().simple()),
        email: draft.user_name.trim().to_owned(),
        name: draft.display(),
        kind: UserKind::Person,
        org_role: OrgRole::Member,
        created_at_ms: now_ms(),
        external_id: draft.external_id.clone(),
    };
    let mut created = state.store.insert_user(&user).await?;
    if !draft.active {
        created = state.store.set_user_active(&created.id, false, now_ms()).await?.map_or(created, |d| d.user);
    }
    let view = user_json(&created, &[]);
    audit(&state, info, "user.create", ("user", &created.id), None, Some(&view)).await?;
    Ok(scim_response(StatusCode::CREATED, &view))
}

/// Applies `draft` to a stored user: profile, then activity (deactivation revokes keys).
async fn store_draft(
    state: &ScimState,
    source: Option<SocketAddr>,
    user: &UserRecord,
    draft: &UserDraft,
) -> Result<UserRecord, ScimError> {
    let before = user_json(user, &[]);
    let profile = UserProfile {
        email: draft.user_name.trim().to_owned(),
        name: draft.display(),
        external_id: draft.external_id.clone(),
    };
    let mut updated = state
        .store
        .set_user_profile(&user.id, &profile)
        .await?
        .ok_or_else(|| ScimError::not_found("user", &user.id))?;
    if draft.active != user.active {
        let change = state.store.set_user_active(&user.id, draft.active, now_ms()).await?;
        let change = change.ok_or_else(|| ScimError::not_found("user", &user.id))?;
        if change.revoked_keys > 0 {
            (state.keys_revoked)();
        }
        updated = change.user;
    }
    let after = user_json(&updated, &[]);
    let action = match (user.active, updated.active) {
        (true, false) => "user.deactivate",
        (false, true) => "user.reactivate",
        _ => "user.update",
    };
    if before != after {
        audit(state, source, action, ("user", &user.id), Some(&before), Some(&after)).await?;
    }
    Ok(updated)
}

fn draft_of(user: &UserRecord) -> UserDraft {
    UserDraft {
        user_name: user.email.clone(),
        display_name: Some(user.name.clone()),
        given_name: None,
        family_name: None,
        formatted_name: None,
        external_id: user.external_id.clone(),
        active: user.active,
    }
}

async fn replace_user(
    State(state): State<ScimState>,
    Source(info): Source,
    Path(id): Path<String>,
    body: Bytes,
) -> Scim {
    let user = existing_user(&state, &id).await?;
    let draft = UserDraft::from_resource(&parse(&body)?).map_err(bad_value)?;
    let updated = store_draft(&state, info, &user, &draft).await?;
    Ok(scim_response(StatusCode::OK, &user_resource(&state, &updated).await?))
}

async fn patch_user(State(state): State<ScimState>, Source(info): Source, Path(id): Path<String>, body: Bytes) -> Scim {
    let user = existing_user(&state, &id).await?;
    let mut draft = draft_of(&user);
    draft.apply(&parse(&body)?).map_err(bad_value)?;
    let updated = store_draft(&state, info, &user, &draft).await?;
    Ok(scim_response(StatusCode::OK, &user_resource(&state, &updated).await?))
}

/// Deprovisioning: the user is deactivated and their keys revoked; the row stays, so past
/// usage and audit records keep their subject.
async fn delete_user(State(state): State<ScimState>, Source(info): Source, Path(id): Path<String>) -> Scim {
    let user = existing_user(&state, &id).await?;
    let mut draft = draft_of(&user);
    draft.active = false;
    store_draft(&state, info, &user, &draft).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn group_resource(state: &ScimState, team: &TeamRecord, with_members: bool) -> Result<Value, ScimError> {
    if !with_members {
        return Ok(group_json(team, None));
    }
    let members = state.store.members_of_team(&team.id).await?;
    let mut users = Vec::with_capacity(members.len());
    for member in members {
        if let Some(user) = state.store.user_by_id(&member.user_id).await? {
            users.push(user);
        }
    }
    Ok(group_json(team, Some(&users)))
}

async fn list_groups(State(state): State<ScimState>, Query(query): Query<ListQuery>) -> Scim {
    let matching = query.matching(Resource::Group)?;
    let (offset, limit) = query.page();
    let (teams, total) = state.store.find_teams(&matching, offset, limit).await?;
    let mut resources = Vec::with_capacity(teams.len());
    for team in &teams {
        resources.push(group_resource(&state, team, query.wants_members()).await?);
    }
    Ok(scim_response(StatusCode::OK, &list_json(&resources, total, offset)))
}

async fn existing_team(state: &ScimState, id: &str) -> Result<TeamRecord, ScimError> {
    state.store.team_by_id(id).await?.ok_or_else(|| ScimError::not_found("group", id))
}

async fn get_group(State(state): State<ScimState>, Path(id): Path<String>, Query(query): Query<ListQuery>) -> Scim {
    let team = existing_team(&state, &id).await?;
    Ok(scim_response(StatusCode::OK, &group_resource(&state, &team, query.wants_members()).await?))
}

/// Adds and removes team members one by one so each change is audited, keeping the roles of those who stay.
async fn set_members(
    state: &ScimState,
    source: Option<SocketAddr>,
    team: &str,
    add: &[String],
    remove: &[String],
) -> Result<(), ScimError> {
    let current = state.store.members_of_team(team).await?;
    for user_id in add {
        if current.iter().any(|m| &m.user_id == user_id) {
            continue;
        }
        if state.store.user_by_id(user_id).await?.is_none() {
            return Err(ScimError::typed(
                StatusCode::BAD_REQUEST,
                "invalidValue",
                format!("no user has the id `{user_id}`"),
            ));
        }
        let member = MemberRecord {
            team_id: team.to_owned(),
            user_id: user_id.clone(),
            role: TeamRole::Member,
            created_at_ms: now_ms(),
        };
        state.store.put_member(&member).await?;
        let target = format!("{team}/{user_id}");
        audit(state, source, "membership.put", ("membership", &target), None, Some(&json!({ "role": "member" })))
            .await?;
    }
    for user_id in remove {
        let Some(existing) = current.iter().find(|m| &m.user_id == user_id) else { continue };
        state.store.remove_member(team, user_id).await?;
        let target = format!("{team}/{user_id}");
        let before = json!({ "role": existing.role.as_str() });
        audit(state, source, "membership.delete", ("membership", &target), Some(&before), None).await?;
    }
    Ok(())
}

/// Makes `wanted` the team's whole membership, as a SCIM replace of `members` asks.
async fn replace_members(
    state: &ScimState,
    source: Option<SocketAddr>,
    team: &str,
    wanted: &[String],
) -> Result<(), ScimError> {
    let current = state.store.members_of_team(team).await?;
    let remove: Vec<String> = current.into_iter().map(|m| m.user_id).filter(|u| !wanted.contains(u)).collect();
    set_members(state, source, team, wanted, &remove).await
}

async fn create_group(State(state): State<ScimState>, Source(info): Source, body: Bytes) -> Scim {
    let resource = parse(&body)?;
    let name = resource.get("displayName").and_then(Value::as_str).map(str::trim).filter(|n| !n.is_empty());
    let name = name.ok_or_else(|| bad_value("`displayName` is required"))?;
    let team = TeamRecord {
        id: format!("team_{}", uuid::Uuid::now_v7().simple()),
        name: name.to_owned(),
        created_at_ms: now_ms(),
        external_id: resource.get("externalId").and_then(Value::as_str).map(str::to_owned),
    };
    let team = state.store.insert_team(&team).await?;
    audit(&state, info, "team.create", ("team", &team.id), None, Some(&group_json(&team, None))).await?;
    set_members(&state, info, &team.id, &member_ids(resource.get("members").unwrap_or(&Value::Null)), &[]).await?;
    Ok(scim_response(StatusCode::CREATED, &group_resource(&state, &team, true).await?))
}

async fn rename(
    state: &ScimState,
    source: Option<SocketAddr>,
    team: &TeamRecord,
    name: &str,
    external_id: Option<&str>,
) -> Result<(), ScimError> {
    if team.name == name && team.external_id.as_deref() == external_id {
        return Ok(());
    }
    let updated = state
        .store
        .update_team(&team.id, name, external_id)
        .await?
        .ok_or_else(|| ScimError::not_found("group", &team.id))?;
    let (before, after) = (group_json(team, None), group_json(&updated, None));
    audit(state, source, "team.update", ("team", &team.id), Some(&before), Some(&after)).await
}

async fn replace_group(
    State(state): State<ScimState>,
    Source(info): Source,
    Path(id): Path<String>,
    body: Bytes,
) -> Scim {
    let team = existing_team(&state, &id).await?;
    let resource = parse(&body)?;
    let name = resource.get("displayName").and_then(Value::as_str).unwrap_or(&team.name).to_owned();
    let external_id =
        resource.get("externalId").and_then(Value::as_str).map(str::to_owned).or(team.external_id.clone());
    rename(&state, info, &team, &name, external_id.as_deref()).await?;
    let wanted = member_ids(resource.get("members").unwrap_or(&Value::Null));
    replace_members(&state, info, &id, &wanted).await?;
    let team = existing_team(&state, &id).await?;
    Ok(scim_response(StatusCode::OK, &group_resource(&state, &team, true).await?))
}

async fn patch_group(
    State(state): State<ScimState>,
    Source(info): Source,
    Path(id): Path<String>,
    body: Bytes,
) -> Scim {
    let mut team = existing_team(&state, &id).await?;
    for change in group_changes(&parse(&body)?).map_err(bad_value)? {
        match change {
            GroupChange::Rename(name) => {
                let external = team.external_id.clone();
                rename(&state, info, &team, &name, external.as_deref()).await?;
            }
            GroupChange::ExternalId(external) => {
                let name = team.name.clone();
                rename(&state, info, &team, &name, external.as_deref()).await?;
            }
            GroupChange::AddMembers(users) => set_members(&state, info, &id, &users, &[]).await?,
            GroupChange::RemoveMembers(users) => set_members(&state, info, &id, &[], &users).await?,
            GroupChange::ReplaceMembers(users) => replace_members(&state, info, &id, &users).await?,
        }
        team = existing_team(&state, &id).await?;
    }
    Ok(scim_response(StatusCode::OK, &group_resource(&state, &team, true).await?))
}

async fn delete_group(State(state): State<ScimState>, Source(info): Source, Path(id): Path<String>) -> Scim {
    let team = existing_team(&state, &id).await?;
    state.store.delete_team(&id, now_ms()).await?;
    (state.keys_revoked)();
    audit(&state, info, "team.delete", ("team", &id), Some(&group_json(&team, None)), None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
