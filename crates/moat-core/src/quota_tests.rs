use super::*;
use proptest::prelude::*;

const TTL: i64 = 600_000;

fn budget(cap: u64, amount: u64) -> Check {
    Check {
        counter: "budget:b1:0".into(),
        window: Window::Fixed { expires_at_ms: None },
        limit: cap,
        amount,
        seeded: true,
    }
}

fn per_minute(limit: u64, amount: u64) -> Check {
    Check { counter: "rpm:key:k".into(), window: Window::Sliding { length_ms: 60_000 }, limit, amount, seeded: false }
}

fn settle_all(held: &[Held], actual: u64) -> Vec<Settle> {
    held.iter().map(|h| Settle { bucket: h.bucket.clone(), actual }).collect()
}

#[test]
fn a_budget_must_be_seeded_before_it_admits() {
    let mut book = Book::new();
    assert_eq!(book.admit("r1", &[budget(100, 10)], TTL, 0), Admission::Unseeded { checks: vec![0] });
    assert!(book.seed("budget:b1:0", 85, None));
    assert!(!book.seed("budget:b1:0", 0, None), "a second seed must not overwrite spend");
    let Admission::Admitted { held, standings } = book.admit("r1", &[budget(100, 10)], TTL, 0) else {
        panic!("10 fits in the 15 left");
    };
    assert_eq!(standings, vec![Standing { limit: 100, used: 95 }]);
    assert_eq!(
        book.admit("r2", &[budget(100, 10)], TTL, 0),
        Admission::Refused { check: 0, standing: Standing { limit: 100, used: 95 } }
    );
    assert!(book.settle("r1", &settle_all(&held, 4), 1));
    assert_eq!(book.bucket("budget:b1:0"), Some((89, 0)));
}

#[test]
fn admission_reserves_on_all_counters_or_none() {
    let mut book = Book::new();
    book.seed("budget:b1:0", 0, None);
    let checks = [per_minute(100, 1), budget(10, 11)];
    assert!(matches!(book.admit("r1", &checks, TTL, 0), Admission::Refused { check: 1, .. }));
    assert_eq!(book.bucket("rpm:key:k@0"), None, "the refused request reserved nothing");
}

#[test]
fn settling_twice_counts_once() {
    let mut book = Book::new();
    let Admission::Admitted { held, .. } = book.admit("r1", &[per_minute(5, 1)], TTL, 0) else { panic!() };
    assert!(book.settle("r1", &settle_all(&held, 1), 10));
    assert!(!book.settle("r1", &settle_all(&held, 1), 20));
    assert_eq!(book.bucket("rpm:key:k@0"), Some((1, 0)));
}

#[test]
fn settled_ids_are_remembered_for_the_settled_memory_then_forgotten() {
    let mut book = Book::new();
    let Admission::Admitted { held, .. } = book.admit("r1", &[per_minute(5, 1)], TTL, 0) else { panic!() };
    assert!(book.settle("r1", &settle_all(&held, 1), 10));
    // Other requests settle meanwhile, through more than one period of the memory.
    for (i, at) in [SETTLED_MEMORY_MS / 2, SETTLED_MEMORY_MS + 20].into_iter().enumerate() {
        assert!(book.settle(&format!("other{i}"), &[], at));
        assert!(!book.settle("r1", &settle_all(&held, 1), at), "a repeat within the memory is ignored");
    }
    assert!(book.settle("r1", &[], 3 * SETTLED_MEMORY_MS), "forgotten after at most twice the memory");
}

#[test]
fn a_full_counter_admits_nothing_even_at_zero_cost() {
    assert!(!fits(100, 0, 100));
    assert!(fits(99, 0, 100));
    assert!(fits(90, 10, 100));
    assert!(!fits(90, 11, 100));
    assert!(!fits(0, 0, 0));
}

#[test]
fn reservations_of_a_vanished_replica_expire() {
    let mut book = Book::new();
    let concurrency = Check {
        counter: "concurrent:key:k".into(),
        window: Window::Fixed { expires_at_ms: None },
        limit: 1,
        amount: 1,
        seeded: false,
    };
    assert!(matches!(book.admit("r1", std::slice::from_ref(&concurrency), TTL, 0), Admission::Admitted { .. }));
    assert!(matches!(book.admit("r2", std::slice::from_ref(&concurrency), TTL, TTL - 1), Admission::Refused { .. }));
    assert!(matches!(book.admit("r2", std::slice::from_ref(&concurrency), TTL, TTL), Admission::Admitted { .. }));
}

