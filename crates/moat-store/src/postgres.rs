//! The PostgreSQL backend: for fleets of replicas that share one database.

use std::str::FromStr;
use std::time::Duration;

use sqlx::Postgres;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::sql::{Dialect, Month, SqlStore};
use crate::{Migrations, Pruned, StoreError};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections per replica: request-path reads are few (keys are cached) and usage is
/// batched, so a handful serves thousands of requests a second and leaves room on the
/// server (its default limit is 100) for many replicas.
const MAX_CONNECTIONS: u32 = 10;

/// How long a query waits for a connection. Short, so that while the database is down
/// requests fail fast and usage goes to the spool instead of queueing.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

impl Dialect for Postgres {
    const BEGIN_WRITE: &'static str = "BEGIN";
    // Readers keep reading; appenders (from any replica) queue until the holder commits.
    const AUDIT_TURN: Option<&'static str> = Some("LOCK TABLE audit_log IN EXCLUSIVE MODE");
    const POSITIONAL_PLACEHOLDERS: bool = false;
    const ROWS_PER_STATEMENT: usize = 500;

    fn nocase_eq(column: &str) -> (String, &'static str) {
        (format!("lower({column}) = lower("), ")")
    }

    const MIGRATIONS_TABLE_EXISTS: &'static str = "SELECT to_regclass('_sqlx_migrations') IS NOT NULL";

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    fn rows_affected(result: &Self::QueryResult) -> u64 {
        result.rows_affected()
    }

    fn usage_partition_ddl(month: &Month) -> Option<String> {
        Some(format!(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF usage_records FOR VALUES FROM ({}) TO ({})",
            month.partition_name(),
            month.start_ms(),
            month.next().start_ms()
        ))
    }
}

impl SqlStore<Postgres> {
    pub(crate) async fn open_postgres(url: &str, migrations: Migrations) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)?.application_name("moat");
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .idle_timeout(Some(Duration::from_secs(600)))
            .max_lifetime(Some(Duration::from_secs(3600)))
            .connect_with(options)
            .await?;
        let store = SqlStore::new(pool);
        let schema = store.schema().await?;
        schema.admit(migrations)?;
        if migrations == Migrations::Apply {
            // sqlx holds an advisory lock while it migrates: replicas starting together take turns.
            MIGRATOR.run(&store.pool).await?;
        }
        Ok(store)
    }

    /// The months that have a usage partition, oldest first.
    pub(crate) async fn usage_partitions(&self) -> Result<Vec<Month>, StoreError> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = 'usage_records'::regclass",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut months: Vec<Month> = names.iter().filter_map(|n| Month::from_partition_name(n)).collect();
        months.sort_unstable();
        Ok(months)
    }

    /// Drops every month partition that ends at or before `before_ms`: retention never
    /// deletes rows from the months it keeps. A month that straddles the cut is kept whole.
    pub(crate) async fn prune_postgres_usage(&self, before_ms: i64) -> Result<Pruned, StoreError> {
        let mut pruned = Pruned::default();
        for month in self.usage_partitions().await? {
            if month.next().start_ms() > before_ms {
                break;
            }
            sqlx::query(&format!("DROP TABLE IF EXISTS {}", month.partition_name())).execute(&self.pool).await?;
            self.partitions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&month);
            pruned.partitions += 1;
        }
        // The default partition is tiny (instants no month holds): a plain delete is fine.
        let done = sqlx::query("DELETE FROM usage_records_default WHERE created_at < $1")
            .bind(before_ms)
            .execute(&self.pool)
            .await?;
        pruned.records += done.rows_affected();
        Ok(pruned)
    }
}
