//! Where budget and limit counters live: in this process, or in Redis for a fleet.
//!
//! Both stores run the same operations of [`moat_core::quota`]: admit (reserve on every
//! counter or none), settle (exactly once), seed (a budget's spend from the ledger), reset and
//! read. In memory they are [`Book`] behind a mutex. In Redis each is one Lua script, run
//! atomically by the server in one round trip, on the server's clock, so replicas with drifting
//! clocks still agree; keys live under `<key_prefix>:q1:` (`q1` is the layout's version) and
//! expire by themselves. The scripts build key names from the clock, so they need a single
//! Redis primary (standalone or Sentinel), not Redis Cluster.

mod redis_store;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use moat_core::quota::{Admission, Book, Check, Settle, Totals};

use crate::now_ms;

pub use redis_store::RedisCounters;

/// A counter operation that could not run.
#[derive(Debug, thiserror::Error)]
pub enum CounterError {
    /// Redis failed, or did not answer in time.
    #[error("the counter store is unavailable: {0}")]
    Unavailable(String),
}

/// The counters of budgets and limits.
#[derive(Debug, Clone)]
pub enum CounterStore {
    /// In this process: one replica only.
    Memory(Arc<Mutex<Book>>),
    /// In Redis, shared by every replica.
    Redis(RedisCounters),
}

impl CounterStore {
    /// Counters in this process.
    pub fn memory() -> CounterStore {
        CounterStore::Memory(Arc::new(Mutex::new(Book::new())))
    }

    /// Where the counters live, for `/readyz` and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            CounterStore::Memory(_) => "memory",
            CounterStore::Redis(_) => "redis",
        }
    }

    /// Whether the store answers (always, in memory).
    pub async fn ping(&self) -> Result<(), CounterError> {
        match self {
            CounterStore::Memory(_) => Ok(()),
            CounterStore::Redis(redis) => redis.ping().await,
        }
    }

    /// Reserves every check's amount under `id` for `ttl`, or nothing. `at_ms` fixes the
    /// clock (tests); `None` is the store's own (Redis: the server's).
    pub async fn admit(
        &self,
        id: &str,
        checks: &[Check],
        ttl: Duration,
        at_ms: Option<i64>,
    ) -> Result<Admission, CounterError> {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX / 4);
        match self {
            CounterStore::Memory(book) => Ok(lock(book).admit(id, checks, ttl_ms, at_ms.unwrap_or_else(now_ms))),
            CounterStore::Redis(redis) => redis.admit(id, checks, ttl_ms, at_ms).await,
        }
    }

    /// Ends reservation `id` with the actual amounts; `false` if it was already settled.
    pub async fn settle(&self, id: &str, settles: &[Settle], at_ms: Option<i64>) -> Result<bool, CounterError> {
        match self {
            CounterStore::Memory(book) => Ok(lock(book).settle(id, settles, at_ms.unwrap_or_else(now_ms))),
            CounterStore::Redis(redis) => redis.settle(id, settles, at_ms).await,
        }
    }

    /// Creates `bucket` holding `settled` unless it exists; whether it was created.
    pub async fn seed(&self, bucket: &str, settled: u64, expires_at_ms: Option<i64>) -> Result<bool, CounterError> {
        match self {
            CounterStore::Memory(book) => Ok(lock(book).seed(bucket, settled, expires_at_ms)),
            CounterStore::Redis(redis) => redis.seed(bucket, settled, expires_at_ms).await,
        }
    }

    /// Zeroes the settled totals of `buckets`.
    pub async fn reset(&self, buckets: &[String]) -> Result<(), CounterError> {
        match self {
            CounterStore::Memory(book) => {
                let mut book = lock(book);
                buckets.iter().for_each(|bucket| book.reset(bucket));
                Ok(())
            }
            CounterStore::Redis(redis) => redis.reset(buckets).await,
        }
    }

    /// What the counter of `check` holds now.
    pub async fn totals(&self, check: &Check, at_ms: Option<i64>) -> Result<Totals, CounterError> {
        match self {
            CounterStore::Memory(book) => Ok(lock(book).totals(check, at_ms.unwrap_or_else(now_ms))),
            CounterStore::Redis(redis) => redis.totals(check, at_ms).await,
        }
    }
}

fn lock(book: &Mutex<Book>) -> std::sync::MutexGuard<'_, Book> {
    // The book's operations leave it consistent at every step; a panic elsewhere while the
    // lock was held does not make it unsafe to use.
    book.lock().unwrap_or_else(PoisonError::into_inner)
}
