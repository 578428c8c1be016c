//! `cargo xtask bench`: moat against a direct connection, nginx and (with `BENCH_PEERS=1`)
//! LiteLLM, side by side, in one run.
//!
//! Builds moat and the benchmark upstream in release mode, starts the upstream, moat (SQLite,
//! a client key with limits on it, metering and its journal on) and, when installed, nginx as
//! a plain keep-alive reverse proxy, all on loopback. Then, each bounded in time: every
//! scenario at every connection count against every target with `wrk`; time to first token
//! of streams; moat's memory with thousands of idle streams open; optionally a soak that
//! watches moat's memory for growth; and a count of the usage records moat wrote. The report
//! (with the targets each figure is held to) goes to `bench/results/<date>.md` and
//! `bench/RESULTS.md`. `--smoke` is the few-second run CI makes so the harness keeps working:
//! debug binaries, one scenario, nothing written under `bench/`.

mod measure;
mod report;
mod setup;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::project_root;
pub(crate) use measure::idle_client;
use measure::{Figures, Request};
use setup::{ADMIN_KEY, LITELLM, LITELLM_KEY, MOAT, NGINX, Running, SLOW_UPSTREAM, UPSTREAM};

/// What one run measures.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    pub(crate) seconds: u64,
    pub(crate) connections: Vec<u32>,
    /// Streamed requests timed for time to first token, per target and stream scenario.
    pub(crate) ttft_requests: usize,
    /// Streams held open at once for the memory figure; 0 skips it.
    pub(crate) idle_streams: usize,
    /// Seconds of steady load while moat's memory is sampled; 0 skips the soak.
    pub(crate) soak_seconds: u64,
    /// LiteLLM's proxy too (`BENCH_PEERS=1`).
    pub(crate) peers: bool,
    /// The CI run: debug build, one short scenario, checks instead of a report.
    pub(crate) smoke: bool,
}

impl Plan {
    /// `--duration S`, `--connections 1,64,512`, `--ttft N`, `--idle-streams N`,
    /// `--soak S`, `--smoke`; `BENCH_PEERS=1` in the environment adds LiteLLM.
    pub(crate) fn from_args(args: &[String]) -> Result<Plan, String> {
        let mut plan = Plan {
            seconds: 10,
            connections: vec![1, 64, 512],
            ttft_requests: 200,
            idle_streams: 10_000,
            soak_seconds: 0,
            peers: std::env::var("BENCH_PEERS").is_ok_and(|v| v == "1"),
            smoke: false,
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            if arg == "--smoke" {
                plan.smoke = true;
                continue;
            }
            let value = args.next().ok_or(format!("{arg} needs a value"))?;
            let number = |what: &str| value.parse::<u64>().map_err(|_| format!("{what} {value}"));
            match arg.as_str() {
                "--duration" => plan.seconds = number("--duration")?,
                "--ttft" => plan.ttft_requests = usize::try_from(number("--ttft")?).unwrap_or(usize::MAX),
                "--idle-streams" => {
                    plan.idle_streams = usize::try_from(number("--idle-streams")?).unwrap_or(usize::MAX);
                }
                "--soak" => plan.soak_seconds = number("--soak")?,
                "--connections" => {
                    plan.connections = value
                        .split(',')
                        .map(|c| c.trim().parse().map_err(|_| format!("--connections {value}")))
                        .collect::<Result<_, _>>()?;
                }
                other => return Err(format!("unknown option {other}")),
            }
        }
        if plan.smoke {
            plan = Plan {
                seconds: 2,
                connections: vec![1],
                ttft_requests: 20,
                idle_streams: 100,
                soak_seconds: 0,
                peers: false,
                smoke: true,
            };
        }
        Ok(plan)
    }
}

/// One kind of request.
pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    /// Path and body sent to moat.
    moat: (&'static str, &'static str),
    /// Path and body sent to the upstream directly (and through nginx): the same exchange
    /// without the gateway.
    direct: (&'static str, &'static str),
    /// Path and body sent to LiteLLM.
    litellm: (&'static str, &'static str),
    pub(crate) streamed: bool,
}

