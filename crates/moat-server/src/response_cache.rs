//! The exact-match response cache, for models that opt in.
//!
//! Apps often send the same request again (a retried job, a page rendered twice, an eval run
//! repeated); a cached answer costs no GPU time and comes back in a millisecond. A request is
//! identical when its endpoint, model, tenant and body bytes are: the key is a SHA-256 over
//! them, so the tenant (see [`moat_core::CacheScope`]) is part of every key and an answer
//! never reaches a caller outside it, and Redis never sees a prompt, only digests and answers.
//!
//! With `[redis]` the cache lives there, shared by every replica, under `<key_prefix>:cache:`;
//! without it, in this process (64 MiB, least recently used out first). The cache never
//! fails a request: a Redis that does not answer within [`LOOKUP_TIMEOUT`] is a miss, and
//! after a failure lookups skip Redis for [`REDIS_BACKOFF`] rather than add latency to each.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use redis::AsyncCommands;
use sha2::{Digest, Sha256};
use tokio_util::task::TaskTracker;

use crate::fanout::RedisSettings;

/// Longest a lookup waits for Redis before the request goes upstream.
const LOOKUP_TIMEOUT: Duration = Duration::from_millis(100);
/// Longest storing an answer may take (off the request path).
const STORE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long Redis is left alone after it failed.
const REDIS_BACKOFF: Duration = Duration::from_secs(2);
/// Answers larger than this are not cached.
pub(crate) const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// The in-process cache's size.
const MEMORY_BYTES: u64 = 64 * 1024 * 1024;

/// A stored answer: what the client was sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CachedAnswer {
    pub(crate) content_type: String,
    pub(crate) body: Bytes,
}

/// The digest an answer is stored under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct CacheKey([u8; 32]);

impl CacheKey {
    /// The key of a request: endpoint, public model, tenant and exact body.
    pub(crate) fn of(endpoint: &str, model: &str, tenant: &str, body: &[u8]) -> CacheKey {
        let mut digest = Sha256::new();
        for part in [b"moat-cache-v1".as_slice(), endpoint.as_bytes(), model.as_bytes(), tenant.as_bytes()] {
            // Length-prefixed, so no two different tuples hash the same bytes.
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part);
        }
        digest.update(body);
        CacheKey(digest.finalize().into())
    }

    fn hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// What a lookup found.
#[derive(Debug)]
pub(crate) enum Lookup {
    Hit(CachedAnswer),
    Miss,
    /// Redis did not answer; treated as a miss.
    Unavailable,
}

impl Lookup {
    /// The metric label of this result.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Lookup::Hit(_) => "hit",
            Lookup::Miss => "miss",
            Lookup::Unavailable => "unavailable",
        }
    }
}

/// Where answers are kept.
#[derive(Debug)]
pub(crate) enum ResponseCache {
    Memory(moka::sync::Cache<CacheKey, Arc<MemoryEntry>>),
    Redis(Box<RedisCache>),
}

/// An answer in the in-process cache, with its own lifetime.
#[derive(Debug)]
pub(crate) struct MemoryEntry {
    answer: CachedAnswer,
    ttl: Duration,
}

struct EntryLifetime;

impl moka::Expiry<CacheKey, Arc<MemoryEntry>> for EntryLifetime {
    fn expire_after_create(&self, _key: &CacheKey, entry: &Arc<MemoryEntry>, _created_at: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }
}

impl ResponseCache {
    /// In Redis when configured, else in this process.
    pub(crate) fn new(redis: Option<&RedisSettings>) -> Result<ResponseCache, String> {
        match redis {
            Some(settings) => Ok(ResponseCache::Redis(Box::new(RedisCache::new(settings)?))),
            None => Ok(ResponseCache::Memory(
                moka::sync::Cache::builder()
                    .max_capacity(MEMORY_BYTES)
                    .weigher(|_key, entry: &Arc<MemoryEntry>| {
                        u32::try_from(entry.answer.body.len() + entry.answer.content_type.len() + 64)
                            .unwrap_or(u32::MAX)
                    })
                    .expire_after(EntryLifetime)
                    .build(),
            )),
        }
    }

    /// The answer stored under `key`, if any.
    pub(crate) async fn get(&self, key: &CacheKey) -> Lookup {
        match self {
            ResponseCache::Memory(cache) => match cache.get(key) {
                Some(entry) => Lookup::Hit(entry.answer.clone()),
                None => Lookup::Miss,
            },
            ResponseCache::Redis(redis) => redis.get(key).await,
        }
    }

    /// Stores `answer` under `key` for `ttl`: in the process at once (the next identical
    /// request finds it), in Redis on a tracked background task (the response never waits).
    pub(crate) fn put(self: &Arc<Self>, key: CacheKey, answer: CachedAnswer, ttl: Duration, tasks: &TaskTracker) {
        if answer.body.len() > MAX_ANSWER_BYTES {
            return;
        }
        match self.as_ref() {
            ResponseCache::Memory(cache) => cache.insert(key, Arc::new(MemoryEntry { answer, ttl })),
            ResponseCache::Redis(_) => {
                let cache = self.clone();
                tasks.spawn(async move {
                    if let ResponseCache::Redis(redis) = cache.as_ref() {
                        redis.put(key, answer, ttl).await;
                    }
                });
            }
        }
    }
}

