//! The one table of error codes every client-visible error comes from.
//!
//! A code is stable API: clients and dashboards match on it. Each code fixes the HTTP status and
//! the error `type` in both wire dialects, so the same failure reads the same whichever dialect
//! the client speaks. The mapping is an exhaustive `match`; adding a code forces a decision for
//! every column.

/// A stable, client-visible error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request body is not valid JSON.
    InvalidJson,
    /// The body is JSON but misses a required field or has one of the wrong type.
    InvalidRequest,
    /// The body exceeds `server.max_body_bytes`.
    BodyTooLarge,
    /// The client took longer than `server.body_read_timeout` to send the body.
    RequestTimeout,
    /// No key was presented in `Authorization: Bearer` or `x-api-key`.
    MissingApiKey,
    /// The presented key is not one moat issued.
    InvalidApiKey,
    /// The key was revoked.
    KeyRevoked,
    /// The key is past its expiry.
    KeyExpired,
    /// The key is valid but may not use this model.
    ModelNotAllowed,
    /// The route needs an admin key.
    AdminRequired,
    /// The caller's role does not allow this action.
    PermissionDenied,
    /// The object conflicts with one that exists (an e-mail or a name already taken).
    Conflict,
    /// No model of this name is configured.
    ModelNotFound,
    /// The model exists, but none of its deployments serves this endpoint's dialect.
    EndpointNotSupported,
    /// The path does not exist.
    NotFound,
    /// The path exists but not for this HTTP method.
    MethodNotAllowed,
    /// A rate limit (requests or tokens per minute, or concurrent requests) of the key, its
    /// user, its team or the model is reached; `retry-after` says when to try again.
    RateLimitExceeded,
    /// A spend budget of the key, its user, its team or the org has no room for this request's
    /// estimate; `retry-after` says when its period ends. Not retried by clients (HTTP 402):
    /// an agent must not spin on a spent budget.
    BudgetExceeded,
    /// The counters that enforce budgets and limits (Redis) cannot be reached, and the
    /// request is covered by a kind (budgets, by default) set to refuse rather than admit
    /// uncounted requests.
    AdmissionUnavailable,
    /// The upstream could not be reached (connection refused, DNS, TLS).
    UpstreamUnavailable,
    /// The upstream did not finish within its total time limit.
    UpstreamTimeout,
    /// No connection to the upstream could be made within its connect timeout.
    UpstreamConnectTimeout,
    /// The upstream sent nothing within its first-byte timeout.
    UpstreamFirstByteTimeout,
    /// A stream from the upstream went silent for longer than its idle timeout.
    UpstreamIdleTimeout,
    /// The prompt is longer than the context of every deployment that serves the model.
    ContextWindowExceeded,
    /// The caller's data policy keeps its traffic off every deployment of the model.
    PolicyDenied,
    /// The request holds credentials, and its data policy blocks sending them to the only
    /// deployments that could serve it (external ones).
    SecretDetected,
    /// The upstream answered with a server error or a malformed response.
    UpstreamError,
    /// The upstream refused the request as too many; the client may retry later.
    UpstreamRateLimited,
    /// The upstream said it is overloaded (HTTP 529); clients retry it as Anthropic's
    /// `overloaded_error`.
    UpstreamOverloaded,
    /// The upstream rejected moat's credentials for it: an operator must fix the deployment.
    UpstreamAuthFailed,
    /// The upstream rejected the request itself (for example, a prompt longer than its context).
    UpstreamBadRequest,
    /// moat is shutting down and takes no new requests.
    ShuttingDown,
    /// A bug in moat; the request id in the logs leads to it.
    InternalError,
}

/// Every code, in table order; the docs and the exhaustiveness tests iterate this.
pub const ALL_ERROR_CODES: &[ErrorCode] = &[
    ErrorCode::InvalidJson,
    ErrorCode::InvalidRequest,
    ErrorCode::BodyTooLarge,
    ErrorCode::RequestTimeout,
    ErrorCode::MissingApiKey,
    ErrorCode::InvalidApiKey,
    ErrorCode::KeyRevoked,
    ErrorCode::KeyExpired,
    ErrorCode::ModelNotAllowed,
    ErrorCode::AdminRequired,
    ErrorCode::PermissionDenied,
    ErrorCode::Conflict,
    ErrorCode::ModelNotFound,
    ErrorCode::EndpointNotSupported,
    ErrorCode::NotFound,
    ErrorCode::MethodNotAllowed,
    ErrorCode::RateLimitExceeded,
    ErrorCode::BudgetExceeded,
    ErrorCode::AdmissionUnavailable,
    ErrorCode::UpstreamUnavailable,
    ErrorCode::UpstreamTimeout,
    ErrorCode::UpstreamConnectTimeout,
    ErrorCode::UpstreamFirstByteTimeout,
    ErrorCode::UpstreamIdleTimeout,
    ErrorCode::ContextWindowExceeded,
    ErrorCode::PolicyDenied,
    ErrorCode::SecretDetected,
    ErrorCode::UpstreamError,
    ErrorCode::UpstreamRateLimited,
    ErrorCode::UpstreamOverloaded,
    ErrorCode::UpstreamAuthFailed,
    ErrorCode::UpstreamBadRequest,
    ErrorCode::ShuttingDown,
    ErrorCode::InternalError,
];

