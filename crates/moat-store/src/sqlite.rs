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
    const POSITIONAL_PLACEHOLDERS: bool = true;
    const ROWS_PER_STATEMENT: usize = 200;

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
            // Sorts and groupings (the rollups' upserts) in memory, not in a temporary file
            // created and deleted per statement.
            .pragma("temp_store", "memory")
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A database with hourly rollups from before the daily tier gets its days on upgrade.
    #[tokio::test]
    async fn upgrading_sums_existing_hours_into_days() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}/old.db", dir.path().display());
        let options = SqliteConnectOptions::from_str(&url).expect("url").create_if_missing(true);
        let pool = SqlitePoolOptions::new().max_connections(1).connect_with(options).await.expect("open");
        let before_daily = sqlx::migrate::Migrator {
            migrations: MIGRATOR.migrations.iter().filter(|m| m.version < 12).cloned().collect(),
            ..sqlx::migrate::Migrator::DEFAULT
        };
        before_daily.run(&pool).await.expect("old migrations");
        let day = 20_000 * 86_400_000_i64;
        for (hour, requests, cost) in [(day, 2, 10), (day + 23 * 3_600_000, 3, 5), (day + 86_400_000, 1, 7)] {
            sqlx::query(
                "INSERT INTO usage_rollups (hour, key_id, user_id, team_id, model, deployment, requests, errors, \
                 cache_hits, input_tokens, output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, \
                 cost_micro_usd, reference_cost_micro_usd, latency_ms_sum, latency_b3) \
                 VALUES ($1, 'k', 'u', 't', 'm', 'd', $2, 0, 0, 1, 1, 0, 0, 0, $3, 0, 0, $2)",
            )
            .bind(hour)
            .bind(requests)
            .bind(cost)
            .execute(&pool)
            .await
            .expect("old rollup");
        }
        MIGRATOR.run(&pool).await.expect("upgrade");
        let days: Vec<(i64, i64, i64, i64)> =
            sqlx::query_as("SELECT day, requests, cost_micro_usd, latency_b3 FROM usage_rollups_daily ORDER BY day")
                .fetch_all(&pool)
                .await
                .expect("days");
        assert_eq!(days, [(day, 5, 15, 5), (day + 86_400_000, 1, 7, 1)]);
    }
}
