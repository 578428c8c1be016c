//! The usage spool: an append-only file of usage records that could not reach the database.
//!
//! When a batch insert fails, the batch is appended here as JSON lines and `fsync`ed before the
//! writer lets go of it, so neither a long outage (memory would fill) nor a crash during one
//! (memory would be lost) loses records. The writer replays the file when the database answers
//! again, and at the next start; inserts skip ids already stored, so a replay after a partial
//! one counts each record once.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use moat_core::UsageRecord;

/// The spool file.
#[derive(Debug)]
pub(crate) struct Spool {
    path: PathBuf,
}

impl Spool {
    pub(crate) fn new(path: PathBuf) -> Self {
        Spool { path }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `records` and makes them durable.
    pub(crate) fn append(&self, records: &[UsageRecord]) -> std::io::Result<()> {
        if let Some(parent) = self.path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&self.path)?;
        let mut text = String::new();
        for record in records {
            text.push_str(&serde_json::to_string(record).map_err(std::io::Error::other)?);
            text.push('\n');
        }
        file.write_all(text.as_bytes())?;
        file.sync_data()
    }

    /// Every record in the file; a torn last line (a crash mid-append) is skipped.
    pub(crate) fn read(&self) -> std::io::Result<Vec<UsageRecord>> {
        let file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let mut records = Vec::new();
        for line in BufReader::new(file).lines() {
            let line = line?;
            match serde_json::from_str(&line) {
                Ok(record) => records.push(record),
                Err(_) if !line.trim().is_empty() => {
                    tracing::warn!(path = %self.path.display(), "skipped a damaged usage spool line")
                }
                Err(_) => {}
            }
        }
        Ok(records)
    }

    /// Empties the file once its records are stored.
    pub(crate) fn clear(&self) -> std::io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