/// The cache in Redis, over one multiplexed connection made on first use and remade after a
/// failure.
pub(crate) struct RedisCache {
    client: redis::Client,
    prefix: String,
    connection: Mutex<Option<redis::aio::MultiplexedConnection>>,
    /// No connection is attempted before this instant (set after a failure).
    resting_until: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The client holds the URL, which may carry a password.
        f.debug_struct("RedisCache").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl RedisCache {
    fn new(settings: &RedisSettings) -> Result<RedisCache, String> {
        let client = redis::Client::open(settings.url.as_str()).map_err(|e| format!("redis.url: {e}"))?;
        Ok(RedisCache {
            client,
            prefix: format!("{}:cache:", settings.key_prefix),
            connection: Mutex::new(None),
            resting_until: Mutex::new(None),
        })
    }

    fn redis_key(&self, key: &CacheKey) -> String {
        format!("{}{}", self.prefix, key.hex())
    }

    async fn get(&self, key: &CacheKey) -> Lookup {
        let Some(mut connection) = self.connection(LOOKUP_TIMEOUT).await else { return Lookup::Unavailable };
        let value = connection.get::<_, Option<Vec<u8>>>(self.redis_key(key));
        match tokio::time::timeout(LOOKUP_TIMEOUT, value).await {
            Ok(Ok(value)) => value.and_then(|v| decode(&v)).map_or(Lookup::Miss, Lookup::Hit),
            Ok(Err(_)) | Err(_) => {
                self.failed();
                Lookup::Unavailable
            }
        }
    }

    async fn put(&self, key: CacheKey, answer: CachedAnswer, ttl: Duration) {
        let Some(mut connection) = self.connection(STORE_TIMEOUT).await else { return };
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let options = redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(ttl_ms));
        let store = connection.set_options::<_, _, ()>(self.redis_key(&key), encode(&answer), options);
        if !matches!(tokio::time::timeout(STORE_TIMEOUT, store).await, Ok(Ok(()))) {
            self.failed();
        }
    }

    /// The shared connection, made now (within `within`) if there is none. `None` while Redis
    /// rests after a failure: resting requests neither wait on Redis nor push the rest back,
    /// so the first request after it tries again.
    async fn connection(&self, within: Duration) -> Option<redis::aio::MultiplexedConnection> {
        if let Some(connection) = lock(&self.connection).clone() {
            return Some(connection);
        }
        if lock(&self.resting_until).is_some_and(|until| Instant::now() < until) {
            return None;
        }
        match tokio::time::timeout(within, self.client.get_multiplexed_async_connection()).await {
            Ok(Ok(connection)) => {
                *lock(&self.connection) = Some(connection.clone());
                Some(connection)
            }
            Ok(Err(error)) => {
                tracing::warn!(error = %error.category(), "response cache: Redis is unreachable; requests go upstream");
                self.failed();
                None
            }
            Err(_) => {
                tracing::warn!("response cache: Redis did not answer in time; requests go upstream");
                self.failed();
                None
            }
        }
    }

    /// Drops the connection and rests, so the next requests do not each wait on Redis.
    fn failed(&self) {
        *lock(&self.connection) = None;
        *lock(&self.resting_until) = Some(Instant::now() + REDIS_BACKOFF);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `content-type`, a newline, then the body.
fn encode(answer: &CachedAnswer) -> Vec<u8> {
    let mut value = Vec::with_capacity(answer.content_type.len() + 1 + answer.body.len());
    value.extend_from_slice(answer.content_type.as_bytes());
    value.push(b'\n');
    value.extend_from_slice(&answer.body);
    value
}

fn decode(value: &[u8]) -> Option<CachedAnswer> {
    let split = value.iter().position(|b| *b == b'\n')?;
    let content_type = std::str::from_utf8(&value[..split]).ok()?.to_owned();
    Some(CachedAnswer { content_type, body: Bytes::copy_from_slice(&value[split + 1..]) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_every_part_and_parts_cannot_run_together() {
        let base = CacheKey::of("chat.completions", "m", "team:a", b"{}");
        assert_ne!(base, CacheKey::of("messages", "m", "team:a", b"{}"));
        assert_ne!(base, CacheKey::of("chat.completions", "m2", "team:a", b"{}"));
        assert_ne!(base, CacheKey::of("chat.completions", "m", "team:b", b"{}"));
        assert_ne!(base, CacheKey::of("chat.completions", "m", "team:a", b"{ }"));
        assert_ne!(CacheKey::of("e", "ab", "c", b""), CacheKey::of("e", "a", "bc", b""));
        assert_eq!(base, CacheKey::of("chat.completions", "m", "team:a", b"{}"));
    }

    #[test]
    fn stored_answers_decode_as_they_were() {
        let answer = CachedAnswer { content_type: "application/json".into(), body: Bytes::from_static(b"{\"a\":\n1}") };
        assert_eq!(decode(&encode(&answer)), Some(answer));
        assert_eq!(decode(b"no newline"), None);
    }

    #[tokio::test]
    async fn the_memory_cache_expires_each_answer_after_its_own_ttl() {
        let cache = Arc::new(ResponseCache::new(None).expect("memory cache"));
        let tasks = TaskTracker::new();
        let answer = CachedAnswer { content_type: "application/json".into(), body: Bytes::from_static(b"{}") };
        let short = CacheKey::of("e", "m", "t", b"short");
        let long = CacheKey::of("e", "m", "t", b"long");
        cache.put(short, answer.clone(), Duration::from_millis(50), &tasks);
        cache.put(long, answer.clone(), Duration::from_secs(60), &tasks);
        assert!(matches!(cache.get(&short).await, Lookup::Hit(_)));
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(matches!(cache.get(&short).await, Lookup::Miss));
        assert!(matches!(cache.get(&long).await, Lookup::Hit(ref a) if *a == answer));
    }
}
