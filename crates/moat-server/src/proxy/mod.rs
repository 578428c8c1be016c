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
mod cache;
mod count_tokens;
mod guard;
mod ingress;
mod meter;
mod relay;
mod retry;
mod translate;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use moat_core::budget::{Estimate, Subject};
use moat_core::{Dialect, ErrorCode, PlanError};
use moat_upstream::{UpstreamClient, UpstreamError, UpstreamResponse};
use moat_wire::translate::{AnswerContext, Translation};
use serde_json::json;

use crate::edge::REQUEST_ID;
use crate::error::ApiError;
use crate::fleet::{Deployment, Routing};
use crate::state::AppState;
use crate::time::now_ms;
use ingress::Decoded;
pub(crate) use ingress::Endpoint;
pub(crate) use meter::{Meter, RecordBase};

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
    let routing = state.routing.load();
    let names: Vec<&str> = routing.catalog.names().filter(|name| principal.may_use(name)).collect();
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

    let body = match body::read(body, &parts.headers, state.max_body_bytes, state.body_read_timeout).await {
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
    // The snapshot of models and deployments this request keeps, whatever reloads meanwhile.
    let routing = state.routing.load_full();
    let model = routing.catalog.resolve(&requested).unwrap_or(&requested).to_owned();
    let stream = decoded.stream() && endpoint.can_stream();
    let policy = state.data_policies.for_teams(&principal.teams);
    let mut meter = Meter::new(
        state.clone(),
        RecordBase {
            id: request_id,
            created_at_ms,
            started,
            key_id: principal.key_id.clone(),
            user_id: principal.user_id.clone(),
            team_id: principal.team_id.clone().or_else(|| principal.teams.iter().min().cloned()),
            model: model.clone(),
            endpoint,
            streamed: stream,
        },
        body.clone(),
        &parts.headers,
        &policy,
    );

    let mut guard = guard::Guard::new(policy);
    let mut hops = match route(&routing, &model, endpoint, body.len(), &guard) {
        Ok(hops) => hops,
        Err(error) => return respond(meter.fail(error)),
    };
    if !principal.may_use(&model) {
        let error = ApiError::new(ErrorCode::ModelNotAllowed, format!("this key may not use the model `{model}`"))
            .with_param("model");
        return respond(meter.fail(error));
    }
    let policy = routing.catalog.route(&model).and_then(|route| route.cache);
    let cache = cache::plan(policy, endpoint, stream, &principal, &parts.headers, &model, &body);
    if let Some(cache_use) = &cache
        && let Some(answer) = cache::lookup(&state, &model, cache_use).await
    {
        return cache::answer(meter, endpoint, answer);
    }
    if let Err(error) = guard.screen(&body, &mut hops, &mut meter, &state.metrics) {
        return respond(meter.fail(error));
    }
    let subject = Subject {
        key_id: principal.key_id.as_deref(),
        user_id: principal.user_id.as_deref(),
        teams: &principal.teams,
        model: &model,
    };
    let estimate = || admission_estimate(&state, endpoint, &decoded, &body, &hops);
    let rate_headers = match state.admission.admit(&state.metrics, subject, estimate).await {
        Ok(admitted) => {
            meter.hold(admitted.reservation);
            admitted.headers
        }
        Err(refusal) => {
            let mut response = respond(meter.fail(refusal.error));
            response.headers_mut().extend(refusal.headers);
            return response;
        }
    };
    let mut response = async {
        // Try the plan's deployments in order, and again from the top while attempts remain, as
        // long as each failure happened before any byte reached the client and may pass.
        let mut schedule = retry::Schedule::new(routing.settings, started, hops.len());
        let mut last_error: Option<UpstreamError> = None;
        for attempt in 0..routing.settings.max_attempts as usize {
            let index = attempt % hops.len();
            let (deployment, hop) = (&hops[index].0, hops[index].1);
            if attempt > 0 {
                let Some(wait) = schedule.wait_before(index, attempt >= hops.len(), rand::random::<f64>()) else {
                    break;
                };
                if !wait.is_zero() {
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = state.hard_stop.cancelled() => break,
                    }
                }
                state.metrics.observe_retry(&model);
            }
            if !deployment.live.try_acquire(Instant::now()) {
                continue;
            }
            let upstream_dialect = match hop {
                Hop::PassThrough => dialect,
                Hop::Translate(translation) => translation.upstream_dialect(),
            };
            meter.set_deployment(deployment, upstream_dialect);
            let spec = deployment.spec();
            let (mut outbound, client_stops) = match hop {
                Hop::PassThrough => (
                    Outbound {
                        dialect,
                        path: endpoint.upstream_path(),
                        body: decoded.to_upstream_body(endpoint, spec),
                        headers: ingress::upstream_headers(dialect, &parts.headers, spec),
                    },
                    Vec::new(),
                ),
                Hop::Translate(translation) => match translate::outbound(translation, &body, &parts.headers, spec) {
                    Ok(outbound) => outbound,
                    Err(error) => {
                        deployment.live.release();
                        return respond(meter.fail(error));
                    }
                },
            };
            match guard.outbound(deployment, std::mem::take(&mut outbound.body)) {
                Some(body) => outbound.body = body,
                None => {
                    deployment.live.release();
                    continue;
                }
            }
            meter.propagate_trace(&mut outbound.headers);
            let input_tokens_hint = match (hop, stream) {
                (Hop::Translate(Translation::MessagesToChat), true) => {
                    translate::count_prompt(&deployment.client, &body).await
                }
                _ => 0,
            };
            match call_upstream(&state, &deployment.client, outbound, stream).await {
                Ok((response, first_chunk)) => {
                    deployment.live.succeeded();
                    meter.mark_first_byte_if(!stream || first_chunk.is_some());
                    let relay = Relay {
                        cache,
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
                    return relay.run(&state, &deployment.client, response, first_chunk, meter).await;
                }
                Err(error) => {
                    meter.note_upstream_error(&error);
                    schedule.failed(index, error.retry_after_secs());
                    let retryable = error.retryable();
                    last_error = Some(error);
                    if !retryable {
                        break;
                    }
                }
            }
        }
        let error = match last_error {
            Some(error) => upstream_api_error(&error),
            None => ApiError::new(ErrorCode::UpstreamUnavailable, format!("every deployment of `{model}` is down"))
                .with_retry_after(Some(routing.settings.breaker.cooldown.as_secs().max(1))),
        };
        respond(meter.fail(error))
    }
    .await;
    response.headers_mut().extend(rate_headers);
    response
}

