//! The batched usage writer: usage records leave the request path through a bounded channel
//! and reach the database in multi-row inserts.
//!
//! Requests never wait on the database: finishing a request hands its record to a
//! [`UsageSink`], which only waits when the channel is full (back-pressure, not IO). One task
//! drains the channel, taking whatever has queued up since its last write as the next batch, so
//! batches grow with load and a lone record is written at once. A failed write goes to the
//! on-disk spool when one is configured (and is replayed when the database answers again, or at
//! the next start), else it is retried with backoff and kept in memory; ids make retries and
//! replays idempotent. [`UsageWriter::drain`] closes the channel and flushes what is queued
//! before shutdown.

use std::path::PathBuf;
use std::time::Duration;

use moat_core::UsageRecord;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::Store;
use crate::spool::Spool;

/// Sizes of the writer's channel and batches, and where failed batches are spooled.
#[derive(Debug, Clone)]
pub struct UsageWriterConfig {
    /// Records that may wait in the channel before senders wait.
    pub capacity: usize,
    /// Most records per insert.
    pub max_batch: usize,
    /// Longest pause between retries of a failed write (and between spool replays).
    pub max_backoff: Duration,
    /// The spool file failed batches go to; `None` keeps them in memory and retries.
    pub spool: Option<PathBuf>,
}

impl Default for UsageWriterConfig {
    fn default() -> Self {
        UsageWriterConfig { capacity: 10_000, max_batch: 500, max_backoff: Duration::from_secs(5), spool: None }
    }
}

/// The sending side, cloned into every request.
#[derive(Debug, Clone)]
pub struct UsageSink {
    tx: mpsc::Sender<UsageRecord>,
}

impl UsageSink {
    /// Queues a record. Waits only while the channel is full. After [`UsageWriter::drain`] the
    /// record cannot be stored; that is logged as an error, since it means a request outlived
    /// shutdown.
    pub async fn record(&self, record: UsageRecord) {
        if let Err(mpsc::error::SendError(record)) = self.tx.send(record).await {
            tracing::error!(record_id = %record.id, "usage record arrived after the usage writer stopped; it was not stored");
        }
    }
}

/// The writer task's handle.
#[derive(Debug)]
pub struct UsageWriter {
    task: JoinHandle<()>,
    persisted: watch::Receiver<u64>,
    failed_writes: watch::Receiver<u64>,
    spooled: watch::Receiver<u64>,
    drain_by: watch::Sender<Option<Instant>>,
}

impl UsageWriter {
    /// Starts the writer on the current tokio runtime.
    pub fn spawn(store: Store, config: UsageWriterConfig) -> (UsageSink, UsageWriter) {
        let (tx, rx) = mpsc::channel(config.capacity.max(1));
        let (persisted_tx, persisted) = watch::channel(0);
        let (failed_tx, failed_writes) = watch::channel(0);
        let (spooled_tx, spooled) = watch::channel(0);
        let (drain_by, drain_rx) = watch::channel(None);
        #[allow(clippy::disallowed_methods, reason = "the handle is kept; drain() awaits it")]
        let task = tokio::spawn(run(
            store,
            config,
            rx,
            Progress { persisted: persisted_tx, failed_writes: failed_tx, spooled: spooled_tx },
            drain_rx,
        ));
        (UsageSink { tx }, UsageWriter { task, persisted, failed_writes, spooled, drain_by })
    }

    /// The count of records stored so far; tests and shutdown wait on it.
    pub fn persisted(&self) -> watch::Receiver<u64> {
        self.persisted.clone()
    }

    /// The count of failed write attempts so far (each is retried); operators alert on it.
    pub fn failed_writes(&self) -> watch::Receiver<u64> {
        self.failed_writes.clone()
    }

    /// Records waiting in the spool for the database; 0 when none.
    pub fn spooled(&self) -> watch::Receiver<u64> {
        self.spooled.clone()
    }

    /// Stops accepting records, writes every queued one, and returns when done. If the database
    /// stays unreachable past `deadline`, the remaining records are reported lost in the log.
    pub async fn drain(self, deadline: Duration) {
        self.drain_by.send_replace(Some(Instant::now() + deadline));
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "usage writer task failed");
        }
    }
}

/// Counters the writer publishes.
struct Progress {
    persisted: watch::Sender<u64>,
    failed_writes: watch::Sender<u64>,
    spooled: watch::Sender<u64>,
}

