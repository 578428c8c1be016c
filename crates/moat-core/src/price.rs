//! What a deployment's tokens cost, in integer micro-dollars so sums never drift.
//!
//! Prices are per million tokens, so a token count times a price is already in micro-dollars
//! (5 tokens at $3 per million cost 15 µ$). Counts arrive normalized (see [`Usage`]): input
//! includes cache reads and cache writes whatever the upstream's convention was (OpenAI reports
//! cached tokens inside `prompt_tokens`; Anthropic reports them beside `input_tokens`), and
//! output includes reasoning. A request's cost is summed exactly in sub-micro-dollar units and
//! rounded once, half up, so one request is off by at most half a micro-dollar.

use crate::Usage;

/// Prices per million tokens, in micro-dollars (`1_000_000` = $1.00 per million tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Price {
    /// Uncached input tokens.
    pub input: u64,
    /// Output tokens (reasoning included).
    pub output: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write: u64,
    /// Reasoning tokens, when billed apart from output; `None` bills them as output.
    pub reasoning: Option<u64>,
}

impl Price {
    /// One number to rank deployments by for the lowest-cost strategy: a million input plus a
    /// million output tokens.
    pub fn routing_cost(&self) -> u64 {
        self.input.saturating_add(self.output)
    }

    /// What `usage` costs at these prices, in micro-dollars.
    pub fn cost(&self, usage: &Usage) -> u64 {
        // Inconsistent counts from an upstream (more cached than input) bill what was
        // reported, never a negative remainder.
        let uncached = usage.input.saturating_sub(usage.cached).saturating_sub(usage.cache_write);
        let reasoning = usage.reasoning.min(usage.output);
        let (plain_output, reasoning_price) = match self.reasoning {
            Some(price) => (usage.output - reasoning, price),
            None => (usage.output, 0),
        };
        let term = |tokens: u64, price: u64| u128::from(tokens) * u128::from(price);
        // In millionths of a micro-dollar: token counts times micro-dollars per million tokens.
        let exact = term(uncached, self.input)
            + term(usage.cached, self.cache_read)
            + term(usage.cache_write, self.cache_write)
            + term(plain_output, self.output)
            + term(if self.reasoning.is_some() { reasoning } else { 0 }, reasoning_price);
        let rounded = (exact + 500_000) / 1_000_000;
        u64::try_from(rounded).unwrap_or(u64::MAX)
    }
}

/// How a self-hosted deployment's tokens are priced: what the hardware costs, spread over
/// what it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostModel {
    /// GPUs rented (or amortized) by the hour, serving a measured throughput: every token
    /// served costs `gpus × per_gpu_hour ÷ tokens_per_hour`.
    Gpu {
        /// GPUs the deployment runs on.
        gpus: u32,
        /// Micro-dollars per GPU-hour.
        per_gpu_hour: u64,
        /// Tokens (input plus output) the deployment serves per hour at its usual load, as
        /// measured (a benchmark, or its metrics over a busy week).
        tokens_per_hour: u64,
    },
    /// A flat price per million tokens, input and output alike, in micro-dollars.
    PerMillionTokens(u64),
}

impl CostModel {
    /// What the deployment costs over `period_ms` whether it serves or not: its GPUs' hours.
    /// `None` for a flat per-token price, which costs only what is served.
    pub fn period_cost(&self, period_ms: i64) -> Option<u64> {
        match *self {
            CostModel::PerMillionTokens(_) => None,
            CostModel::Gpu { gpus, per_gpu_hour, .. } => {
                let gpu_ms = u128::from(gpus) * u128::try_from(period_ms.max(0)).unwrap_or(0);
                Some(u64::try_from((gpu_ms * u128::from(per_gpu_hour) + 1_800_000) / 3_600_000).unwrap_or(u64::MAX))
            }
        }
    }

