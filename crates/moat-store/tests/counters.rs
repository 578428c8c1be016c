//! The Redis counter scripts against the in-memory book, operation by operation: on random
//! sequences of admissions, settlements, seeds, resets and waits, both stores must give the
//! same answers. Needs the Redis on 127.0.0.1:6379.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use moat_core::quota::{Admission, Check, SETTLED_MEMORY_MS, Settle, Window};
use moat_store::counters::{CounterStore, RedisCounters};
use proptest::prelude::*;

const REDIS: &str = "redis://127.0.0.1:6379/0";
const TTL: Duration = Duration::from_secs(90);

#[derive(Debug, Clone)]
enum Op {
    /// Admit with these (counter index, amount) checks.
    Admit(Vec<(usize, u64)>),
    /// Settle the n-th admitted request with an actual amount per bucket.
    Settle(usize, u64),
    /// Settle the n-th settled request again.
    SettleAgain(usize),
    /// Seed a budget counter.
    Seed(usize, u64),
    /// Reset a counter's current bucket.
    Reset(usize),
    /// Let time pass.
    Wait(i64),
}

/// The counters a sequence draws from: two budgets (one with a period), a per-minute limit, a
/// per-10-seconds limit and a concurrency limit.
fn counters(now: i64) -> Vec<Check> {
    let fixed = |name: &str, limit: u64, seeded: bool, expires_at_ms| Check {
        counter: name.into(),
        window: Window::Fixed { expires_at_ms },
        limit,
        amount: 0,
        seeded,
    };
    let sliding = |name: &str, limit: u64, length_ms| Check {
        counter: name.into(),
        window: Window::Sliding { length_ms },
        limit,
        amount: 0,
        seeded: false,
    };
    vec![
        fixed("budget:a:0", 500, true, None),
        fixed("budget:b:1", 120, true, Some(now + 86_400_000)),
        sliding("rpm:key:k", 8, 60_000),
        sliding("tpm:key:k", 300, 10_000),
        fixed("concurrent:key:k", 3, false, None),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => proptest::collection::vec((0_usize..5, 0_u64..90), 1..4).prop_map(Op::Admit),
        3 => (any::<usize>(), 0_u64..120).prop_map(|(n, a)| Op::Settle(n, a)),
        1 => any::<usize>().prop_map(Op::SettleAgain),
        1 => (0_usize..2, 0_u64..400).prop_map(|(c, v)| Op::Seed(c, v)),
        1 => (0_usize..5).prop_map(Op::Reset),
        2 => (0_i64..40_000).prop_map(Op::Wait),
    ]
}

