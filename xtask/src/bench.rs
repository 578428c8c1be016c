//! `cargo xtask bench`: moat against a direct connection and nginx, side by side, in one run.
//!
//! Builds moat and the benchmark upstream in release mode, starts the upstream, moat (SQLite,
//! a client key, metering on) and, when installed, nginx as a plain keep-alive reverse proxy,
//! all on loopback, then drives each scenario at each connection count against each target
//! with `wrk` for a bounded time. The table (throughput, latency percentiles, latency added
//! over the direct connection, moat's CPU per request and peak memory) is written to
//! `bench/results/<date>.md` and `bench/RESULTS.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::project_root;

const UPSTREAM: &str = "127.0.0.1:9100";
const MOAT: &str = "127.0.0.1:9200";
const NGINX: &str = "127.0.0.1:9300";
const ADMIN_KEY: &str = "bench-admin-key-0123456789abcdef";

/// What one run measures.
pub(crate) struct Plan {
    pub(crate) seconds: u64,
    pub(crate) connections: Vec<u32>,
}

impl Plan {
    /// `--duration SECONDS` and `--connections 1,64,512`.
    pub(crate) fn from_args(args: &[String]) -> Result<Plan, String> {
        let mut plan = Plan { seconds: 10, connections: vec![1, 64] };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let value = args.next().ok_or(format!("{arg} needs a value"))?;
            match arg.as_str() {
                "--duration" => plan.seconds = value.parse().map_err(|_| format!("--duration {value}"))?,
                "--connections" => {
                    plan.connections = value
                        .split(',')
                        .map(|c| c.trim().parse().map_err(|_| format!("--connections {value}")))
                        .collect::<Result<_, _>>()?;
                }
                other => return Err(format!("unknown option {other}")),
            }
        }
        Ok(plan)
    }
}

/// One kind of request.
struct Scenario {
    name: &'static str,
    /// Path and body sent to moat.
    moat: (&'static str, &'static str),
    /// Path and body sent to the upstream directly (and through nginx): the same exchange
    /// without the gateway.
    direct: (&'static str, &'static str),
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "chat, whole answer",
        moat: (
            "/v1/chat/completions",
            r#"{"model":"bench","messages":[{"role":"user","content":"hi"}],"max_tokens":16}"#,
        ),
        direct: (
            "/v1/chat/completions",
            r#"{"model":"bench","messages":[{"role":"user","content":"hi"}],"max_tokens":16}"#,
        ),
    },
    Scenario {
        name: "chat, stream of 100 chunks",
        moat: (
            "/v1/chat/completions",
            r#"{"model":"bench","stream":true,"messages":[{"role":"user","content":"hi"}],"max_tokens":16}"#,
        ),
        direct: (
            "/v1/chat/completions",
            r#"{"model":"bench","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}],"max_tokens":16}"#,
        ),
    },
    Scenario {
        name: "Anthropic Messages on an OpenAI upstream, stream",
        moat: (
            "/v1/messages",
            r#"{"model":"bench-openai","stream":true,"max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#,
        ),
        direct: (
            "/v1/chat/completions",
            r#"{"model":"bench","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}],"max_tokens":16}"#,
        ),
    },
];

/// One wrk run's figures.
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    requests_per_second: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    failed: u64,
    requests: u64,
}

/// Processes that end when dropped.
struct Running(Vec<Child>);

