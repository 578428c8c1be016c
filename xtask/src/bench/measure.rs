//! What one benchmark run measures: wrk runs, time to first token, idle streams, a soak, and
//! what `/proc` and moat's metrics say about the process.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// One wrk run's figures.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Figures {
    pub(crate) requests_per_second: f64,
    pub(crate) p50_us: f64,
    pub(crate) p99_us: f64,
    pub(crate) p999_us: f64,
    pub(crate) failed: u64,
    pub(crate) requests: u64,
}

/// One request a target is sent: path, body, and the bearer key if it needs one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request<'a> {
    pub(crate) path: &'a str,
    pub(crate) body: &'a str,
    pub(crate) key: Option<&'a str>,
}

/// One bounded wrk run of `seconds` with `connections` against `target`.
pub(crate) fn wrk(
    work: &Path,
    seconds: u64,
    connections: u32,
    target: &str,
    request: Request<'_>,
) -> Result<Figures, String> {
    let script = work.join("request.lua");
    let auth = request.key.map_or(String::new(), |k| format!("wrk.headers[\"Authorization\"] = \"Bearer {k}\"\n"));
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = [[{}]]\nwrk.headers[\"Content-Type\"] = \"application/json\"\n\
             wrk.headers[\"anthropic-version\"] = \"2023-06-01\"\n{auth}\
             done = function(summary, latency, requests)\n\
               io.write(string.format(\"BENCH %d %d %d %d %f %f %f\\n\", summary.requests, summary.duration,\n\
                 summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,\n\
                 summary.errors.status, latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))\n\
             end\n",
            request.body
        ),
    )
    .map_err(|e| e.to_string())?;
    let threads = connections.clamp(1, 2).to_string();
    let out = Command::new("wrk")
        .args(["-t", &threads, "-c", &connections.to_string(), "-d", &format!("{seconds}s"), "--timeout", "10s"])
        .arg("-s")
        .arg(&script)
        .arg(format!("http://{target}{}", request.path))
        .output()
        .map_err(|e| format!("wrk: {e}"))?;
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

/// Reads the `BENCH` line the wrk script prints.
fn parse_wrk(text: &str) -> Result<Figures, String> {
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

/// Times to first token of `count` streamed requests sent one after another on one
/// keep-alive connection, in µs, sorted: from writing the request to reading the first
/// `data:` line of the answer.
pub(crate) fn time_to_first_token(target: &str, request: Request<'_>, count: usize) -> Result<Vec<f64>, String> {
    let mut stream = TcpStream::connect(target).map_err(|e| format!("{target}: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    let auth = request.key.map_or(String::new(), |k| format!("authorization: Bearer {k}\r\n"));
    let head = format!(
        "POST {} HTTP/1.1\r\nhost: {target}\r\ncontent-type: application/json\r\nanthropic-version: 2023-06-01\r\n\
         {auth}content-length: {}\r\n\r\n{}",
        request.path,
        request.body.len(),
        request.body
    );
    let mut times = Vec::with_capacity(count);
    let mut buffer = Vec::with_capacity(64 * 1024);
    let mut read = vec![0u8; 64 * 1024];
    for _ in 0..count {
        buffer.clear();
        let started = Instant::now();
        stream.write_all(head.as_bytes()).map_err(|e| format!("{target}: {e}"))?;
        let mut first = None;
        // A chunked answer ends with a zero-length chunk.
        while !buffer.ends_with(b"\r\n0\r\n\r\n") {
            let n = stream.read(&mut read).map_err(|e| format!("{target}: {e}"))?;
            if n == 0 {
                return Err(format!("{target} closed the connection mid-answer"));
            }
            buffer.extend_from_slice(&read[..n]);
            if first.is_none() && find(&buffer, b"data:").is_some() {
                first = Some(started.elapsed());
            }
        }
        if !buffer.starts_with(b"HTTP/1.1 200") {
            let status = String::from_utf8_lossy(&buffer[..buffer.len().min(40)]).into_owned();
            return Err(format!("{target} answered {status}"));
        }
        let first = first.ok_or(format!("{target} streamed no data: line"))?;
        times.push(first.as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    Ok(times)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The value at `quantile` (0–1) of sorted `values`.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "an index within the list")]
pub(crate) fn percentile(values: &[f64], quantile: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let index = ((values.len() - 1) as f64 * quantile).round() as usize;
    values[index.min(values.len() - 1)]
}

/// Opens `count` streams at once from a child process (which may hold more file descriptors
/// than this one), and returns once they are all sent; the child holds them for
/// `hold_seconds` and exits, closing them.
pub(crate) fn open_idle_streams(
    target: &str,
    request: Request<'_>,
    count: usize,
    hold_seconds: u64,
) -> Result<std::process::Child, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut child = super::setup::with_many_files(&exe)
        .args(["bench-idle-client", target, request.path, request.key.unwrap_or(""), request.body])
        .arg(count.to_string())
        .arg(hold_seconds.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("idle client: {e}"))?;
    let mut out = child.stdout.take().ok_or("idle client: no stdout")?;
    let mut said = String::new();
    let mut byte = [0u8; 1];
    while !said.ends_with('\n') {
        match out.read(&mut byte) {
            Ok(1) => said.push(char::from(byte[0])),
            _ => break,
        }
    }
    if said.trim() != "OPEN" {
        let _ = child.kill();
        return Err(format!("the idle client did not open its streams: {}", said.trim()));
    }
    Ok(child)
}

/// The idle client itself (`cargo xtask bench-idle-client TARGET PATH KEY BODY COUNT SECONDS`):
/// opens COUNT connections, sends each the streamed request, says `OPEN`, reads nothing for
/// SECONDS, then exits.
pub(crate) fn idle_client(args: &[String]) -> Result<(), String> {
    let [target, path, key, body, count, seconds] = args else {
        return Err("usage: bench-idle-client TARGET PATH KEY BODY COUNT SECONDS".into());
    };
    let count: usize = count.parse().map_err(|_| format!("count {count}"))?;
    let seconds: u64 = seconds.parse().map_err(|_| format!("seconds {seconds}"))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {target}\r\ncontent-type: application/json\r\nauthorization: Bearer {key}\r\n\
         content-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut open = Vec::with_capacity(count);
    for i in 0..count {
        let mut stream = TcpStream::connect(target.as_str()).map_err(|e| format!("stream {i}: {e}"))?;
        stream.write_all(head.as_bytes()).map_err(|e| format!("stream {i}: {e}"))?;
        open.push(stream);
    }
    println!("OPEN");
    std::thread::sleep(Duration::from_secs(seconds));
    drop(open);
    Ok(())
}

/// User + system CPU seconds of a process so far.
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
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

/// A `/proc/<pid>/status` memory field (`VmRSS`, `VmHWM`), in kB.
pub(crate) fn memory_kb(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?;
    line[field.len() + 1..].trim().trim_end_matches("kB").trim().parse().ok()
}

/// Open file descriptors of a process.
pub(crate) fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// The sum of a counter's samples in Prometheus text whose labels contain `label` (all of
/// them when `label` is empty).
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "counters are whole and positive")]
pub(crate) fn metric_sum(text: &str, name: &str, label: &str) -> u64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, labels) = series.split_once('{').unwrap_or((series, ""));
            (metric == name && labels.contains(label)).then(|| value.parse::<f64>().ok()).flatten()
        })
        .map(|v| v as u64)
        .sum()
}

