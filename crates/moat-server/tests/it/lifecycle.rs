//! Client disconnects and graceful shutdown: usage is never lost.

use std::time::Duration;

use futures_util::StreamExt;
use moat_testkit::{FakeUpstream, Reply, StreamEnd};
use serde_json::json;

use crate::support::{TestGateway, chat, default_config};

fn streaming_chat() -> serde_json::Value {
    let mut body = chat("m");
    body["stream"] = json!(true);
    body
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_cancels_the_upstream_and_is_metered() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let key = gateway.client_key().await;
    upstream.push(Reply::chat_stream(&["one ", "two three"], None).ending(StreamEnd::Hang));
    let response = gateway.post("/v1/chat/completions", &key, &streaming_chat()).await;
    let mut stream = response.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("two three") {
        let chunk = stream.next().await.expect("more").expect("chunk");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(stream);

    assert!(upstream.wait_streams_dropped(1, Duration::from_secs(10)).await, "the upstream request was cancelled");
    let record = &gateway.usage(1).await[0];
    assert_eq!(record["status"], 499);
    assert_eq!(record["error_code"], "client_closed");
    assert_eq!(record["estimated"], true);
    assert_eq!(record["output_tokens"], 3, "what was generated before the disconnect is counted");
    assert_eq!(record["input_tokens"], 3);
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_stream_finish() {
    let upstream = FakeUpstream::start().await;
    let mut gateway = TestGateway::start(&upstream).await;
    let key = gateway.client_key().await;
    let pieces = ["a", "b", "c", "d", "e", "f"];
    upstream.push(
        Reply::chat_stream(&pieces, Some(moat_testkit::FakeUsage { prompt: 4, completion: 6, cached: 0 }))
            .with_gap(Duration::from_millis(50)),
    );
    let response = gateway.post("/v1/chat/completions", &key, &streaming_chat()).await;
    let mut stream = response.bytes_stream();
    let first = stream.next().await.expect("first").expect("chunk");
    assert!(!first.is_empty());

    let server = gateway.begin_shutdown();
    let mut rest = String::from_utf8_lossy(&first).into_owned();
    while let Some(chunk) = stream.next().await {
        rest.push_str(&String::from_utf8_lossy(&chunk.expect("chunk")));
    }
    assert!(rest.trim_end().ends_with("data: [DONE]"), "the stream completed: {rest}");
    // The gateway is gone; its usage was flushed to the store before it returned.
    let records = gateway.records_after_shutdown(server).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, 200);
    assert_eq!(records[0].usage.output, 6);
}

#[tokio::test]
async fn shutdown_cuts_streams_that_outlast_the_grace_period() {
    let upstream = FakeUpstream::start().await;
    let config = default_config(&upstream).replace("shutdown_grace = \"5s\"", "shutdown_grace = \"200ms\"");
    let mut gateway = TestGateway::start_with(&config).await;
    let key = gateway.client_key().await;
    upstream.push(Reply::chat_stream(&["endless"], None).ending(StreamEnd::Hang));
    let response = gateway.post("/v1/chat/completions", &key, &streaming_chat()).await;
    let server = gateway.begin_shutdown();
    let text =
        tokio::time::timeout(Duration::from_secs(10), response.text()).await.expect("the stream is cut").expect("body");
    assert!(text.contains("\"code\":\"shutting_down\""), "{text}");
    let records = gateway.records_after_shutdown(server).await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].error_code.as_deref(), Some("shutting_down"));
    assert!(upstream.wait_streams_dropped(1, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn a_client_that_hangs_up_after_the_final_frame_is_recorded_as_complete() {
    let upstream = FakeUpstream::start().await;
    let gateway = TestGateway::start(&upstream).await;
    let key = gateway.client_key().await;
    // The upstream sends everything, `[DONE]` included, but keeps the connection open; SDKs
    // stop reading at `[DONE]` and close theirs.
    let Reply::Stream { frames, gap, .. } =
        Reply::chat_stream(&["done"], Some(moat_testkit::FakeUsage { prompt: 5, completion: 1, cached: 0 }))
    else {
        unreachable!("chat_stream builds a stream")
    };
    upstream.push(Reply::Stream { frames, gap, end: StreamEnd::Hang });
    let response = gateway.post("/v1/chat/completions", &key, &streaming_chat()).await;
    let mut stream = response.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("[DONE]") {
        seen.push_str(&String::from_utf8_lossy(&stream.next().await.expect("more").expect("chunk")));
    }
    drop(stream);
    let record = &gateway.usage(1).await[0];
    assert_eq!(record["status"], 200, "{record}");
    assert_eq!(record["error_code"], serde_json::Value::Null);
    assert_eq!((record["input_tokens"].as_u64(), record["output_tokens"].as_u64()), (Some(5), Some(1)));
}
