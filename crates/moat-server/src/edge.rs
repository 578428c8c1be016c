//! The edge middleware: request id, access log, HTTP metrics and, over TLS, HSTS for every
//! request.
//!
//! The request id is always generated here (a client-supplied `x-request-id` is replaced),
//! because it becomes the usage record's primary key and must be unique.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

use crate::state::AppState;

/// The request id header, set on the request for handlers and on the response for clients.
pub(crate) const REQUEST_ID: &str = "x-request-id";
/// The same id under the name Anthropic's API and SDKs use (`_request_id` in the Python SDK).
const ANTHROPIC_REQUEST_ID: &str = "request-id";

pub(crate) async fn edge(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = uuid::Uuid::now_v7().to_string();
    let id_header = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    request.headers_mut().insert(REQUEST_ID, id_header.clone());
    let method = request.method().clone();
    let route = route_name(request.uri().path());
    let path = request.uri().path().to_owned();
    let over_tls = request.extensions().get::<crate::listener::OverTls>().is_some();
    let mut response = next.run(request).await;
    if let (true, Some(hsts)) = (over_tls, &state.hsts) {
        response.headers_mut().insert(axum::http::header::STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
    response.headers_mut().insert(ANTHROPIC_REQUEST_ID, id_header.clone());
    response.headers_mut().insert(REQUEST_ID, id_header);
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state.metrics.observe_http(route, status, elapsed);
    tracing::info!(
        target: "moat::access",
        request_id = %id,
        method = %method,
        path = %path,
        status,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// A fixed name per route, so metrics never carry raw paths.
fn route_name(path: &str) -> &'static str {
    match path {
        "/v1/chat/completions" => "chat.completions",
        "/v1/completions" => "completions",
        "/v1/embeddings" => "embeddings",
        "/v1/models" | "/anthropic/v1/models" => "models",
        "/v1/messages" | "/anthropic/v1/messages" => "messages",
        "/v1/responses" => "responses",
        "/v1/messages/count_tokens" | "/anthropic/v1/messages/count_tokens" => "messages.count_tokens",
        "/healthz" | "/readyz" | "/metrics" | "/" => "ops",
        p if p.starts_with("/admin/") => "admin",
        _ => "other",
    }
}
