//! `cargo run --release -p moat-bench-reports -- --records 10000000`: loads synthetic usage
//! records through the real write path (`Store::insert_usage`, which keeps the hourly rollups in
//! the same transaction) into a fresh SQLite file and a fresh PostgreSQL database, then times
//! the queries reports and chargeback make, each run several times (the median is printed).
//!
//! The traffic: 300 keys of 100 users in 12 teams, 6 models on 6 deployments, over 90 days
//! with a working-week shape, arriving in time order; each key uses two models. Bounded by `--records`; binds
//! nothing; PostgreSQL is the local server (`--postgres`), in a database it creates and drops.

#![allow(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::time::{Duration, Instant};

use clap::Parser;
use moat_core::rollup::HOUR_MS;
use moat_core::{Usage, UsageRecord};
use moat_store::{Dimension, Store};

#[derive(Debug, Parser)]
struct Args {
    /// Usage records to load into each store.
    #[arg(long, default_value_t = 10_000_000)]
    records: u64,
    /// Records per insert batch (the usage writer's default is 500).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// A PostgreSQL server URL whose user may create databases; empty skips PostgreSQL.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres: String,
    /// Times each query runs.
    #[arg(long, default_value_t = 5)]
    repeat: usize,
}

/// A fixed xorshift generator: the same records every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

const DAYS: i64 = 90;
const MODELS: [(&str, &str); 6] = [
    ("qwen3-coder", "vllm-a"),
    ("qwen3-coder", "vllm-b"),
    ("deepseek-v4", "sglang-a"),
    ("gemma-3-27b", "vllm-c"),
    ("llama-4-scout", "hosted-x"),
    ("gpt-oss-120b", "vllm-d"),
];

/// How many of `records` fall in each hour of the span: weekday working hours (8:00–18:00)
/// weigh 8, other weekday hours 2, weekend hours 1. The counts add up to `records`.
fn hourly_counts(records: u64, start_ms: i64) -> Vec<u64> {
    let weights: Vec<u64> = (0..DAYS * 24)
        .map(|h| {
            let at = start_ms + h * HOUR_MS;
            // 1970-01-01 was a Thursday: day 0 is weekday 3 counting from Monday.
            let weekday = (at.div_euclid(24 * HOUR_MS) + 3).rem_euclid(7);
            let hour = at.div_euclid(HOUR_MS).rem_euclid(24);
            match (weekday < 5, (8..18).contains(&hour)) {
                (true, true) => 8,
                (true, false) => 2,
                (false, _) => 1,
            }
        })
        .collect();
    let total: u64 = weights.iter().sum();
    let mut before = 0;
    let mut given = 0;
    weights
        .iter()
        .map(|w| {
            before += w;
            let due = records * before / total;
            let count = due - given;
            given = due;
            count
        })
        .collect()
}

fn record(n: u64, at: i64, rng: &mut Rng) -> UsageRecord {
    let key = rng.below(300);
    let user = key / 3;
    let team = user % 12;
    let (model, deployment) = MODELS[usize::try_from((key + rng.below(2)) % 6).unwrap_or(0)];
    let input = 500 + rng.below(40_000);
    let output = 50 + rng.below(2_000);
    let cached = input * rng.below(80) / 100;
    UsageRecord {
        id: format!("{at:013}-{n:010}"),
        created_at_ms: at,
        key_id: Some(format!("key_{key:04}")),
        user_id: Some(format!("usr_{user:04}")),
        team_id: Some(format!("team_{team:02}")),
        model: model.to_owned(),
        deployment: Some(deployment.to_owned()),
        endpoint: "chat.completions".to_owned(),
        status: if rng.below(50) == 0 { 502 } else { 200 },
        error_code: None,
        usage: Usage { input, output, cached, cache_write: 0, reasoning: 0 },
        estimated: false,
        streamed: true,
        latency_ms: 200 + rng.below(20_000),
        ttft_ms: Some(100 + rng.below(2_000)),
        cache_hit: false,
        cost_micro_usd: (input + output) / 4,
        reference_cost_micro_usd: input * 3 + output * 15,
    }
}

