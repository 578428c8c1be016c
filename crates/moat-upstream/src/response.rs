//! A deployment's answer: its head, and its body read whole or as a stream under the
//! deployment's time limits.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use http::HeaderValue;
use http::header::CONTENT_TYPE;
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::direct::{Lease, poll_body};
use crate::{TimeoutPhase, UpstreamError, UpstreamErrorKind};

/// A successful (2xx) response whose body has not been read yet.
#[derive(Debug)]
pub struct UpstreamResponse {
    pub(crate) deployment: String,
    pub(crate) total_timeout: Duration,
    /// When the whole exchange must be over.
    pub(crate) deadline: Instant,
    pub(crate) head: http::response::Parts,
    pub(crate) body: Incoming,
    /// The connection to drive while reading, for a deployment reached directly.
    pub(crate) lease: Option<Lease>,
}

impl UpstreamResponse {
    /// The response's content type, to pass on to the client.
    pub fn content_type(&self) -> Option<&HeaderValue> {
        self.head.headers.get(CONTENT_TYPE)
    }

    /// The HTTP status (2xx).
    pub fn status(&self) -> u16 {
        self.head.status.as_u16()
    }

    /// Reads the whole body (non-streaming responses).
    pub async fn bytes(mut self) -> Result<Bytes, UpstreamError> {
        let read = async {
            // The usual answer arrives in one piece: it is kept without a copy.
            let mut first: Option<Bytes> = None;
            let mut whole = BytesMut::new();
            while let Some(chunk) = poll_fn(|cx| poll_body(&mut self.body, &mut self.lease, cx)).await {
                let chunk = chunk.map_err(|_| broken(&self.deployment))?;
                if first.is_none() && whole.is_empty() {
                    first = Some(chunk);
                } else {
                    if let Some(first) = first.take() {
                        whole.extend_from_slice(&first);
                    }
                    whole.extend_from_slice(&chunk);
                }
            }
            Ok(first.unwrap_or_else(|| whole.freeze()))
        };
        match tokio::time::timeout_at(self.deadline, read).await {
            Ok(result) => result,
            Err(_) => Err(timeout_error(&self.deployment, TimeoutPhase::Total, self.total_timeout)),
        }
    }

    /// Waits up to `limit` for the first chunk of the body, so that a stream that fails
    /// before sending anything can still be retried: nothing has reached the client. `None`
    /// is an empty body.
    pub async fn first_chunk(&mut self, limit: Duration) -> Result<Option<Bytes>, UpstreamError> {
        let limit_at = Instant::now() + limit;
        let read = poll_fn(|cx| poll_body(&mut self.body, &mut self.lease, cx));
        match tokio::time::timeout_at(limit_at.min(self.deadline), read).await {
            Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
            Ok(None) => Ok(None),
            Ok(Some(Err(_))) => Err(UpstreamError {
                deployment: self.deployment.clone(),
                kind: UpstreamErrorKind::Reset,
                detail: "the connection to the deployment broke before it sent anything".into(),
            }),
            Err(_) => Err(first_byte_or_total(&self.deployment, limit, limit_at, self.total_timeout, self.deadline)),
        }
    }

    /// The rest of the body as it arrives (streaming responses); a silence longer than `idle`
    /// between chunks ends it with an idle timeout.
    pub fn into_stream(self, idle: Duration) -> BodyStream {
        let now = Instant::now();
        BodyStream {
            body: self.body,
            lease: self.lease,
            deployment: self.deployment,
            total_timeout: self.total_timeout,
            deadline: self.deadline,
            idle,
            last_chunk: now,
            timer: Box::pin(tokio::time::sleep_until((now + idle).min(self.deadline))),
            ended: false,
        }
    }
}

/// An upstream body as a stream of chunks, cut with an idle timeout and the total time limit.
///
/// The idle timer is set once and only moved when it fires early: a chunk only notes the time
/// it arrived. Re-arming a timer per chunk (a timer-wheel removal and insertion, a hundred
/// times a stream) was a tenth of a stream's cost.
pub struct BodyStream {
    body: Incoming,
    lease: Option<Lease>,
    deployment: String,
    total_timeout: Duration,
    deadline: Instant,
    idle: Duration,
    last_chunk: Instant,
    timer: Pin<Box<tokio::time::Sleep>>,
    ended: bool,
}

impl std::fmt::Debug for BodyStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodyStream").field("deployment", &self.deployment).field("ended", &self.ended).finish()
    }
}

impl Stream for BodyStream {
    type Item = Result<Bytes, UpstreamError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        match poll_body(&mut this.body, &mut this.lease, cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.last_chunk = Instant::now();
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(_))) => {
                this.ended = true;
                Poll::Ready(Some(Err(broken(&this.deployment))))
            }
            Poll::Ready(None) => {
                this.ended = true;
                Poll::Ready(None)
            }
            Poll::Pending => loop {
                if this.timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let now = Instant::now();
                if now >= this.deadline {
                    this.ended = true;
                    let error = timeout_error(&this.deployment, TimeoutPhase::Total, this.total_timeout);
                    return Poll::Ready(Some(Err(error)));
                }
                let due = this.last_chunk + this.idle;
                if now >= due {
                    this.ended = true;
                    return Poll::Ready(Some(Err(timeout_error(&this.deployment, TimeoutPhase::Idle, this.idle))));
                }
                // Chunks arrived since the timer was set: it fires next at the real deadline.
                this.timer.as_mut().reset(due.min(this.deadline));
            },
        }
    }
}

/// The connection broke while the answer was being read.
fn broken(deployment: &str) -> UpstreamError {
    UpstreamError {
        deployment: deployment.to_owned(),
        kind: UpstreamErrorKind::Protocol,
        detail: "the connection to the deployment broke".into(),
    }
}

/// A wait bounded by both the first-byte limit (due at `first_byte_by`) and the whole
/// exchange's `deadline` ran out: whichever came first is the one the client is told about.
pub(crate) fn first_byte_or_total(
    deployment: &str,
    first_byte: Duration,
    first_byte_by: Instant,
    total: Duration,
    deadline: Instant,
) -> UpstreamError {
    if deadline <= first_byte_by {
        timeout_error(deployment, TimeoutPhase::Total, total)
    } else {
        timeout_error(deployment, TimeoutPhase::FirstByte, first_byte)
    }
}

pub(crate) fn timeout_error(deployment: &str, phase: TimeoutPhase, limit: Duration) -> UpstreamError {
    let what = match phase {
        TimeoutPhase::Connect => "could not connect to the deployment",
        TimeoutPhase::FirstByte => "the deployment sent nothing",
        TimeoutPhase::Idle => "the deployment's stream went silent",
        TimeoutPhase::Total => "the deployment did not finish",
    };
    UpstreamError {
        deployment: deployment.to_owned(),
        kind: UpstreamErrorKind::Timeout(phase),
        detail: format!("{what} within {}", humanize(limit)),
    }
}

/// `1.5s`, `250ms`, `10s`: how a limit reads in an error message.
fn humanize(limit: Duration) -> String {
    if limit.subsec_millis() == 0 {
        format!("{}s", limit.as_secs())
    } else if limit.as_secs() == 0 {
        format!("{}ms", limit.as_millis())
    } else {
        format!("{:.1}s", limit.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_as_people_write_them() {
        assert_eq!(humanize(Duration::from_secs(10)), "10s");
        assert_eq!(humanize(Duration::from_millis(250)), "250ms");
        assert_eq!(humanize(Duration::from_millis(1500)), "1.5s");
    }
}