const CHAT: &str = r#"{"model":"bench","messages":[{"role":"user","content":"hi"}],"max_tokens":16}"#;
const CHAT_STREAM: &str =
    r#"{"model":"bench","stream":true,"messages":[{"role":"user","content":"hi"}],"max_tokens":16}"#;
const CHAT_STREAM_DIRECT: &str = r#"{"model":"bench","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}],"max_tokens":16}"#;

/// About 1.3 kB of a coding agent's prompt: source code and a config file, nothing secret in it.
/// What the secret scanner reads on a request bound for an external deployment.
macro_rules! agent_prompt {
    () => {
        "Why does this fail?\\n```rust\\nfn load(path: &Path) -> Result<Config, Error> {\\n    let text = std::fs::read_to_string(path)?;\\n    let table: toml::Table = text.parse()?;\\n    let listen = table.get(\\\"listen\\\").and_then(|v| v.as_str()).unwrap_or(\\\"127.0.0.1:4000\\\");\\n    let max_tokens = table.get(\\\"max_tokens\\\").and_then(|v| v.as_integer()).unwrap_or(4096);\\n    let api_key = std::env::var(\\\"OPENAI_API_KEY\\\").ok();\\n    Ok(Config { listen: listen.parse()?, max_tokens: max_tokens as u64, api_key })\\n}\\n```\\nconfig.toml:\\n```toml\\nlisten = \\\"0.0.0.0:4000\\\"\\nmax_tokens = 8192\\ntokenizer = \\\"meta-llama/Llama-3.1-8B-Instruct\\\"\\n[database]\\nurl = \\\"postgres://localhost:5432/app\\\"\\npool_size = 16\\n```\\nThe error is: invalid type: integer `8192`, expected u64 at line 2 column 14. I tried changing the type of max_tokens to i64 and casting but clippy complains about a possible truncation; what is the idiomatic way to read an integer from a toml table and keep it in a u64 field, and should the listen address be parsed at load time or later when the server binds? Also explain whether the environment variable should override the file, and how to test this function without touching the real filesystem (tempfile? a trait?)."
    };
}

/// A whole answer to a 1.3 kB prompt through a deployment marked external, so moat scans it
/// for credentials on the way out; the direct and nginx rows send the same prompt.
const SCANNED: &str = concat!(
    r#"{"model":"bench-external","max_tokens":16,"messages":[{"role":"user","content":""#,
    agent_prompt!(),
    r#""}]}"#
);
const SCANNED_DIRECT: &str =
    concat!(r#"{"model":"bench","max_tokens":16,"messages":[{"role":"user","content":""#, agent_prompt!(), r#""}]}"#);

pub(crate) const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "chat, whole answer",
        moat: ("/v1/chat/completions", CHAT),
        direct: ("/v1/chat/completions", CHAT),
        litellm: ("/v1/chat/completions", CHAT),
        streamed: false,
    },
    Scenario {
        name: "chat, stream of 100 chunks",
        moat: ("/v1/chat/completions", CHAT_STREAM),
        direct: ("/v1/chat/completions", CHAT_STREAM_DIRECT),
        litellm: ("/v1/chat/completions", CHAT_STREAM_DIRECT),
        streamed: true,
    },
    Scenario {
        name: "Anthropic Messages on an OpenAI upstream, stream",
        moat: (
            "/v1/messages",
            r#"{"model":"bench-openai","stream":true,"max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#,
        ),
        direct: ("/v1/chat/completions", CHAT_STREAM_DIRECT),
        litellm: (
            "/v1/messages",
            r#"{"model":"bench","stream":true,"max_tokens":16,"messages":[{"role":"user","content":"hi"}]}"#,
        ),
        streamed: true,
    },
    Scenario {
        name: "chat, whole answer, 1.3 kB prompt scanned for credentials (external deployment)",
        moat: ("/v1/chat/completions", SCANNED),
        direct: ("/v1/chat/completions", SCANNED_DIRECT),
        litellm: ("/v1/chat/completions", SCANNED_DIRECT),
        streamed: false,
    },
];