async fn load(store: &Store, args: &Args, start_ms: i64) -> Duration {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let began = Instant::now();
    let mut batch = Vec::with_capacity(args.batch);
    let mut n = 0_u64;
    // Records arrive in time order, as a running gateway writes them (the rollup tests cover
    // late and out-of-order arrival); within an hour, in no order.
    for (hour, count) in hourly_counts(args.records, start_ms).into_iter().enumerate() {
        let hour_start = start_ms + i64::try_from(hour).unwrap_or(0) * HOUR_MS;
        for _ in 0..count {
            let at = hour_start + i64::try_from(rng.below(3_600_000)).unwrap_or(0);
            batch.push(record(n, at, &mut rng));
            n += 1;
            if batch.len() == args.batch {
                store.insert_usage(&batch).await.unwrap_or_else(|e| panic!("insert: {e}"));
                batch.clear();
            }
            if n.is_multiple_of(1_000_000) {
                println!("  {n} records loaded in {:.0} s", began.elapsed().as_secs_f64());
            }
        }
    }
    if !batch.is_empty() {
        store.insert_usage(&batch).await.unwrap_or_else(|e| panic!("insert: {e}"));
    }
    began.elapsed()
}

/// The median of `repeat` runs of one report query.
async fn time(
    store: &Store,
    repeat: usize,
    by: &[Dimension],
    from: i64,
    to: i64,
    only: Option<(Dimension, &str)>,
) -> (Duration, usize) {
    let mut runs = Vec::new();
    let mut rows = 0;
    for _ in 0..repeat {
        let began = Instant::now();
        rows = store.report(by, from, to, only).await.unwrap_or_else(|e| panic!("report: {e}")).len();
        runs.push(began.elapsed());
    }
    runs.sort();
    (runs[runs.len() / 2], rows)
}

/// One timed query: its label, grouping, start and narrowing.
type Query = (&'static str, Vec<Dimension>, i64, Option<(Dimension, &'static str)>);

async fn bench(name: &str, url: &str, args: &Args) {
    let store = Store::open(url).await.unwrap_or_else(|e| panic!("open {name}: {e}"));
    // 90 days ending at a fixed instant: 2026-11-27T00:00Z.
    let end = 1_795_737_600_000_i64;
    let start = end - DAYS * 24 * HOUR_MS;
    println!("{name}: loading {} records", args.records);
    let loaded = load(&store, args, start).await;
    #[allow(clippy::cast_precision_loss)]
    let rate = args.records as f64 / loaded.as_secs_f64();
    println!("{name}: loaded in {:.1} s ({rate:.0} records/s, rollups included)", loaded.as_secs_f64());
    let month = end - 30 * 24 * HOUR_MS;
    let queries: [Query; 6] = [
        ("total, 90 days", vec![], start, None),
        ("by team, 30 days (chargeback)", vec![Dimension::Team], month, None),
        ("by model and day, 30 days (trend)", vec![Dimension::Model, Dimension::Day], month, None),
        ("by user, 30 days (top consumers)", vec![Dimension::User], month, None),
        ("by key, 30 days", vec![Dimension::Key], month, None),
        ("one team by model, 30 days", vec![Dimension::Model], month, Some((Dimension::Team, "team_03"))),
    ];
    println!("| {name} query | median | rows |");
    println!("|---|---:|---:|");
    for (label, by, from, only) in queries {
        let (median, rows) = time(&store, args.repeat, &by, from, end, only).await;
        println!("| {label} | {:.1} ms | {rows} |", median.as_secs_f64() * 1000.0);
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let sqlite = format!("sqlite://{}/bench.db", dir.path().display());
    bench("SQLite", &sqlite, &args).await;
    if !args.postgres.is_empty() {
        let database = format!("moat_bench_reports_{}", std::process::id());
        let created = std::process::Command::new("psql")
            .args([&args.postgres, "-q", "-c", &format!("CREATE DATABASE {database}")])
            .status();
        if !created.is_ok_and(|s| s.success()) {
            println!("cannot create a PostgreSQL database through psql; skipping PostgreSQL");
            return;
        }
        let url = match args.postgres.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{database}"),
            None => args.postgres.clone(),
        };
        bench("PostgreSQL", &url, &args).await;
        let _ = std::process::Command::new("psql")
            .args([&args.postgres, "-q", "-c", &format!("DROP DATABASE {database}")])
            .status();
    }
}
