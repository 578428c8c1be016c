//! Operational endpoints: liveness, readiness, metrics, and a plain answer at `/`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use moat_core::ErrorCode;
use serde_json::json;

use axum::http::HeaderMap;

use crate::error::{ApiError, dialect_of};
use crate::state::AppState;

/// Liveness: the process answers.
pub(crate) async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

/// Readiness: the store answers and shutdown has not begun.
pub(crate) async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.draining.load(Ordering::Relaxed) {
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({ "status": "draining" }))).into_response();
    }
    // Counters that cannot be reached do not make a replica unready: every replica shares
    // them, so taking replicas out would stop all traffic, not only the budgeted part. The
    // body says so, and `moat_admission_counters_up` alerts on it.
    let counters = match state.admission.counters().ping().await {
        Ok(()) => "ok",
        Err(error) => {
            tracing::warn!(%error, "readiness check: budget and limit counters unreachable");
            "unavailable"
        }
    };
    let counters = json!({ "store": state.admission.counters().kind(), "status": counters });
    match state.store.ping().await {
        Ok(()) => axum::Json(json!({ "status": "ready", "counters": counters })).into_response(),
        Err(error) => {
            tracing::warn!(%error, "readiness check: store unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({ "status": "store_unavailable" }))).into_response()
        }
    }
}

/// Prometheus scrape endpoint.
pub(crate) async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let now = std::time::Instant::now();
    let routing = state.routing.load();
    state.metrics.set_deployments(routing.deployments.iter().map(|d| {
        let up = d.live.health(now) == moat_core::HealthState::Up;
        (d.spec().name.clone(), up, d.live.in_flight(), d.live.times_opened())
    }));
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode())
        .into_response()
}

/// `GET /`: says what this is, so a browser or a probe gets an answer.
pub(crate) async fn root() -> Response {
    axum::Json(json!({ "name": "moat", "version": env!("CARGO_PKG_VERSION") })).into_response()
}

pub(crate) async fn not_found(headers: HeaderMap) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        "no such route; model endpoints live under /v1 and the admin API under /admin/v1",
    )
    .in_dialect(dialect_of(&headers))
}

pub(crate) async fn method_not_allowed(headers: HeaderMap) -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed, "this route does not accept this HTTP method")
        .in_dialect(dialect_of(&headers))
}
