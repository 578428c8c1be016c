//! moat's persistent state, behind one [`Store`] whatever the backend.
//!
//! The store holds data, not topology: virtual keys and usage records live here, deployments
//! and models live in the config file. [`Store`] is a closed enum over backends so that
//! PostgreSQL slots in as one more variant with its own SQL and migrations, without changing
//! any caller. Usage records never reach the store on the request path: they go through the
//! bounded channel of [`usage_writer`], which batches them.

mod identity;
mod invitations;
mod keys;
mod sign_in;
mod spool;
mod sqlite;
mod sqlite_identity;
mod sqlite_invitations;
mod sqlite_sign_in;
mod usage;
pub mod usage_writer;

pub use identity::{AuditFilter, Deactivation, Match, MemberRecord, NewUser, TeamRecord, UserProfile, UserRecord};
pub use invitations::Invitation;
pub use keys::{KeyRecord, NewKey};
pub use sign_in::{DeviceGrant, GrantStatus, SessionRecord, SsoLogin};
pub use usage::UsageFilter;
pub use usage_writer::{UsageSink, UsageWriter, UsageWriterConfig};

use moat_core::UsageRecord;

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

/// A failed store operation; callers map it to `internal_error` and log it once.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database URL names a backend this build does not know.
    #[error("unsupported database URL `{0}`: expected sqlite://PATH")]
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
    Sqlite(sqlite::SqliteStore),
}

impl Store {
    /// Opens the database at `url` (`sqlite://PATH`, `sqlite::memory:`), creating it and its
    /// folder if needed, and brings its schema up to date.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Store::open_with(url, Migrations::Apply).await
    }

    /// Opens the database, applying pending migrations or only checking that there are none.
    /// Either way a schema this build does not know (migrated by a newer moat) is refused.
    pub async fn open_with(url: &str, migrations: Migrations) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            let store = sqlite::SqliteStore::open(url, migrations).await?;
            return Ok(Store { backend: Backend::Sqlite(store) });
        }
        Err(StoreError::UnsupportedUrl(redact_url(url)))
    }

    /// Where the schema stands.
    pub async fn schema(&self) -> Result<Schema, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.schema().await,
        }
    }

    /// Inserts a key.
    pub async fn insert_key(&self, key: &NewKey) -> Result<KeyRecord, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.insert_key(key).await,
        }
    }

    /// The key whose secret hashes to `secret_hash`, revoked or not.
    pub async fn key_by_hash(&self, secret_hash: &[u8]) -> Result<Option<KeyRecord>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.key_by_hash(secret_hash).await,
        }
    }

    /// One key by id.
    pub async fn key_by_id(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.key_by_id(id).await,
        }
    }

    /// All keys, newest first.
    pub async fn list_keys(&self, include_revoked: bool) -> Result<Vec<KeyRecord>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.list_keys(include_revoked).await,
        }
    }

    /// Marks a key revoked at `now_ms`; returns it, or `None` when no such key exists. Revoking
    /// twice keeps the first revocation time.
    pub async fn revoke_key(&self, id: &str, now_ms: i64) -> Result<Option<KeyRecord>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.revoke_key(id, now_ms).await,
        }
    }

    /// Whether any unrevoked admin key exists (decides whether to generate a bootstrap key).
    pub async fn has_active_admin_key(&self) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.has_active_admin_key().await,
        }
    }

    /// Inserts usage records in one statement; records already stored (same id) are skipped,
    /// so a batch can be retried safely.
    pub async fn insert_usage(&self, records: &[UsageRecord]) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.insert_usage(records).await,
        }
    }

    /// Usage records matching `filter`, newest first.
    pub async fn query_usage(&self, filter: &UsageFilter) -> Result<Vec<UsageRecord>, StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.query_usage(filter).await,
        }
    }

    /// Whether the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(s) => s.ping().await,
        }
    }
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
}
