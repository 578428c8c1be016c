//! Synthetic traffic for moat's scale benchmarks: usage records with a working-week shape,
//! loaded through the real write path (`Store::insert_usage`, rollups included), shared by the
//! report benchmark (`src/main.rs`) and the console benchmark (`src/bin/console.rs`).
//!
//! The traffic: 300 keys (`key_0000`…) of 100 users (`usr_0000`…) in 12 teams (`team_00`…),
//! 6 models on 6 deployments, over 90 days ending at [`END_MS`], arriving in time order; each
//! key uses two models. The same records every run.

#![allow(clippy::print_stdout, reason = "a benchmark reports its progress on stdout")]

use std::time::{Duration, Instant};

use moat_core::rollup::HOUR_MS;
use moat_core::{Usage, UsageRecord};
use moat_store::Store;

/// The end of the loaded span: 2026-11-27T00:00Z.
pub const END_MS: i64 = 1_795_737_600_000;

/// A fixed xorshift generator: the same records every run.
pub struct Rng(pub u64);

impl Rng {
    /// A number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Days of traffic, ending at [`END_MS`].
pub const DAYS: i64 = 90;
/// (model, deployment) pairs the keys use.
pub const MODELS: [(&str, &str); 6] = [
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

/// The `n`-th record, at `at`.
pub fn record(n: u64, at: i64, rng: &mut Rng) -> UsageRecord {
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
        deployment_location: None,
        secrets_found: Default::default(),
        secrets_action: None,
    }
}

/// Loads `records` records from `start_ms` in batches of `batch`; returns how long it took.
pub async fn load(store: &Store, records: u64, batch_size: usize, start_ms: i64) -> Duration {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let began = Instant::now();
    let mut batch = Vec::with_capacity(batch_size);
    let mut n = 0_u64;
    // Records arrive in time order, as a running gateway writes them (the rollup tests cover
    // late and out-of-order arrival); within an hour, in no order.
    for (hour, count) in hourly_counts(records, start_ms).into_iter().enumerate() {
        let hour_start = start_ms + i64::try_from(hour).unwrap_or(0) * HOUR_MS;
        for _ in 0..count {
            let at = hour_start + i64::try_from(rng.below(3_600_000)).unwrap_or(0);
            batch.push(record(n, at, &mut rng));
            n += 1;
            if batch.len() == batch_size {
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