impl Drop for Running {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs the benchmark; returns the report's path.
pub(crate) fn run(plan: &Plan) -> Result<PathBuf, String> {
    let root = project_root();
    which("wrk").ok_or("wrk is not installed (Debian: apt-get install wrk)")?;
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "-p", "moat", "-p", "moat-bench-upstream"])
        .current_dir(&root)
        .status()
        .map_err(|e| format!("cargo build: {e}"))?;
    if !status.success() {
        return Err("the release build failed".into());
    }
    let work = root.join("target/bench-run");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let release = root.join("target/release");

    let mut running = Running(Vec::new());
    running.0.push(spawn(Command::new(release.join("moat-bench-upstream")).args(["--listen", UPSTREAM]))?);
    wait_for_port(UPSTREAM)?;
    let config = work.join("moat.toml");
    std::fs::write(&config, moat_config(&work)).map_err(|e| e.to_string())?;
    let moat = spawn(
        Command::new(release.join("moat"))
            .args(["serve", "--config", config.to_str().unwrap_or_default()])
            .env("MOAT_ADMIN_KEY", ADMIN_KEY),
    )?;
    let moat_pid = moat.id();
    running.0.push(moat);
    wait_for_port(MOAT)?;
    let key = create_key(&work)?;
    let nginx = match which("nginx").or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.exists())) {
        Some(nginx) => {
            let conf = work.join("nginx.conf");
            std::fs::write(&conf, nginx_config(&work)).map_err(|e| e.to_string())?;
            running.0.push(spawn(Command::new(nginx).args(["-p"]).arg(&work).arg("-c").arg(&conf))?);
            wait_for_port(NGINX)?;
            true
        }
        None => false,
    };

    let mut report = header(plan, nginx);
    for scenario in SCENARIOS {
        for &connections in &plan.connections {
            let direct = wrk(&work, plan, connections, UPSTREAM, scenario.direct, None)?;
            let proxied = if nginx { Some(wrk(&work, plan, connections, NGINX, scenario.direct, None)?) } else { None };
            let cpu_before = cpu_seconds(moat_pid);
            let through_moat = wrk(&work, plan, connections, MOAT, scenario.moat, Some(&key))?;
            let cpu = cpu_seconds(moat_pid).zip(cpu_before).map(|(after, before)| after - before);
            let row = |target: &str, f: &Figures, cpu_us: Option<f64>| {
                format!(
                    "| {} | {connections} | {target} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} |\n",
                    scenario.name,
                    f.requests_per_second,
                    f.p50_us,
                    f.p99_us,
                    f.p999_us,
                    signed(f.p50_us - direct.p50_us),
                    signed(f.p99_us - direct.p99_us),
                    cpu_us.map_or("".into(), |c| format!("{c:.0}")),
                    f.failed,
                )
            };
            report.push_str(&row("direct", &direct, None));
            if let Some(proxied) = &proxied {
                report.push_str(&row("nginx", proxied, None));
            }
            let cpu_per_request = cpu.map(|c| c * 1e6 / through_moat.requests.max(1) as f64);
            report.push_str(&row("moat", &through_moat, cpu_per_request));
            if let Some(proxied) = &proxied {
                let _ = writeln!(
                    report,
                    "| | | moat ÷ nginx throughput | {:.0} % | | | | | | | |",
                    100.0 * through_moat.requests_per_second / proxied.requests_per_second.max(1e-9)
                );
            }
        }
    }
    let _ = writeln!(report, "\nmoat's peak resident memory over the run: {}.", peak_rss(moat_pid));
    drop(running);

    let results = root.join("bench/results");
    std::fs::create_dir_all(&results).map_err(|e| e.to_string())?;
    let dated = results.join(format!("{}.md", today()));
    std::fs::write(&dated, &report).map_err(|e| e.to_string())?;
    std::fs::write(root.join("bench/RESULTS.md"), &report).map_err(|e| e.to_string())?;
    Ok(dated)
}

fn signed(us: f64) -> String {
    format!("{us:+.0}")
}

fn header(plan: &Plan, nginx: bool) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mut text = format!(
        "# moat benchmark, {}\n\nMachine: {cores} cores ({cpu}); upstream, gateways and wrk share it, all on loopback. \
         Each cell is one {}-second wrk run. Latencies in µs; \"added\" is over the direct connection in the same run; \
         moat's CPU is user + system time per request. moat runs with a client key (authentication), SQLite, and \
         metering (a usage record per request, journaled).{}\n\n",
        today(),
        plan.seconds,
        if nginx { "" } else { " nginx was not installed, so it is not in this run." },
    );
    text.push_str("| scenario | connections | target | req/s | p50 | p99 | p99.9 | added p50 | added p99 | moat CPU µs/req | failed |\n");
    text.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    text
}

fn moat_config(work: &Path) -> String {
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

[[models]]
name = "bench"
deployments = ["upstream"]

[[models]]
name = "bench-openai"
deployments = ["upstream-openai"]
"#,
        work = work.display()
    )
}

