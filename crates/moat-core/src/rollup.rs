//! Usage rollups: what dashboards, reports and chargeback read instead of raw records.
//!
//! A rollup row sums the usage records of one UTC hour (or, in the daily tier, one UTC day)
//! that share a key, user, team, model and deployment. Rows are kept by adding: a batch of new records becomes row deltas, and a
//! delta is added to its row whenever its records arrive, early, late or out of order, so a
//! row always equals the sum of the records it covers. Latency is kept as a fixed histogram,
//! which adds the same way and gives percentiles to within a bucket.
//!
//! Two tiers hold the same sums: hourly rows for hour-exact edges and hourly trends, daily rows
//! so a month's report reads thirty rows per series instead of seven hundred. [`plan`] splits a
//! report's span between them.

use std::collections::BTreeMap;

use crate::UsageRecord;

/// One hour in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;
/// One day in milliseconds.
pub const DAY_MS: i64 = 24 * HOUR_MS;

/// How long a rollup row's period is: the two tables rollups are kept in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tier {
    /// UTC hours.
    Hour,
    /// UTC days.
    Day,
}

impl Tier {
    /// The length of one period.
    pub fn span_ms(self) -> i64 {
        match self {
            Tier::Hour => HOUR_MS,
            Tier::Day => DAY_MS,
        }
    }

    /// The start of the period `at_ms` falls in.
    pub fn start_of(self, at_ms: i64) -> i64 {
        at_ms.div_euclid(self.span_ms()) * self.span_ms()
    }
}

/// Upper bounds of the latency buckets, in milliseconds; the last bucket has none.
pub const LATENCY_BOUNDS_MS: [u64; 11] = [100, 250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000];
/// Number of latency buckets (and of time-to-first-token buckets).
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;
/// Upper bounds of the time-to-first-token buckets, in milliseconds: finer at the low end,
/// where a healthy self-hosted model answers.
pub const TTFT_BOUNDS_MS: [u64; 11] = [25, 50, 100, 250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000];

/// What a rollup row is about. Absent ids are empty strings, so the row's key is total.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RollupKey {
    /// The start of the row's UTC hour (or day, in the daily tier), Unix milliseconds.
    pub start_ms: i64,
    /// The key.
    pub key_id: String,
    /// The key's user.
    pub user_id: String,
    /// The team charged.
    pub team_id: String,
    /// The public model.
    pub model: String,
    /// The deployment that served it.
    pub deployment: String,
}

/// Sums over a rollup row's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// Requests.
    pub requests: u64,
    /// Requests answered with a status of 400 or more (499 included).
    pub errors: u64,
    /// Requests answered from the response cache.
    pub cache_hits: u64,
    /// Input tokens (cached and cache writes included).
    pub input_tokens: u64,
    /// Output tokens (reasoning included).
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cached_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write_tokens: u64,
    /// Output tokens spent reasoning.
    pub reasoning_tokens: u64,
    /// Micro-dollars.
    pub cost_micro_usd: u64,
    /// Micro-dollars at the reference model's list price.
    pub reference_cost_micro_usd: u64,
    /// Sum of latencies, milliseconds.
    pub latency_ms_sum: u64,
    /// Requests per latency bucket (see [`LATENCY_BOUNDS_MS`]).
    pub latency_buckets: [u64; LATENCY_BUCKETS],
    /// Sum of times to first token, milliseconds, over the requests that measured one.
    pub ttft_ms_sum: u64,
    /// Requests per time-to-first-token bucket (see [`TTFT_BOUNDS_MS`]); requests that never
    /// reached the upstream's first byte are in none.
    pub ttft_buckets: [u64; LATENCY_BUCKETS],
}

