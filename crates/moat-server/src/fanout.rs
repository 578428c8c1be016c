//! Fan-out between replicas through Redis pub/sub: when one replica revokes a key or
//! deactivates a user, every replica drops its cached keys at once instead of trusting them for
//! the cache's lifetime.
//!
//! Announcing never blocks the caller: it queues a note for a publisher task. A subscriber task
//! listens to the channel and, for notes from other replicas, clears the local key cache. When
//! the subscription breaks it clears the cache too (a note may have been missed) and
//! reconnects; when Redis is down, replicas fall back to the cache's 30-second lifetime.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::KeyResolver;

/// Where notes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://host:6379/0` (or `rediss://` for TLS).
    pub url: String,
    /// The pub/sub channel replicas share.
    pub channel: String,
    /// Prefix of the keys moat writes (the response cache).
    pub key_prefix: String,
}

/// Starts the publisher and subscriber on `tasks`; they stop with `stopping`. Returns the
/// sender that [`KeyResolver::invalidate`] announces through.
pub(crate) fn start(
    settings: &RedisSettings,
    keys: KeyResolver,
    tasks: &TaskTracker,
    stopping: CancellationToken,
) -> Result<mpsc::UnboundedSender<()>, String> {
    let client = redis::Client::open(settings.url.as_str()).map_err(|e| format!("redis.url: {e}"))?;
    let replica = uuid::Uuid::now_v7().simple().to_string();
    let (tx, rx) = mpsc::unbounded_channel();
    tasks.spawn(publish(client.clone(), settings.channel.clone(), replica.clone(), rx, stopping.clone()));
    tasks.spawn(subscribe(client, settings.channel.clone(), replica, keys, stopping));
    Ok(tx)
}

async fn publish(
    client: redis::Client,
    channel: String,
    replica: String,
    mut notes: mpsc::UnboundedReceiver<()>,
    stopping: CancellationToken,
) {
    let mut connection: Option<redis::aio::MultiplexedConnection> = None;
    loop {
        tokio::select! {
            note = notes.recv() => if note.is_none() { return },
            () = stopping.cancelled() => return,
        }
        // Notes that piled up while publishing say the same thing once.
        while notes.try_recv().is_ok() {}
        if connection.is_none() {
            connection = client.get_multiplexed_async_connection().await.map_err(|error| tracing::warn!(%error, "redis unreachable; key revocations reach other replicas when their cache expires")).ok();
        }
        if let Some(conn) = connection.as_mut() {
            let sent: redis::RedisResult<i64> =
                redis::cmd("PUBLISH").arg(&channel).arg(&replica).query_async(conn).await;
            if let Err(error) = sent {
                tracing::warn!(%error, "could not announce a key change to the other replicas");
                connection = None;
            }
        }
    }
}

async fn subscribe(
    client: redis::Client,
    channel: String,
    replica: String,
    keys: KeyResolver,
    stopping: CancellationToken,
) {
    loop {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::select! {
            result = subscribed => result,
            () = stopping.cancelled() => return,
        };
        match pubsub {
            Ok(pubsub) => {
                let mut messages = pubsub.into_on_message();
                loop {
                    tokio::select! {
                        message = messages.next() => match message {
                            Some(message) => {
                                if message.get_payload_bytes() != replica.as_bytes() {
                                    keys.invalidate_local();
                                }
                            }
                            None => break,
                        },
                        () = stopping.cancelled() => return,
                    }
                }
                tracing::warn!("the redis subscription ended; reconnecting");
            }
            Err(error) => tracing::warn!(%error, "cannot subscribe to key changes on redis; retrying"),
        }
        // A note may have been missed while disconnected.
        keys.invalidate_local();
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = stopping.cancelled() => return,
        }
    }
}

/// Keeps the announcer where the key resolver finds it once fan-out starts.
pub(crate) type Announcer = Arc<std::sync::OnceLock<mpsc::UnboundedSender<()>>>;
