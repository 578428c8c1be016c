//! moat's persistent state, behind one [`Store`] whatever the backend.
//!
//! The store holds data, not topology: virtual keys and usage records live here, deployments
//! and models live in the config file. [`Store`] is a closed enum over two backends, SQLite
//! (embedded, the default) and PostgreSQL (shared by a fleet of replicas), that run the same
//! queries (`sql/`) against their own migrations; no caller knows which it has. Usage records
//! never reach the store on the request path: they go through the bounded channel of
//! [`usage_writer`], which batches them.

mod budgets;
pub mod counters;
mod identity;
mod invitations;
mod journal;
mod keys;
mod policies;
mod postgres;
pub mod prompt_logs;
pub mod sealing;
mod sign_in;
mod spool;
mod sql;
mod sqlite;
mod usage;
pub mod usage_writer;

pub use identity::{AuditFilter, Deactivation, Match, MemberRecord, NewUser, TeamRecord, UserProfile, UserRecord};
pub use invitations::Invitation;
pub use journal::{JournalTicket, UsageJournal};
pub use keys::{KeyFilter, KeyReader, KeyRecord, NewKey};
pub use prompt_logs::{PromptLog, Rotation};
pub use sign_in::{DeviceGrant, GrantStatus, SessionRecord, SsoLogin};
pub use usage::{Dimension, UsageFilter};
pub use usage_writer::{UsageSink, UsageWriter, UsageWriterConfig};

use moat_core::UsageRecord;
use sqlx::{Postgres, Sqlite};

use crate::sql::{Month, SqlStore};

/// Runs one operation on whichever backend the store has: each backend implements every
/// operation under the same name.
macro_rules! on_backend {
    ($store:expr, $backend:ident => $call:expr) => {
        match &$store.backend {
            crate::Backend::Sqlite($backend) => $call.await,
            crate::Backend::Postgres($backend) => $call.await,
        }
    };
}
pub(crate) use on_backend;

/// What opening the store does to its schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrations {
    /// Applies pending migrations (forward only; they never drop data).
    Apply,
    /// Refuses to open a schema with pending migrations: `moat migrate` applies them.
    Check,
}

/// Where a database's schema stands against this build's migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    /// Versions applied.
    pub applied: Vec<i64>,
    /// Versions this build has that are not applied.
    pub pending: Vec<i64>,
    /// Versions applied that this build does not know.
    pub unknown: Vec<i64>,
}

impl Schema {
    /// Compares what a database has applied with what this build's migrator knows.
    fn compare(applied: Vec<i64>, migrator: &sqlx::migrate::Migrator) -> Schema {
        let known: Vec<i64> = migrator.iter().map(|m| m.version).collect();
        Schema {
            pending: known.iter().copied().filter(|v| !applied.contains(v)).collect(),
            unknown: applied.iter().copied().filter(|v| !known.contains(v)).collect(),
            applied,
        }
    }

    /// Whether a replica may open this schema: never one migrated by a newer moat, and with
    /// [`Migrations::Check`] only one that is fully migrated.
    fn admit(&self, migrations: Migrations) -> Result<(), StoreError> {
        if let Some(unknown) = self.unknown.first() {
            return Err(StoreError::SchemaFromTheFuture(*unknown));
        }
        if migrations == Migrations::Check && !self.pending.is_empty() {
            return Err(StoreError::SchemaBehind(self.pending.clone()));
        }
        Ok(())
    }
}

/// What a retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Whole monthly partitions dropped (PostgreSQL).
    pub partitions: u64,
    /// Rows deleted one by one (SQLite, and PostgreSQL's catch-all partition).
    pub records: u64,
}

/// A failed store operation; callers map it to `internal_error` and log it once.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL names a backend this build does not know.
    #[error("unsupported database URL `{0}`: expected sqlite://PATH or postgres://USER@HOST/DATABASE")]
    UnsupportedUrl(String),
    /// The database could not be opened or a query failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be migrated (for example, it is newer than this binary).
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A unique value (an e-mail, a team name) is already taken.
    #[error("{0} is already taken")]
    Conflict(String),
    /// The database was migrated by a newer moat: this build does not know its schema.
    #[error(
        "the database's schema has migration {0}, which this moat does not know: it was migrated by a newer \
         version; run that version (or restore a backup)"
    )]
    SchemaFromTheFuture(i64),
    /// Migrations are pending and this start only checks.
    #[error("the database's schema is behind this moat (pending migrations {0:?}); run `moat migrate`")]
    SchemaBehind(Vec<i64>),
    /// Creating the database's folder failed.
    #[error("cannot create the database folder `{path}`: {source}")]
    CreateDir {
        /// The folder.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The usage journal could not be opened (or another process holds it).
    #[error("usage journal {0}")]
    Journal(String),
    /// The database could not be reached (the message has had any password removed).
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    /// An encrypted value or data key could not be opened.
    #[error(transparent)]
    Sealing(#[from] sealing::SealError),
    /// A stored value could not be read back (a corrupted row).
    #[error("corrupt row in `{table}`: {detail}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// What was wrong.
        detail: String,
    },
}

/// The store: one handle, cheap to clone, shared by every request.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(SqlStore<Sqlite>),
    Postgres(SqlStore<Postgres>),
}

