//! The request and answer readers the gateway runs on every body: any bytes give a value or
//! an error, never a panic; a body they accept can have its model rewritten.
#![no_main]

use libfuzzer_sys::fuzz_target;
use moat_wire::{anthropic, openai, responses};

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = openai::OpenAiRequest::parse(data) {
        let _ = request.max_output_tokens();
        let rewritten = request.to_upstream_body("up", &["END".to_owned()]);
        assert!(serde_json::from_slice::<serde_json::Value>(&rewritten).is_ok(), "a rewritten body is JSON");
    }
    if let Ok(request) = anthropic::AnthropicRequest::parse(data) {
        let _ = request.max_output_tokens();
        let rewritten = request.to_upstream_body("up", &["END".to_owned()]);
        assert!(serde_json::from_slice::<serde_json::Value>(&rewritten).is_ok(), "a rewritten body is JSON");
    }
    let _ = openai::read_response(data);
    let _ = anthropic::read_message(data);
    let _ = anthropic::read_event(data);
    let _ = responses::read_response(data);
    let _ = responses::read_event(data);
});
