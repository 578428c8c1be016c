//! Reading a request body under the configured size limit.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_LENGTH;
use moat_core::ErrorCode;

use crate::error::ApiError;

/// The body, or `body_too_large` when it exceeds `limit` bytes, or `request_timeout` when the
/// client takes longer than `timeout` to send it (a slow sender cannot hold a connection and
/// a request slot forever).
pub(crate) async fn read(body: Body, headers: &HeaderMap, limit: usize, timeout: Duration) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorCode::BodyTooLarge,
            format!("the request body is larger than the {limit}-byte limit (server.max_body_bytes)"),
        )
    };
    let declared = headers.get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let read = tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await.map_err(|_| {
        ApiError::new(
            ErrorCode::RequestTimeout,
            format!(
                "the request body took longer than {} to arrive (server.body_read_timeout)",
                humantime::format_duration(timeout)
            ),
        )
    })?;
    read.map_err(|error| {
        if is_length_limit(&error) {
            too_large()
        } else {
            ApiError::new(ErrorCode::InvalidRequest, "the request body could not be read")
        }
    })
}

fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}
