//! The pipeline's side of dialect translation: building the outbound request, translating
//! whole answers, and counting a prompt for a translated stream's `message_start`.

use axum::http::HeaderMap;
use moat_core::estimate::estimate_tokens;
use moat_core::{Dialect, ErrorCode};
use moat_upstream::{DeploymentSpec, UpstreamClient};
use moat_wire::json_object::merge_stop;
use moat_wire::translate::messages_to_chat::TranslateError;
use moat_wire::translate::{chat_to_messages, messages_to_chat, responses_to_chat};
use serde_json::Value;

use super::Outbound;
use super::ingress;
use crate::error::ApiError;

/// One translation of a request body, and where its result goes.
struct RequestTranslation {
    translate: fn(&Value, &str) -> Result<Value, TranslateError>,
    /// The member the deployment's own stop sequences are added to.
    stop_key: &'static str,
    dialect: Dialect,
    path: &'static str,
}

impl RequestTranslation {
    fn outbound(&self, body: &[u8], deployment: &DeploymentSpec, headers: HeaderMap) -> Result<Outbound, ApiError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("the request body is not valid JSON: {e}")))?;
        let mut translated = (self.translate)(&value, &deployment.upstream_model)
            .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.0))?;
        if !deployment.stop.is_empty() {
            translated[self.stop_key] = merge_stop(translated.get(self.stop_key), &deployment.stop).into();
        }
        Ok(Outbound { dialect: self.dialect, path: self.path, body: translated.to_string().into_bytes(), headers })
    }
}

/// The chat-completions request for a Messages `body`.
pub(crate) fn messages_request(body: &[u8], deployment: &DeploymentSpec) -> Result<Outbound, ApiError> {
    let translation = RequestTranslation {
        translate: messages_to_chat::request,
        stop_key: "stop",
        dialect: Dialect::OpenAi,
        path: "chat/completions",
    };
    translation.outbound(body, deployment, HeaderMap::new())
}

/// The Messages request for a chat-completions `body`, with the Anthropic headers the
/// deployment accepts.
pub(crate) fn chat_request(
    body: &[u8],
    client_headers: &HeaderMap,
    deployment: &DeploymentSpec,
) -> Result<Outbound, ApiError> {
    let translation = RequestTranslation {
        translate: chat_to_messages::request,
        stop_key: "stop_sequences",
        dialect: Dialect::Anthropic,
        path: "messages",
    };
    translation.outbound(body, deployment, ingress::upstream_headers(Dialect::Anthropic, client_headers, deployment))
}

/// The chat-completions request for a Responses API `body`.
pub(crate) fn responses_request(body: &[u8], deployment: &DeploymentSpec) -> Result<Outbound, ApiError> {
    let translation = RequestTranslation {
        translate: responses_to_chat::request,
        stop_key: "stop",
        dialect: Dialect::OpenAi,
        path: "chat/completions",
    };
    translation.outbound(body, deployment, HeaderMap::new())
}

/// The Messages answer for a chat-completions answer, or `None` if it is not JSON.
pub(crate) fn messages_response(body: &[u8], client_model: &str) -> Option<Vec<u8>> {
    let value: Value = serde_json::from_slice(body).ok()?;
    Some(messages_to_chat::response(&value, client_model).to_string().into_bytes())
}

/// The chat completion for a Messages answer, or `None` if it is not JSON.
pub(crate) fn chat_response(body: &[u8], client_model: &str) -> Option<Vec<u8>> {
    let value: Value = serde_json::from_slice(body).ok()?;
    Some(chat_to_messages::response(&value, client_model, unix_now()).to_string().into_bytes())
}

/// The Responses answer for a chat completion, or `None` if it is not JSON.
pub(crate) fn responses_response(body: &[u8], client_model: &str) -> Option<Vec<u8>> {
    let value: Value = serde_json::from_slice(body).ok()?;
    Some(responses_to_chat::response(&value, client_model, unix_now()).to_string().into_bytes())
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

/// Now, in Unix seconds, for the `created` field of translated answers.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
