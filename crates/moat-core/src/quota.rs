//! Counters for budgets and limits: reserve at admission, settle once at the end.
//!
//! Checking a budget and spending it later lets concurrent requests all pass a check that
//! only one of them should have (each sees the same remaining balance). Here admission
//! *reserves* the request's estimate on every counter it touches, in one step that either
//! reserves on all of them or refuses; the end of the request *settles*: the reservation goes,
//! the actual amount is added. So the spend of admitted requests can pass a limit only by what
//! their estimates underestimated, never by the number of requests racing.
//!
//! A counter is a named quantity with a limit: a budget's spend in micro-dollars for one
//! period, requests or tokens in a sliding minute, requests in flight. Its state lives in
//! *buckets*: one per budget period, one per minute for sliding windows (the current minute
//! plus the share of the previous one that still overlaps the last 60 seconds). Each bucket
//! holds a settled total and the reservations in flight, each with an expiry, so a replica
//! that dies mid-request does not hold its reservations forever.
//!
//! [`Book`] is the reference implementation: the in-process counter store wraps it, and the
//! Redis scripts are tested against it operation by operation.

use std::collections::{HashMap, HashSet};

/// How long a settled reservation's id is remembered, so a repeated settle (a retry after a
/// lost reply, which comes within the counter store's timeout of seconds) is ignored. Short,
/// because every request leaves one behind: at 10,000 requests a second this is 600,000 ids
/// (ten minutes held 6 million, and the benchmark's soak saw moat's memory grow for all ten).
/// The Redis scripts use the same figure.
pub const SETTLED_MEMORY_MS: i64 = 60_000;

/// How a counter maps time to buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// One bucket, named after the counter, kept until `expires_at_ms` (the end of a budget
    /// period) or, with `None`, for as long as it is used (lifetime budgets, concurrency).
    Fixed {
        /// When the bucket may be forgotten.
        expires_at_ms: Option<i64>,
    },
    /// A sliding window `length_ms` long, approximated by two fixed buckets: the current one
    /// counts fully, the previous one by the fraction of it still inside the window.
    Sliding {
        /// The window's length.
        length_ms: i64,
    },
}

impl Window {
    /// The bucket counted as current at `now_ms`, for a counter named `counter`.
    pub fn bucket(&self, counter: &str, now_ms: i64) -> String {
        match self {
            Window::Fixed { .. } => counter.to_owned(),
            Window::Sliding { length_ms } => format!("{counter}@{}", now_ms.div_euclid(*length_ms)),
        }
    }

    /// Milliseconds until the current bucket's window ends (0 for fixed buckets: their end is
    /// the caller's to know).
    pub fn reset_after_ms(&self, now_ms: i64) -> i64 {
        match self {
            Window::Fixed { .. } => 0,
            Window::Sliding { length_ms } => length_ms - now_ms.rem_euclid(*length_ms),
        }
    }
}

/// One counter a request must fit in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The counter's name, e.g. `budget:<id>:<period start>` or `rpm:key:<id>`.
    pub counter: String,
    /// How its buckets are chosen.
    pub window: Window,
    /// The most it may hold.
    pub limit: u64,
    /// What this request reserves on it.
    pub amount: u64,
    /// Whether the bucket must be seeded (with spend already in the ledger) before first use;
    /// budgets are, so a restart or a lost Redis does not forget the month's spend.
    pub seeded: bool,
}

/// Where a reservation is held: settle needs this back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Held {
    /// The bucket.
    pub bucket: String,
    /// What was reserved on it.
    pub amount: u64,
}

/// A counter's state as a request sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Standing {
    /// The counter's limit.
    pub limit: u64,
    /// What it holds: settled plus reserved, this request included once admitted.
    pub used: u64,
}

impl Standing {
    /// What is left under the limit.
    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }
}

/// The answer to an admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Reserved on every counter.
    Admitted {
        /// What to settle later.
        held: Vec<Held>,
        /// Each check's counter afterwards, in the order of the checks.
        standings: Vec<Standing>,
    },
    /// Nothing was reserved: check `check` would go over its limit.
    Refused {
        /// The index of the first check that failed.
        check: usize,
        /// Its counter before this request.
        standing: Standing,
    },
    /// Nothing was reserved: these checks' buckets must be seeded first.
    Unseeded {
        /// The indexes of the checks whose buckets are missing.
        checks: Vec<usize>,
    },
}

/// What one settlement adds to one bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settle {
    /// The bucket the reservation is held in.
    pub bucket: String,
    /// The actual amount to add (0 for concurrency: leaving is all it does).
    pub actual: u64,
}