fn nginx_config(work: &Path) -> String {
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

/// Creates a client key through the admin API (with curl, which every machine here has).
fn create_key(work: &Path) -> Result<String, String> {
    let out = Command::new("curl")
        .args(["-sf", "-X", "POST", &format!("http://{MOAT}/admin/v1/keys")])
        .args(["-H", &format!("authorization: Bearer {ADMIN_KEY}"), "-H", "content-type: application/json"])
        .args(["-d", r#"{"name":"bench"}"#])
        .current_dir(work)
        .output()
        .map_err(|e| format!("curl: {e}"))?;
    let body = String::from_utf8_lossy(&out.stdout);
    body.split("\"key\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(str::to_owned)
        .ok_or(format!("no key in the admin API's answer: {body}"))
}

/// One bounded wrk run.
fn wrk(
    work: &Path,
    plan: &Plan,
    connections: u32,
    target: &str,
    (path, body): (&str, &str),
    key: Option<&str>,
) -> Result<Figures, String> {
    let script = work.join("request.lua");
    let auth = key.map_or(String::new(), |k| format!("wrk.headers[\"Authorization\"] = \"Bearer {k}\"\n"));
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = [[{body}]]\nwrk.headers[\"Content-Type\"] = \"application/json\"\n\
             wrk.headers[\"anthropic-version\"] = \"2023-06-01\"\n{auth}\
             done = function(summary, latency, requests)\n\
               io.write(string.format(\"BENCH %d %d %d %d %f %f %f\\n\", summary.requests, summary.duration,\n\
                 summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,\n\
                 summary.errors.status, latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))\n\
             end\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    let threads = connections.clamp(1, 2).to_string();
    let out = Command::new("wrk")
        .args(["-t", &threads, "-c", &connections.to_string(), "-d", &format!("{}s", plan.seconds), "--timeout", "10s"])
        .arg("-s")
        .arg(&script)
        .arg(format!("http://{target}{path}"))
        .output()
        .map_err(|e| format!("wrk: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find_map(|l| l.strip_prefix("BENCH ")).ok_or(format!("wrk said: {text}"))?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let count = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok());
    let latency = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok());
    let (Some(requests), Some(micros), Some(socket_errors), Some(status_errors)) =
        (count(0), count(1), count(2), count(3))
    else {
        return Err(format!("unexpected wrk summary: {line}"));
    };
    let (Some(p50), Some(p99), Some(p999)) = (latency(4), latency(5), latency(6)) else {
        return Err(format!("unexpected wrk summary: {line}"));
    };
    Ok(Figures {
        requests_per_second: requests as f64 / (micros.max(1) as f64 / 1e6),
        p50_us: p50,
        p99_us: p99,
        p999_us: p999,
        failed: socket_errors + status_errors,
        requests,
    })
}

fn spawn(command: &mut Command) -> Result<Child, String> {
    command.stdout(Stdio::null()).stderr(Stdio::null()).spawn().map_err(|e| format!("{command:?}: {e}"))
}

fn wait_for_port(addr: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("nothing listens on {addr}"))
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?.to_str()?.split(':').map(|dir| Path::new(dir).join(program)).find(|p| p.is_file())
}

/// User + system CPU seconds of a process so far.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at state; utime and stime
    // are the 14th and 15th fields of the whole line.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / clock_ticks())
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn peak_rss(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:")).map(|l| l["VmHWM:".len()..].trim().to_owned()))
        .unwrap_or_else(|| "unknown".into())
}

fn today() -> String {
    Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "undated".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_bad_ones_are_refused() {
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let plan = Plan::from_args(&args(&["--duration", "3", "--connections", "1,64,512"])).expect("valid");
        assert_eq!((plan.seconds, plan.connections), (3, vec![1, 64, 512]));
        assert!(Plan::from_args(&args(&["--connections", "many"])).is_err());
        assert!(Plan::from_args(&args(&["--duration"])).is_err());
    }

    #[test]
    fn the_benchmark_config_is_one_this_moat_accepts() {
        let text = moat_config(Path::new("/tmp/bench"));
        let settings = moat_server::config::load_from_str(&text, "bench", &std::collections::HashMap::new())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(settings.catalog.names().count(), 2);
    }
}