/// One row of the error table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorSpec {
    /// The stable code, as it appears in `error.code`.
    pub code: &'static str,
    /// The HTTP status the response carries.
    pub status: u16,
    /// The `error.type` in the OpenAI envelope.
    pub openai_type: &'static str,
    /// The `error.type` in the Anthropic envelope.
    pub anthropic_type: &'static str,
}

impl ErrorCode {
    /// The row of the table for this code.
    pub const fn spec(self) -> ErrorSpec {
        use ErrorCode as E;
        let (code, status, openai_type, anthropic_type) = match self {
            E::InvalidJson => ("invalid_json", 400, "invalid_request_error", "invalid_request_error"),
            E::InvalidRequest => ("invalid_request", 400, "invalid_request_error", "invalid_request_error"),
            E::BodyTooLarge => ("body_too_large", 413, "invalid_request_error", "request_too_large"),
            E::RequestTimeout => ("request_timeout", 408, "invalid_request_error", "invalid_request_error"),
            E::MissingApiKey => ("missing_api_key", 401, "authentication_error", "authentication_error"),
            E::InvalidApiKey => ("invalid_api_key", 401, "authentication_error", "authentication_error"),
            E::KeyRevoked => ("key_revoked", 401, "authentication_error", "authentication_error"),
            E::KeyExpired => ("key_expired", 401, "authentication_error", "authentication_error"),
            E::ModelNotAllowed => ("model_not_allowed", 403, "permission_error", "permission_error"),
            E::AdminRequired => ("admin_required", 403, "permission_error", "permission_error"),
            E::PermissionDenied => ("permission_denied", 403, "permission_error", "permission_error"),
            E::Conflict => ("conflict", 409, "invalid_request_error", "invalid_request_error"),
            E::ModelNotFound => ("model_not_found", 404, "invalid_request_error", "not_found_error"),
            E::EndpointNotSupported => {
                ("endpoint_not_supported", 400, "invalid_request_error", "invalid_request_error")
            }
            E::NotFound => ("not_found", 404, "invalid_request_error", "not_found_error"),
            E::MethodNotAllowed => ("method_not_allowed", 405, "invalid_request_error", "invalid_request_error"),
            E::RateLimitExceeded => ("rate_limit_exceeded", 429, "rate_limit_error", "rate_limit_error"),
            E::BudgetExceeded => ("budget_exceeded", 402, "insufficient_quota", "billing_error"),
            E::AdmissionUnavailable => ("admission_unavailable", 503, "server_error", "api_error"),
            E::UpstreamUnavailable => ("upstream_unavailable", 502, "server_error", "api_error"),
            E::UpstreamTimeout => ("upstream_timeout", 504, "server_error", "api_error"),
            E::UpstreamConnectTimeout => ("upstream_connect_timeout", 504, "server_error", "api_error"),
            E::UpstreamFirstByteTimeout => ("upstream_first_byte_timeout", 504, "server_error", "api_error"),
            E::UpstreamIdleTimeout => ("upstream_idle_timeout", 504, "server_error", "api_error"),
            E::ContextWindowExceeded => {
                ("context_window_exceeded", 400, "invalid_request_error", "invalid_request_error")
            }
            E::PolicyDenied => ("policy_denied", 403, "permission_error", "permission_error"),
            E::SecretDetected => ("secret_detected", 400, "invalid_request_error", "invalid_request_error"),
            E::UpstreamError => ("upstream_error", 502, "server_error", "api_error"),
            E::UpstreamRateLimited => ("upstream_rate_limited", 429, "rate_limit_error", "rate_limit_error"),
            E::UpstreamOverloaded => ("upstream_overloaded", 529, "server_error", "overloaded_error"),
            E::UpstreamAuthFailed => ("upstream_auth_failed", 502, "server_error", "api_error"),
            E::UpstreamBadRequest => ("upstream_bad_request", 400, "invalid_request_error", "invalid_request_error"),
            E::ShuttingDown => ("shutting_down", 503, "server_error", "overloaded_error"),
            E::InternalError => ("internal_error", 500, "server_error", "api_error"),
        };
        ErrorSpec { code, status, openai_type, anthropic_type }
    }

    /// The stable code string.
    pub const fn as_str(self) -> &'static str {
        self.spec().code
    }

    /// The HTTP status code.
    pub const fn status(self) -> u16 {
        self.spec().status
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_snake_case() {
        let mut seen = HashSet::new();
        for code in ALL_ERROR_CODES {
            let s = code.as_str();
            assert!(seen.insert(s), "duplicate code {s}");
            assert!(s.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{s}");
        }
    }

    #[test]
    fn statuses_are_client_or_server_errors() {
        for code in ALL_ERROR_CODES {
            assert!((400..600).contains(&code.status()), "{code}");
        }
    }
}
