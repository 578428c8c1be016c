//! `GET /admin/v1/audit` and `GET /admin/v1/audit/verify`: reading the audit log and checking
//! its hash chain.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use moat_core::audit::{AuditRecord, verify_chain};
use moat_core::{Action, ErrorCode};
use moat_store::AuditFilter;
use serde::Deserialize;
use serde_json::{Value, json};

use super::caller::Caller;
use super::{invalid, page_limit, store_failed};
use crate::error::ApiError;
use crate::state::AppState;
use crate::time::{format_ms, parse_rfc3339_ms};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn audit_json(record: &AuditRecord) -> Value {
    let event = &record.event;
    let parse = |text: &Option<String>| text.as_deref().and_then(|t| serde_json::from_str::<Value>(t).ok());
    json!({
        "seq": record.seq,
        "id": event.id,
        "at": format_ms(event.at_ms),
        "actor_user_id": event.actor_user_id,
        "actor_key_id": event.actor_key_id,
        "source": event.source,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "before": parse(&event.before),
        "after": parse(&event.after),
        "hash": hex(&record.hash),
    })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    actor: Option<String>,
    /// An action (`user.update`) or a family ending in `.` (`key.`).
    action: Option<String>,
    target_type: Option<String>,
    target_id: Option<String>,
    /// RFC 3339, inclusive.
    from: Option<String>,
    /// RFC 3339, exclusive.
    to: Option<String>,
    /// A `seq`: older records only (the next page).
    before: Option<i64>,
    limit: Option<u32>,
}

pub(crate) async fn list_audit(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.must(&Action::ReadAudit)?;
    let Query(query) = query.map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.body_text()))?;
    let limit = page_limit(query.limit)?;
    let time = |text: Option<String>, param: &'static str| -> Result<Option<i64>, ApiError> {
        text.map(|t| parse_rfc3339_ms(&t).ok_or_else(|| invalid(format!("`{param}` must be an RFC 3339 time"), param)))
            .transpose()
    };
    let filter = AuditFilter {
        actor_user_id: query.actor,
        action: query.action,
        target_type: query.target_type,
        target_id: query.target_id,
        from_ms: time(query.from, "from")?,
        to_ms: time(query.to, "to")?,
        before_seq: query.before,
        limit,
    };
    let records = state.store.query_audit(&filter).await.map_err(store_failed)?;
    let next = (records.len() == limit as usize).then(|| records.last().map(|r| r.seq)).flatten();
    Ok(Json(json!({ "data": records.iter().map(audit_json).collect::<Vec<_>>(), "next_before": next })).into_response())
}

/// Recomputes the whole chain: `ok` with the record count and head hash (worth keeping
/// outside moat: it makes deleting the newest records detectable too), or the first record
/// that does not verify.
pub(crate) async fn verify_audit(State(state): State<Arc<AppState>>, caller: Caller) -> Result<Response, ApiError> {
    caller.must(&Action::ReadAudit)?;
    let chain = state.store.audit_chain().await.map_err(store_failed)?;
    let body = match verify_chain(chain) {
        Ok((records, head)) => json!({ "ok": true, "records": records, "head": hex(&head) }),
        Err(broken) => json!({
            "ok": false,
            "broken": { "seq": broken.seq, "id": broken.id, "reason": broken.reason },
        }),
    };
    Ok(Json(body).into_response())
}
