//! Relaying an upstream SSE stream to the client with a usage tap.
//!
//! Frames go out as they arrive, byte for byte; the tap only reads them. The one frame moat may
//! hold back is the usage-only chunk it asked for itself (`include_usage`) when the client did
//! not ask for it. The stream owns the request's [`Meter`]: at the end of the upstream stream it
//! records success; if the upstream breaks it sends the client an error frame and records the
//! failure; if the client goes away the stream is dropped, which drops the upstream response
//! (the upstream stops generating) and lets the meter record what was seen.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use bytes::BytesMut;
use futures_util::Stream;
use moat_core::ErrorCode;
use moat_upstream::UpstreamError;
use moat_wire::anthropic;
use moat_wire::error_envelope::{Dialect, error_body};
use moat_wire::openai::{self, STREAM_DONE};
use moat_wire::sse::{SseDecoder, SseFrame, encode_frame};
use moat_wire::translate::StreamTranslate;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::Meter;
use super::ingress::Endpoint;

type UpstreamStream = Pin<Box<dyn Stream<Item = Result<Bytes, UpstreamError>> + Send>>;

/// How to read the frames of one dialect's stream.
#[derive(Debug)]
pub(crate) enum StreamTap {
    /// OpenAI chunks; hold back the usage-only chunk when moat asked for it on its own.
    OpenAi { strip_usage_chunk: bool },
    /// Anthropic events: usage in `message_start` and `message_delta`.
    Anthropic,
    /// Responses API events from an upstream that serves them itself: usage in the terminal
    /// `response.completed` (or `.incomplete`/`.failed`).
    Responses,
    /// Frames in the `upstream` dialect (where usage is read), translated for the client.
    Translated { upstream: Dialect, client: Endpoint, translator: Box<dyn StreamTranslate> },
}

/// The client-facing body of a streamed response.
pub(crate) struct MeteredStream {
    upstream: UpstreamStream,
    decoder: SseDecoder,
    out: BytesMut,
    /// `None` once the stream has ended and the meter has been settled.
    meter: Option<Meter>,
    tap: StreamTap,
    /// The terminal frame (`[DONE]`, `message_stop`) was seen: the response is complete even if
    /// the client hangs up before the upstream closes the connection.
    complete: bool,
    /// Nothing more will be sent.
    ended: bool,
    hard_stop: Pin<Box<WaitForCancellationFutureOwned>>,
    /// Fires after `keepalive_every` without upstream bytes; `None` disables keep-alives.
    keepalive: Option<Pin<Box<tokio::time::Sleep>>>,
    keepalive_every: Duration,
    /// The last upstream byte or keep-alive.
    last_activity: tokio::time::Instant,
}

/// An SSE comment: ignored by every client, but traffic for every proxy on the way.
const KEEPALIVE: &[u8] = b": keep-alive\n\n";
/// Frames already read from the upstream are sent together up to this many bytes.
const COALESCE_BYTES: usize = 32 * 1024;

impl MeteredStream {
    pub(crate) fn new(upstream: UpstreamStream, meter: Meter, tap: StreamTap, hard_stop: CancellationToken) -> Self {
        MeteredStream {
            upstream,
            decoder: SseDecoder::new(),
            out: BytesMut::new(),
            meter: Some(meter),
            tap,
            complete: false,
            ended: false,
            hard_stop: Box::pin(hard_stop.cancelled_owned()),
            keepalive: None,
            keepalive_every: Duration::ZERO,
            last_activity: tokio::time::Instant::now(),
        }
    }

    /// Sends a keep-alive comment after `every` without a byte from the upstream.
    pub(crate) fn with_keepalive(mut self, every: Duration) -> Self {
        self.keepalive = Some(Box::pin(tokio::time::sleep(every)));
        self.keepalive_every = every;
        self.last_activity = tokio::time::Instant::now();
        self
    }

    /// Whether `keepalive_every` has passed since the last upstream byte or keep-alive. The
    /// timer is only moved when it fires (to the real deadline, if bytes came meanwhile), not
    /// on every chunk: a timer reset per chunk costs a timer-wheel removal and insertion.
    fn keepalive_due(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(sleep) = self.keepalive.as_mut() else { return false };
        loop {
            if sleep.as_mut().poll(cx).is_pending() {
                return false;
            }
            let due = self.last_activity + self.keepalive_every;
            let now = tokio::time::Instant::now();
            if now >= due {
                self.last_activity = now;
                sleep.as_mut().reset(now + self.keepalive_every);
                return true;
            }
            sleep.as_mut().reset(due);
        }
    }

