//! OpenTelemetry traces: spans as an OTLP collector receives them, and the trace context the
//! upstream receives.

use std::time::Duration;

use moat_testkit::{FakeUpstream, FakeUsage, OtlpReceiver, ReceivedSpan, Reply};
use serde_json::json;

use crate::support::{OTLP_TOKEN, TestGateway, UPSTREAM_SECRET, chat};

/// The caller's trace, as a W3C `traceparent` (sampled).
const CALLER_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

const SERVER: i32 = 2;
const CLIENT: i32 = 3;
const STATUS_ERROR: i32 = 2;

fn config(upstream: &FakeUpstream, receiver: &OtlpReceiver, telemetry: &str) -> String {
    format!(
        r#"
        [routing]
        max_attempts = 2
        backoff_base = "1ms"
        backoff_max = "1ms"

        [telemetry]
        endpoint = "{endpoint}"
        service_name = "moat-test"
        export_interval = "50ms"
        headers = {{ authorization = {{ env = "MOAT_TEST_OTLP_TOKEN" }} }}
        {telemetry}

        [[deployments]]
        name = "fake"
        url = "{url}"
        upstream_model = "upstream-m"
        api_key = {{ env = "FAKE_UPSTREAM_KEY" }}
        timeout = "5s"

        [[models]]
        name = "m"
        deployments = ["fake"]
        "#,
        endpoint = receiver.endpoint(),
        url = upstream.base_url(),
    )
}

/// A chat request for `m` that carries the caller's sampled trace context.
async fn post_in_callers_trace(gateway: &TestGateway, key: &str) -> reqwest::Response {
    gateway
        .http
        .post(format!("{}/v1/chat/completions", gateway.url))
        .bearer_auth(key)
        .header("traceparent", format!("00-{CALLER_TRACE}-{CALLER_SPAN}-01"))
        .json(&chat("m"))
        .send()
        .await
        .expect("send")
}

async fn spans_of_trace(receiver: &OtlpReceiver, trace_id: &str, n: usize) -> Vec<ReceivedSpan> {
    let spans = receiver
        .wait_for(Duration::from_secs(10), |spans| spans.iter().filter(|s| s.trace_id == trace_id).count() >= n)
        .await;
    spans.into_iter().filter(|s| s.trace_id == trace_id).collect()
}