/// What admission reserves for a request: its prompt (estimated at four bytes a token) plus
/// the output it allows (its `max_tokens`, or `[admission] default_output_tokens`), priced at
/// the dearest deployment it may reach.
fn admission_estimate(
    state: &AppState,
    endpoint: Endpoint,
    decoded: &Decoded<'_>,
    body: &[u8],
    hops: &[(Arc<Deployment>, Hop)],
) -> Estimate {
    let input = moat_core::estimate::estimate_tokens(&ingress::prompt_text(endpoint.dialect(), body));
    let output = match endpoint {
        Endpoint::Embeddings => 0,
        _ => decoded.max_output_tokens().unwrap_or_else(|| state.admission.default_output_tokens()),
    };
    let usage = moat_core::Usage { input, output, ..moat_core::Usage::default() };
    let cost = hops.iter().map(|(deployment, _)| deployment.spec().price.cost(&usage)).max().unwrap_or(0);
    Estimate { cost, tokens: input.saturating_add(output) }
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
/// The prompt's size is estimated from the body's (4 bytes per token) for context windows.
fn route(
    routing: &Routing,
    model: &str,
    endpoint: Endpoint,
    body_len: usize,
    guard: &guard::Guard,
) -> Result<Vec<(Arc<Deployment>, Hop)>, ApiError> {
    let hop = |d: &Deployment| hop_for(endpoint, &d.spec().dialects, d.spec().native_responses);
    let allowed = |d: &Deployment| if guard.allows(d) { hop(d) } else { None };
    let prompt_tokens = u64::try_from(body_len / 4).unwrap_or(u64::MAX);
    let plan = routing.plan(model, prompt_tokens, &|d| allowed(d).is_some()).map_err(|error| match error {
        PlanError::UnknownModel => {
            ApiError::new(ErrorCode::ModelNotFound, format!("the model `{model}` does not exist")).with_param("model")
        }
        PlanError::ContextTooLong { needed, largest } => ApiError::new(
            ErrorCode::ContextWindowExceeded,
            format!(
                "the prompt (about {needed} tokens) is longer than the context of every deployment of `{model}` \
                 (largest: {largest} tokens)"
            ),
        )
        .with_param("messages"),
        PlanError::AllDown if !any_deployment_serves(routing, model, &hop) => ApiError::new(
            ErrorCode::EndpointNotSupported,
            format!("the model `{model}` has no deployment that can serve {}", endpoint.client_path()),
        )
        .with_param("model"),
        PlanError::AllDown if !any_deployment_serves(routing, model, &allowed) => ApiError::new(
            ErrorCode::PolicyDenied,
            format!("the data policy of this key's team keeps its requests off every deployment of `{model}`"),
        )
        .with_param("model"),
        PlanError::AllDown => {
            ApiError::new(ErrorCode::UpstreamUnavailable, format!("every deployment of `{model}` is down"))
                .with_retry_after(Some(routing.settings.breaker.cooldown.as_secs().max(1)))
        }
    })?;
    Ok(plan
        .deployments
        .into_iter()
        .filter_map(|id| {
            let deployment = routing.get(id)?;
            Some((deployment.clone(), allowed(deployment)?))
        })
        .collect())
}

/// Whether any deployment of `model` (fallbacks aside) could serve the endpoint at all.
fn any_deployment_serves(routing: &Routing, model: &str, hop: &dyn Fn(&Deployment) -> Option<Hop>) -> bool {
    routing
        .catalog
        .route(model)
        .into_iter()
        .flat_map(|route| route.members.iter())
        .filter_map(|member| routing.get(member.deployment))
        .any(|deployment| hop(deployment).is_some())
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

/// Calls the upstream unless shutdown's grace period ends first. For a stream, also waits
/// for its first chunk: until then nothing has reached the client, so a failure can still be
/// retried.
async fn call_upstream(
    state: &AppState,
    upstream: &UpstreamClient,
    outbound: Outbound,
    stream: bool,
) -> Result<(UpstreamResponse, Option<Bytes>), UpstreamError> {
    let exchange = async {
        let mut response = upstream.post_json(outbound.dialect, outbound.path, outbound.body, outbound.headers).await?;
        let first_chunk = if stream && is_event_stream(&response) {
            response.first_chunk(upstream.spec().first_byte_timeout).await?
        } else {
            None
        };
        Ok((response, first_chunk))
    };
    tokio::select! {
        result = exchange => result,
        () = state.hard_stop.cancelled() => Err(shutdown_error(upstream)),
    }
}

fn is_event_stream(response: &UpstreamResponse) -> bool {
    response.content_type().and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/event-stream"))
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
    /// Where a successful whole answer is stored, for a model that caches.
    cache: Option<cache::CacheUse>,
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
        first_chunk: Option<Bytes>,
        mut meter: Meter,
    ) -> Response {
        let status = response.status();
        let content_type = response.content_type().cloned();
        let is_event_stream = is_event_stream(&response);
        let idle_timeout = upstream.spec().idle_timeout;
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
            let upstream_stream =
                futures_util::stream::iter(first_chunk.map(Ok)).chain(response.into_stream(idle_timeout));
            let body = relay::MeteredStream::new(Box::pin(upstream_stream), meter, tap, state.hard_stop.clone())
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
            read = response.bytes() => read,
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
                let mut response = Response::new(axum::body::Body::from(bytes.clone()));
                *response.status_mut() = axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::OK);
                let content_type = content_type.unwrap_or_else(|| HeaderValue::from_static("application/json"));
                response.headers_mut().insert(header::CONTENT_TYPE, content_type);
                cache::fill(state, self.cache, &mut response, &bytes);
                response
            }
            Err(error) => {
                meter.note_upstream_error(&error);
                meter.fail(upstream_api_error(&error)).in_dialect(dialect).into_response()
            }
        }
    }
}
