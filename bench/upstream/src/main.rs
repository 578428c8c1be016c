//! A fake model server for benchmarks.
//!
//! Benchmarks compare moat with a direct connection to the same upstream, so the upstream must
//! cost as little as possible and the same for every request: every body is built once at
//! start-up, a request is only peeked at for `"stream":true`, and streams send `--chunks`
//! frames `--chunk-delay-us` apart. It answers `/v1/chat/completions` (OpenAI) and
//! `/v1/messages` (Anthropic), whole or as SSE, with usage, as real servers do.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::post;
use clap::Parser;

/// Command-line options.
#[derive(Debug, Parser)]
struct Options {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:9100")]
    listen: SocketAddr,
    /// Content frames per streamed answer.
    #[arg(long, default_value_t = 100)]
    chunks: usize,
    /// Pause between streamed frames, in microseconds (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    chunk_delay_us: u64,
}

/// Every answer, built once.
struct Answers {
    chat: Bytes,
    chat_stream: Vec<Bytes>,
    message: Bytes,
    message_stream: Vec<Bytes>,
    gap: Duration,
}

impl Answers {
    fn build(chunks: usize, gap: Duration) -> Answers {
        let usage = r#""usage":{"prompt_tokens":12,"completion_tokens":CHUNKS,"total_tokens":TOTAL}"#
            .replace("CHUNKS", &chunks.to_string())
            .replace("TOTAL", &(chunks + 12).to_string());
        let chat = format!(
            r#"{{"id":"chatcmpl-bench","object":"chat.completion","created":0,"model":"bench","choices":[{{"index":0,"message":{{"role":"assistant","content":"Hello from the benchmark upstream."}},"finish_reason":"stop"}}],{usage}}}"#
        );
        let mut chat_stream: Vec<Bytes> = (0..chunks)
            .map(|_| {
                Bytes::from_static(
                    b"data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"bench\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok \"},\"finish_reason\":null}]}\n\n",
                )
            })
            .collect();
        chat_stream.push(Bytes::from(format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"bench\",\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\ndata: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":\"bench\",\"choices\":[],{usage}}}\n\ndata: [DONE]\n\n"
        )));
        let message = format!(
            r#"{{"id":"msg_bench","type":"message","role":"assistant","model":"bench","content":[{{"type":"text","text":"Hello from the benchmark upstream."}}],"stop_reason":"end_turn","stop_sequence":null,"usage":{{"input_tokens":12,"output_tokens":{chunks}}}}}"#
        );
        let mut message_stream = vec![Bytes::from_static(
            b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_bench\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"bench\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        )];
        message_stream.extend((0..chunks).map(|_| {
            Bytes::from_static(
                b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"tok \"}}\n\n",
            )
        }));
        message_stream.push(Bytes::from(format!(
            "event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":0}}\n\nevent: message_delta\ndata: {{\"type\":\"message_delta\",\"delta\":{{\"stop_reason\":\"end_turn\",\"stop_sequence\":null}},\"usage\":{{\"output_tokens\":{chunks}}}}}\n\nevent: message_stop\ndata: {{\"type\":\"message_stop\"}}\n\n"
        )));
        Answers { chat: chat.into(), chat_stream, message: message.into(), message_stream, gap }
    }
}

/// Whether a request body asks for a stream; a peek, not a parse.
fn wants_stream(body: &[u8]) -> bool {
    body.windows(7).any(|w| w == b"\"stream") && {
        let compact: Vec<u8> = body.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
        compact.windows(13).any(|w| w == b"\"stream\":true")
    }
}

fn whole(body: &Bytes) -> Response {
    let mut response = Response::new(Body::from(body.clone()));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

fn streamed(frames: &[Bytes], gap: Duration) -> Response {
    let frames = frames.to_vec();
    let body = futures_util::stream::unfold(frames.into_iter(), move |mut rest| async move {
        let frame = rest.next()?;
        if !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
        Some((Ok::<_, std::convert::Infallible>(frame), rest))
    });
    let mut response = Response::new(Body::from_stream(body));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    response
}

async fn chat(State(answers): State<Arc<Answers>>, body: Bytes) -> Response {
    if wants_stream(&body) { streamed(&answers.chat_stream, answers.gap) } else { whole(&answers.chat) }
}

async fn messages(State(answers): State<Arc<Answers>>, body: Bytes) -> Response {
    if wants_stream(&body) { streamed(&answers.message_stream, answers.gap) } else { whole(&answers.message) }
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let options = Options::parse();
    let answers = Arc::new(Answers::build(options.chunks, Duration::from_micros(options.chunk_delay_us)));
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/messages", post(messages))
        .with_state(answers);
    // Each frame is its own write; without TCP_NODELAY Nagle's algorithm would hold frames
    // back and every target would measure the same artificial delay.
    let listener = axum::serve::ListenerExt::tap_io(tokio::net::TcpListener::bind(options.listen).await?, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, app).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_recognised_by_a_peek() {
        assert!(wants_stream(br#"{"model":"m","stream":true}"#));
        assert!(wants_stream(br#"{"model":"m", "stream" : true}"#));
        assert!(!wants_stream(br#"{"model":"m","stream":false}"#));
        assert!(!wants_stream(br#"{"model":"m"}"#));
    }

    #[test]
    fn every_stream_ends_with_its_dialects_terminal_frame_and_usage() {
        let answers = Answers::build(3, Duration::ZERO);
        assert_eq!(answers.chat_stream.len(), 4);
        let last =
            String::from_utf8_lossy(answers.chat_stream.last().map(|b| b.as_ref()).unwrap_or_default()).into_owned();
        assert!(last.ends_with("data: [DONE]\n\n") && last.contains("\"completion_tokens\":3"));
        let last =
            String::from_utf8_lossy(answers.message_stream.last().map(|b| b.as_ref()).unwrap_or_default()).into_owned();
        assert!(last.contains("message_stop") && last.contains("\"output_tokens\":3"));
    }
}
