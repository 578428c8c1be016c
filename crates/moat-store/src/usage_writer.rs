//! The batched usage writer: usage records leave the request path through a bounded channel
//! and reach the database in multi-row inserts.
//!
//! Requests never wait on the database: finishing a request hands its record to a
//! [`UsageSink`], which only waits when the channel is full (back-pressure, not IO). One task
//! drains the channel: from the first record it gathers for up to `batch_delay` (or until a
//! batch is full) and writes what it has in one insert, so the database sees a few inserts a
//! second however many requests there are. A failed write goes to the
//! on-disk spool when one is configured (and is replayed when the database answers again, or at
//! the next start), else it is retried with backoff and kept in memory; ids make retries and
//! replays idempotent. [`UsageWriter::drain`] closes the channel and flushes what is queued
//! before shutdown. With a [`UsageJournal`], a record is also on local disk from the moment
//! its request settles until it is stored, so not even a killed process loses it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use moat_core::UsageRecord;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::journal::{JournalTicket, Leftovers, UsageJournal};
use crate::spool::Spool;
use crate::{Store, StoreError};

/// Sizes of the writer's channel and batches, and where failed batches are spooled.
#[derive(Debug, Clone)]
pub struct UsageWriterConfig {
    /// Records that may wait in the channel before senders wait.
    pub capacity: usize,
    /// Most records per insert.
    pub max_batch: usize,
    /// How long the writer gathers records after the first one arrives before it writes
    /// them (less when a batch fills first). One insert per interval instead of one per
    /// request keeps the database's cost per record flat at any request rate; zero writes each
    /// record as soon as it arrives.
    pub batch_delay: Duration,
    /// Longest pause between retries of a failed write (and between spool replays).
    pub max_backoff: Duration,
    /// The spool file failed batches go to; `None` keeps them in memory and retries.
    pub spool: Option<PathBuf>,
    /// The folder of this process's usage journal; `None` turns it off.
    pub journal: Option<PathBuf>,
    /// `fsync` each journal append (survives a machine crash, not only a killed process).
    pub journal_fsync: bool,
}

impl Default for UsageWriterConfig {
    fn default() -> Self {
        UsageWriterConfig {
            capacity: 10_000,
            max_batch: 500,
            batch_delay: Duration::ZERO,
            max_backoff: Duration::from_secs(5),
            spool: None,
            journal: None,
            journal_fsync: false,
        }
    }
}

/// The longest one insert may take before the batch is treated as failed (and spooled). A
/// database behind a network partition does not refuse, it hangs; without this the writer
/// would wait with it while records pile up in memory. An insert that did land after all is
/// harmless: replays skip ids already stored.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A record on its way to the writer, with where it was journaled.
type Queued = (UsageRecord, Option<JournalTicket>);

/// The sending side, cloned into every request.
#[derive(Debug, Clone)]
pub struct UsageSink {
    tx: mpsc::Sender<Queued>,
    journal: Option<Arc<UsageJournal>>,
}

impl UsageSink {
    /// Puts a record in the journal at once (a synchronous append, no `await`), before the
    /// response it describes is complete; `None` when there is no journal. The final record, with the same id, follows through
    /// [`UsageSink::record_journaled`] with the ticket.
    pub fn journal(&self, record: &UsageRecord) -> Option<JournalTicket> {
        self.journal.as_ref().and_then(|journal| journal.append(record))
    }

    /// Queues a record. Waits only while the channel is full. After [`UsageWriter::drain`] the
    /// record cannot be stored; that is logged as an error, since it means a request outlived
    /// shutdown.
    pub async fn record(&self, record: UsageRecord) {
        self.record_journaled(record, None).await;
    }