async fn run(
    store: Store,
    config: UsageWriterConfig,
    mut rx: mpsc::Receiver<UsageRecord>,
    progress: Progress,
    mut drain_by: watch::Receiver<Option<Instant>>,
) {
    let spool = config.spool.clone().map(Spool::new);
    // Records a previous run left in the spool are replayed first.
    if let Some(spool) = &spool {
        match spool.read() {
            Ok(left) if !left.is_empty() => {
                tracing::info!(records = left.len(), path = %spool.path().display(), "replaying the usage spool");
                progress.spooled.send_replace(left.len() as u64);
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "the usage spool cannot be read"),
        }
    }
    let mut batch = Vec::with_capacity(config.max_batch);
    let mut draining = false;
    let mut replay = tokio::time::interval(config.max_backoff);
    replay.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            changed = drain_by.changed(), if !draining => {
                // Closing lets queued records still be received while new sends fail.
                rx.close();
                draining = true;
                if changed.is_err() {
                    // The handle was dropped without drain: finish what is queued anyway.
                    tracing::debug!("usage writer handle dropped; draining");
                }
            }
            _ = replay.tick(), if spool.is_some() && *progress.spooled.borrow() > 0 => {
                if let Some(spool) = &spool {
                    replay_spool(&store, &config, spool, &progress).await;
                }
            }
            record = rx.recv() => {
                let Some(record) = record else { break };
                batch.push(record);
                while batch.len() < config.max_batch {
                    match rx.try_recv() {
                        Ok(record) => batch.push(record),
                        Err(_) => break,
                    }
                }
                write_batch(&store, &config, spool.as_ref(), &mut batch, &progress, &drain_by).await;
            }
        }
    }
    if let Some(spool) = &spool
        && *progress.spooled.borrow() > 0
    {
        replay_spool(&store, &config, spool, &progress).await;
        let left = *progress.spooled.borrow();
        if left > 0 {
            tracing::warn!(records = left, path = %spool.path().display(), "usage records stay in the spool; the next start writes them");
        }
    }
}

/// Writes the spool's records to the database and empties it; on failure it stays for the next
/// try.
async fn replay_spool(store: &Store, config: &UsageWriterConfig, spool: &Spool, progress: &Progress) {
    let records = match spool.read() {
        Ok(records) => records,
        Err(error) => {
            tracing::error!(%error, "the usage spool cannot be read");
            return;
        }
    };
    for chunk in records.chunks(config.max_batch.max(1)) {
        if let Err(error) = store.insert_usage(chunk).await {
            progress.failed_writes.send_modify(|count| *count += 1);
            tracing::warn!(%error, spooled = records.len(), "the database still refuses usage records; they stay in the spool");
            return;
        }
    }
    if let Err(error) = spool.clear() {
        tracing::error!(%error, "the usage spool could not be emptied; its records will be replayed again (and skipped)");
        return;
    }
    progress.persisted.send_modify(|count| *count += records.len() as u64);
    progress.spooled.send_replace(0);
    tracing::info!(records = records.len(), "usage spool replayed");
}

/// Writes `batch`; on failure spools it (when a spool is configured) or retries until it
/// succeeds or a drain deadline passes. Empties `batch`.
async fn write_batch(
    store: &Store,
    config: &UsageWriterConfig,
    spool: Option<&Spool>,
    batch: &mut Vec<UsageRecord>,
    progress: &Progress,
    drain_by: &watch::Receiver<Option<Instant>>,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        // While records wait in the spool, new ones join them there, so the database receives
        // records in the order they settled.
        let database_first = spool.is_none() || *progress.spooled.borrow() == 0;
        if database_first {
            match store.insert_usage(batch).await {
                Ok(()) => {
                    let n = batch.len() as u64;
                    progress.persisted.send_modify(|count| *count += n);
                    batch.clear();
                    return;
                }
                Err(error) => {
                    progress.failed_writes.send_modify(|count| *count += 1);
                    tracing::warn!(%error, records = batch.len(), "usage batch not stored");
                }
            }
        }
        if let Some(spool) = spool {
            match spool.append(batch) {
                Ok(()) => {
                    let n = batch.len() as u64;
                    progress.spooled.send_modify(|count| *count += n);
                    batch.clear();
                    return;
                }
                Err(error) => tracing::error!(%error, "the usage spool cannot be written; keeping the batch in memory"),
            }
        }
        let deadline = *drain_by.borrow();
        if deadline.is_some_and(|d| Instant::now() >= d) {
            tracing::error!(lost = batch.len(), "usage records could not be stored before shutdown");
            batch.clear();
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(config.max_backoff);
        if !database_first {
            // The spool failed: try the database before the spool again.
            if store.insert_usage(batch).await.is_ok() {
                let n = batch.len() as u64;
                progress.persisted.send_modify(|count| *count += n);
                batch.clear();
                return;
            }
        }
    }
}
