//! `POST /v1/messages/count_tokens`: how many input tokens a Messages request would use.
//!
//! Claude Code calls this often (13 at once for `/context`), so it must be exact and cheap.
//! A deployment that speaks the Anthropic dialect answers it itself (llama.cpp's server does,
//! with its own tokenizer); otherwise the deployment's tokenize endpoint counts the prompt
//! text; only without either is the count estimated. The caller's data policy applies as it
//! does to the request itself. Counting is not model usage: it leaves no
//! usage record.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use moat_core::estimate::estimate_tokens;
use moat_core::{Dialect, ErrorCode};
use moat_wire::anthropic::count_tokens_body;

use super::guard::Guard;
use super::ingress::{self, Decoded, Endpoint};
use super::{Hop, body, route, upstream_api_error};
use crate::error::ApiError;
use crate::state::AppState;
use crate::time::now_ms;

pub(crate) async fn count_tokens(State(state): State<Arc<AppState>>, request: Request) -> Response {
    match count(&state, request).await {
        Ok(response) => response,
        Err(error) => error.in_dialect(Dialect::Anthropic).into_response(),
    }
}

async fn count(state: &Arc<AppState>, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let body = body::read(body, &parts.headers, state.max_body_bytes, state.body_read_timeout).await?;
    let principal = state.keys.authenticate(&parts.headers, now_ms()).await?;
    let decoded = Decoded::parse(Endpoint::Messages, &body)?;
    let requested = decoded.model().to_owned();
    let routing = state.routing.load_full();
    let model = routing.catalog.resolve(&requested).unwrap_or(&requested).to_owned();
    if routing.catalog.route(&model).is_none() {
        return Err(
            ApiError::new(ErrorCode::ModelNotFound, format!("the model `{model}` does not exist")).with_param("model")
        );
    }
    if !principal.may_use(&model) {
        return Err(ApiError::new(ErrorCode::ModelNotAllowed, format!("this key may not use the model `{model}`"))
            .with_param("model"));
    }
    // The caller's data policy applies as to the request itself: only deployments it may
    // reach count, and an external one sees the body redacted, or nothing when it blocks.
    let guard = Guard::new(state.data_policies.for_teams(&principal.teams));
    let plan = route(&routing, &model, Endpoint::Messages, body.len(), &guard).unwrap_or_default();
    let passed_through = plan.iter().filter(|(_, hop)| *hop == Hop::PassThrough).find_map(|(deployment, _)| {
        let upstream_body = decoded.to_upstream_body(Endpoint::Messages, deployment.spec());
        Some((deployment, guard.outbound(deployment, upstream_body)?))
    });
    if let Some((deployment, upstream_body)) = passed_through {
        let upstream = &deployment.client;
        let headers = ingress::upstream_headers(Dialect::Anthropic, &parts.headers, upstream.spec());
        let response = upstream
            .post_json(Dialect::Anthropic, "messages/count_tokens", upstream_body, headers)
            .await
            .map_err(|e| upstream_api_error(&e))?;
        let bytes = response.bytes().await.map_err(|e| upstream_api_error(&e))?;
        return Ok(json_response(bytes.to_vec()));
    }
    // No deployment speaks Anthropic: count the prompt text with the first deployment's
    // tokenizer, or estimate it.
    let text = ingress::prompt_text(Dialect::Anthropic, &body);
    let first = plan.first().map(|(deployment, _)| deployment);
    let tokens = match first {
        Some(deployment) => match deployment.client.count_tokens(&text).await {
            Some(n) => n,
            None => estimate_tokens(&text),
        },
        None => estimate_tokens(&text),
    };
    Ok(json_response(count_tokens_body(tokens).into_bytes()))
}

fn json_response(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
}
