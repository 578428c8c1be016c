//! The model endpoints and the request pipeline they share.
//!
//! [`handle`] sequences the stages explicitly, each taking the typed output of the one before:
//! read the body → authenticate → decode → authorize and route → call the upstream → relay the
//! response (with a usage tap on streams) → settle usage (off the request path). A [`Meter`]
//! exists from the moment the request is attributable to a key and model; whatever path the
//! request takes from there, including the client vanishing, the meter records it exactly once.

mod body;
mod meter;
mod relay;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use moat_core::ErrorCode;
use moat_upstream::{UpstreamClient, UpstreamError, UpstreamResponse};
use moat_wire::openai::{OpenAiRequest, RequestError};
use serde_json::json;

use crate::edge::REQUEST_ID;
use crate::error::ApiError;
use crate::state::AppState;
use crate::time::now_ms;
pub(crate) use meter::Meter;
use meter::RecordBase;

/// An OpenAI-compatible model endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Endpoint {
    ChatCompletions,
    Completions,
    Embeddings,
}

impl Endpoint {
    /// The path under a deployment's base URL.
    fn upstream_path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat/completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
        }
    }

    /// The name in usage records and metrics.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "chat.completions",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
        }
    }

    fn can_stream(self) -> bool {
        match self {
            Endpoint::ChatCompletions | Endpoint::Completions => true,
            Endpoint::Embeddings => false,
        }
    }
}

pub(crate) async fn chat_completions(State(state): State<Arc<AppState>>, request: Request) -> Response {
    handle(state, Endpoint::ChatCompletions, request).await
}

pub(crate) async fn completions(State(state): State<Arc<AppState>>, request: Request) -> Response {
    handle(state, Endpoint::Completions, request).await
}

pub(crate) async fn embeddings(State(state): State<Arc<AppState>>, request: Request) -> Response {
    handle(state, Endpoint::Embeddings, request).await
}

/// `GET /v1/models`: the models the caller's key may use.
pub(crate) async fn list_models(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let principal = match state.keys.authenticate(&headers, now_ms()).await {
        Ok(principal) => principal,
        Err(error) => return error.into_response(),
    };
    let data: Vec<_> = state
        .catalog
        .names()
        .filter(|name| principal.may_use(name))
        .map(|name| json!({ "id": name, "object": "model", "created": 0, "owned_by": "moat" }))
        .collect();
    axum::Json(json!({ "object": "list", "data": data })).into_response()
}

