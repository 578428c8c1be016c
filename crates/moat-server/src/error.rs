//! The error a handler returns: a code from the one table, a message for people, rendered in
//! the caller's dialect. Rendering never logs; the access log and the usage record say what
//! happened, once.

use axum::http::HeaderMap;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use moat_core::ErrorCode;
use moat_wire::error_envelope::{Dialect, error_body};

/// A client-visible error.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
    pub(crate) param: Option<&'static str>,
    pub(crate) retry_after_secs: Option<u64>,
    pub(crate) dialect: Dialect,
}

impl ApiError {
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError { code, message: message.into(), param: None, retry_after_secs: None, dialect: Dialect::OpenAi }
    }

    /// Renders this error in `dialect`'s envelope.
    pub(crate) fn in_dialect(mut self, dialect: Dialect) -> Self {
        self.dialect = dialect;
        self
    }

    pub(crate) fn with_param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    pub(crate) fn with_retry_after(mut self, secs: Option<u64>) -> Self {
        self.retry_after_secs = secs;
        self
    }

    /// An internal failure: the message names no detail, since details may hold secrets or
    /// internals; the caller logs the cause with the request id.
    pub(crate) fn internal() -> Self {
        ApiError::new(
            ErrorCode::InternalError,
            "moat failed to handle this request; the request id in x-request-id leads to its log line",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = error_body(self.dialect, self.code, &self.message, self.param);
        let mut response =
            (status, [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response();
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// The dialect a request speaks when its route does not say: Anthropic clients always send
/// `anthropic-version`.
pub(crate) fn dialect_of(headers: &HeaderMap) -> Dialect {
    if headers.contains_key("anthropic-version") { Dialect::Anthropic } else { Dialect::OpenAi }
}