    /// The per-token price this model comes to, for every kind of token (a GPU spends its
    /// time on prompt and output alike; a prompt-cache hit is billed as input). Rounded once,
    /// half up, to a micro-dollar per million tokens.
    pub fn price(&self) -> Price {
        let per_mtok = match *self {
            CostModel::PerMillionTokens(per_mtok) => per_mtok,
            CostModel::Gpu { gpus, per_gpu_hour, tokens_per_hour } => {
                let per_hour = u128::from(gpus) * u128::from(per_gpu_hour);
                let tokens = u128::from(tokens_per_hour.max(1));
                u64::try_from((per_hour * 1_000_000 + tokens / 2) / tokens).unwrap_or(u64::MAX)
            }
        };
        Price { input: per_mtok, output: per_mtok, cache_read: per_mtok, cache_write: per_mtok, reasoning: None }
    }
}

/// The share of `total` that `part` of `whole` carries, rounded half up (an empty whole
/// carries nothing: there is no one to charge).
pub fn allocate(total: u64, part: u64, whole: u64) -> u64 {
    if whole == 0 {
        return 0;
    }
    let share = (u128::from(total) * u128::from(part) + u128::from(whole) / 2) / u128::from(whole);
    u64::try_from(share).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Dollars per million tokens, as config writes them, in micro-dollars.
    fn dollars(d: f64) -> u64 {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "small test values")]
        let micros = (d * 1_000_000.0).round() as u64;
        micros
    }

    #[test]
    fn an_openai_style_answer_with_cached_prompt_tokens() {
        // prompt_tokens 1,000,000 of which 400,000 cached; 200,000 completion tokens.
        let price =
            Price { input: dollars(0.60), cache_read: dollars(0.15), output: dollars(2.40), ..Price::default() };
        let usage = Usage { input: 1_000_000, cached: 400_000, output: 200_000, ..Usage::default() };
        // 600k × $0.60/M + 400k × $0.15/M + 200k × $2.40/M = $0.36 + $0.06 + $0.48.
        assert_eq!(price.cost(&usage), 900_000);
    }

    #[test]
    fn an_anthropic_style_answer_with_cache_reads_and_writes_reported_apart() {
        // input_tokens 5, cache_read_input_tokens 40, cache_creation_input_tokens 3, output 7:
        // normalized to input 48 (see moat-wire's Anthropic reader).
        let price = Price {
            input: dollars(3.0),
            output: dollars(15.0),
            cache_read: dollars(0.30),
            cache_write: dollars(3.75),
            reasoning: None,
        };
        let usage = Usage { input: 48, cached: 40, cache_write: 3, output: 7, reasoning: 0 };
        // 5 × 3 + 40 × 0.30 + 3 × 3.75 + 7 × 15 = 15 + 12 + 11.25 + 105 = 143.25 µ$.
        assert_eq!(price.cost(&usage), 143);
    }

    #[test]
    fn reasoning_is_output_unless_priced_apart() {
        let usage = Usage { input: 0, output: 1_000, reasoning: 600, ..Usage::default() };
        let as_output = Price { output: dollars(10.0), ..Price::default() };
        assert_eq!(as_output.cost(&usage), 10_000);
        let apart = Price { reasoning: Some(dollars(5.0)), ..as_output };
        // 400 × $10/M + 600 × $5/M = 4,000 + 3,000 µ$.
        assert_eq!(apart.cost(&usage), 7_000);
    }

    #[test]
    fn a_gpu_pool_prices_every_token_at_its_hourly_cost_over_its_throughput() {
        // Two H100s at $2.69 an hour serving 9 million tokens an hour: $5.38 / 9 M tokens =
        // $0.597778 per million tokens.
        let model = CostModel::Gpu { gpus: 2, per_gpu_hour: dollars(2.69), tokens_per_hour: 9_000_000 };
        let price = model.price();
        assert_eq!(price.input, 597_778);
        assert_eq!((price.output, price.cache_read, price.cache_write), (597_778, 597_778, 597_778));
        // A coding-agent turn: 30,000 prompt tokens (20,000 from the prefix cache), 1,500 output.
        let usage = Usage { input: 30_000, cached: 20_000, output: 1_500, ..Usage::default() };
        // 31,500 tokens × $0.597778/M = 18,830.007 µ$.
        assert_eq!(price.cost(&usage), 18_830);
        // A full hour at the measured throughput costs the GPUs' hour, to within the rate's rounding.
        assert_eq!(price.cost(&Usage { input: 4_500_000, output: 4_500_000, ..Usage::default() }), 5_380_002);
        let flat = CostModel::PerMillionTokens(dollars(0.20)).price();
        assert_eq!(flat.cost(&Usage { input: 1_000_000, output: 1_000_000, ..Usage::default() }), 400_000);
    }

    #[test]
    fn an_under_used_pool_costs_its_hours_however_little_it_serves() {
        // One GPU at $2.00 an hour, rated at 1 M tokens an hour.
        let pool = CostModel::Gpu { gpus: 1, per_gpu_hour: dollars(2.0), tokens_per_hour: 1_000_000 };
        let day = 24 * 3_600_000;
        assert_eq!(pool.period_cost(day), Some(48_000_000));
        // Busy: 24 M tokens in the day cost $2 per million, as rated.
        assert_eq!(allocate(48_000_000, 1_000_000, 24_000_000), 2_000_000);
        // Idle nine-tenths of the time: 2.4 M tokens carry the same $48, $20 per million.
        assert_eq!(allocate(48_000_000, 1_000_000, 2_400_000), 20_000_000);
        assert_eq!(CostModel::PerMillionTokens(5).period_cost(day), None);
    }

    #[test]
    fn half_a_micro_dollar_rounds_up_and_less_rounds_down() {
        let price = Price { input: 500_000, ..Price::default() }; // $0.50 per million
        assert_eq!(price.cost(&Usage { input: 1, ..Usage::default() }), 1, "0.5 µ$");
        assert_eq!(price.cost(&Usage { input: 2, ..Usage::default() }), 1, "1.0 µ$");
        let cheaper = Price { input: 400_000, ..Price::default() };
        assert_eq!(cheaper.cost(&Usage { input: 1, ..Usage::default() }), 0, "0.4 µ$");
    }

    #[test]
    fn counts_that_do_not_add_up_never_underflow() {
        let price = Price { input: dollars(1.0), cache_read: dollars(0.1), output: dollars(2.0), ..Price::default() };
        let usage = Usage { input: 10, cached: 50, output: 0, ..Usage::default() };
        assert_eq!(price.cost(&usage), 5, "only the 50 cached tokens at $0.10/M");
    }

    proptest! {
        #[test]
        fn cost_is_the_exact_sum_rounded_once(
            input in 0u64..10_000_000, cached_share in 0u64..=100, write_share in 0u64..=100,
            output in 0u64..1_000_000, reasoning in 0u64..1_000_000,
            p_in in 0u64..100_000_000, p_out in 0u64..100_000_000, p_read in 0u64..10_000_000, p_write in 0u64..10_000_000,
        ) {
            let cached = input * cached_share / 100;
            let cache_write = (input - cached) * write_share / 100;
            let usage = Usage { input, cached, cache_write, output, reasoning: reasoning.min(output) };
            let price = Price { input: p_in, output: p_out, cache_read: p_read, cache_write: p_write, reasoning: None };
            let exact = u128::from(input - cached - cache_write) * u128::from(p_in)
                + u128::from(cached) * u128::from(p_read)
                + u128::from(cache_write) * u128::from(p_write)
                + u128::from(output) * u128::from(p_out);
            let cost = u128::from(price.cost(&usage)) * 1_000_000;
            prop_assert!(cost.abs_diff(exact) <= 500_000, "off by more than half a micro-dollar");
            // More of any kind of token never costs less.
            let more = Usage { output: output + 1, ..usage };
            prop_assert!(price.cost(&more) >= price.cost(&usage));
        }
    }
}