impl Totals {
    /// Adds one record.
    pub fn add_record(&mut self, record: &UsageRecord) {
        self.requests += 1;
        self.errors += u64::from(record.status >= 400);
        self.cache_hits += u64::from(record.cache_hit);
        self.input_tokens = self.input_tokens.saturating_add(record.usage.input);
        self.output_tokens = self.output_tokens.saturating_add(record.usage.output);
        self.cached_tokens = self.cached_tokens.saturating_add(record.usage.cached);
        self.cache_write_tokens = self.cache_write_tokens.saturating_add(record.usage.cache_write);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(record.usage.reasoning);
        self.cost_micro_usd = self.cost_micro_usd.saturating_add(record.cost_micro_usd);
        self.reference_cost_micro_usd = self.reference_cost_micro_usd.saturating_add(record.reference_cost_micro_usd);
        self.latency_ms_sum = self.latency_ms_sum.saturating_add(record.latency_ms);
        self.latency_buckets[latency_bucket(record.latency_ms)] += 1;
        if let Some(ttft) = record.ttft_ms {
            self.ttft_ms_sum = self.ttft_ms_sum.saturating_add(ttft);
            self.ttft_buckets[bucket_of(ttft, &TTFT_BOUNDS_MS)] += 1;
        }
    }

    /// Adds another row's sums.
    pub fn add(&mut self, other: &Totals) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.cache_hits += other.cache_hits;
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cached_tokens = self.cached_tokens.saturating_add(other.cached_tokens);
        self.cache_write_tokens = self.cache_write_tokens.saturating_add(other.cache_write_tokens);
        self.reasoning_tokens = self.reasoning_tokens.saturating_add(other.reasoning_tokens);
        self.cost_micro_usd = self.cost_micro_usd.saturating_add(other.cost_micro_usd);
        self.reference_cost_micro_usd = self.reference_cost_micro_usd.saturating_add(other.reference_cost_micro_usd);
        self.latency_ms_sum = self.latency_ms_sum.saturating_add(other.latency_ms_sum);
        for (mine, theirs) in self.latency_buckets.iter_mut().zip(other.latency_buckets) {
            *mine += theirs;
        }
        self.ttft_ms_sum = self.ttft_ms_sum.saturating_add(other.ttft_ms_sum);
        for (mine, theirs) in self.ttft_buckets.iter_mut().zip(other.ttft_buckets) {
            *mine += theirs;
        }
    }

    /// Savings against the reference: what it would have cost there minus what it cost.
    pub fn savings_micro_usd(&self) -> i64 {
        let reference = i64::try_from(self.reference_cost_micro_usd).unwrap_or(i64::MAX);
        reference.saturating_sub(i64::try_from(self.cost_micro_usd).unwrap_or(i64::MAX))
    }

    /// The latency below which a share `quantile` (0 to 1) of requests fall, as the upper bound
    /// of its bucket; `None` without requests, or in the last, open bucket.
    pub fn latency_quantile_ms(&self, quantile: f64) -> Option<u64> {
        bucket_quantile(&self.latency_buckets, &LATENCY_BOUNDS_MS, quantile)
    }

    /// The same for time to first token, over the requests that measured one.
    pub fn ttft_quantile_ms(&self, quantile: f64) -> Option<u64> {
        bucket_quantile(&self.ttft_buckets, &TTFT_BOUNDS_MS, quantile)
    }
}

/// The upper bound of the bucket holding the request at `quantile` (0 to 1).
fn bucket_quantile(buckets: &[u64; LATENCY_BUCKETS], bounds: &[u64], quantile: f64) -> Option<u64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    // The rank of the request at `quantile`, counting from 1.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let rank = ((quantile.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
    let mut seen = 0;
    for (bucket, count) in buckets.iter().enumerate() {
        seen += count;
        if seen >= rank {
            return bounds.get(bucket).copied();
        }
    }
    None
}

fn bucket_of(value_ms: u64, bounds: &[u64]) -> usize {
    bounds.iter().position(|&bound| value_ms <= bound).unwrap_or(bounds.len())
}

/// The bucket of a latency.
pub fn latency_bucket(latency_ms: u64) -> usize {
    bucket_of(latency_ms, &LATENCY_BOUNDS_MS)
}

/// The key of the row `record` belongs to.
pub fn key_of(record: &UsageRecord) -> RollupKey {
    let text = |value: &Option<String>| value.clone().unwrap_or_default();
    RollupKey {
        start_ms: Tier::Hour.start_of(record.created_at_ms),
        key_id: text(&record.key_id),
        user_id: text(&record.user_id),
        team_id: text(&record.team_id),
        model: record.model.clone(),
        deployment: text(&record.deployment),
    }
}

