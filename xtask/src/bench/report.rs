//! The benchmark's report: the tables, and each target with whether this run met it.

use std::fmt::Write as _;

use super::measure::slope_kb_per_minute;
use super::{Outcome, Row, Target};

/// The soak's memory may grow at most this fast (kB a minute) over its second half.
const FLAT_KB_PER_MINUTE: f64 = 100.0;

/// The report as Markdown.
pub(crate) fn render(outcome: &Outcome, date: &str) -> String {
    let mut text = header(outcome, date);
    throughput(&mut text, outcome);
    first_tokens(&mut text, outcome);
    memory(&mut text, outcome);
    records(&mut text, outcome);
    targets(&mut text, outcome);
    text
}

fn header(outcome: &Outcome, date: &str) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory_gb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| m.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|kb| kb.parse::<f64>().ok()))
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let mut missing = Vec::new();
    if outcome.plan.smoke {
        missing.push("a smoke run leaves nginx out");
    } else if !outcome.nginx {
        missing.push("nginx was not installed, so it is not in this run");
    }
    if !outcome.plan.peers {
        missing.push("LiteLLM is only in runs with `BENCH_PEERS=1`");
    }
    format!(
        "# moat benchmark, {date}{}\n\nMachine: {cores} cores ({cpu}), {memory_gb:.0} GiB; the upstream, the gateways and \
         wrk share it, all on loopback. Each cell is one {}-second wrk run. Latencies in µs; \"added\" is over the direct \
         connection in the same run; moat's CPU is its user + system time per request. moat runs with a client key \
         (authentication), limits on that key (every request reserves and settles them), SQLite, and metering (a usage \
         record per request, journaled). {}\n\n",
        if outcome.plan.smoke { " (smoke run)" } else { "" },
        outcome.plan.seconds,
        missing.join("; ") + if missing.is_empty() { "" } else { "." },
    )
}

fn throughput(text: &mut String, outcome: &Outcome) {
    text.push_str("| scenario | connections | target | req/s | p50 | p99 | p99.9 | added p50 | added p99 | added p99.9 | moat CPU µs/req | failed |\n");
    text.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for row in &outcome.rows {
        let direct = find(outcome, row.scenario, row.connections, Target::Direct).map_or(row.figures, |d| d.figures);
        let f = &row.figures;
        let _ = writeln!(
            text,
            "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:+.0} | {:+.0} | {:+.0} | {} | {} |",
            row.scenario,
            row.connections,
            row.target.name(),
            f.requests_per_second,
            f.p50_us,
            f.p99_us,
            f.p999_us,
            f.p50_us - direct.p50_us,
            f.p99_us - direct.p99_us,
            f.p999_us - direct.p999_us,
            row.cpu_us.map_or(String::new(), |c| format!("{c:.0}")),
            f.failed,
        );
        if row.target == Target::Moat {
            for (peer, what) in [(Target::Nginx, "moat ÷ nginx"), (Target::LiteLlm, "moat ÷ LiteLLM")] {
                if let Some(peer) = find(outcome, row.scenario, row.connections, peer) {
                    let ratio = f.requests_per_second / peer.figures.requests_per_second.max(1e-9);
                    let shown = if peer.target == Target::Nginx {
                        format!("{:.0} %", ratio * 100.0)
                    } else {
                        format!("{ratio:.0} ×")
                    };
                    let _ = writeln!(text, "| | | {what} throughput | {shown} | | | | | | | | |");
                }
            }
        }
    }
}

fn first_tokens(text: &mut String, outcome: &Outcome) {
    if outcome.first_tokens.is_empty() {
        return;
    }
    let _ = writeln!(
        text,
        "\n## Time to first token\n\n{} streamed requests one after another on one connection per target; µs from \
         sending the request to reading the first `data:` line.\n\n| scenario | target | p50 | p99 | added p50 | added p99 |\n|---|---|---|---|---|---|",
        outcome.plan.ttft_requests
    );
    for first in &outcome.first_tokens {
        let direct = outcome
            .first_tokens
            .iter()
            .find(|f| f.scenario == first.scenario && f.target == Target::Direct)
            .map_or((first.p50_us, first.p99_us), |d| (d.p50_us, d.p99_us));
        let _ = writeln!(
            text,
            "| {} | {} | {:.0} | {:.0} | {:+.0} | {:+.0} |",
            first.scenario,
            first.target.name(),
            first.p50_us,
            first.p99_us,
            first.p50_us - direct.0,
            first.p99_us - direct.1
        );
    }
}