/// A target the scenarios run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Direct,
    Nginx,
    Moat,
    LiteLlm,
}

impl Target {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Target::Direct => "direct",
            Target::Nginx => "nginx",
            Target::Moat => "moat",
            Target::LiteLlm => "LiteLLM",
        }
    }

    fn address(self) -> &'static str {
        match self {
            Target::Direct => UPSTREAM,
            Target::Nginx => NGINX,
            Target::Moat => MOAT,
            Target::LiteLlm => LITELLM,
        }
    }

    fn request<'a>(self, scenario: &'a Scenario, moat_key: &'a str) -> Request<'a> {
        let ((path, body), key) = match self {
            Target::Direct | Target::Nginx => (scenario.direct, None),
            Target::Moat => (scenario.moat, Some(moat_key)),
            Target::LiteLlm => (scenario.litellm, Some(LITELLM_KEY)),
        };
        Request { path, body, key }
    }
}

/// One cell of the throughput table.
pub(crate) struct Row {
    pub(crate) scenario: &'static str,
    pub(crate) connections: u32,
    pub(crate) target: Target,
    pub(crate) figures: Figures,
    /// moat's CPU per request, in µs.
    pub(crate) cpu_us: Option<f64>,
}

/// Time to first token of one target on one stream scenario.
pub(crate) struct FirstToken {
    pub(crate) scenario: &'static str,
    pub(crate) target: Target,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
}

/// moat's memory through the run, in kB.
#[derive(Debug, Default)]
pub(crate) struct Memory {
    pub(crate) idle_kb: u64,
    pub(crate) peak_kb: u64,
    /// The phase that holds thousands of streams open, if it ran.
    pub(crate) idle_streams: Option<IdleStreams>,
    /// `(seconds, kB)` samples of the soak.
    pub(crate) soak: Vec<(f64, f64)>,
}

/// moat holding many slow streams at once.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdleStreams {
    pub(crate) streams: usize,
    /// Resident memory just before they opened: what earlier phases left (allocators keep
    /// freed memory for reuse), so that what the streams themselves cost can be told apart.
    pub(crate) before_kb: u64,
    /// Resident memory with all of them open.
    pub(crate) with_kb: u64,
    /// moat's open files then (a client side and an upstream side per stream).
    pub(crate) files: usize,
}

impl IdleStreams {
    /// What one open stream adds to moat's resident memory, in kB.
    pub(crate) fn kb_per_stream(&self) -> f64 {
        self.with_kb.saturating_sub(self.before_kb) as f64 / self.streams.max(1) as f64
    }
}

/// Whether moat stored a record of every request.
#[derive(Debug, Default)]
pub(crate) struct Records {
    /// Requests moat answered on model routes, by its own count.
    pub(crate) requests: u64,
    pub(crate) written: u64,
    pub(crate) spooled: u64,
    /// Requests wrk saw answered through moat (records also cover the ones cut at the end of
    /// each run).
    pub(crate) completed: u64,
}

/// Everything one run found.
pub(crate) struct Outcome {
    pub(crate) plan: Plan,
    pub(crate) nginx: bool,
    pub(crate) rows: Vec<Row>,
    pub(crate) first_tokens: Vec<FirstToken>,
    pub(crate) memory: Memory,
    pub(crate) records: Records,
}

