//! The pipeline's side of dialect translation: building the outbound request, translating
//! whole answers, and counting a prompt for a translated stream's `message_start`.

use axum::http::HeaderMap;
use moat_core::estimate::estimate_tokens;
use moat_core::{Dialect, ErrorCode};
use moat_upstream::{DeploymentSpec, UpstreamClient};
use moat_wire::json_object::merge_stop;
use moat_wire::translate::{RequestOptions, Translation};
use serde_json::Value;

use super::Outbound;
use super::ingress;
use crate::error::ApiError;

/// The outbound request for the client's `body` under `translation`, and the client's own
/// stop sequences (a translated answer names the one that ended it).
pub(crate) fn outbound(
    translation: Translation,
    body: &[u8],
    client_headers: &HeaderMap,
    deployment: &DeploymentSpec,
) -> Result<(Outbound, Vec<String>), ApiError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("the request body is not valid JSON: {e}")))?;
    let options = RequestOptions { reasoning_effort: deployment.reasoning_effort };
    let mut translated = translation
        .request(&value, &deployment.upstream_model, options)
        .map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.0))?;
    let stop_key = translation.stop_key();
    if !deployment.stop.is_empty() {
        translated[stop_key] = merge_stop(translated.get(stop_key), &deployment.stop).into();
    }
    let dialect = translation.upstream_dialect();
    let headers = match dialect {
        Dialect::Anthropic => ingress::upstream_headers(Dialect::Anthropic, client_headers, deployment),
        Dialect::OpenAi => HeaderMap::new(),
    };
    let outbound =
        Outbound { dialect, path: translation.upstream_path(), body: translated.to_string().into_bytes(), headers };
    Ok((outbound, translation.client_stop_sequences(&value)))
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