    /// Taps one frame and appends what the client should receive of it to `self.out`. Frames
    /// after completion still pass; only their usage is no longer read.
    fn tap(&mut self, frame: SseFrame) {
        let Some(data) = frame.data.as_deref() else {
            if matches!(self.tap, StreamTap::OpenAi { .. } | StreamTap::Anthropic | StreamTap::Responses) {
                self.out.extend_from_slice(&frame.raw);
            }
            return;
        };
        let meter = self.meter.as_mut();
        match &mut self.tap {
            StreamTap::OpenAi { strip_usage_chunk } => {
                self.complete |= data == STREAM_DONE;
                let view = (data != STREAM_DONE).then(|| openai::read_response(data.as_bytes())).flatten();
                let usage_only = view.as_ref().is_some_and(|v| v.usage.is_some() && !v.has_choices);
                if let (Some(view), Some(meter)) = (view, meter) {
                    meter.observe(view);
                }
                if !(usage_only && *strip_usage_chunk) {
                    self.out.extend_from_slice(&frame.raw);
                }
            }
            StreamTap::Responses => {
                if let Some((view, terminal)) = moat_wire::responses::read_event(data.as_bytes()) {
                    self.complete |= terminal;
                    if let Some(meter) = meter {
                        meter.observe(view);
                    }
                }
                self.out.extend_from_slice(&frame.raw);
            }
            StreamTap::Anthropic => {
                self.complete |=
                    frame.event.as_deref() == Some("message_stop") || data.contains(r#""type":"message_stop""#);
                if let (Some(view), Some(meter)) = (anthropic::read_event(data.as_bytes()), meter) {
                    meter.observe(view);
                }
                self.out.extend_from_slice(&frame.raw);
            }
            StreamTap::Translated { upstream, translator, .. } => {
                let view = match upstream {
                    Dialect::OpenAi => (data != STREAM_DONE).then(|| openai::read_response(data.as_bytes())).flatten(),
                    Dialect::Anthropic => anthropic::read_event(data.as_bytes()),
                };
                if let (Some(view), Some(meter)) = (view, meter) {
                    meter.observe(view);
                }
                self.out.extend_from_slice(&translator.push(data));
                self.complete |= translator.is_finished();
            }
        }
    }

    /// Ends the stream with an error frame in the stream's dialect (an OpenAI `data:` error
    /// object, or an Anthropic `error` event), and records the failure.
    /// Nothing is sent when the response was already complete.
    fn fail(&mut self, code: ErrorCode, detail: &str) -> Option<Bytes> {
        self.ended = true;
        let meter = self.meter.take()?;
        meter.finish(code.status(), Some(code.as_str()));
        Some(match &self.tap {
            StreamTap::Responses | StreamTap::Translated { client: Endpoint::Responses, .. } => {
                encode_frame(Some("error"), &error_body(Dialect::OpenAi, code, detail, None))
            }
            StreamTap::Anthropic | StreamTap::Translated { client: Endpoint::Messages, .. } => {
                encode_frame(Some("error"), &error_body(Dialect::Anthropic, code, detail, None))
            }
            StreamTap::OpenAi { .. } | StreamTap::Translated { .. } => {
                encode_frame(None, &error_body(Dialect::OpenAi, code, detail, None))
            }
        })
    }
}

impl Stream for MeteredStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            if this.hard_stop.as_mut().poll(cx).is_ready() {
                if let Some(frame) = this.fail(ErrorCode::ShuttingDown, "moat is shutting down and ended this stream") {
                    this.out.extend_from_slice(&frame);
                }
                if this.out.is_empty() {
                    return Poll::Ready(None);
                }
                return Poll::Ready(Some(Ok(this.out.split().freeze())));
            }
            match this.upstream.as_mut().poll_next(cx) {
                // Everything the upstream had ready goes to the client in one write.
                Poll::Pending if !this.out.is_empty() => {
                    return Poll::Ready(Some(Ok(this.out.split().freeze())));
                }
                Poll::Pending => {
                    if this.keepalive_due(cx) && !this.complete {
                        return Poll::Ready(Some(Ok(Bytes::from_static(KEEPALIVE))));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Some(Ok(chunk))) => {
                    this.last_activity = tokio::time::Instant::now();
                    if let Some(meter) = this.meter.as_mut() {
                        meter.mark_first_byte();
                    }
                    this.decoder.push(&chunk);
                    while let Some(frame) = this.decoder.next_frame() {
                        this.tap(frame);
                    }
                    if this.complete
                        && let Some(meter) = this.meter.take()
                    {
                        meter.finish(200, None);
                    }
                    // Frames that arrived together leave together, up to a bound: one write
                    // per frame was most of a stream's cost.
                    if this.out.len() >= COALESCE_BYTES {
                        return Poll::Ready(Some(Ok(this.out.split().freeze())));
                    }
                }
                Poll::Ready(Some(Err(error))) => {
                    if let Some(meter) = this.meter.as_mut() {
                        meter.note_upstream_error(&error);
                    }
                    let frame = this.fail(error.code(), &error.detail);
                    if let Some(frame) = frame {
                        this.out.extend_from_slice(&frame);
                    }
                    if this.out.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(this.out.split().freeze())));
                }
                Poll::Ready(None) => {
                    this.ended = true;
                    if let Some(frame) = this.decoder.finish() {
                        this.tap(frame);
                    }
                    // An upstream that ends without its terminal frame still gets a complete answer.
                    let mut tail = Vec::new();
                    match &mut this.tap {
                        StreamTap::Translated { translator, .. } => translator.finish(&mut tail),
                        StreamTap::OpenAi { .. } | StreamTap::Anthropic | StreamTap::Responses => {}
                    }
                    this.out.extend_from_slice(&tail);
                    if let Some(meter) = this.meter.take() {
                        meter.finish(200, None);
                    }
                    if this.out.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(this.out.split().freeze())));
                }
            }
        }
    }
}