#[test]
fn the_previous_minute_counts_by_its_overlap() {
    let mut book = Book::new();
    for i in 0..10 {
        let Admission::Admitted { held, .. } = book.admit(&format!("r{i}"), &[per_minute(10, 1)], TTL, 59_000) else {
            panic!("request {i} fits");
        };
        book.settle(&format!("r{i}"), &settle_all(&held, 1), 59_000);
    }
    // 15 s into the next minute, 45/60 of the previous minute's 10 still count: 8 (rounded up).
    let totals = book.totals(&per_minute(10, 1), 75_000);
    assert_eq!(totals.settled, 8);
    // A millisecond after the boundary, all 10 still count.
    assert_eq!(book.totals(&per_minute(10, 1), 60_001).settled, 10);
    assert!(matches!(book.admit("a", &[per_minute(10, 1)], TTL, 75_000), Admission::Admitted { .. }));
    assert_eq!(Window::Sliding { length_ms: 60_000 }.reset_after_ms(75_000), 45_000);
}

#[derive(Debug, Clone)]
enum Op {
    /// Admit a request with this estimate.
    Admit(u64),
    /// Settle the n-th request in flight (modulo) at this actual cost.
    Settle(usize, u64),
    /// Let time pass.
    Wait(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0_u64..40).prop_map(Op::Admit),
        3 => (any::<usize>(), 0_u64..60).prop_map(|(n, a)| Op::Settle(n, a)),
        1 => (0_i64..30_000).prop_map(Op::Wait),
    ]
}

proptest! {
    /// Whatever the interleaving, settled spend plus reservations never passes the budget by
    /// more than what settled requests cost beyond their estimates; and a refusal only ever
    /// happens when the estimate would not have fit.
    #[test]
    fn spend_never_passes_a_budget_by_more_than_underestimates(
        cap in 0_u64..200,
        ops in proptest::collection::vec(op(), 1..200),
    ) {
        let mut book = Book::new();
        book.seed("budget:b1:0", 0, None);
        let mut in_flight: Vec<(String, u64, Vec<Held>)> = Vec::new();
        let mut overshoot = 0_u64;
        let mut now = 0_i64;
        for (n, op) in ops.into_iter().enumerate() {
            match op {
                Op::Admit(estimate) => {
                    let before = book.totals(&budget(cap, estimate), now);
                    match book.admit(&format!("r{n}"), &[budget(cap, estimate)], i64::MAX / 4, now) {
                        Admission::Admitted { held, .. } => in_flight.push((format!("r{n}"), estimate, held)),
                        Admission::Refused { standing, .. } => {
                            prop_assert_eq!(standing.used, before.settled + before.reserved);
                            prop_assert!(!fits(standing.used, estimate, cap));
                        }
                        Admission::Unseeded { .. } => prop_assert!(false, "the budget was seeded"),
                    }
                }
                Op::Settle(pick, actual) if !in_flight.is_empty() => {
                    let (id, estimate, held) = in_flight.remove(pick % in_flight.len());
                    overshoot += actual.saturating_sub(estimate);
                    prop_assert!(book.settle(&id, &settle_all(&held, actual), now));
                }
                Op::Settle(..) => {}
                Op::Wait(ms) => now += ms,
            }
            let totals = book.totals(&budget(cap, 0), now);
            prop_assert!(totals.settled + totals.reserved <= cap + overshoot,
                "spend {} + reserved {} over cap {} + overshoot {}", totals.settled, totals.reserved, cap, overshoot);
        }
    }

    /// A per-minute limit never admits more than its limit into one minute's bucket, and
    /// concurrency never exceeds its limit, whatever the order of arrivals and completions.
    #[test]
    fn limits_hold_under_any_interleaving(
        limit in 1_u64..20,
        ops in proptest::collection::vec(op(), 1..300),
    ) {
        let concurrency = Check {
            counter: "concurrent:key:k".into(),
            window: Window::Fixed { expires_at_ms: None },
            limit: limit / 2 + 1,
            amount: 1,
            seeded: false,
        };
        let mut book = Book::new();
        let mut in_flight: Vec<(String, Vec<Held>)> = Vec::new();
        let mut admitted_per_minute: HashMap<i64, u64> = HashMap::new();
        let mut now = 0_i64;
        for (n, op) in ops.into_iter().enumerate() {
            match op {
                Op::Admit(_) => {
                    let checks = [per_minute(limit, 1), concurrency.clone()];
                    if let Admission::Admitted { held, .. } = book.admit(&format!("r{n}"), &checks, TTL, now) {
                        *admitted_per_minute.entry(now.div_euclid(60_000)).or_default() += 1;
                        in_flight.push((format!("r{n}"), held));
                    }
                }
                Op::Settle(pick, _) if !in_flight.is_empty() => {
                    let (id, held) = in_flight.remove(pick % in_flight.len());
                    let settles = vec![
                        Settle { bucket: held[0].bucket.clone(), actual: 1 },
                        Settle { bucket: held[1].bucket.clone(), actual: 0 },
                    ];
                    book.settle(&id, &settles, now);
                }
                Op::Settle(..) => {}
                Op::Wait(ms) => now += ms,
            }
            prop_assert!(admitted_per_minute.values().all(|&n| n <= limit));
            let held_now = book.totals(&concurrency, now);
            prop_assert!(held_now.reserved <= concurrency.limit);
        }
    }
}
