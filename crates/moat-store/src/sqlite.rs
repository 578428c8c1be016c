//! The SQLite backend: the embedded default, one file, no service to run.

use std::str::FromStr;
use std::time::Duration;

use moat_core::{ModelAccess, OrgRole, Role, Usage, UsageRecord};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, SqlitePool};

use crate::{KeyRecord, NewKey, StoreError, UsageFilter};

/// SQLite allows at most 32766 bound parameters per statement; 17 columns per record.
const MAX_RECORDS_PER_INSERT: usize = 1000;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Debug, Clone)]
pub(crate) struct SqliteStore {
    pub(crate) pool: SqlitePool,
    /// Serializes audit appends, so each links to the one before.
    pub(crate) audit_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl SqliteStore {
    pub(crate) async fn open(url: &str, migrations: crate::Migrations) -> Result<Self, StoreError> {
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
        let store = SqliteStore { pool, audit_lock: std::sync::Arc::default() };
        let schema = store.schema().await?;
        if let Some(unknown) = schema.unknown.first() {
            return Err(StoreError::SchemaFromTheFuture(*unknown));
        }
        match migrations {
            crate::Migrations::Apply => MIGRATOR.run(&store.pool).await?,
            crate::Migrations::Check if !schema.pending.is_empty() => {
                return Err(StoreError::SchemaBehind(schema.pending));
            }
            crate::Migrations::Check => {}
        }
        Ok(store)
    }

    /// The migrations applied to this database that this build knows and does not know, and
    /// the ones it knows that are not applied.
    pub(crate) async fn schema(&self) -> Result<crate::Schema, StoreError> {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
        )
        .fetch_one(&self.pool)
        .await?;
        let applied: Vec<i64> = if exists {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
                .fetch_all(&self.pool)
                .await?
        } else {
            Vec::new()
        };
        let known: Vec<i64> = MIGRATOR.iter().map(|m| m.version).collect();
        Ok(crate::Schema {
            pending: known.iter().copied().filter(|v| !applied.contains(v)).collect(),
            unknown: applied.iter().copied().filter(|v| !known.contains(v)).collect(),
            applied,
        })
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub(crate) async fn insert_key(&self, key: &NewKey) -> Result<KeyRecord, StoreError> {
        sqlx::query(
            "INSERT INTO keys (id, name, owner, user_id, team_id, role, secret_hash, prefix, models, created_at, \
             expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&key.id)
        .bind(&key.name)
        .bind(&key.owner)
        .bind(&key.user_id)
        .bind(&key.team_id)
        .bind(key.role.as_str())
        .bind(&key.secret_hash)
        .bind(&key.prefix)
        .bind(models_to_json(&key.models))
        .bind(key.created_at_ms)
        .bind(key.expires_at_ms)
        .execute(&self.pool)
        .await?;
        self.key_by_id(&key.id).await?.ok_or_else(|| StoreError::Corrupt {
            table: "keys",
            detail: format!("key `{}` vanished after its insert", key.id),
        })
    }

    pub(crate) async fn key_by_hash(&self, secret_hash: &[u8]) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM {KEYS_JOINED} WHERE k.secret_hash = ?"))
            .bind(secret_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    pub(crate) async fn key_by_id(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM {KEYS_JOINED} WHERE k.id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(key_from_row).transpose()
    }

    pub(crate) async fn list_keys(&self, include_revoked: bool) -> Result<Vec<KeyRecord>, StoreError> {
        let filter = if include_revoked { "" } else { "WHERE k.revoked_at IS NULL" };
        let rows = sqlx::query(&format!(
            "SELECT {KEY_COLUMNS} FROM {KEYS_JOINED} {filter} ORDER BY k.created_at DESC, k.id DESC"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_from_row).collect()
    }

    pub(crate) async fn revoke_key(&self, id: &str, now_ms: i64) -> Result<Option<KeyRecord>, StoreError> {
        sqlx::query("UPDATE keys SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?")
            .bind(now_ms)
            .bind(id)
            .execute(&self.pool)
            .await?;
        self.key_by_id(id).await
    }

    pub(crate) async fn has_active_admin_key(&self) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT EXISTS (SELECT 1 FROM keys WHERE role = 'admin' AND revoked_at IS NULL)")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<bool, _>(0)?)
    }

    pub(crate) async fn insert_usage(&self, records: &[UsageRecord]) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for chunk in records.chunks(MAX_RECORDS_PER_INSERT) {
            let mut query = QueryBuilder::new(
                "INSERT OR IGNORE INTO usage_records (id, created_at, key_id, model, deployment, endpoint, status, \
                 error_code, input_tokens, output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, estimated, \
                 streamed, latency_ms, ttft_ms) ",
            );
            query.push_values(chunk, |mut row, r| {
                row.push_bind(&r.id)
                    .push_bind(r.created_at_ms)
                    .push_bind(&r.key_id)
                    .push_bind(&r.model)
                    .push_bind(&r.deployment)
                    .push_bind(&r.endpoint)
                    .push_bind(i64::from(r.status))
                    .push_bind(&r.error_code)
                    .push_bind(to_i64(r.usage.input))
                    .push_bind(to_i64(r.usage.output))
                    .push_bind(to_i64(r.usage.cached))
                    .push_bind(to_i64(r.usage.cache_write))
                    .push_bind(to_i64(r.usage.reasoning))
                    .push_bind(r.estimated)
                    .push_bind(r.streamed)
                    .push_bind(to_i64(r.latency_ms))
                    .push_bind(r.ttft_ms.map(to_i64));
            });
            query.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn query_usage(&self, filter: &UsageFilter) -> Result<Vec<UsageRecord>, StoreError> {
        let mut query = QueryBuilder::new(
            "SELECT id, created_at, key_id, model, deployment, endpoint, status, error_code, input_tokens, \
             output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, estimated, streamed, latency_ms, ttft_ms \
             FROM usage_records WHERE 1 = 1",
        );
        if let Some(key_id) = &filter.key_id {
            query.push(" AND key_id = ").push_bind(key_id);
        }
        if let Some(model) = &filter.model {
            query.push(" AND model = ").push_bind(model);
        }
        if let Some(deployment) = &filter.deployment {
            query.push(" AND deployment = ").push_bind(deployment);
        }
        if let Some(status) = filter.status {
            query.push(" AND status = ").push_bind(i64::from(status));
        }
        if let Some(from) = filter.from_ms {
            query.push(" AND created_at >= ").push_bind(from);
        }
        if let Some(to) = filter.to_ms {
            query.push(" AND created_at < ").push_bind(to);
        }
        if let Some(before) = &filter.before_id {
            query.push(" AND id < ").push_bind(before);
        }
        query.push(" ORDER BY id DESC LIMIT ").push_bind(i64::from(filter.limit));
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter().map(usage_from_row).collect()
    }
}

pub(crate) const KEY_COLUMNS: &str = "k.id, k.name, k.owner, k.user_id, k.team_id, k.role, k.prefix, k.models, \
    k.created_at, k.expires_at, k.revoked_at, u.active AS user_active, u.org_role AS user_role";

/// Keys with their owning user's state, for one query at authentication.
pub(crate) const KEYS_JOINED: &str = "keys k LEFT JOIN users u ON u.id = k.user_id";

pub(crate) fn key_from_row(row: &SqliteRow) -> Result<KeyRecord, StoreError> {
    let role: String = row.try_get("role")?;
    let role = Role::parse(&role)
        .ok_or_else(|| StoreError::Corrupt { table: "keys", detail: format!("unknown role `{role}`") })?;
    let models: Option<String> = row.try_get("models")?;
    let user_active: Option<bool> = row.try_get("user_active")?;
    let user_role: Option<String> = row.try_get("user_role")?;
    let user_state = match (user_active, user_role) {
        (Some(active), Some(role)) => Some((
            active,
            OrgRole::parse(&role)
                .ok_or_else(|| StoreError::Corrupt { table: "users", detail: format!("unknown role `{role}`") })?,
        )),
        _ => None,
    };
    Ok(KeyRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        owner: row.try_get("owner")?,
        user_id: row.try_get("user_id")?,
        team_id: row.try_get("team_id")?,
        user_state,
        role,
        prefix: row.try_get("prefix")?,
        models: models_from_json(models.as_deref())?,
        created_at_ms: row.try_get("created_at")?,
        expires_at_ms: row.try_get("expires_at")?,
        revoked_at_ms: row.try_get("revoked_at")?,
    })
}

fn usage_from_row(row: &SqliteRow) -> Result<UsageRecord, StoreError> {
    let status: i64 = row.try_get("status")?;
    let ttft: Option<i64> = row.try_get("ttft_ms")?;
    Ok(UsageRecord {
        id: row.try_get("id")?,
        created_at_ms: row.try_get("created_at")?,
        key_id: row.try_get("key_id")?,
        model: row.try_get("model")?,
        deployment: row.try_get("deployment")?,
        endpoint: row.try_get("endpoint")?,
        status: u16::try_from(status)
            .map_err(|_| StoreError::Corrupt { table: "usage_records", detail: format!("status {status}") })?,
        error_code: row.try_get("error_code")?,
        usage: Usage {
            input: to_u64(row.try_get("input_tokens")?),
            output: to_u64(row.try_get("output_tokens")?),
            cached: to_u64(row.try_get("cached_tokens")?),
            cache_write: to_u64(row.try_get("cache_write_tokens")?),
            reasoning: to_u64(row.try_get("reasoning_tokens")?),
        },
        estimated: row.try_get("estimated")?,
        streamed: row.try_get("streamed")?,
        latency_ms: to_u64(row.try_get("latency_ms")?),
        ttft_ms: ttft.map(to_u64),
    })
}

fn models_to_json(models: &ModelAccess) -> Option<String> {
    match models {
        ModelAccess::All => None,
        ModelAccess::Only(list) => serde_json::to_string(list).ok(),
    }
}

fn models_from_json(json: Option<&str>) -> Result<ModelAccess, StoreError> {
    match json {
        None => Ok(ModelAccess::All),
        Some(json) => serde_json::from_str(json)
            .map(ModelAccess::Only)
            .map_err(|e| StoreError::Corrupt { table: "keys", detail: format!("models: {e}") }),
    }
}

/// Counts are u64 in the domain and i64 in SQL; anything past i64::MAX is clamped, not wrapped.
fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}