async fn replay(ops: Vec<Op>, case: u64) -> Result<(), TestCaseError> {
    let memory = CounterStore::memory();
    // Its own keys per replay: shrinking replays a case many times, and keys a longer replay
    // left behind would make a shorter one disagree with a fresh book.
    static REPLAYS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let replay = REPLAYS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let prefix = format!("moat-test-counters-{}-{case}-{replay}", std::process::id());
    let redis = CounterStore::Redis(RedisCounters::new(REDIS, &prefix, Duration::from_secs(2)).unwrap());
    let start =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis().try_into().unwrap();
    let start: i64 = start;
    let mut now = start;
    let catalog = counters(start);
    let mut admitted: Vec<(String, Vec<String>)> = Vec::new();
    let mut settled: Vec<(String, Vec<Settle>, i64)> = Vec::new();
    for (n, op) in ops.into_iter().enumerate() {
        match op {
            Op::Admit(picks) => {
                let mut checks: Vec<Check> = Vec::new();
                for (index, amount) in picks {
                    if checks.iter().all(|c| c.counter != catalog[index].counter) {
                        checks.push(Check { amount, ..catalog[index].clone() });
                    }
                }
                let id = format!("r{n}");
                let a = memory.admit(&id, &checks, TTL, Some(now)).await.unwrap();
                let b = redis.admit(&id, &checks, TTL, Some(now)).await.unwrap();
                prop_assert_eq!(&a, &b, "admit {:?} at +{}ms", checks, now - start);
                if let Admission::Admitted { held, .. } = a {
                    admitted.push((id, held.into_iter().map(|h| h.bucket).collect()));
                }
            }
            Op::Settle(pick, actual) if !admitted.is_empty() => {
                let (id, buckets) = admitted.remove(pick % admitted.len());
                let settles: Vec<Settle> = buckets.into_iter().map(|bucket| Settle { bucket, actual }).collect();
                let a = memory.settle(&id, &settles, Some(now)).await.unwrap();
                let b = redis.settle(&id, &settles, Some(now)).await.unwrap();
                prop_assert_eq!(a, b, "settle {}", id);
                settled.push((id, settles, now));
            }
            // A repeat comes within seconds (a retry after a lost reply); both stores ignore one
            // within the settled memory, and beyond it may not agree on when they forgot.
            Op::SettleAgain(pick) if settled.iter().any(|(.., at)| now - at < SETTLED_MEMORY_MS) => {
                let recent: Vec<_> = settled.iter().filter(|(.., at)| now - at < SETTLED_MEMORY_MS).collect();
                let (id, settles, _) = recent[pick % recent.len()];
                prop_assert!(!memory.settle(id, settles, Some(now)).await.unwrap());
                prop_assert!(!redis.settle(id, settles, Some(now)).await.unwrap());
            }
            Op::Seed(index, value) => {
                let check = &catalog[index];
                let expires = match check.window {
                    Window::Fixed { expires_at_ms } => expires_at_ms,
                    Window::Sliding { .. } => None,
                };
                let a = memory.seed(&check.counter, value, expires).await.unwrap();
                let b = redis.seed(&check.counter, value, expires).await.unwrap();
                prop_assert_eq!(a, b, "seed {}", check.counter);
            }
            Op::Reset(index) => {
                let bucket = vec![catalog[index].window.bucket(&catalog[index].counter, now)];
                memory.reset(&bucket).await.unwrap();
                redis.reset(&bucket).await.unwrap();
            }
            Op::Settle(..) | Op::SettleAgain(..) => {}
            Op::Wait(ms) => now += ms,
        }
        for check in &catalog {
            let a = memory.totals(check, Some(now)).await.unwrap();
            let b = redis.totals(check, Some(now)).await.unwrap();
            prop_assert_eq!(a, b, "totals of {} at +{}ms", check.counter, now - start);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn redis_counters_behave_like_the_in_memory_book(ops in proptest::collection::vec(op(), 1..60), case in any::<u64>()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(replay(ops, case))?;
    }
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error_not_a_hang() {
    // Nothing listens on port 1.
    let store = CounterStore::Redis(
        RedisCounters::new("redis://127.0.0.1:1/0", "moat-test", Duration::from_millis(200)).unwrap(),
    );
    let started = std::time::Instant::now();
    let check = Check {
        counter: "rpm:key:k".into(),
        window: Window::Sliding { length_ms: 60_000 },
        limit: 1,
        amount: 1,
        seeded: false,
    };
    assert!(store.admit("r", &[check], TTL, None).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn redis_uses_its_own_clock_when_none_is_given() {
    let prefix = format!("moat-test-clock-{}", std::process::id());
    let store = CounterStore::Redis(RedisCounters::new(REDIS, &prefix, Duration::from_secs(2)).unwrap());
    let check = Check {
        counter: "rpm:key:k".into(),
        window: Window::Sliding { length_ms: 60_000 },
        limit: 2,
        amount: 1,
        seeded: false,
    };
    // Admitting the same id twice re-reserves rather than stacking: `r` holds one slot.
    for _ in 0..2 {
        let admission = store.admit("r", std::slice::from_ref(&check), TTL, None).await.unwrap();
        assert!(matches!(admission, Admission::Admitted { .. }));
    }
    let mut outcomes = Vec::new();
    for n in 0..3 {
        let admission = store.admit(&format!("q{n}"), std::slice::from_ref(&check), TTL, None).await.unwrap();
        outcomes.push(matches!(admission, Admission::Admitted { .. }));
    }
    // One more request fits in the minute Redis's clock is in, then none.
    assert_eq!(outcomes, vec![true, false, false]);
}
