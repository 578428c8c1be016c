//! What went wrong talking to an upstream, classified once, where it happened.

use moat_core::ErrorCode;

/// Which time limit passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutPhase {
    /// Connecting.
    Connect,
    /// Waiting for the first byte of the answer.
    FirstByte,
    /// Silence between two chunks of a stream.
    Idle,
    /// The whole exchange.
    Total,
}

/// The kind of failure, which fixes the client-visible code and whether a retry may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    /// No connection could be made (refused, DNS, TLS handshake).
    Connect,
    /// A configured time limit passed.
    Timeout(TimeoutPhase),
    /// The connection broke before any byte of the answer arrived.
    Reset,
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
    /// Whether trying again (here or on another deployment) may succeed: connect failures and
    /// connect timeouts, a reset before the first byte, 429s, 502/503/504 and 529. Other
    /// timeouts are not, since the upstream may still be generating.
    pub fn retryable(&self) -> bool {
        match &self.kind {
            UpstreamErrorKind::Connect | UpstreamErrorKind::Reset => true,
            UpstreamErrorKind::Timeout(phase) => *phase == TimeoutPhase::Connect,
            UpstreamErrorKind::Protocol => false,
            UpstreamErrorKind::Status { status, .. } => {
                matches!(status, 429 | 502 | 503 | 504 | 529)
            }
        }
    }

    /// Whether the failure says something about the deployment's health (and so feeds its
    /// circuit breaker). A rejected request (4xx other than 429) says something about the
    /// request.
    pub fn counts_against_health(&self) -> bool {
        match &self.kind {
            UpstreamErrorKind::Status { status, .. } => *status == 429 || *status >= 500,
            _ => true,
        }
    }

    /// The code the client sees.
    pub fn code(&self) -> ErrorCode {
        match &self.kind {
            UpstreamErrorKind::Connect => ErrorCode::UpstreamUnavailable,
            UpstreamErrorKind::Timeout(TimeoutPhase::Connect) => ErrorCode::UpstreamConnectTimeout,
            UpstreamErrorKind::Timeout(TimeoutPhase::FirstByte) => ErrorCode::UpstreamFirstByteTimeout,
            UpstreamErrorKind::Timeout(TimeoutPhase::Idle) => ErrorCode::UpstreamIdleTimeout,
            UpstreamErrorKind::Timeout(TimeoutPhase::Total) => ErrorCode::UpstreamTimeout,
            UpstreamErrorKind::Reset | UpstreamErrorKind::Protocol => ErrorCode::UpstreamError,
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
    fn each_timeout_has_its_own_code_and_only_connecting_is_retried() {
        let timeout = |phase| UpstreamError {
            deployment: "d".into(),
            kind: UpstreamErrorKind::Timeout(phase),
            detail: String::new(),
        };
        let cases = [
            (TimeoutPhase::Connect, ErrorCode::UpstreamConnectTimeout, true),
            (TimeoutPhase::FirstByte, ErrorCode::UpstreamFirstByteTimeout, false),
            (TimeoutPhase::Idle, ErrorCode::UpstreamIdleTimeout, false),
            (TimeoutPhase::Total, ErrorCode::UpstreamTimeout, false),
        ];
        for (phase, code, retryable) in cases {
            assert_eq!((timeout(phase).code(), timeout(phase).retryable()), (code, retryable), "{phase:?}");
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
