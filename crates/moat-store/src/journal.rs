//! The usage journal: each request's record, appended to a local file as the request settles
//! and before the client receives the end of its response, so that a replica killed outright
//! (SIGKILL, the OOM killer, a panic) loses no record of a response it completed.
//!
//! Appends are plain `write(2)`s into the page cache, which outlives the process: that covers
//! every way a process dies. Surviving a crash of the machine itself needs `fsync` on each
//! append (`usage.journal_fsync`), at the price of a disk flush per request. The journal is
//! cut into segments; a segment is deleted once every record in it has reached the database
//! or the (always fsynced) spool, so in steady state it holds only the last few seconds. At
//! start-up, segments a previous process left are replayed; ids make that idempotent.
//!
//! A journal folder belongs to one process at a time (an advisory lock says so): replicas on
//! one machine each need their own.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use moat_core::UsageRecord;

/// A segment is closed (and becomes deletable) past this size...
const SEGMENT_BYTES: u64 = 4 * 1024 * 1024;
/// ...or this age, so that a quiet replica does not keep an old segment alive.
const SEGMENT_AGE: Duration = Duration::from_secs(10);

/// Which segment a record was journaled in; handed back when the record is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalTicket(u64);

/// Records a previous process journaled, and the files that held them.
#[derive(Debug, Default)]
pub(crate) struct Leftovers {
    pub(crate) records: Vec<UsageRecord>,
    pub(crate) files: Vec<PathBuf>,
}

/// The journal of one process.
#[derive(Debug)]
pub struct UsageJournal {
    dir: PathBuf,
    fsync: bool,
    segments: Mutex<Segments>,
    /// Held (with its advisory lock) for the life of the process.
    _lock: File,
}

#[derive(Debug)]
struct Segments {
    current: Current,
    /// Segments with records not yet stored, by number (the current one included).
    open: BTreeMap<u64, Counts>,
}

#[derive(Debug)]
struct Current {
    number: u64,
    file: File,
    bytes: u64,
    opened: Instant,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    appended: u64,
    stored: u64,
}

