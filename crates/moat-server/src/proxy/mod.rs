//! The model endpoints and the request pipeline they share.
//!
//! Two ingress dialects share it: OpenAI (`/v1/chat/completions`, `/v1/completions`,
//! `/v1/embeddings`) and Anthropic (`/v1/messages`). A request goes to the model's deployments
//! that speak its dialect and is passed through (translation between dialects comes next).
//! [`handle`] sequences the stages explicitly, each taking the typed output of the one before:
//! read the body → authenticate → decode → authorize and route → call the upstream → relay the
//! response (with a usage tap on streams) → settle usage (off the request path). A [`Meter`]
//! exists from the moment the request is attributable to a key and model; whatever path the
//! request takes from there, including the client vanishing, the meter records it exactly once.

mod body;
mod count_tokens;
mod ingress;
mod meter;
mod relay;
mod translate;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use moat_core::{DeploymentId, Dialect, ErrorCode};
use moat_upstream::{UpstreamClient, UpstreamError, UpstreamResponse};
use moat_wire::translate::{AnswerContext, Translation};
use serde_json::json;

use crate::edge::REQUEST_ID;
use crate::error::ApiError;
use crate::state::AppState;
use crate::time::now_ms;
use ingress::Decoded;
pub(crate) use ingress::Endpoint;
pub(crate) use meter::Meter;
use meter::RecordBase;

pub(crate) async fn chat_completions(State(state): State<Arc<AppState>>, request: Request) -> Response {
    handle(state, Endpoint::ChatCompletions, request).await
}

pub(crate) async fn completions(State(state): State<Arc<AppState>>, request: Request) -> Response {
    handle(state, Endpoint::Completions, request).await
}

pub(crate) async fn embeddings(State(state): State<Arc<AppState>>, request: Request) -> Response {
    handle(state, Endpoint::Embeddings, request).await
}

pub(crate) async fn messages(State(state): State<Arc<AppState>>, request: Request) -> Response {
    handle(state, Endpoint::Messages, request).await
}

pub(crate) async fn responses(State(state): State<Arc<AppState>>, request: Request) -> Response {
    handle(state, Endpoint::Responses, request).await
}

pub(crate) use count_tokens::count_tokens;

/// `GET /v1/models`: the models the caller's key may use.
///
/// One payload serves both dialects' clients: it carries the OpenAI list fields and the
/// Anthropic ones (`type`, `display_name`, `created_at`, `has_more`, `first_id`, `last_id`).
pub(crate) async fn list_models(State(state): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let principal = match state.keys.authenticate(&headers, now_ms()).await {
        Ok(principal) => principal,
        Err(error) => return error.in_dialect(crate::error::dialect_of(&headers)).into_response(),
    };
    let names: Vec<&str> = state.catalog.names().filter(|name| principal.may_use(name)).collect();
    let data: Vec<_> = names
        .iter()
        .map(|name| {
            json!({
                "id": name, "object": "model", "created": 0, "owned_by": "moat",
                "type": "model", "display_name": name, "created_at": "1970-01-01T00:00:00Z",
            })
        })
        .collect();
    axum::Json(json!({
        "object": "list",
        "data": data,
        "has_more": false,
        "first_id": names.first(),
        "last_id": names.last(),
    }))
    .into_response()
}