    /// Queues a record that [`UsageSink::journal`] already journaled; its journal entry goes
    /// once it is stored.
    pub async fn record_journaled(&self, record: UsageRecord, ticket: Option<JournalTicket>) {
        if let Err(mpsc::error::SendError((record, _))) = self.tx.send((record, ticket)).await {
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
    /// Starts the writer on the current tokio runtime, opening the journal when configured
    /// (records a previous process left in it are written first).
    pub fn spawn(store: Store, config: UsageWriterConfig) -> Result<(UsageSink, UsageWriter), StoreError> {
        let (journal, leftovers) = match &config.journal {
            Some(dir) => {
                let (journal, leftovers) = UsageJournal::open(dir, config.journal_fsync)
                    .map_err(|e| StoreError::Journal(format!("{}: {e}", dir.display())))?;
                (Some(Arc::new(journal)), leftovers)
            }
            None => (None, Leftovers::default()),
        };
        let (tx, rx) = mpsc::channel(config.capacity.max(1));
        let (persisted_tx, persisted) = watch::channel(0);
        let (failed_tx, failed_writes) = watch::channel(0);
        let (spooled_tx, spooled) = watch::channel(0);
        let (drain_by, drain_rx) = watch::channel(None);
        #[allow(clippy::disallowed_methods, reason = "the handle is kept; drain() awaits it")]
        let task = tokio::spawn(run(
            Writer {
                store,
                config,
                journal: journal.clone(),
                progress: Progress { persisted: persisted_tx, failed_writes: failed_tx, spooled: spooled_tx },
            },
            leftovers,
            rx,
            drain_rx,
        ));
        Ok((UsageSink { tx, journal }, UsageWriter { task, persisted, failed_writes, spooled, drain_by }))
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

/// What the writer task works with.
struct Writer {
    store: Store,
    config: UsageWriterConfig,
    journal: Option<Arc<UsageJournal>>,
    progress: Progress,
}

async fn run(
    writer: Writer,
    leftovers: Leftovers,
    mut rx: mpsc::Receiver<Queued>,
    mut drain_by: watch::Receiver<Option<Instant>>,
) {
    let spool = writer.config.spool.clone().map(Spool::new);
    // Records a previous run left in the spool are replayed first.
    if let Some(spool) = &spool {
        match spool.read() {
            Ok(left) if !left.is_empty() => {
                tracing::info!(records = left.len(), path = %spool.path().display(), "replaying the usage spool");
                writer.progress.spooled.send_replace(left.len() as u64);
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "the usage spool cannot be read"),
        }
    }
    // Then what a previous process journaled but may not have stored (it may have died).
    if !leftovers.records.is_empty() {
        tracing::info!(
            records = leftovers.records.len(),
            "writing the records a previous run left in the usage journal"
        );
        let mut stored = true;
        for chunk in leftovers.records.chunks(writer.config.max_batch.max(1)) {
            let mut batch = chunk.to_vec();
            stored &= writer.write_batch(spool.as_ref(), &mut batch, &drain_by).await;
        }
        if stored {
            leftovers.files.iter().for_each(|f| crate::journal::remove(f));
        }
    }
    let mut batch = Vec::with_capacity(writer.config.max_batch);
    let mut tickets = Vec::with_capacity(writer.config.max_batch);
    let mut draining = false;
    let mut replay = tokio::time::interval(writer.config.max_backoff);
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
            _ = replay.tick(), if spool.is_some() && *writer.progress.spooled.borrow() > 0 => {
                if let Some(spool) = &spool {
                    writer.replay_spool(spool).await;
                }
            }
            queued = rx.recv() => {
                let Some((record, ticket)) = queued else { break };
                batch.push(record);
                tickets.extend(ticket);
                gather(&mut rx, &mut batch, &mut tickets, writer.config.max_batch, writer.config.batch_delay, draining)
                    .await;
                if writer.write_batch(spool.as_ref(), &mut batch, &drain_by).await
                    && let Some(journal) = &writer.journal
                {
                    tickets.iter().for_each(|ticket| journal.stored(*ticket));
                }
                tickets.clear();
            }
        }
    }
    if let Some(spool) = &spool
        && *writer.progress.spooled.borrow() > 0
    {
        writer.replay_spool(spool).await;
        let left = *writer.progress.spooled.borrow();
        if left > 0 {
            tracing::warn!(records = left, path = %spool.path().display(), "usage records stay in the spool; the next start writes them");
        }
    }
}

/// Adds to `batch` what arrives within `delay` of now (nothing more than is queued already when
/// draining), up to `max_batch` records.
async fn gather(
    rx: &mut mpsc::Receiver<Queued>,
    batch: &mut Vec<UsageRecord>,
    tickets: &mut Vec<JournalTicket>,
    max_batch: usize,
    delay: Duration,
    draining: bool,
) {
    let until = Instant::now() + if draining { Duration::ZERO } else { delay };
    while batch.len() < max_batch {
        let next = match rx.try_recv() {
            Ok(queued) => Some(queued),
            Err(mpsc::error::TryRecvError::Disconnected) => None,
            Err(mpsc::error::TryRecvError::Empty) if Instant::now() < until => {
                tokio::time::timeout_at(until, rx.recv()).await.ok().flatten()
            }
            Err(mpsc::error::TryRecvError::Empty) => None,
        };
        let Some((record, ticket)) = next else { return };
        batch.push(record);
        tickets.extend(ticket);
    }
}

impl Writer {
    async fn insert(&self, batch: &[UsageRecord]) -> Result<(), String> {
        match tokio::time::timeout(WRITE_TIMEOUT, self.store.insert_usage(batch)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("the database did not answer within {}s", WRITE_TIMEOUT.as_secs())),
        }
    }

    /// Writes the spool's records to the database and empties it; on failure it stays for
    /// the next try.
    async fn replay_spool(&self, spool: &Spool) {
        let records = match spool.read() {
            Ok(records) => records,
            Err(error) => {
                tracing::error!(%error, "the usage spool cannot be read");
                return;
            }
        };
        for chunk in records.chunks(self.config.max_batch.max(1)) {
            if let Err(error) = self.insert(chunk).await {
                self.progress.failed_writes.send_modify(|count| *count += 1);
                tracing::warn!(%error, spooled = records.len(), "the database still refuses usage records; they stay in the spool");
                return;
            }
        }
        if let Err(error) = spool.clear() {
            tracing::error!(%error, "the usage spool could not be emptied; its records will be replayed again (and skipped)");
            return;
        }
        self.progress.persisted.send_modify(|count| *count += records.len() as u64);
        self.progress.spooled.send_replace(0);
        tracing::info!(records = records.len(), "usage spool replayed");
    }

    /// Writes `batch`; on failure spools it (when a spool is configured) or retries until it
    /// succeeds or a drain deadline passes. Empties `batch`; whether it was stored (in the
    /// database or the spool) rather than given up.
    async fn write_batch(
        &self,
        spool: Option<&Spool>,
        batch: &mut Vec<UsageRecord>,
        drain_by: &watch::Receiver<Option<Instant>>,
    ) -> bool {
        let progress = &self.progress;
        let mut backoff = Duration::from_millis(50);
        loop {
            // While records wait in the spool, new ones join them there, so the database
            // receives records in the order they settled.
            let database_first = spool.is_none() || *progress.spooled.borrow() == 0;
            if database_first {
                match self.insert(batch).await {
                    Ok(()) => {
                        let n = batch.len() as u64;
                        progress.persisted.send_modify(|count| *count += n);
                        batch.clear();
                        return true;
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
                        return true;
                    }
                    Err(error) => {
                        tracing::error!(%error, "the usage spool cannot be written; keeping the batch in memory");
                    }
                }
            }
            let deadline = *drain_by.borrow();
            if deadline.is_some_and(|d| Instant::now() >= d) {
                let journaled = if self.journal.is_some() { "; the journal keeps them for the next start" } else { "" };
                tracing::error!(lost = batch.len(), "usage records could not be stored before shutdown{journaled}");
                batch.clear();
                return false;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.config.max_backoff);
            if !database_first {
                // The spool failed: try the database before the spool again.
                if self.insert(batch).await.is_ok() {
                    let n = batch.len() as u64;
                    progress.persisted.send_modify(|count| *count += n);
                    batch.clear();
                    return true;
                }
            }
        }
    }
}
