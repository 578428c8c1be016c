//! The pipeline's side of dialect translation: building the outbound request, translating
//! whole answers, and counting a prompt for a translated stream's `message_start`.

use axum::http::HeaderMap;
use moat_core::estimate::estimate_tokens;
use moat_core::{Dialect, ErrorCode};
use moat_upstream::{DeploymentSpec, UpstreamClient};
use moat_wire::json_object::merge_stop;
use moat_wire::translate::{chat_to_messages, messages_to_chat, responses_to_chat};

use super::Outbound;
use super::ingress;
use crate::error::ApiError;

/// The chat-completions request for a Messages `body`.
pub(crate) fn messages_request(body: &[u8], deployment: &DeploymentSpec) -> Result<Outbound, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("the request body is not valid JSON: {e}")))?;
    let mut chat = messages_to_chat::request(&value, &deployment.upstream_model)
        .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.0))?;
    if !deployment.stop.is_empty() {
        chat["stop"] = merge_stop(chat.get("stop"), &deployment.stop).into();
    }
    Ok(Outbound {
        dialect: Dialect::OpenAi,
        path: "chat/completions",
        body: chat.to_string().into_bytes(),
        headers: HeaderMap::new(),
    })
}

/// The Messages answer for a chat-completions answer, or `None` if it is not JSON.
pub(crate) fn messages_response(body: &[u8], client_model: &str) -> Option<Vec<u8>> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(messages_to_chat::response(&value, client_model).to_string().into_bytes())
}

/// The prompt's tokens by the deployment's tokenizer, or estimated: a translated stream must
/// name its input count in `message_start`, before the upstream reports it at the end.
pub(crate) async fn count_prompt(upstream: &UpstreamClient, body: &[u8]) -> u64 {
    let text = ingress::prompt_text(Dialect::Anthropic, body);
    match upstream.count_tokens(&text).await {
        Some(n) => n,
        None => estimate_tokens(&text),
    }
}

/// The Messages request for a chat-completions `body`, with the Anthropic headers the
/// deployment accepts.
pub(crate) fn chat_request(
    body: &[u8],
    client_headers: &HeaderMap,
    deployment: &DeploymentSpec,
) -> Result<Outbound, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("the request body is not valid JSON: {e}")))?;
    let mut messages = chat_to_messages::request(&value, &deployment.upstream_model)
        .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.0))?;
    if !deployment.stop.is_empty() {
        messages["stop_sequences"] = merge_stop(messages.get("stop_sequences"), &deployment.stop).into();
    }
    Ok(Outbound {
        dialect: Dialect::Anthropic,
        path: "messages",
        body: messages.to_string().into_bytes(),
        headers: ingress::upstream_headers(Dialect::Anthropic, client_headers, deployment),
    })
}

/// The chat completion for a Messages answer, or `None` if it is not JSON.
pub(crate) fn chat_response(body: &[u8], client_model: &str) -> Option<Vec<u8>> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(chat_to_messages::response(&value, client_model, unix_now()).to_string().into_bytes())
}

/// Now, in Unix seconds, for the `created` field of translated chat completions.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// The chat-completions request for a Responses API `body`.
pub(crate) fn responses_request(body: &[u8], deployment: &DeploymentSpec) -> Result<Outbound, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("the request body is not valid JSON: {e}")))?;
    let mut chat = responses_to_chat::request(&value, &deployment.upstream_model)
        .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.0))?;
    if !deployment.stop.is_empty() {
        chat["stop"] = merge_stop(chat.get("stop"), &deployment.stop).into();
    }
    Ok(Outbound {
        dialect: Dialect::OpenAi,
        path: "chat/completions",
        body: chat.to_string().into_bytes(),
        headers: HeaderMap::new(),
    })
}

/// The Responses answer for a chat completion, or `None` if it is not JSON.
pub(crate) fn responses_response(body: &[u8], client_model: &str) -> Option<Vec<u8>> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    Some(responses_to_chat::response(&value, client_model, unix_now()).to_string().into_bytes())
}