fn memory(text: &mut String, outcome: &Outcome) {
    let m = &outcome.memory;
    let _ = writeln!(text, "\n## Memory\n\n- moat idle, before any request: {} resident.", mb(m.idle_kb));
    let _ = writeln!(text, "- moat's peak over the run: {} resident.", mb(m.peak_kb));
    if let Some(idle) = m.idle_streams {
        let _ = writeln!(
            text,
            "- {} streams open at once (each slowly fed by the upstream, none read by its client): {} resident, \
             {} open files; {} just before they opened (what the load phases left), so {:.0} kB a stream.",
            idle.streams,
            mb(idle.with_kb),
            idle.files,
            mb(idle.before_kb),
            idle.kb_per_stream()
        );
    }
    if !m.soak.is_empty() {
        let (first, last) = (m.soak.first().map_or(0.0, |s| s.1), m.soak.last().map_or(0.0, |s| s.1));
        let max = m.soak.iter().map(|s| s.1).fold(0.0, f64::max);
        let _ = writeln!(
            text,
            "- Soak: {} s of non-streamed requests at 64 connections, {} samples: {} at the start, {} at the end, {} at \
             most; growth over the second half {:+.0} kB a minute.",
            outcome.plan.soak_seconds,
            m.soak.len(),
            mb_f(first),
            mb_f(last),
            mb_f(max),
            soak_slope(outcome)
        );
    }
}

fn records(text: &mut String, outcome: &Outcome) {
    let r = &outcome.records;
    let _ = writeln!(
        text,
        "\n## Usage records\n\nmoat answered {} requests on its model routes by its HTTP metric (wrk and the timing client \
         saw {} of them complete; the rest were cut at the end of a run, or were the idle streams); the writer stored {} \
         usage records (also one for each request cut before its answer began, which the HTTP metric does not count), \
         and {} wait in the spool.",
        r.requests, r.completed, r.written, r.spooled
    );
}

fn soak_slope(outcome: &Outcome) -> f64 {
    let soak = &outcome.memory.soak;
    slope_kb_per_minute(&soak[soak.len() / 2..])
}

/// Each target of the performance issue, with this run's figure and whether it is met.
fn targets(text: &mut String, outcome: &Outcome) {
    text.push_str("\n## Targets\n\n| target | this run | met |\n|---|---|---|\n");
    let mut line = |target: &str, figure: String, met: Option<bool>| {
        let verdict = match met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not measured",
        };
        let _ = writeln!(text, "| {target} | {figure} | {verdict} |");
    };
    for scenario in [super::SCENARIOS[0].name, super::SCENARIOS[1].name] {
        let ratio = find(outcome, scenario, 64, Target::Moat)
            .zip(find(outcome, scenario, 64, Target::Nginx))
            .map(|(m, n)| m.figures.requests_per_second / n.figures.requests_per_second.max(1e-9));
        line(
            &format!("{scenario}: throughput at 64 connections ≥ 80 % of nginx's"),
            ratio.map_or("–".into(), |r| format!("{:.0} %", r * 100.0)),
            ratio.map(|r| r >= 0.8),
        );
    }
    let added = find(outcome, super::SCENARIOS[0].name, 1, Target::Moat)
        .zip(find(outcome, super::SCENARIOS[0].name, 1, Target::Direct))
        .map(|(m, d)| (m.figures.p50_us - d.figures.p50_us, m.figures.p99_us - d.figures.p99_us));
    line(
        "added latency at 1 connection: p50 ≤ 100 µs",
        added.map_or("–".into(), |a| format!("{:+.0} µs", a.0)),
        added.map(|a| a.0 <= 100.0),
    );
    line(
        "added latency at 1 connection: p99 ≤ 1 ms",
        added.map_or("–".into(), |a| format!("{:+.0} µs", a.1)),
        added.map(|a| a.1 <= 1000.0),
    );
    let cpu = find(outcome, super::SCENARIOS[0].name, 64, Target::Moat).and_then(|r| r.cpu_us);
    line(
        "CPU per request ≤ 50 µs (whole answers, 64 connections)",
        cpu.map_or("–".into(), |c| format!("{c:.0} µs")),
        cpu.map(|c| c <= 50.0),
    );
    let litellm = find(outcome, super::SCENARIOS[0].name, 64, Target::Moat)
        .zip(find(outcome, super::SCENARIOS[0].name, 64, Target::LiteLlm))
        .map(|(m, l)| m.figures.requests_per_second / l.figures.requests_per_second.max(1e-9));
    line(
        "≥ 300 × LiteLLM's throughput (whole answers, 64 connections)",
        litellm.map_or("–".into(), |r| format!("{r:.0} ×")),
        litellm.map(|r| r >= 300.0),
    );
    let idle = outcome.memory.idle_kb;
    line("idle RSS ≤ 30 MB", mb(idle), (idle > 0).then_some(idle <= 30 * 1024));
    let streams = outcome.memory.idle_streams;
    line(
        "10,000 concurrent open streams ≤ 300 MB",
        streams.map_or("–".into(), |s| format!("{} with {}", mb(s.with_kb), s.streams)),
        streams.filter(|s| s.streams >= 10_000).map(|s| s.with_kb <= 300 * 1024),
    );
    let soaked = !outcome.memory.soak.is_empty();
    line(
        "flat RSS over the soak",
        if soaked {
            format!("{:+.0} kB a minute", soak_slope(outcome))
        } else {
            "no soak in this run (`--soak 600`)".into()
        },
        soaked.then(|| soak_slope(outcome) <= FLAT_KB_PER_MINUTE),
    );
    let r = &outcome.records;
    line(
        "the usage writer keeps up: a record for every request",
        format!("{} records for {} requests, {} spooled", r.written, r.requests, r.spooled),
        Some(r.written >= r.requests && r.spooled == 0 && r.requests > 0),
    );
}