/// A counter's totals, for reading spend against a budget or limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// Settled amounts (for sliding windows, weighted as admission weighs them).
    pub settled: u64,
    /// Reservations in flight (weighted likewise).
    pub reserved: u64,
    /// Whether a bucket exists at all (a budget's is created when first used).
    pub exists: bool,
}

/// Whether a counter at `used` has room for `amount` more under `limit`. A counter already at
/// its limit admits nothing more, even a request estimated at zero.
pub fn fits(used: u64, amount: u64, limit: u64) -> bool {
    used < limit && used.saturating_add(amount) <= limit
}

/// The share of the previous sliding bucket still inside the window at `now_ms`, applied to
/// `total`, rounded up: a limit errs toward refusing, so a burst just before a minute boundary
/// still counts in full just after it.
pub fn previous_share(total: u64, length_ms: i64, now_ms: i64) -> u64 {
    let length = u128::try_from(length_ms.max(1)).unwrap_or(1);
    let overlap = length.saturating_sub(u128::try_from(now_ms.rem_euclid(length_ms.max(1))).unwrap_or(0));
    u64::try_from((u128::from(total) * overlap).div_ceil(length)).unwrap_or(u64::MAX)
}

#[derive(Debug, Clone)]
struct Bucket {
    settled: u64,
    reserved: u64,
    /// Reservation id → (amount, expiry).
    reservations: HashMap<String, (u64, i64)>,
    /// No reservation expires before this, so reads before it need not look at them (which
    /// costs one step per request in flight).
    earliest_expiry_ms: i64,
    expires_at_ms: Option<i64>,
}

impl Default for Bucket {
    fn default() -> Self {
        Bucket {
            settled: 0,
            reserved: 0,
            reservations: HashMap::new(),
            earliest_expiry_ms: i64::MAX,
            expires_at_ms: None,
        }
    }
}

impl Bucket {
    fn drop_expired(&mut self, now_ms: i64) {
        if now_ms < self.earliest_expiry_ms {
            return;
        }
        let reserved = &mut self.reserved;
        let mut earliest = i64::MAX;
        self.reservations.retain(|_, (amount, expires)| {
            let keep = *expires > now_ms;
            if keep {
                earliest = earliest.min(*expires);
            } else {
                *reserved = reserved.saturating_sub(*amount);
            }
            keep
        });
        self.earliest_expiry_ms = earliest;
    }
}

/// Every counter's buckets, in memory. Time is an argument; nothing here reads a clock.
#[derive(Debug, Default)]
pub struct Book {
    buckets: HashMap<String, Bucket>,
    /// Reservation ids settled since `settled_until_ms - SETTLED_MEMORY_MS`...
    settled: HashSet<String>,
    /// ...and those of the period before: every id is remembered for at least
    /// [`SETTLED_MEMORY_MS`] and at most twice that, and forgetting costs nothing per request
    /// (a sweep over millions of ids every thousand requests was most of admission's cost).
    settled_before: HashSet<String>,
    settled_until_ms: i64,
    /// When expired buckets are next looked for.
    next_sweep_ms: i64,
}

impl Book {
    /// An empty book.
    pub fn new() -> Book {
        Book::default()
    }

    /// Reserves `checks`' amounts under reservation `id` for `ttl_ms`, on all or none.
    pub fn admit(&mut self, id: &str, checks: &[Check], ttl_ms: i64, now_ms: i64) -> Admission {
        self.sweep(now_ms);
        let unseeded: Vec<usize> = checks
            .iter()
            .enumerate()
            .filter(|(_, check)| {
                check.seeded && !self.buckets.contains_key(&check.window.bucket(&check.counter, now_ms))
            })
            .map(|(index, _)| index)
            .collect();
        if !unseeded.is_empty() {
            return Admission::Unseeded { checks: unseeded };
        }
        let mut standings = Vec::with_capacity(checks.len());
        for (index, check) in checks.iter().enumerate() {
            let used = self.used(check, now_ms);
            if !fits(used, check.amount, check.limit) {
                return Admission::Refused { check: index, standing: Standing { limit: check.limit, used } };
            }
            standings.push(Standing { limit: check.limit, used: used.saturating_add(check.amount) });
        }
        let mut held = Vec::with_capacity(checks.len());
        for check in checks {
            let name = check.window.bucket(&check.counter, now_ms);
            let bucket = self.buckets.entry(name.clone()).or_default();
            bucket.expires_at_ms = bucket_expiry(check.window, now_ms);
            let expires = now_ms.saturating_add(ttl_ms);
            bucket.earliest_expiry_ms = bucket.earliest_expiry_ms.min(expires);
            if let Some((previous, _)) = bucket.reservations.insert(id.to_owned(), (check.amount, expires)) {
                bucket.reserved = bucket.reserved.saturating_sub(previous);
            }
            bucket.reserved = bucket.reserved.saturating_add(check.amount);
            held.push(Held { bucket: name, amount: check.amount });
        }
        Admission::Admitted { held, standings }
    }

