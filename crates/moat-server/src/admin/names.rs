//! Names for the ids a page of results shows: key names and user e-mails, looked up for those
//! ids only, so answers stay fast however many keys and people the organisation has.

use std::collections::{BTreeSet, HashMap};

use moat_store::UserRecord;

use super::store_failed;
use crate::error::ApiError;
use crate::state::AppState;

/// Key names by id, for the keys among `ids` that exist.
pub(super) async fn key_names<'a>(
    state: &AppState,
    ids: impl IntoIterator<Item = &'a str>,
) -> Result<HashMap<String, String>, ApiError> {
    let ids = distinct(ids);
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let keys = state.store.keys_by_ids(&ids).await.map_err(store_failed)?;
    Ok(keys.into_iter().map(|key| (key.id, key.name)).collect())
}

/// Users by id, for the users among `ids` that exist.
pub(super) async fn users<'a>(
    state: &AppState,
    ids: impl IntoIterator<Item = &'a str>,
) -> Result<HashMap<String, UserRecord>, ApiError> {
    let ids = distinct(ids);
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let users = state.store.users_by_ids(&ids).await.map_err(store_failed)?;
    Ok(users.into_iter().map(|user| (user.id.clone(), user)).collect())
}

/// User e-mails by id, for the users among `ids` that exist.
pub(super) async fn user_emails<'a>(
    state: &AppState,
    ids: impl IntoIterator<Item = &'a str>,
) -> Result<HashMap<String, String>, ApiError> {
    Ok(users(state, ids).await?.into_iter().map(|(id, user)| (id, user.email)).collect())
}

fn distinct<'a>(ids: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    ids.into_iter().filter(|id| !id.is_empty()).collect::<BTreeSet<_>>().into_iter().map(str::to_owned).collect()
}

/// Names for budget and limit scopes, by scope id: team names, user e-mails and key names
/// (`scopes` are `(scope, id)` as the API names them; org and model scopes need none).
pub(super) async fn scope_names(
    state: &AppState,
    scopes: &[(&str, &str)],
) -> Result<HashMap<String, String>, ApiError> {
    let of = |wanted: &'static str| scopes.iter().filter(move |(s, _)| *s == wanted).map(|(_, id)| *id);
    let mut names = key_names(state, of("key")).await?;
    names.extend(user_emails(state, of("user")).await?);
    let teams: BTreeSet<&str> = of("team").collect();
    if !teams.is_empty() {
        names.extend(team_names(state).await?.into_iter().filter(|(id, _)| teams.contains(id.as_str())));
    }
    Ok(names)
}

/// Every team's name by id (teams are few: a company's departments and projects).
pub(super) async fn team_names(state: &AppState) -> Result<HashMap<String, String>, ApiError> {
    let teams = state.store.list_teams().await.map_err(store_failed)?;
    Ok(teams.into_iter().map(|team| (team.id, team.name)).collect())
}