/// Least-squares slope of `(seconds, kB)` samples, in kB per minute.
pub(crate) fn slope_kb_per_minute(samples: &[(f64, f64)]) -> f64 {
    let n = samples.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mean_x = samples.iter().map(|s| s.0).sum::<f64>() / n;
    let mean_y = samples.iter().map(|s| s.1).sum::<f64>() / n;
    let covariance: f64 = samples.iter().map(|s| (s.0 - mean_x) * (s.1 - mean_y)).sum();
    let variance: f64 = samples.iter().map(|s| (s.0 - mean_x).powi(2)).sum();
    if variance == 0.0 { 0.0 } else { covariance / variance * 60.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_summaries_are_read_and_garbage_is_refused() {
        let figures = parse_wrk("Running 1s test\nBENCH 2000 2000000 1 2 50.0 900.5 1200.0\n").expect("parsed");
        assert_eq!((figures.requests, figures.failed), (2000, 3));
        assert!((figures.requests_per_second - 1000.0).abs() < 1e-9);
        assert!((figures.p99_us - 900.5).abs() < 1e-9);
        assert!(parse_wrk("unable to connect").is_err());
        assert!(parse_wrk("BENCH many").is_err());
    }

    #[test]
    fn percentiles_slopes_and_metrics_read_right() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), 51.0);
        assert_eq!(percentile(&values, 0.99), 99.0);
        assert!(percentile(&[], 0.5).is_nan());
        let growing: Vec<(f64, f64)> = (0..10).map(|i| (f64::from(i) * 60.0, 1000.0 + f64::from(i) * 10.0)).collect();
        assert!((slope_kb_per_minute(&growing) - 10.0).abs() < 1e-9);
        assert_eq!(slope_kb_per_minute(&[(0.0, 5.0)]), 0.0);
        let text = "# HELP x\nmoat_http_requests_total{route=\"/v1/chat/completions\",status=\"200\"} 7\n\
                    moat_http_requests_total{route=\"/healthz\",status=\"200\"} 3\nmoat_usage_records_written_total 9\n";
        assert_eq!(metric_sum(text, "moat_http_requests_total", "route=\"/v1/"), 7);
        assert_eq!(metric_sum(text, "moat_usage_records_written_total", ""), 9);
    }
}