impl Store {
    /// Opens the database at `url` (`sqlite://PATH`, `sqlite::memory:`, or
    /// `postgres://USER:PASSWORD@HOST/DATABASE`), creating a SQLite file and its folder if
    /// needed, and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Store::open_with(url, Migrations::Apply).await
    }

    /// Opens the database, applying pending migrations or only checking that there are none.
    /// Either way a schema this build does not know (migrated by a newer moat) is refused.
    pub async fn open_with(url: &str, migrations: Migrations) -> Result<Self, StoreError> {
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite(SqlStore::open_sqlite(url, migrations).await?)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres(SqlStore::open_postgres(url, migrations).await.map_err(|e| redact_error(e, url))?)
        } else {
            return Err(StoreError::UnsupportedUrl(redact_url(url)));
        };
        let store = Store { backend };
        store.prepare_usage_partitions(now_ms()).await?;
        Ok(store)
    }

    /// Which backend this is, for logs and `/readyz`: `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match &self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Where the schema stands.
    pub async fn schema(&self) -> Result<Schema, StoreError> {
        on_backend!(self, s => s.schema())
    }

    /// Inserts a key.
    pub async fn insert_key(&self, key: &NewKey) -> Result<KeyRecord, StoreError> {
        on_backend!(self, s => s.insert_key(key))
    }

    /// The key whose secret hashes to `secret_hash`, revoked or not.
    pub async fn key_by_hash(&self, secret_hash: &[u8]) -> Result<Option<KeyRecord>, StoreError> {
        on_backend!(self, s => s.key_by_hash(secret_hash))
    }

    /// One key by id.
    pub async fn key_by_id(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        on_backend!(self, s => s.key_by_id(id))
    }

    /// A page of keys, newest first, by the primary key (or the `keys_user_newest` / `keys_team_newest`
    /// index when filtered by owner): lists stay fast however many keys the organisation has.
    pub async fn list_keys(&self, filter: &KeyFilter) -> Result<Vec<KeyRecord>, StoreError> {
        on_backend!(self, s => s.list_keys(filter))
    }

    /// The keys with these ids, in no particular order (ids without a key are skipped): names
    /// for the keys a page of records or a report shows, without reading every key.
    pub async fn keys_by_ids(&self, ids: &[String]) -> Result<Vec<KeyRecord>, StoreError> {
        on_backend!(self, s => s.keys_by_ids(ids))
    }

    /// Marks a key revoked at `now_ms`; returns it, or `None` when no such key exists. Revoking
    /// twice keeps the first revocation time.
    pub async fn revoke_key(&self, id: &str, now_ms: i64) -> Result<Option<KeyRecord>, StoreError> {
        on_backend!(self, s => s.revoke_key(id, now_ms))
    }

    /// Whether any unrevoked admin key exists (decides whether to generate a bootstrap key).
    pub async fn has_active_admin_key(&self) -> Result<bool, StoreError> {
        on_backend!(self, s => s.has_active_admin_key())
    }

    /// Inserts usage records in one statement; records already stored (same id) are skipped,
    /// so a batch can be retried safely.
    pub async fn insert_usage(&self, records: &[UsageRecord]) -> Result<(), StoreError> {
        on_backend!(self, s => s.insert_usage(records))
    }

    /// Usage records matching `filter`, newest first.
    pub async fn query_usage(&self, filter: &UsageFilter) -> Result<Vec<UsageRecord>, StoreError> {
        on_backend!(self, s => s.query_usage(filter))
    }

    /// Deletes usage records created before `before_ms`. On PostgreSQL whole months go
    /// (a month partly inside the retention period is kept), never row by row.
    pub async fn prune_usage(&self, before_ms: i64) -> Result<Pruned, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.prune_sqlite_usage(before_ms).await,
            Backend::Postgres(s) => s.prune_postgres_usage(before_ms).await,
        }
    }

    /// Makes sure the usage partitions for the month of `now_ms` and the next exist, so the
    /// first batch of a month does not wait on DDL. A no-op where usage is not partitioned.
    pub async fn prepare_usage_partitions(&self, now_ms: i64) -> Result<(), StoreError> {
        let Some(this) = Month::of(now_ms) else { return Ok(()) };
        for month in [this, this.next()] {
            on_backend!(self, s => s.ensure_usage_partition(month))?;
        }
        Ok(())
    }

    /// The usage partitions that exist, as `usage_records_pYYYYMM` names, oldest first;
    /// empty where usage is not partitioned.
    pub async fn usage_partitions(&self) -> Result<Vec<String>, StoreError> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(Vec::new()),
            Backend::Postgres(s) => Ok(s.usage_partitions().await?.into_iter().map(Month::partition_name).collect()),
        }
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_backend!(self, s => s.ping())
    }
}

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A connection error may quote the URL it was given; never let it carry the password.
fn redact_error(error: StoreError, url: &str) -> StoreError {
    let Some(password) = url_password(url) else { return error };
    let text = error.to_string();
    if text.contains(password) {
        return StoreError::Connect(text.replace(password, "***"));
    }
    error
}

/// The password in `scheme://user:password@host...`, if any.
fn url_password(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let userinfo = &rest[..rest.rfind('@')?];
    let password = &userinfo[userinfo.find(':')? + 1..];
    (!password.is_empty()).then_some(password)
}

/// A URL with any password replaced, for error messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://***{}", &url[..scheme_end], &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_credentials_in_errors() {
        assert_eq!(redact_url("postgres://u:secret@db/x"), "postgres://***@db/x");
        assert_eq!(redact_url("sqlite://a.db"), "sqlite://a.db");
    }

    #[test]
    fn connect_errors_lose_the_password() {
        assert_eq!(url_password("postgres://moat:s3cret@db:5432/moat"), Some("s3cret"));
        assert_eq!(url_password("postgres://moat@db/moat"), None);
        assert_eq!(url_password("sqlite://a.db"), None);
        let error = StoreError::UnsupportedUrl("refused at postgres://moat:s3cret@db".into());
        let redacted = redact_error(error, "postgres://moat:s3cret@db/moat").to_string();
        assert!(!redacted.contains("s3cret"), "{redacted}");
    }
}
