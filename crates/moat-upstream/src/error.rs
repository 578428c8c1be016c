//! What went wrong talking to an upstream, classified once, where it happened.

use moat_core::ErrorCode;

/// The kind of failure, which fixes the client-visible code and whether a retry may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    /// No connection could be made (refused, DNS, TLS handshake).
    Connect,
    /// A configured time limit passed.
    Timeout,
    /// The upstream answered with an error status.
    Status {
        /// The HTTP status.
        status: u16,
        /// The upstream's `retry-after`, in seconds, when it sent one.
        retry_after_secs: Option<u64>,
    },
    /// The connection broke or the response was unreadable.
    Protocol,
}

/// A failed exchange with an upstream.
#[derive(Debug, Clone, thiserror::Error)]
#[error("deployment `{deployment}`: {detail}")]
pub struct UpstreamError {
    /// The deployment's name.
    pub deployment: String,
    /// The classification.
    pub kind: UpstreamErrorKind,
    /// A short description safe to show a client: no credentials, no raw upstream body.
    pub detail: String,
}

impl UpstreamError {
    /// Whether trying again (here or on another deployment) may succeed. Connect failures,
    /// 429s, 502/503/504 and 529 are retryable; timeouts are not, since the upstream may still
    /// be generating.
    pub fn retryable(&self) -> bool {
        match &self.kind {
            UpstreamErrorKind::Connect => true,
            UpstreamErrorKind::Timeout | UpstreamErrorKind::Protocol => false,
            UpstreamErrorKind::Status { status, .. } => {
                matches!(status, 429 | 502 | 503 | 504 | 529)
            }
        }
    }

    /// The code the client sees.
    pub fn code(&self) -> ErrorCode {
        match &self.kind {
            UpstreamErrorKind::Connect => ErrorCode::UpstreamUnavailable,
            UpstreamErrorKind::Timeout => ErrorCode::UpstreamTimeout,
            UpstreamErrorKind::Protocol => ErrorCode::UpstreamError,
            UpstreamErrorKind::Status { status, .. } => match status {
                429 => ErrorCode::UpstreamRateLimited,
                529 => ErrorCode::UpstreamOverloaded,
                401 | 403 => ErrorCode::UpstreamAuthFailed,
                400..=499 => ErrorCode::UpstreamBadRequest,
                _ => ErrorCode::UpstreamError,
            },
        }
    }

    /// The upstream's `retry-after`, to pass on to the client.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match &self.kind {
            UpstreamErrorKind::Status { retry_after_secs, .. } => *retry_after_secs,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> UpstreamError {
        UpstreamError {
            deployment: "d".into(),
            kind: UpstreamErrorKind::Status { status, retry_after_secs: None },
            detail: String::new(),
        }
    }

    #[test]
    fn statuses_map_to_codes_and_retryability() {
        let cases = [
            (400, ErrorCode::UpstreamBadRequest, false),
            (401, ErrorCode::UpstreamAuthFailed, false),
            (404, ErrorCode::UpstreamBadRequest, false),
            (429, ErrorCode::UpstreamRateLimited, true),
            (500, ErrorCode::UpstreamError, false),
            (502, ErrorCode::UpstreamError, true),
            (503, ErrorCode::UpstreamError, true),
            (529, ErrorCode::UpstreamOverloaded, true),
        ];
        for (code, expected, retryable) in cases {
            assert_eq!(status(code).code(), expected, "{code}");
            assert_eq!(status(code).retryable(), retryable, "{code}");
        }
    }
}
