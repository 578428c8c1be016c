//! The admin API (`/admin/v1`): keys, users, teams, usage, deployments and the audit log.
//!
//! Every route needs an admin-scope key; what the caller may then do follows their user's
//! roles ([`moat_core::Actor::may`]), checked on the server for every action. Objects the
//! caller may not see answer `404`, as if they did not exist; objects they may see but not
//! change answer `403 permission_denied`. Every change is written to the audit log.

mod audit;
mod budgets;
mod caller;
mod invitations;
mod keys;
mod names;
mod people;
mod policies;
mod prompts;
mod reports;
mod usage;

pub(crate) use audit::{list_audit, verify_audit};
pub(crate) use budgets::{
    create_budget, create_limit, delete_budget, delete_limit, get_budget, get_limit, list_budgets, list_limits,
    reset_budget, reset_limit, update_budget, update_limit,
};
pub(crate) use invitations::{create_invitation, list_invitations, revoke_invitation};
pub(crate) use keys::{create_key, get_key, list_keys, revoke_key};
pub(crate) use people::{
    create_team, create_user, get_team, get_user, list_members, list_teams, list_users, put_member, remove_member,
    set_password, update_user,
};
pub(crate) use policies::{default_policy, delete_team_policy, get_team_policy, put_team_policy};
pub(crate) use prompts::get_prompt;
pub(crate) use reports::{chargeback, usage_report};
pub(crate) use usage::{list_deployments, list_prices, list_usage, settings};

use axum::body::Bytes;
use moat_core::ErrorCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

fn store_failed(error: moat_store::StoreError) -> ApiError {
    match error {
        moat_store::StoreError::Conflict(what) => {
            ApiError::new(ErrorCode::Conflict, format!("{what} is already taken"))
        }
        error => {
            tracing::error!(%error, "store operation failed");
            ApiError::internal()
        }
    }
}

fn invalid(message: impl Into<String>, param: &'static str) -> ApiError {
    ApiError::new(ErrorCode::InvalidRequest, message).with_param(param)
}

/// Rows per page of a list when `limit` is not given, and the most one page returns: enough
/// for a screen or a script, bounded so no request reads a whole table.
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

/// A page's size: `limit`, or the default, within `1..=MAX_PAGE`.
fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(invalid(format!("`limit` must be between 1 and {MAX_PAGE}"), "limit"))
    }
}

fn not_found(what: &str, id: &str) -> ApiError {
    ApiError::new(ErrorCode::NotFound, format!("no {what} has the id `{id}`"))
}

/// Parses a JSON body, telling malformed JSON from a wrong shape.
fn parse_body<T: DeserializeOwned>(body: &Bytes, what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        let code = if e.is_syntax() || e.is_eof() { ErrorCode::InvalidJson } else { ErrorCode::InvalidRequest };
        ApiError::new(code, format!("invalid {what}: {e}"))
    })
}