impl UsageJournal {
    /// Opens (creating) the journal folder, takes its lock, and returns the journal with the
    /// records earlier processes left in it.
    pub(crate) fn open(dir: &Path, fsync: bool) -> std::io::Result<(UsageJournal, Leftovers)> {
        std::fs::create_dir_all(dir)?;
        let lock = private_file(&dir.join("lock"), false)?;
        lock.try_lock().map_err(|_| {
            std::io::Error::other(format!(
                "the usage journal {} is in use by another moat process; give each replica its own",
                dir.display()
            ))
        })?;
        let mut leftovers = Leftovers::default();
        let mut last = 0;
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let Some(number) = segment_number(&path) else { continue };
            last = last.max(number);
            read_segment(&path, &mut leftovers.records)?;
            leftovers.files.push(path);
        }
        let current = Current::create(dir, last + 1)?;
        let mut open = BTreeMap::new();
        open.insert(current.number, Counts::default());
        let journal =
            UsageJournal { dir: dir.to_owned(), fsync, segments: Mutex::new(Segments { current, open }), _lock: lock };
        Ok((journal, leftovers))
    }

    /// Appends `record`. An append that fails is logged and the request goes on: the record
    /// still reaches the database the usual way, without the crash guarantee.
    pub fn append(&self, record: &UsageRecord) -> Option<JournalTicket> {
        let mut line = match serde_json::to_vec(record) {
            Ok(line) => line,
            Err(error) => {
                tracing::error!(%error, "a usage record could not be journaled");
                return None;
            }
        };
        line.push(b'\n');
        let mut segments = self.lock();
        if segments.current.bytes >= SEGMENT_BYTES
            || (segments.current.bytes > 0 && segments.current.opened.elapsed() >= SEGMENT_AGE)
        {
            self.rotate(&mut segments);
        }
        let current = &mut segments.current;
        let written =
            current.file.write_all(&line).and_then(|()| if self.fsync { current.file.sync_data() } else { Ok(()) });
        if let Err(error) = written {
            tracing::error!(%error, dir = %self.dir.display(), "a usage record could not be journaled");
            return None;
        }
        current.bytes += line.len() as u64;
        let number = current.number;
        segments.open.entry(number).or_default().appended += 1;
        Some(JournalTicket(number))
    }

    /// Notes that the record behind `ticket` is stored; a closed segment whose records are all
    /// stored is deleted.
    pub(crate) fn stored(&self, ticket: JournalTicket) {
        let mut segments = self.lock();
        let current = segments.current.number;
        let Some(counts) = segments.open.get_mut(&ticket.0) else { return };
        counts.stored += 1;
        if ticket.0 != current && counts.stored >= counts.appended {
            segments.open.remove(&ticket.0);
            remove(&segment_path(&self.dir, ticket.0));
        }
    }

    /// Closes the current segment and starts the next; the closed one goes at once if its
    /// records are all stored.
    fn rotate(&self, segments: &mut Segments) {
        let next = segments.current.number + 1;
        match Current::create(&self.dir, next) {
            Ok(current) => {
                let closed = std::mem::replace(&mut segments.current, current);
                segments.open.insert(next, Counts::default());
                if segments.open.get(&closed.number).is_none_or(|c| c.stored >= c.appended) {
                    segments.open.remove(&closed.number);
                    remove(&segment_path(&self.dir, closed.number));
                }
            }
            Err(error) => tracing::error!(%error, "a new usage journal segment could not be created"),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Segments> {
        self.segments.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Current {
    fn create(dir: &Path, number: u64) -> std::io::Result<Current> {
        let file = private_file(&segment_path(dir, number), true)?;
        Ok(Current { number, file, bytes: 0, opened: Instant::now() })
    }
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("segment-{number:012}.jsonl"))
}

fn segment_number(path: &Path) -> Option<u64> {
    path.file_name()?.to_str()?.strip_prefix("segment-")?.strip_suffix(".jsonl")?.parse().ok()
}

/// Opens a file only its owner can read (usage records name keys and models).
fn private_file(path: &Path, append: bool) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true);
    if append {
        options.append(true);
    } else {
        options.write(true).truncate(false);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Reads a segment's records; a torn last line (the process died mid-append) is skipped.
fn read_segment(path: &Path, into: &mut Vec<UsageRecord>) -> std::io::Result<()> {
    for line in BufReader::new(File::open(path)?).lines() {
        let line = line?;
        match serde_json::from_str(&line) {
            Ok(record) => into.push(record),
            Err(_) if !line.trim().is_empty() => {
                tracing::warn!(path = %path.display(), "skipped a damaged usage journal line");
            }
            Err(_) => {}
        }
    }
    Ok(())
}

pub(crate) fn remove(path: &Path) {
    if let Err(error) = std::fs::remove_file(path)
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(%error, path = %path.display(), "a usage journal segment could not be deleted");
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, reason = "a test fails loudly on what it set up itself")]

    use super::*;
    use moat_core::Usage;

    fn record(id: &str) -> UsageRecord {
        UsageRecord {
            id: id.into(),
            created_at_ms: 1,
            key_id: None,
            model: "m".into(),
            deployment: None,
            endpoint: "chat.completions".into(),
            status: 200,
            error_code: None,
            usage: Usage::default(),
            estimated: false,
            streamed: false,
            latency_ms: 1,
            ttft_ms: None,
            cache_hit: false,
            cost_micro_usd: 0,
            user_id: None,
            team_id: None,
            reference_cost_micro_usd: 0,
            deployment_location: None,
            secrets_found: Default::default(),
            secrets_action: None,
        }
    }

    fn segments(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .expect("dir")
            .filter(|e| segment_number(&e.as_ref().expect("entry").path()).is_some())
            .count()
    }

    #[test]
    fn what_a_dead_process_journaled_comes_back_once_and_stored_segments_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (journal, left) = UsageJournal::open(dir.path(), false).expect("open");
        assert!(left.records.is_empty());
        let a = journal.append(&record("a")).expect("journaled");
        journal.append(&record("b")).expect("journaled");
        journal.stored(a);
        assert_eq!(segments(dir.path()), 1, "the current segment stays while it is written to");
        // A second process cannot take a journal in use.
        assert!(UsageJournal::open(dir.path(), false).is_err());
        drop(journal);

        // The process died with "b" unstored: the next one finds both (ids make the replay safe).
        let (journal, left) = UsageJournal::open(dir.path(), false).expect("reopen");
        let ids: Vec<&str> = left.records.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
        assert_eq!(left.files.len(), 1);

        // A closed segment whose records are all stored is deleted.
        let c = journal.append(&record("c")).expect("journaled");
        journal.rotate(&mut journal.lock());
        assert_eq!(segments(dir.path()), 3, "the old file, the closed segment, the new one");
        journal.stored(c);
        assert_eq!(segments(dir.path()), 2);
    }
}