/// Runs the benchmark; returns the report's path.
pub(crate) fn run(plan: &Plan) -> Result<PathBuf, String> {
    let root = project_root();
    setup::which("wrk").ok_or("wrk is not installed (Debian: apt-get install wrk)")?;
    let mut build = Command::new(env!("CARGO"));
    if plan.smoke {
        // The test suite's feature set (dev-dependencies on, every member), so that after
        // `cargo test --workspace` nothing is compiled again: only the binaries are linked.
        build.args(["build", "--workspace", "--tests", "--bins"]);
    } else {
        build.args(["build", "--release", "-p", "moat", "-p", "moat-bench-upstream"]);
    }
    build.current_dir(&root);
    if !build.status().map_err(|e| format!("cargo build: {e}"))?.success() {
        return Err("the build failed".into());
    }
    let work = root.join(if plan.smoke { "target/bench-smoke" } else { "target/bench-run" });
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let binaries = root.join(if plan.smoke { "target/debug" } else { "target/release" });
    let upstream = binaries.join("moat-bench-upstream");

    let mut running = Running::default();
    running.start(setup::with_many_files(&upstream).args(["--listen", UPSTREAM]))?;
    running.start(setup::with_many_files(&upstream).args([
        "--listen",
        SLOW_UPSTREAM,
        "--chunks",
        "600",
        "--chunk-delay-us",
        "100000",
    ]))?;
    setup::wait_for_port(UPSTREAM, Duration::from_secs(30))?;
    setup::wait_for_port(SLOW_UPSTREAM, Duration::from_secs(30))?;
    let config = work.join("moat.toml");
    std::fs::write(&config, setup::moat_config(&work)).map_err(|e| e.to_string())?;
    let moat_pid = running.start(
        setup::with_many_files(&binaries.join("moat"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env("MOAT_ADMIN_KEY", ADMIN_KEY),
    )?;
    setup::wait_for_port(MOAT, Duration::from_secs(60))?;
    let key = setup::create_key(&work)?;
    let nginx = !plan.smoke
        && match setup::which("nginx").or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.exists())) {
            Some(nginx) => {
                let conf = work.join("nginx.conf");
                std::fs::write(&conf, setup::nginx_config(&work)).map_err(|e| e.to_string())?;
                running.start(Command::new(nginx).arg("-p").arg(&work).arg("-c").arg(&conf))?;
                setup::wait_for_port(NGINX, Duration::from_secs(30))?;
                true
            }
            None => false,
        };
    if plan.peers {
        let litellm = setup::litellm()?;
        let conf = work.join("litellm.yaml");
        std::fs::write(&conf, setup::litellm_config()).map_err(|e| e.to_string())?;
        running.start(Command::new(litellm).arg("--config").arg(&conf).args([
            "--host",
            "127.0.0.1",
            "--port",
            "9400",
            "--num_workers",
            "1",
        ]))?;
        setup::wait_for_port(LITELLM, Duration::from_secs(180))?;
    }
    let mut targets = vec![Target::Direct];
    if nginx {
        targets.push(Target::Nginx);
    }
    targets.push(Target::Moat);
    if plan.peers {
        targets.push(Target::LiteLlm);
    }
    // Settle in: one quiet second, then the resident memory of a moat that has served nothing.
    std::thread::sleep(Duration::from_secs(1));
    let mut memory = Memory { idle_kb: measure::memory_kb(moat_pid, "VmRSS").unwrap_or(0), ..Memory::default() };

    let scenarios = if plan.smoke { &SCENARIOS[..1] } else { SCENARIOS };
    let mut rows = Vec::new();
    let mut completed = 0;
    for scenario in scenarios {
        for &connections in &plan.connections {
            for &target in &targets {
                // LiteLLM cannot take hundreds of connections on one worker in a bounded run.
                if target == Target::LiteLlm && connections > 64 {
                    continue;
                }
                let cpu_before = measure::cpu_seconds(moat_pid);
                let measured = measure::wrk(
                    &work,
                    plan.seconds,
                    connections,
                    target.address(),
                    target.request(scenario, &key.secret),
                );
                let Some(figures) = unless_peer_failed(target, scenario, measured)? else { continue };
                let cpu_us = (target == Target::Moat)
                    .then(|| measure::cpu_seconds(moat_pid).zip(cpu_before).map(|(after, before)| after - before))
                    .flatten()
                    .map(|cpu| cpu * 1e6 / figures.requests.max(1) as f64);
                if target == Target::Moat {
                    completed += figures.requests;
                }
                rows.push(Row { scenario: scenario.name, connections, target, figures, cpu_us });
            }
        }
    }

    let mut first_tokens = Vec::new();
    // The smoke run's one throughput scenario is not streamed; it times the chat stream anyway.
    let streamed = if plan.smoke { &SCENARIOS[1..2] } else { SCENARIOS };
    for scenario in streamed.iter().filter(|s| s.streamed) {
        for &target in &targets {
            let measured = measure::time_to_first_token(
                target.address(),
                target.request(scenario, &key.secret),
                plan.ttft_requests,
            );
            let Some(times) = unless_peer_failed(target, scenario, measured)? else { continue };
            if target == Target::Moat {
                completed += times.len() as u64;
            }
            first_tokens.push(FirstToken {
                scenario: scenario.name,
                target,
                p50_us: measure::percentile(&times, 0.5),
                p99_us: measure::percentile(&times, 0.99),
            });
        }
    }
    // The soak before the idle streams, so that what they leave behind does not read as a trend.
    if plan.soak_seconds > 0 {
        let (samples, requests) = soak(&work, plan.soak_seconds, moat_pid, &key.secret)?;
        memory.soak = samples;
        completed += requests;
    }

    if plan.idle_streams > 0 {
        let body = r#"{"model":"bench-slow","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        let request = Request { path: "/v1/chat/completions", body, key: Some(&key.secret) };
        let before_kb = measure::memory_kb(moat_pid, "VmRSS").unwrap_or(0);
        let mut client = measure::open_idle_streams(MOAT, request, plan.idle_streams, 8)?;
        // Let moat open its upstream side of every stream before reading its memory.
        std::thread::sleep(Duration::from_secs(4));
        memory.idle_streams = Some(IdleStreams {
            streams: plan.idle_streams,
            before_kb,
            with_kb: measure::memory_kb(moat_pid, "VmRSS").unwrap_or(0),
            files: measure::open_files(moat_pid),
        });
        let _ = client.wait();
    }

    // The writer gathers records for up to `usage.batch_delay`; give it that and more.
    std::thread::sleep(Duration::from_secs(2));
    let metrics = setup::moat_metrics();
    let records = Records {
        requests: ["chat.completions", "messages"]
            .iter()
            .map(|route| measure::metric_sum(&metrics, "moat_http_requests_total", &format!("route=\"{route}\"")))
            .sum(),
        written: measure::metric_sum(&metrics, "moat_usage_records_written_total", ""),
        spooled: measure::metric_sum(&metrics, "moat_usage_records_spooled", ""),
        completed,
    };
    memory.peak_kb = measure::memory_kb(moat_pid, "VmHWM").unwrap_or(0);
    drop(running);

    let outcome = Outcome { plan: plan.clone(), nginx, rows, first_tokens, memory, records };
    let text = report::render(&outcome, &today());
    if plan.smoke {
        let path = work.join("smoke.md");
        std::fs::write(&path, &text).map_err(|e| e.to_string())?;
        report::smoke_check(&outcome)?;
        return Ok(path);
    }
    let results = root.join("bench/results");
    std::fs::create_dir_all(&results).map_err(|e| e.to_string())?;
    let dated = results.join(format!("{}.md", today()));
    std::fs::write(&dated, &text).map_err(|e| e.to_string())?;
    let summary = root.join("bench/RESULTS.md");
    let kept = std::fs::read_to_string(&summary).unwrap_or_default();
    std::fs::write(&summary, report::with_kept_sections(&text, &kept)).map_err(|e| e.to_string())?;
    Ok(dated)
}

