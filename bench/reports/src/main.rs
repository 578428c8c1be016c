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
use moat_bench_reports::{DAYS, END_MS, load};
use moat_core::rollup::HOUR_MS;
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
    let end = END_MS;
    let start = end - DAYS * 24 * HOUR_MS;
    println!("{name}: loading {} records", args.records);
    let loaded = load(&store, args.records, args.batch, start).await;
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