/// The row deltas a batch of new records makes.
pub fn deltas<'a>(records: impl IntoIterator<Item = &'a UsageRecord>) -> BTreeMap<RollupKey, Totals> {
    let mut rows: BTreeMap<RollupKey, Totals> = BTreeMap::new();
    for record in records {
        rows.entry(key_of(record)).or_default().add_record(record);
    }
    rows
}

/// The same deltas summed by `tier`'s periods instead of hours.
pub fn coarsen(hourly: &BTreeMap<RollupKey, Totals>, tier: Tier) -> BTreeMap<RollupKey, Totals> {
    let mut rows: BTreeMap<RollupKey, Totals> = BTreeMap::new();
    for (key, totals) in hourly {
        let key = RollupKey { start_ms: tier.start_of(key.start_ms), ..key.clone() };
        rows.entry(key).or_default().add(totals);
    }
    rows
}

/// Where a report over the rows whose hour starts in `[from_ms, to_ms)` reads: whole UTC days
/// from the daily tier, the hours before the first and after the last whole day from the
/// hourly tier. The spans are disjoint, in order, and cover exactly those hours; `hourly_only`
/// (a report by hour) reads every hour from the hourly tier.
pub fn plan(from_ms: i64, to_ms: i64, hourly_only: bool) -> Vec<(Tier, i64, i64)> {
    if from_ms >= to_ms {
        return Vec::new();
    }
    // The first day starting at or after `from_ms`, and the last day boundary at or before `to_ms`.
    let first_day = Tier::Day.start_of(from_ms.saturating_add(DAY_MS - 1));
    let last_day = Tier::Day.start_of(to_ms);
    if hourly_only || first_day >= last_day {
        return vec![(Tier::Hour, from_ms, to_ms)];
    }
    let mut spans = Vec::with_capacity(3);
    if from_ms < first_day {
        spans.push((Tier::Hour, from_ms, first_day));
    }
    spans.push((Tier::Day, first_day, last_day));
    if last_day < to_ms {
        spans.push((Tier::Hour, last_day, to_ms));
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Usage;

    fn record(id: &str, at: i64, latency_ms: u64, status: u16) -> UsageRecord {
        UsageRecord {
            id: id.into(),
            created_at_ms: at,
            key_id: Some("k".into()),
            user_id: None,
            team_id: Some("t".into()),
            model: "m".into(),
            deployment: Some("d".into()),
            endpoint: "chat.completions".into(),
            status,
            error_code: None,
            usage: Usage { input: 10, output: 5, cached: 4, cache_write: 0, reasoning: 1 },
            estimated: false,
            streamed: false,
            latency_ms,
            ttft_ms: None,
            cache_hit: false,
            cost_micro_usd: 7,
            reference_cost_micro_usd: 30,
            deployment_location: None,
            secrets_found: Default::default(),
            secrets_action: None,
        }
    }

    #[test]
    fn records_fold_into_their_hour_and_sum() {
        let records = [record("a", 0, 90, 200), record("b", HOUR_MS - 1, 300, 500), record("c", HOUR_MS, 200_000, 200)];
        let rows = deltas(&records);
        assert_eq!(rows.len(), 2);
        let first = rows.values().next().copied().unwrap_or_default();
        assert_eq!((first.requests, first.errors, first.input_tokens, first.cost_micro_usd), (2, 1, 20, 14));
        assert_eq!(first.savings_micro_usd(), 46);
        assert_eq!(first.latency_buckets[0], 1);
        assert_eq!(first.latency_buckets[2], 1);
        assert_eq!(first.latency_quantile_ms(0.5), Some(100));
        assert_eq!(first.latency_quantile_ms(0.99), Some(500));
        let last = rows.values().last().copied().unwrap_or_default();
        assert_eq!(last.latency_quantile_ms(0.5), None, "beyond the last bound");
        assert_eq!(Totals::default().latency_quantile_ms(0.5), None);
    }

    #[test]
    fn time_to_first_token_counts_only_requests_that_measured_one() {
        let mut fast = record("a", 0, 900, 200);
        fast.ttft_ms = Some(40);
        let mut slow = record("b", 1, 5_000, 200);
        slow.ttft_ms = Some(700);
        let failed = record("c", 2, 10, 502);
        let rows = deltas(&[fast, slow, failed]);
        let row = rows.values().next().copied().unwrap_or_default();
        assert_eq!((row.requests, row.ttft_buckets.iter().sum::<u64>(), row.ttft_ms_sum), (3, 2, 740));
        assert_eq!(row.ttft_quantile_ms(0.5), Some(50), "40 ms falls in the 25–50 ms bucket");
        assert_eq!(row.ttft_quantile_ms(0.95), Some(1_000));
        let mut twice = row;
        twice.add(&row);
        assert_eq!((twice.ttft_ms_sum, twice.ttft_buckets[1]), (1_480, 2));
        assert_eq!(Totals::default().ttft_quantile_ms(0.5), None);
    }

    #[test]
    fn daily_rows_sum_their_hours() {
        let records = [record("a", 0, 90, 200), record("b", DAY_MS - 1, 300, 500), record("c", DAY_MS, 200_000, 200)];
        let daily = coarsen(&deltas(&records), Tier::Day);
        let starts: Vec<i64> = daily.keys().map(|k| k.start_ms).collect();
        assert_eq!(starts, [0, DAY_MS]);
        let first = daily.values().next().copied().unwrap_or_default();
        assert_eq!((first.requests, first.errors, first.cost_micro_usd), (2, 1, 14));
        assert_eq!(Tier::Day.start_of(-1), -DAY_MS);
    }

    /// Every hour starting in the span is read exactly once, from a tier whose row covers it
    /// entirely, whatever the span's alignment.
    #[test]
    fn plans_read_each_hour_once_from_whole_periods() {
        let mut seed = 0x2545_F491_4F6C_DD1D_u64;
        let mut next = |n: i64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            i64::try_from(seed % u64::try_from(n).unwrap_or(1)).unwrap_or(0)
        };
        for round in 0..2_000 {
            let from = next(10 * DAY_MS) - 5 * DAY_MS;
            let from = if round % 3 == 0 { Tier::Hour.start_of(from) } else { from };
            let to = from + next(5 * DAY_MS);
            let hourly_only = round % 7 == 0;
            let spans = plan(from, to, hourly_only);
            let mut hour = Tier::Hour.start_of(from.saturating_add(HOUR_MS - 1));
            let mut at = from;
            for &(tier, start, end) in &spans {
                assert_eq!(start, at, "spans are contiguous: {spans:?}");
                assert!(start < end);
                if tier == Tier::Day {
                    assert!(!hourly_only);
                    assert_eq!((Tier::Day.start_of(start), Tier::Day.start_of(end)), (start, end));
                }
                at = end;
            }
            if from < to {
                assert_eq!(at, to, "spans end at the end: {spans:?}");
            } else {
                assert!(spans.is_empty());
            }
            // Each hour starting in [from, to) falls in exactly one span.
            while hour < to {
                let covering = spans.iter().filter(|(_, s, e)| *s <= hour && hour < *e).count();
                assert_eq!(covering, 1, "hour {hour} in {spans:?}");
                hour += HOUR_MS;
            }
        }
        assert_eq!(plan(0, 3 * DAY_MS, false), [(Tier::Day, 0, 3 * DAY_MS)]);
        assert_eq!(
            plan(HOUR_MS, 2 * DAY_MS + 5 * HOUR_MS, false),
            [
                (Tier::Hour, HOUR_MS, DAY_MS),
                (Tier::Day, DAY_MS, 2 * DAY_MS),
                (Tier::Hour, 2 * DAY_MS, 2 * DAY_MS + 5 * HOUR_MS)
            ]
        );
    }

    #[test]
    fn absent_ids_are_empty_so_every_record_has_a_row() {
        let mut anonymous = record("a", -1, 1, 200);
        anonymous.key_id = None;
        anonymous.deployment = None;
        let key = key_of(&anonymous);
        assert_eq!((key.start_ms, key.key_id.as_str(), key.deployment.as_str()), (-HOUR_MS, "", ""));
    }
}