/// The request pipeline.
async fn handle(state: Arc<AppState>, endpoint: Endpoint, request: Request) -> Response {
    let dialect = endpoint.dialect();
    let respond = |error: ApiError| error.in_dialect(dialect).into_response();
    let started = Instant::now();
    let created_at_ms = now_ms();
    let (parts, body) = request.into_parts();
    let request_id = parts.headers.get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();

    let body = match body::read(body, &parts.headers, state.max_body_bytes).await {
        Ok(body) => body,
        Err(error) => return respond(error),
    };
    let principal = match state.keys.authenticate(&parts.headers, created_at_ms).await {
        Ok(principal) => principal,
        Err(error) => return respond(error),
    };
    let decoded = match Decoded::parse(endpoint, &body) {
        Ok(decoded) => decoded,
        Err(error) => return respond(error),
    };
    // The name the client asked for, and the public model it resolves to (itself, or through
    // an alias).
    let requested = decoded.model().to_owned();
    let model = state.catalog.resolve(&requested).unwrap_or(&requested).to_owned();
    let stream = decoded.stream() && endpoint.can_stream();
    let mut meter = Meter::new(
        state.clone(),
        RecordBase {
            id: request_id,
            created_at_ms,
            started,
            key_id: principal.key_id.clone(),
            model: model.clone(),
            endpoint,
            streamed: stream,
        },
        body.clone(),
    );

    let plan = match route(&state, &model, endpoint) {
        Ok(plan) => plan,
        Err(error) => return respond(meter.fail(error)),
    };
    if !principal.may_use(&model) {
        let error = ApiError::new(ErrorCode::ModelNotAllowed, format!("this key may not use the model `{model}`"))
            .with_param("model");
        return respond(meter.fail(error));
    }
    // Try the plan's deployments in order, moving on only when a deployment could not be
    // reached at all: nothing was generated, so nothing can be counted twice.
    let mut last_error = None;
    for (deployment, hop) in plan {
        let Some(upstream) = state.upstreams.get(deployment.0) else {
            continue;
        };
        meter.set_deployment(deployment, upstream.spec().name.clone());
        let (outbound, client_stops) = match hop {
            Hop::PassThrough => (
                Outbound {
                    dialect,
                    path: endpoint.upstream_path(),
                    body: decoded.to_upstream_body(endpoint, upstream.spec()),
                    headers: ingress::upstream_headers(dialect, &parts.headers, upstream.spec()),
                },
                Vec::new(),
            ),
            Hop::Translate(translation) => {
                match translate::outbound(translation, &body, &parts.headers, upstream.spec()) {
                    Ok(outbound) => outbound,
                    Err(error) => return respond(meter.fail(error)),
                }
            }
        };
        let input_tokens_hint = match (hop, stream) {
            (Hop::Translate(Translation::MessagesToChat), true) => translate::count_prompt(upstream, &body).await,
            _ => 0,
        };
        match call_upstream(&state, upstream, outbound).await {
            Ok(response) => {
                meter.mark_first_byte_if(!stream);
                let relay = Relay {
                    endpoint,
                    hop,
                    stream,
                    strip_usage_chunk: decoded.strip_usage_chunk(),
                    answer: AnswerContext {
                        client_model: requested.clone(),
                        created: translate::unix_now(),
                        input_tokens_hint,
                        include_usage: !decoded.strip_usage_chunk(),
                        stop_sequences: client_stops,
                    },
                };
                return relay.run(&state, upstream, response, meter).await;
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
        None => ApiError::new(ErrorCode::ModelNotFound, format!("the model `{model}` has no deployment")),
    };
    respond(meter.fail(error))
}

/// How a request reaches one deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hop {
    /// The deployment speaks the client's dialect: the body is forwarded as sent.
    PassThrough,
    /// The deployment speaks another dialect: request and answer are translated.
    Translate(Translation),
}

/// The deployments to try for `model`, in plan order, each with how to reach it: passed
/// through where the deployment speaks the request's dialect, translated where it can be.
fn route(state: &AppState, model: &str, endpoint: Endpoint) -> Result<Vec<(DeploymentId, Hop)>, ApiError> {
    let turn = state.turn.fetch_add(1, Ordering::Relaxed);
    let Some(plan) = state.catalog.plan(model, turn) else {
        return Err(
            ApiError::new(ErrorCode::ModelNotFound, format!("the model `{model}` does not exist")).with_param("model")
        );
    };
    let hops: Vec<(DeploymentId, Hop)> = plan
        .deployments
        .into_iter()
        .filter_map(|id| {
            let spec = state.upstreams.get(id.0)?.spec();
            hop_for(endpoint, &spec.dialects, spec.native_responses).map(|hop| (id, hop))
        })
        .collect();
    if hops.is_empty() {
        return Err(ApiError::new(
            ErrorCode::EndpointNotSupported,
            format!("the model `{model}` has no deployment that can serve {}", endpoint.client_path()),
        )
        .with_param("model"));
    }
    Ok(hops)
}

/// How a request for `endpoint` reaches a deployment that speaks `dialects` (and serves the
/// Responses API itself if `native_responses`), or `None` if it cannot.
fn hop_for(endpoint: Endpoint, dialects: &[Dialect], native_responses: bool) -> Option<Hop> {
    let speaks = |dialect: Dialect| dialects.contains(&dialect);
    match endpoint {
        Endpoint::Responses if native_responses => Some(Hop::PassThrough),
        Endpoint::Responses if speaks(Dialect::OpenAi) => Some(Hop::Translate(Translation::ResponsesToChat)),
        Endpoint::Responses if speaks(Dialect::Anthropic) => Some(Hop::Translate(Translation::ResponsesToMessages)),
        Endpoint::Responses => None,
        _ if speaks(endpoint.dialect()) => Some(Hop::PassThrough),
        Endpoint::Messages if speaks(Dialect::OpenAi) => Some(Hop::Translate(Translation::MessagesToChat)),
        Endpoint::ChatCompletions if speaks(Dialect::Anthropic) => Some(Hop::Translate(Translation::ChatToMessages)),
        _ => None,
    }
}

/// What is sent to one deployment.
pub(crate) struct Outbound {
    pub(crate) dialect: Dialect,
    pub(crate) path: &'static str,
    pub(crate) body: Vec<u8>,
    pub(crate) headers: HeaderMap,
}

/// Calls the upstream unless shutdown's grace period ends first.
async fn call_upstream(
    state: &AppState,
    upstream: &UpstreamClient,
    outbound: Outbound,
) -> Result<UpstreamResponse, UpstreamError> {
    tokio::select! {
        result = upstream.post_json(outbound.dialect, outbound.path, outbound.body, outbound.headers) => result,
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

/// How to send one upstream answer back to the client.
struct Relay {
    endpoint: Endpoint,
    hop: Hop,
    stream: bool,
    strip_usage_chunk: bool,
    /// What a translated answer needs to know about the request.
    answer: AnswerContext,
}

impl Relay {
    /// Streams frame by frame, bodies whole.
    async fn run(
        self,
        state: &Arc<AppState>,
        upstream: &UpstreamClient,
        response: UpstreamResponse,
        mut meter: Meter,
    ) -> Response {
        let status = response.status();
        let content_type = response.content_type().cloned();
        let is_event_stream =
            content_type.as_ref().and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/event-stream"));
        let timeout = upstream.spec().timeout;
        let dialect = self.endpoint.dialect();
        if self.stream && is_event_stream {
            let tap = match (self.hop, dialect) {
                (Hop::Translate(translation), _) => relay::StreamTap::Translated {
                    upstream: translation.upstream_dialect(),
                    client: self.endpoint,
                    translator: translation.stream(&self.answer),
                },
                (Hop::PassThrough, _) if self.endpoint == Endpoint::Responses => relay::StreamTap::Responses,
                (Hop::PassThrough, Dialect::OpenAi) => {
                    relay::StreamTap::OpenAi { strip_usage_chunk: self.strip_usage_chunk }
                }
                (Hop::PassThrough, Dialect::Anthropic) => relay::StreamTap::Anthropic,
            };
            let body =
                relay::MeteredStream::new(Box::pin(response.into_stream(timeout)), meter, tap, state.hard_stop.clone())
                    .with_keepalive(state.stream_keepalive);
            return Response::builder()
                .status(status)
                .header(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"))
                .header(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"))
                .header("x-accel-buffering", HeaderValue::from_static("no"))
                .body(axum::body::Body::from_stream(body))
                .unwrap_or_else(|_| ApiError::internal().in_dialect(dialect).into_response());
        }
        let read = tokio::select! {
            read = response.bytes(timeout) => read,
            () = state.hard_stop.cancelled() => Err(shutdown_error(upstream)),
        };
        match read {
            Ok(bytes) => {
                let bytes = match self.hop {
                    Hop::PassThrough => {
                        if let Some(view) = self.endpoint.read_body(&bytes) {
                            meter.observe(view);
                        }
                        bytes
                    }
                    Hop::Translate(translation) => {
                        let view = match translation.upstream_dialect() {
                            Dialect::OpenAi => moat_wire::openai::read_response(&bytes),
                            Dialect::Anthropic => moat_wire::anthropic::read_message(&bytes),
                        };
                        let translated = serde_json::from_slice::<serde_json::Value>(&bytes)
                            .ok()
                            .map(|answer| translation.response(&answer, &self.answer).to_string().into_bytes());
                        if let Some(view) = view {
                            meter.observe(view);
                        }
                        match translated {
                            Some(translated) => translated.into(),
                            None => {
                                let error = ApiError::new(
                                    ErrorCode::UpstreamError,
                                    "the deployment's answer could not be translated into this API's shape",
                                );
                                return meter.fail(error).in_dialect(dialect).into_response();
                            }
                        }
                    }
                };
                meter.finish(status, None);
                let mut response = Response::new(axum::body::Body::from(bytes));
                *response.status_mut() = axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::OK);
                let content_type = content_type.unwrap_or_else(|| HeaderValue::from_static("application/json"));
                response.headers_mut().insert(header::CONTENT_TYPE, content_type);
                response
            }
            Err(error) => {
                state.metrics.observe_upstream_error(&upstream.spec().name, error.code().as_str());
                meter.fail(upstream_api_error(&error)).in_dialect(dialect).into_response()
            }
        }
    }
}
