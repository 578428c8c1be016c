//! The SQLite backend: the embedded default, one file, no service to run.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Sqlite;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::sql::{Dialect, Month, SqlStore};
use crate::{Migrations, Pruned, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// Rows one retention pass deletes per statement, so a large backlog never holds the write
/// lock for long.
const PRUNE_BATCH: i64 = 5_000;

impl Dialect for Sqlite {
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const AUDIT_TURN: Option<&'static str> = None;
    const ROWS_PER_STATEMENT: usize = 10;

    fn nocase_eq(column: &str) -> (String, &'static str) {
        (format!("{column} = "), " COLLATE NOCASE")
    }

    const MIGRATIONS_TABLE_EXISTS: &'static str =
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')";

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }

    fn usage_partition_ddl(_month: &Month) -> Option<String> {
        None
    }
}

impl SqlStore<Sqlite> {
    pub(crate) async fn open_sqlite(url: &str, migrations: Migrations) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL with NORMAL survives a process crash; only an OS crash can lose the last commits.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        if let Some(parent) = options.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)
                .map_err(|source| StoreError::CreateDir { path: parent.display().to_string(), source })?;
        }
        let in_memory = url.contains(":memory:");
        let pool = SqlitePoolOptions::new()
            // An in-memory database exists per connection; keep exactly one so all see the same.
            .max_connections(if in_memory { 1 } else { 4 })
            .min_connections(if in_memory { 1 } else { 0 })
            .idle_timeout(if in_memory { None } else { Some(Duration::from_secs(600)) })
            .max_lifetime(if in_memory { None } else { Some(Duration::from_secs(3600)) })
            .connect_with(options)
            .await?;
        let store = SqlStore::new(pool);
        let schema = store.schema().await?;
        schema.admit(migrations)?;
        if migrations == Migrations::Apply {
            MIGRATOR.run(&store.pool).await?;
        }
        Ok(store)
    }

    /// Deletes usage records created before `before_ms`, a batch at a time.
    pub(crate) async fn prune_sqlite_usage(&self, before_ms: i64) -> Result<Pruned, StoreError> {
        let mut pruned = Pruned::default();
        loop {
            let done = sqlx::query(
                "DELETE FROM usage_records WHERE id IN (SELECT id FROM usage_records WHERE created_at < $1 LIMIT $2)",
            )
            .bind(before_ms)
            .bind(PRUNE_BATCH)
            .execute(&self.pool)
            .await?;
            pruned.records += done.rows_affected();
            if done.rows_affected() < PRUNE_BATCH.unsigned_abs() {
                return Ok(pruned);
            }
        }
    }
}