#[tokio::test]
async fn a_request_is_a_genai_server_span_with_a_client_span_per_attempt_and_context_reaches_the_upstream() {
    let upstream = FakeUpstream::start().await;
    let receiver = OtlpReceiver::start().await;
    let gateway = TestGateway::start_with(&config(&upstream, &receiver, "")).await;
    let key = gateway.client_key().await;
    upstream.push(Reply::error(503, "warming up"));
    upstream.push(Reply::chat("hi", Some(FakeUsage { prompt: 30, completion: 9, cached: 4 })));

    let response = post_in_callers_trace(&gateway, &key).await;
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    let _ = response.bytes().await;

    let spans = spans_of_trace(&receiver, CALLER_TRACE, 3).await;
    assert_eq!(spans.len(), 3, "one request span and two attempts: {spans:#?}");
    let server = spans.iter().find(|s| s.kind == SERVER).expect("a server span");
    assert_eq!(server.name, "chat m");
    assert_eq!(server.parent_span_id, CALLER_SPAN, "a child of the caller's span");
    assert_eq!(server.str("gen_ai.operation.name"), Some("chat"));
    assert_eq!(server.str("gen_ai.request.model"), Some("m"));
    assert_eq!(server.str("gen_ai.response.model"), Some("upstream-m"));
    assert_eq!(server.str("gen_ai.provider.name"), Some("openai"));
    assert_eq!(server.bool("gen_ai.request.stream"), Some(false));
    assert_eq!(server.int("gen_ai.usage.input_tokens"), Some(30));
    assert_eq!(server.int("gen_ai.usage.output_tokens"), Some(9));
    assert_eq!(server.int("gen_ai.usage.cache_read.input_tokens"), Some(4));
    assert_eq!(server.int("http.response.status_code"), Some(200));
    assert_eq!(server.str("http.route"), Some("/v1/chat/completions"));
    assert_eq!(server.str("moat.request_id"), Some(request_id.as_str()));
    assert_eq!(server.str("moat.deployment"), Some("fake"));
    assert_eq!(server.int("moat.attempts"), Some(2));
    assert_eq!(server.status_code, 0, "a request that succeeded on retry is not an error");
    assert!(server.str("error.type").is_none());
    assert_eq!(server.resource.get("service.name"), Some(&moat_testkit::Attr::Str("moat-test".into())));

    let mut attempts: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.kind == CLIENT).collect();
    attempts.sort_by_key(|s| s.start_unix_nanos);
    for attempt in &attempts {
        assert_eq!(attempt.parent_span_id, server.span_id, "attempts are children of the request");
        assert_eq!(attempt.name, "chat upstream-m");
        assert_eq!(attempt.str("moat.deployment"), Some("fake"));
        assert_eq!(attempt.str("server.address"), Some("127.0.0.1"));
        assert!(attempt.int("server.port").is_some_and(|p| p > 0));
        assert!(attempt.start_unix_nanos >= server.start_unix_nanos && attempt.end_unix_nanos <= server.end_unix_nanos);
    }
    assert_eq!(attempts[0].status_code, STATUS_ERROR);
    assert!(attempts[0].str("error.type").is_some_and(|t| t.starts_with("upstream")), "{:?}", attempts[0]);
    assert_eq!(attempts[1].status_code, 0);

    // Each upstream request carried its own attempt's context.
    let sent = upstream.requests();
    assert_eq!(sent.len(), 2);
    for (request, attempt) in sent.iter().zip(&attempts) {
        let traceparent = request.headers.get("traceparent").and_then(|v| v.to_str().ok());
        assert_eq!(traceparent, Some(format!("00-{CALLER_TRACE}-{}-01", attempt.span_id).as_str()));
    }

    // The collector got the configured credential; no span holds a secret or the prompt.
    let headers = receiver.export_headers();
    assert!(headers.iter().all(|h| h.get("authorization").and_then(|v| v.to_str().ok()) == Some(OTLP_TOKEN)));
    let everything = format!("{:?}", receiver.spans());
    for secret in [UPSTREAM_SECRET, key.as_str(), OTLP_TOKEN, "hello there friend"] {
        assert!(!everything.contains(secret), "`{secret}` must not appear in spans");
    }
}

#[tokio::test]
async fn a_stream_has_its_time_to_first_chunk_and_a_refusal_its_error_type() {
    let upstream = FakeUpstream::start().await;
    let receiver = OtlpReceiver::start().await;
    let gateway = TestGateway::start_with(&config(&upstream, &receiver, "")).await;
    let key = gateway.client_key().await;
    upstream.push(
        Reply::chat_stream(&["a", "b", "c"], Some(FakeUsage { prompt: 5, completion: 3, cached: 0 }))
            .with_gap(Duration::from_millis(30)),
    );
    let body = json!({ "model": "m", "stream": true, "messages": [{ "role": "user", "content": "hi" }] });
    let response = gateway.post("/v1/chat/completions", &key, &body).await;
    assert_eq!(response.status(), 200);
    let _ = response.bytes().await;
    let refused = gateway.post("/v1/chat/completions", &key, &chat("no-such-model")).await;
    assert_eq!(refused.status(), 404);

    let spans = receiver
        .wait_for(Duration::from_secs(10), |spans| spans.iter().filter(|s| s.kind == SERVER).count() >= 2)
        .await;
    let stream = spans.iter().find(|s| s.name == "chat m").expect("the stream's span");
    assert_eq!(stream.bool("gen_ai.request.stream"), Some(true));
    assert_eq!(stream.int("gen_ai.usage.output_tokens"), Some(3));
    let ttft = stream.double("gen_ai.response.time_to_first_chunk").expect("time to first chunk");
    let whole = (stream.end_unix_nanos - stream.start_unix_nanos) as f64 / 1e9;
    assert!(ttft > 0.0 && ttft < whole + 0.002, "first chunk after {ttft}s of a {whole}s stream");
    assert!(whole >= 0.06, "the span lasts until the stream ends ({whole}s)");

    let missing = spans.iter().find(|s| s.name == "chat no-such-model").expect("the refusal's span");
    assert_eq!(missing.str("error.type"), Some("model_not_found"));
    assert_eq!(missing.int("http.response.status_code"), Some(404));
    assert_eq!(missing.status_code, 0, "a client's mistake is not a server error");
    assert!(spans.iter().all(|s| s.parent_span_id.is_empty() || s.kind == CLIENT), "no caller: root spans");
}