/// The request pipeline.
async fn handle(state: Arc<AppState>, endpoint: Endpoint, request: Request) -> Response {
    let started = Instant::now();
    let created_at_ms = now_ms();
    let (parts, body) = request.into_parts();
    let request_id = parts.headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();

    let body = match body::read(body, &parts.headers, state.max_body_bytes).await {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let principal = match state.keys.authenticate(&parts.headers, created_at_ms).await {
        Ok(principal) => principal,
        Err(error) => return error.into_response(),
    };
    let decoded = match OpenAiRequest::parse(&body) {
        Ok(decoded) => decoded,
        Err(RequestError::InvalidJson(detail)) => {
            return ApiError::new(
                ErrorCode::InvalidJson,
                format!("the request body is not a valid JSON object: {detail}"),
            )
            .into_response();
        }
        Err(RequestError::InvalidField(message)) => {
            return ApiError::new(ErrorCode::InvalidRequest, message).into_response();
        }
    };
    let stream = decoded.stream && endpoint.can_stream();
    let mut meter = Meter::new(
        state.clone(),
        RecordBase {
            id: request_id,
            created_at_ms,
            started,
            key_id: principal.key_id.clone(),
            model: decoded.model.clone(),
            endpoint,
            streamed: stream,
        },
        body.clone(),
    );

    let turn = state.turn.fetch_add(1, Ordering::Relaxed);
    let Some(plan) = state.catalog.plan(&decoded.model, turn) else {
        let error = ApiError::new(ErrorCode::ModelNotFound, format!("the model `{}` does not exist", decoded.model))
            .with_param("model");
        return meter.fail(error).into_response();
    };

    if !principal.may_use(&decoded.model) {
        let error =
            ApiError::new(ErrorCode::ModelNotAllowed, format!("this key may not use the model `{}`", decoded.model))
                .with_param("model");
        return meter.fail(error).into_response();
    }
    // Try the plan's deployments in order, moving on only when a deployment could not be
    // reached at all: nothing was generated, so nothing can be counted twice.
    let mut last_error = None;
    for deployment in plan.deployments {
        let Some(upstream) = state.upstreams.get(deployment.0) else {
            continue;
        };
        meter.set_deployment(deployment, upstream.spec().name.clone());
        let upstream_body = decoded.to_upstream_body(&upstream.spec().upstream_model);
        match call_upstream(&state, upstream, endpoint, upstream_body).await {
            Ok(response) => {
                meter.mark_first_byte_if(!stream);
                return relay(&state, upstream, response, meter, stream, decoded.client_wants_stream_usage).await;
            }
            Err(error) => {
                state.metrics.observe_upstream_error(&upstream.spec().name, error.code().as_str());
                let retry_elsewhere = error.retryable() && error.kind == moat_upstream::UpstreamErrorKind::Connect;
                last_error = Some(error);
                if !retry_elsewhere {
                    break;
                }
            }
        }
    }
    let error = match last_error {
        Some(error) => upstream_api_error(&error),
        None => ApiError::new(ErrorCode::ModelNotFound, format!("the model `{}` has no deployment", decoded.model)),
    };
    meter.fail(error).into_response()
}

/// Calls the upstream unless shutdown's grace period ends first.
async fn call_upstream(
    state: &AppState,
    upstream: &UpstreamClient,
    endpoint: Endpoint,
    body: Vec<u8>,
) -> Result<UpstreamResponse, UpstreamError> {
    tokio::select! {
        result = upstream.post_json(endpoint.upstream_path(), body) => result,
        () = state.hard_stop.cancelled() => Err(shutdown_error(upstream)),
    }
}

fn shutdown_error(upstream: &UpstreamClient) -> UpstreamError {
    UpstreamError {
        deployment: upstream.spec().name.clone(),
        kind: moat_upstream::UpstreamErrorKind::Protocol,
        detail: "moat shut down before the deployment answered".into(),
    }
}

pub(crate) fn upstream_api_error(error: &UpstreamError) -> ApiError {
    ApiError::new(error.code(), error.detail.clone()).with_retry_after(error.retry_after_secs())
}

/// Sends the upstream's answer to the client: streams frame by frame, bodies whole.
async fn relay(
    state: &Arc<AppState>,
    upstream: &UpstreamClient,
    response: UpstreamResponse,
    mut meter: Meter,
    stream: bool,
    client_wants_stream_usage: bool,
) -> Response {
    let status = response.status();
    let content_type = response.content_type().cloned();
    let is_event_stream =
        content_type.as_ref().and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/event-stream"));
    let timeout = upstream.spec().timeout;
    if stream && is_event_stream {
        let body = relay::MeteredStream::new(
            Box::pin(response.into_stream(timeout)),
            meter,
            !client_wants_stream_usage,
            state.hard_stop.clone(),
        );
        return Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"))
            .header(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))
            .header("x-accel-buffering", HeaderValue::from_static("no"))
            .body(axum::body::Body::from_stream(body))
            .unwrap_or_else(|_| ApiError::internal().into_response());
    }
    let read = tokio::select! {
        read = response.bytes(timeout) => read,
        () = state.hard_stop.cancelled() => Err(shutdown_error(upstream)),
    };
    match read {
        Ok(bytes) => {
            meter.observe_body(&bytes);
            meter.finish(status, None);
            let mut response = Response::new(axum::body::Body::from(bytes));
            *response.status_mut() = axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::OK);
            let content_type = content_type.unwrap_or_else(|| HeaderValue::from_static("application/json"));
            response.headers_mut().insert(header::CONTENT_TYPE, content_type);
            response
        }
        Err(error) => {
            state.metrics.observe_upstream_error(&upstream.spec().name, error.code().as_str());
            meter.fail(upstream_api_error(&error)).into_response()
        }
    }
}