    /// Ends reservation `id`: releases it and adds the actual amounts. Returns `false`, and
    /// changes nothing, when `id` was already settled. A bucket that no longer exists (its
    /// window passed, or a budget's, which the ledger will reseed) is left alone.
    pub fn settle(&mut self, id: &str, settles: &[Settle], now_ms: i64) -> bool {
        self.sweep(now_ms);
        if now_ms >= self.settled_until_ms {
            // The current generation becomes the previous one, unless a whole period passed
            // without a settle and it is already older than the memory.
            let current = std::mem::take(&mut self.settled);
            let recent = now_ms < self.settled_until_ms.saturating_add(SETTLED_MEMORY_MS);
            self.settled_before = if recent { current } else { HashSet::new() };
            self.settled_until_ms = now_ms.saturating_add(SETTLED_MEMORY_MS);
        }
        if self.settled.contains(id) || self.settled_before.contains(id) {
            return false;
        }
        self.settled.insert(id.to_owned());
        for settle in settles {
            if let Some(bucket) = self.buckets.get_mut(&settle.bucket) {
                if let Some((amount, _)) = bucket.reservations.remove(id) {
                    bucket.reserved = bucket.reserved.saturating_sub(amount);
                }
                bucket.settled = bucket.settled.saturating_add(settle.actual);
            }
        }
        true
    }

    /// Creates `bucket` holding `settled`, unless it exists; returns whether it was created.
    pub fn seed(&mut self, bucket: &str, settled: u64, expires_at_ms: Option<i64>) -> bool {
        if self.buckets.contains_key(bucket) {
            return false;
        }
        self.buckets.insert(bucket.to_owned(), Bucket { settled, expires_at_ms, ..Bucket::default() });
        true
    }

    /// Zeroes the settled total of `bucket` (reservations in flight stay).
    pub fn reset(&mut self, bucket: &str) {
        if let Some(bucket) = self.buckets.get_mut(bucket) {
            bucket.settled = 0;
        }
    }

    /// What the counter of `check` holds now, without reserving anything.
    pub fn totals(&mut self, check: &Check, now_ms: i64) -> Totals {
        let mut read = |name: &str| {
            self.buckets.get_mut(name).map(|bucket| {
                bucket.drop_expired(now_ms);
                (bucket.settled, bucket.reserved)
            })
        };
        let current = read(&check.window.bucket(&check.counter, now_ms));
        let previous = match check.window {
            Window::Fixed { .. } => None,
            Window::Sliding { length_ms } => read(&check.window.bucket(&check.counter, now_ms - length_ms))
                .map(|(s, r)| (previous_share(s, length_ms, now_ms), previous_share(r, length_ms, now_ms))),
        };
        let (s, r) = current.unwrap_or_default();
        let (ps, pr) = previous.unwrap_or_default();
        Totals { settled: s.saturating_add(ps), reserved: r.saturating_add(pr), exists: current.is_some() }
    }

    fn used(&mut self, check: &Check, now_ms: i64) -> u64 {
        let totals = self.totals(check, now_ms);
        totals.settled.saturating_add(totals.reserved)
    }

    /// Forgets expired buckets, at most once a second.
    fn sweep(&mut self, now_ms: i64) {
        if now_ms < self.next_sweep_ms {
            return;
        }
        self.next_sweep_ms = now_ms.saturating_add(1_000);
        self.buckets.retain(|_, bucket| {
            bucket.drop_expired(now_ms);
            bucket.expires_at_ms.is_none_or(|expires| expires > now_ms)
        });
    }

    /// The settled total and reserved total of one bucket, if it exists.
    pub fn bucket(&self, name: &str) -> Option<(u64, u64)> {
        self.buckets.get(name).map(|b| (b.settled, b.reserved))
    }
}

/// When a bucket created at `now_ms` for `window` may be forgotten: a sliding bucket is still
/// read as the previous one during the window after its own.
pub fn bucket_expiry(window: Window, now_ms: i64) -> Option<i64> {
    match window {
        Window::Fixed { expires_at_ms } => expires_at_ms,
        Window::Sliding { length_ms } => Some((now_ms.div_euclid(length_ms) + 2) * length_ms),
    }
}

#[cfg(test)]
#[path = "quota_tests.rs"]
mod tests;