#[tokio::test]
async fn sampling_drops_root_traces_but_follows_a_sampled_caller_and_context_still_flows() {
    let upstream = FakeUpstream::start().await;
    let receiver = OtlpReceiver::start().await;
    let gateway = TestGateway::start_with(&config(&upstream, &receiver, "sample_ratio = 0.0")).await;
    let key = gateway.client_key().await;

    let unsampled = gateway.post("/v1/chat/completions", &key, &chat("m")).await;
    assert_eq!(unsampled.status(), 200);
    let traceparent =
        upstream.requests()[0].headers.get("traceparent").and_then(|v| v.to_str().ok().map(str::to_owned));
    let traceparent = traceparent.expect("context reaches the upstream even when not recorded");
    assert!(traceparent.ends_with("-00"), "not sampled: {traceparent}");

    let sampled = post_in_callers_trace(&gateway, &key).await;
    assert_eq!(sampled.status(), 200);
    let spans = spans_of_trace(&receiver, CALLER_TRACE, 2).await;
    assert_eq!(spans.len(), 2, "the caller sampled its trace, so moat records it");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(receiver.spans().iter().all(|s| s.trace_id == CALLER_TRACE), "the unsampled root trace was not sent");
}

#[tokio::test]
async fn spans_still_waiting_are_sent_at_shutdown() {
    let upstream = FakeUpstream::start().await;
    let receiver = OtlpReceiver::start().await;
    // An hour between exports: only shutdown's flush can deliver the span.
    let config = config(&upstream, &receiver, "").replace("export_interval = \"50ms\"", "export_interval = \"1h\"");
    let mut gateway = TestGateway::start_with(&config).await;
    let key = gateway.client_key().await;
    assert_eq!(gateway.post("/v1/chat/completions", &key, &chat("m")).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(receiver.spans().is_empty(), "nothing is sent before the interval");
    let server = gateway.begin_shutdown();
    tokio::time::timeout(Duration::from_secs(15), server).await.expect("stops").expect("task").expect("serve");
    let spans = receiver.spans();
    assert_eq!(spans.iter().filter(|s| s.kind == SERVER).count(), 1, "{spans:#?}");
}

#[tokio::test]
async fn a_team_whose_policy_keeps_nothing_exports_no_spans() {
    let upstream = FakeUpstream::start().await;
    let receiver = OtlpReceiver::start().await;
    let gateway = TestGateway::start_with(&config(&upstream, &receiver, "")).await;
    let team = gateway.admin_post("teams", json!({ "name": "hr" })).await.json::<serde_json::Value>().await;
    let team_id = team.expect("json")["id"].as_str().expect("id").to_owned();
    let put = gateway.put_team_policy(&team_id, &json!({ "prompts": "none" })).await;
    assert_eq!(put.status(), 200);
    let (_, private) = gateway.create_key(json!({ "name": "hr-app", "team_id": team_id })).await;
    let other = gateway.client_key().await;

    // The private request first, in the caller's trace; then another caller's, in a trace
    // of its own. Spans leave in the order they end, so once the second request's spans
    // have arrived the first's would have too.
    upstream.push(Reply::chat("hi", None));
    assert_eq!(post_in_callers_trace(&gateway, &private).await.status(), 200);
    upstream.push(Reply::chat("hi", None));
    let later = "0af7651916cd43dd8448eb211c80319c";
    let response = gateway
        .http
        .post(format!("{}/v1/chat/completions", gateway.url))
        .bearer_auth(&other)
        .header("traceparent", format!("00-{later}-b7ad6b7169203331-01"))
        .json(&chat("m"))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 200);
    assert_eq!(spans_of_trace(&receiver, later, 2).await.len(), 2);
    let private_spans: Vec<_> = receiver.spans().into_iter().filter(|s| s.trace_id == CALLER_TRACE).collect();
    assert!(private_spans.is_empty(), "{private_spans:#?}");
}
