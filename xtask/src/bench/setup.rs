//! The processes a benchmark run starts: the fake upstreams, moat, nginx and LiteLLM, each
//! on loopback with the configuration that makes the comparison fair.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) const UPSTREAM: &str = "127.0.0.1:9100";
/// A second upstream whose streams are slow (a frame every 100 ms for a minute): the idle
/// streams' far end.
pub(crate) const SLOW_UPSTREAM: &str = "127.0.0.1:9101";
pub(crate) const MOAT: &str = "127.0.0.1:9200";
pub(crate) const NGINX: &str = "127.0.0.1:9300";
pub(crate) const LITELLM: &str = "127.0.0.1:9400";
pub(crate) const ADMIN_KEY: &str = "bench-admin-key-0123456789abcdef";
pub(crate) const LITELLM_KEY: &str = "sk-bench-master-key";

/// Processes that end when dropped.
#[derive(Default)]
pub(crate) struct Running(Vec<Child>);

impl Running {
    /// Starts `command` with its output discarded and keeps it until drop.
    pub(crate) fn start(&mut self, command: &mut Command) -> Result<u32, String> {
        let child =
            command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().map_err(|e| format!("{command:?}: {e}"))?;
        let pid = child.id();
        self.0.push(child);
        Ok(pid)
    }
}

impl Drop for Running {
    /// Asks every process to stop (SIGTERM: nginx's master then stops its workers, which a
    /// SIGKILL would leave running on the port), and kills what is still up after five seconds.
    fn drop(&mut self) {
        for child in &self.0 {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for child in &mut self.0 {
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `program` run through a shell that first raises its open-file limit, so that it can hold
/// tens of thousands of connections (the idle-stream test needs two per stream in moat).
pub(crate) fn with_many_files(program: &Path) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg("ulimit -n 65536 2>/dev/null || ulimit -n \"$(ulimit -Hn)\"; exec \"$0\" \"$@\"")
        .arg(program);
    command
}

pub(crate) fn wait_for_port(addr: &str, within: Duration) -> Result<(), String> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("nothing listens on {addr}"))
}

pub(crate) fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| Path::new(dir).join(program)).find(|p| p.is_file())
}

pub(crate) fn moat_config(work: &Path) -> String {
    format!(
        r#"[server]
listen = "{MOAT}"

[store]
url = "sqlite://{work}/moat.db"

[log]
level = "warn"

[usage]
spool = "{work}/usage-spool.jsonl"
journal = "{work}/usage-journal"

[[deployments]]
name = "upstream"
url = "http://{UPSTREAM}/v1"
dialects = ["openai", "anthropic"]
upstream_model = "bench"

[[deployments]]
name = "upstream-openai"
url = "http://{UPSTREAM}/v1"
dialects = ["openai"]
upstream_model = "bench"

[[deployments]]
name = "upstream-external"
url = "http://{UPSTREAM}/v1"
dialects = ["openai"]
upstream_model = "bench"
location = "external"

[[deployments]]
name = "slow"
url = "http://{SLOW_UPSTREAM}/v1"
dialects = ["openai"]
upstream_model = "bench"
idle_timeout = "30s"

[[models]]
name = "bench"
deployments = ["upstream"]

[[models]]
name = "bench-openai"
deployments = ["upstream-openai"]

[[models]]
name = "bench-external"
deployments = ["upstream-external"]

[[models]]
name = "bench-slow"
deployments = ["slow"]
"#,
        work = work.display()
    )
}

pub(crate) fn nginx_config(work: &Path) -> String {
    format!(
        r#"worker_processes auto;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {work}/nginx-body;
    proxy_temp_path {work}/nginx-proxy;
    upstream model {{ server {UPSTREAM}; keepalive 256; }}
    server {{
        listen {NGINX};
        location / {{
            proxy_pass http://model;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}
}}
daemon off;
"#,
        work = work.display()
    )
}

/// LiteLLM's proxy in front of the same upstream: one model that both its OpenAI and its
/// Anthropic endpoints serve, a master key (so every request is authenticated), one worker.
pub(crate) fn litellm_config() -> String {
    format!(
        "model_list:\n  - model_name: bench\n    litellm_params:\n      model: openai/bench\n      \
         api_base: http://{UPSTREAM}/v1\n      api_key: none\ngeneral_settings:\n  master_key: {LITELLM_KEY}\n"
    )
}

/// LiteLLM's proxy, installed once with pip into `~/.cache/moat/litellm`.
pub(crate) fn litellm() -> Result<PathBuf, String> {
    let home = std::env::var_os("HOME").ok_or("HOME is not set")?;
    let venv = Path::new(&home).join(".cache/moat/litellm");
    let program = venv.join("bin/litellm");
    if program.is_file() {
        return Ok(program);
    }
    let run = |command: &mut Command| -> Result<(), String> {
        let status = command.status().map_err(|e| format!("{command:?}: {e}"))?;
        if status.success() { Ok(()) } else { Err(format!("{command:?} failed")) }
    };
    println!("bench: installing LiteLLM's proxy into {} (one time)", venv.display());
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv))?;
    run(Command::new(venv.join("bin/pip")).args(["install", "--quiet", "litellm[proxy]"]))?;
    Ok(program)
}

/// What moat's admin API answered when the benchmark's key was made.
pub(crate) struct BenchKey {
    pub(crate) id: String,
    pub(crate) secret: String,
}

/// Creates a client key through the admin API, with limits on it that never bind (so that
/// every request goes through admission and settles its reservation), using curl.
pub(crate) fn create_key(work: &Path) -> Result<BenchKey, String> {
    let answer = admin_post(work, "/admin/v1/keys", r#"{"name":"bench"}"#)?;
    let field = |name: &str| {
        answer
            .split(&format!("\"{name}\":\""))
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .map(str::to_owned)
            .ok_or(format!("no {name} in the admin API's answer: {answer}"))
    };
    let key = BenchKey { id: field("id")?, secret: field("key")? };
    admin_post(
        work,
        "/admin/v1/limits",
        &format!(
            r#"{{"scope":"key","scope_id":"{}","requests_per_minute":1000000000,"tokens_per_minute":100000000000,"concurrent_requests":1000000}}"#,
            key.id
        ),
    )?;
    Ok(key)
}

fn admin_post(work: &Path, path: &str, body: &str) -> Result<String, String> {
    let out = Command::new("curl")
        .args(["-s", "-X", "POST", &format!("http://{MOAT}{path}")])
        .args(["-H", &format!("authorization: Bearer {ADMIN_KEY}"), "-H", "content-type: application/json"])
        .args(["-d", body, "-w", "\n%{http_code}"])
        .current_dir(work)
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (answer, status) = text.rsplit_once('\n').unwrap_or((&text, ""));
    if !status.starts_with('2') {
        return Err(format!("POST {path} answered {status}: {answer}"));
    }
    Ok(answer.to_owned())
}

/// moat's `/metrics` text.
pub(crate) fn moat_metrics() -> String {
    Command::new("curl")
        .args(["-s", &format!("http://{MOAT}/metrics"), "-H", &format!("authorization: Bearer {ADMIN_KEY}")])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_benchmark_config_is_one_this_moat_accepts() {
        let text = moat_config(Path::new("/tmp/bench"));
        let settings = moat_server::config::load_from_str(&text, "bench", &std::collections::HashMap::new())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(settings.catalog.names().count(), 4);
    }

    #[test]
    fn litellm_is_configured_with_a_master_key_and_the_same_upstream() {
        let text = litellm_config();
        assert!(text.contains(LITELLM_KEY) && text.contains(UPSTREAM) && text.contains("model_name: bench"));
    }
}