/// A measurement's figures; `None` (after saying why) when a peer failed it, since a peer that
/// fails a scenario is only left out of it; moat and the baselines may not fail.
fn unless_peer_failed<T>(
    target: Target,
    scenario: &Scenario,
    measured: Result<T, String>,
) -> Result<Option<T>, String> {
    match measured {
        Ok(figures) => Ok(Some(figures)),
        Err(error) if target == Target::LiteLlm => {
            eprintln!("bench: LiteLLM, {}: {error}", scenario.name);
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// Non-streamed requests at 64 connections for `seconds` while moat's resident memory is
/// sampled every five seconds.
/// Sustained load while moat's memory is sampled: the samples, and the requests completed.
fn soak(work: &std::path::Path, seconds: u64, moat_pid: u32, key: &str) -> Result<(Vec<(f64, f64)>, u64), String> {
    let work = work.to_owned();
    let key = key.to_owned();
    let load =
        std::thread::spawn(move || measure::wrk(&work, seconds, 64, MOAT, Target::Moat.request(&SCENARIOS[0], &key)));
    let started = Instant::now();
    let mut samples = Vec::new();
    while !load.is_finished() {
        if let Some(kb) = measure::memory_kb(moat_pid, "VmRSS") {
            samples.push((started.elapsed().as_secs_f64(), kb as f64));
        }
        std::thread::sleep(Duration::from_secs(5));
    }
    let figures = load.join().map_err(|_| "the soak's load thread panicked".to_string())??;
    Ok((samples, figures.requests))
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
    fn every_scenario_sends_json_and_the_scanned_one_a_clean_prompt() {
        for scenario in SCENARIOS {
            for (_, body) in [scenario.moat, scenario.direct, scenario.litellm] {
                let parsed = serde_json::from_str::<serde_json::Value>(body);
                assert!(parsed.is_ok(), "{}: {body}", scenario.name);
            }
        }
        let findings = moat_wire::secret_scan::SecretScanner::shared().scan(SCANNED.as_bytes());
        assert!(findings.is_empty(), "the benchmark measures the scan, not a redaction: {findings:?}");
        assert!((1200..4000).contains(&SCANNED.len()), "{}", SCANNED.len());
    }

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_streams_cost_is_what_it_adds_to_what_earlier_phases_left() {
        let idle = IdleStreams { streams: 1_000, before_kb: 200_000, with_kb: 240_000, files: 2_000 };
        assert_eq!(idle.kb_per_stream(), 40.0);
        let shrank = IdleStreams { with_kb: 150_000, ..idle };
        assert_eq!(shrank.kb_per_stream(), 0.0, "memory returned meanwhile is not a negative cost");
    }

    #[test]
    fn options_parse_and_bad_ones_are_refused() {
        let plan =
            Plan::from_args(&args(&["--duration", "3", "--connections", "1,64", "--soak", "600", "--ttft", "50"]))
                .expect("valid");
        assert_eq!(
            (plan.seconds, plan.connections.clone(), plan.soak_seconds, plan.ttft_requests),
            (3, vec![1, 64], 600, 50)
        );
        assert_eq!(plan.idle_streams, 10_000);
        assert!(Plan::from_args(&args(&["--connections", "many"])).is_err());
        assert!(Plan::from_args(&args(&["--duration"])).is_err());
        assert!(Plan::from_args(&args(&["--fast", "1"])).is_err());
    }

    #[test]
    fn the_smoke_run_is_short_and_touches_one_scenario() {
        let plan = Plan::from_args(&args(&["--smoke"])).expect("valid");
        assert!(plan.smoke && plan.seconds <= 2 && plan.connections == [1] && plan.soak_seconds == 0 && !plan.peers);
    }

    #[test]
    fn every_target_gets_the_same_exchange_in_its_own_shape() {
        let stream = &SCENARIOS[1];
        let direct = Target::Direct.request(stream, "k");
        let moat = Target::Moat.request(stream, "k");
        assert_eq!(direct.key, None);
        assert_eq!(moat.key, Some("k"));
        assert!(direct.body.contains("include_usage") && !moat.body.contains("include_usage"));
        assert_eq!(Target::LiteLlm.request(stream, "k").key, Some(LITELLM_KEY));
    }
}