/// Where `bench/RESULTS.md` stops being this report: the sections after it (the codec, the
/// reports, the console) come from other benchmarks and are kept.
pub(crate) const KEPT_SECTIONS: &str =
    "<!-- Sections below come from other benchmarks; cargo xtask bench keeps them. -->";

/// The new summary: this run's report, then whatever followed the marker in the old one.
pub(crate) fn with_kept_sections(report: &str, old: &str) -> String {
    let kept = old.find(KEPT_SECTIONS).map_or("", |at| &old[at..]);
    if kept.is_empty() { report.to_owned() } else { format!("{report}\n{kept}") }
}

/// What a smoke run must show: moat answered, without errors, and recorded every request.
pub(crate) fn smoke_check(outcome: &Outcome) -> Result<(), String> {
    let through_moat: Vec<&Row> = outcome.rows.iter().filter(|r| r.target == Target::Moat).collect();
    if through_moat.is_empty() || through_moat.iter().any(|r| r.figures.requests == 0 || r.figures.failed > 0) {
        return Err("moat failed requests in the smoke run".into());
    }
    if outcome.first_tokens.iter().any(|f| !f.p50_us.is_finite()) || outcome.first_tokens.is_empty() {
        return Err("no stream was timed in the smoke run".into());
    }
    let r = &outcome.records;
    if r.requests == 0 || r.written < r.requests {
        return Err(format!("moat stored {} usage records for {} requests", r.written, r.requests));
    }
    if outcome.memory.idle_streams.is_none_or(|s| s.files < s.streams) {
        return Err("moat did not hold the idle streams open".into());
    }
    Ok(())
}

fn find<'a>(outcome: &'a Outcome, scenario: &str, connections: u32, target: Target) -> Option<&'a Row> {
    outcome.rows.iter().find(|r| r.scenario == scenario && r.connections == connections && r.target == target)
}

fn mb(kb: u64) -> String {
    mb_f(kb as f64)
}

fn mb_f(kb: f64) -> String {
    format!("{:.1} MB", kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_keeps_the_other_benchmarks_sections() {
        let old = format!("# old run\n| a |\n\n{KEPT_SECTIONS}\n\n## Codec\nfigures\n");
        let new = with_kept_sections("# new run\n", &old);
        assert!(new.starts_with("# new run\n") && new.contains("## Codec\nfigures") && !new.contains("old run"));
        assert_eq!(with_kept_sections("# new run\n", "# nothing kept"), "# new run\n");
    }
}
