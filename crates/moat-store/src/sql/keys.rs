//! Keys and usage records, on every SQL backend.

use moat_core::rollup::{Tier, Totals};
use moat_core::{ModelAccess, OrgRole, Role, Usage, UsageRecord};
use sqlx::query::Query;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::statement::{Param, Statement};
use super::{Dialect, Month, SqlStore, corrupt, to_i64, to_u64};
use crate::{KeyFilter, KeyRecord, NewKey, StoreError, UsageFilter};

const KEY_COLUMNS: &str = "k.id, k.name, k.owner, k.user_id, k.team_id, k.role, k.prefix, k.models, \
    k.created_at, k.expires_at, k.revoked_at, u.active AS user_active, u.org_role AS user_role";

/// Keys with their owning user's state, for one query at authentication.
const KEYS_JOINED: &str = "keys k LEFT JOIN users u ON u.id = k.user_id";

const USAGE_COLUMNS: &str = "id, created_at, key_id, model, deployment, endpoint, status, error_code, input_tokens, \
    output_tokens, cached_tokens, cache_write_tokens, reasoning_tokens, estimated, streamed, latency_ms, ttft_ms, cache_hit, cost_micro_usd, user_id, team_id, reference_cost_micro_usd, \
    deployment_location, secrets_found, secrets_action";

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB> + Default,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> bool: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    /// A statement's SQL with its values bound, ready to run.
    pub(crate) fn bound(statement: &Statement) -> Query<'_, DB, DB::Arguments<'_>> {
        statement.params.iter().fold(sqlx::query(statement.text(DB::POSITIONAL_PLACEHOLDERS)), |query, param| {
            match param {
                Param::Text(v) => query.bind(v.as_str()),
                Param::OptText(v) => query.bind(v.as_deref()),
                Param::Int(v) => query.bind(*v),
                Param::OptInt(v) => query.bind(*v),
                Param::Bool(v) => query.bind(*v),
            }
        })
    }

    /// The migrations applied to this database against the ones this build has.
    pub(crate) async fn schema(&self) -> Result<crate::Schema, StoreError> {
        let exists: bool = sqlx::query(DB::MIGRATIONS_TABLE_EXISTS).fetch_one(&self.pool).await?.try_get(0)?;
        let mut applied = Vec::new();
        if exists {
            let rows = sqlx::query("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
                .fetch_all(&self.pool)
                .await?;
            for row in &rows {
                applied.push(row.try_get::<i64, _>(0)?);
            }
        }
        Ok(crate::Schema::compare(applied, DB::migrator()))
    }

    pub(crate) async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub(crate) async fn insert_key(&self, key: &NewKey) -> Result<KeyRecord, StoreError> {
        sqlx::query(
            "INSERT INTO keys (id, name, owner, user_id, team_id, role, secret_hash, prefix, models, created_at, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
        self.key_by_id(&key.id)
            .await?
            .ok_or_else(|| corrupt("keys", format!("key `{}` vanished after its insert", key.id)))
    }

    pub(crate) async fn key_by_hash(&self, secret_hash: &[u8]) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM {KEYS_JOINED} WHERE k.secret_hash = $1"))
            .bind(secret_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::key_from_row).transpose()
    }

    pub(crate) async fn key_by_id(&self, id: &str) -> Result<Option<KeyRecord>, StoreError> {
        let row = sqlx::query(&format!("SELECT {KEY_COLUMNS} FROM {KEYS_JOINED} WHERE k.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::key_from_row).transpose()
    }

    pub(crate) async fn list_keys(&self, filter: &KeyFilter) -> Result<Vec<KeyRecord>, StoreError> {
        let mut query = Statement::new(format!("SELECT {KEY_COLUMNS} FROM {KEYS_JOINED} WHERE 1 = 1"));
        if !filter.include_revoked {
            query.push(" AND k.revoked_at IS NULL");
        }
        if let Some(user) = &filter.user_id {
            query.push(" AND k.user_id = ").bind(user);
        }
        if let Some(team) = &filter.team_id {
            query.push(" AND k.team_id = ").bind(team);
        }
        if let Some(reader) = &filter.visible_to {
            // Nobody's key when the reader has neither a user nor a team.
            query.push(" AND (1 = 0");
            if let Some(user) = &reader.user_id {
                query.push(" OR k.user_id = ").bind(user);
            }
            if !reader.team_ids.is_empty() {
                query.push(" OR k.team_id IN ").row(reader.team_ids.iter().map(Param::from));
            }
            query.push(")");
        }
        if let Some(before) = &filter.before_id {
            query.push(" AND k.id < ").bind(before);
        }
        query.push(" ORDER BY k.id DESC LIMIT ").bind(i64::from(filter.limit));
        let rows = Self::bound(&query).fetch_all(&self.pool).await?;
        rows.iter().map(Self::key_from_row).collect()
    }

    pub(crate) async fn keys_by_ids(&self, ids: &[String]) -> Result<Vec<KeyRecord>, StoreError> {
        let mut keys = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(super::IDS_PER_LOOKUP) {
            let mut query = Statement::new(format!("SELECT {KEY_COLUMNS} FROM {KEYS_JOINED} WHERE k.id IN "));
            query.row(chunk.iter().map(|id| Param::Text(id.clone())));
            for row in Self::bound(&query).fetch_all(&self.pool).await? {
                keys.push(Self::key_from_row(&row)?);
            }
        }
        Ok(keys)
    }

    pub(crate) async fn revoke_key(&self, id: &str, now_ms: i64) -> Result<Option<KeyRecord>, StoreError> {
        sqlx::query("UPDATE keys SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2")
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
        self.ensure_usage_partitions(records).await?;
        let mut tx = self.pool.begin().await?;
        let mut stored = std::collections::HashSet::new();
        for chunk in super::statement::fixed_size_chunks(records, DB::ROWS_PER_STATEMENT) {
            let mut insert = Statement::new(format!("INSERT INTO usage_records ({USAGE_COLUMNS}) VALUES "));
            for (i, r) in chunk.iter().enumerate() {
                if i > 0 {
                    insert.push(", ");
                }
                insert.row([
                    Param::from(&r.id),
                    r.created_at_ms.into(),
                    r.key_id.clone().into(),
                    (&r.model).into(),
                    r.deployment.clone().into(),
                    (&r.endpoint).into(),
                    i64::from(r.status).into(),
                    r.error_code.clone().into(),
                    to_i64(r.usage.input).into(),
                    to_i64(r.usage.output).into(),
                    to_i64(r.usage.cached).into(),
                    to_i64(r.usage.cache_write).into(),
                    to_i64(r.usage.reasoning).into(),
                    r.estimated.into(),
                    r.streamed.into(),
                    to_i64(r.latency_ms).into(),
                    r.ttft_ms.map(to_i64).into(),
                    r.cache_hit.into(),
                    to_i64(r.cost_micro_usd).into(),
                    r.user_id.clone().into(),
                    r.team_id.clone().into(),
                    to_i64(r.reference_cost_micro_usd).into(),
                    r.deployment_location.map(|l| l.as_str().to_owned()).into(),
                    secrets_to_json(&r.secrets_found).into(),
                    r.secrets_action.map(|a| a.as_str().to_owned()).into(),
                ]);
            }
            // A record already stored (a replayed batch) is skipped: ids are unique per instant.
            // Only the records this insert stored are added to the rollups.
            insert.push(" ON CONFLICT DO NOTHING RETURNING id");
            for row in Self::bound(&insert).fetch_all(&mut *tx).await? {
                stored.insert(row.try_get::<String, _>(0)?);
            }
        }
        let fresh = records.iter().filter(|r| stored.contains(&r.id));
        let hourly = moat_core::rollup::deltas(fresh);
        let daily = moat_core::rollup::coarsen(&hourly, Tier::Day);
        for (tier, rows) in [(Tier::Hour, hourly), (Tier::Day, daily)] {
            let rows: Vec<_> = rows.into_iter().collect();
            for chunk in super::statement::fixed_size_chunks(&rows, DB::ROWS_PER_STATEMENT) {
                Self::bound(&super::rollups::upsert(tier, chunk)).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Creates the usage partitions a batch needs that this process has not seen yet; a
    /// no-op where usage is not partitioned. Replicas racing to create the same month are
    /// fine: the loser finds the table there.
    async fn ensure_usage_partitions(&self, records: &[UsageRecord]) -> Result<(), StoreError> {
        let missing: Vec<Month> = {
            let known = self.partitions.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut months: Vec<Month> = records.iter().filter_map(|r| Month::of(r.created_at_ms)).collect();
            months.sort_unstable();
            months.dedup();
            months.retain(|m| !known.contains(m));
            months
        };
        for month in missing {
            self.ensure_usage_partition(month).await?;
        }
        Ok(())
    }

    pub(crate) async fn ensure_usage_partition(&self, month: Month) -> Result<(), StoreError> {
        if let Some(ddl) = DB::usage_partition_ddl(&month)
            && let Err(error) = sqlx::query(&ddl).execute(&self.pool).await
        {
            let exists = sqlx::query("SELECT to_regclass($1) IS NOT NULL")
                .bind(month.partition_name())
                .fetch_one(&self.pool)
                .await?
                .try_get::<bool, _>(0)?;
            if !exists {
                return Err(error.into());
            }
        }
        self.partitions.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(month);
        Ok(())
    }

    pub(crate) async fn query_usage(&self, filter: &UsageFilter) -> Result<Vec<UsageRecord>, StoreError> {
        let mut query = Statement::new(format!("SELECT {USAGE_COLUMNS} FROM usage_records WHERE 1 = 1"));
        if let Some(id) = &filter.id {
            query.push(" AND id = ").bind(id.clone());
        }
        if let Some(key_id) = &filter.key_id {
            query.push(" AND key_id = ").bind(key_id.clone());
        }
        if let Some(user_id) = &filter.user_id {
            query.push(" AND user_id = ").bind(user_id.clone());
        }
        if let Some(model) = &filter.model {
            query.push(" AND model = ").bind(model.clone());
        }
        if let Some(deployment) = &filter.deployment {
            query.push(" AND deployment = ").bind(deployment.clone());
        }
        if let Some(status) = filter.status {
            query.push(" AND status = ").bind(i64::from(status));
        }
        if let Some(from) = filter.from_ms {
            query.push(" AND created_at >= ").bind(from);
        }
        if let Some(to) = filter.to_ms {
            query.push(" AND created_at < ").bind(to);
        }
        if let Some(before) = &filter.before_id {
            query.push(" AND id < ").bind(before.clone());
        }
        query.push(" ORDER BY id DESC LIMIT ").bind(i64::from(filter.limit));
        let rows = Self::bound(&query).fetch_all(&self.pool).await?;
        rows.iter().map(Self::usage_from_row).collect()
    }

    /// Rollup sums grouped by `by` over the hours starting in `[from_ms, to_ms)`: whole days
    /// from the daily tier, the edges from the hourly one (see [`moat_core::rollup::plan`]),
    /// merged by group.
    pub(crate) async fn report(
        &self,
        by: &[super::rollups::Dimension],
        from_ms: i64,
        to_ms: i64,
        only: Option<(super::rollups::Dimension, &str)>,
    ) -> Result<Vec<(Vec<String>, Totals)>, StoreError> {
        let hourly_only = by.contains(&super::rollups::Dimension::Hour);
        let mut merged: std::collections::BTreeMap<Vec<String>, Totals> = std::collections::BTreeMap::new();
        if by.is_empty() {
            // One total row, even over nothing.
            merged.insert(Vec::new(), Totals::default());
        }
        let width = super::rollups::summed_columns().len();
        for (tier, from, to) in moat_core::rollup::plan(from_ms, to_ms, hourly_only) {
            let statement = super::rollups::report(tier, by, from, to, only);
            for row in Self::bound(&statement).fetch_all(&self.pool).await? {
                let groups = (0..by.len()).map(|i| row.try_get::<String, _>(i)).collect::<Result<Vec<_>, _>>()?;
                let sums =
                    (by.len()..by.len() + width).map(|i| row.try_get::<i64, _>(i)).collect::<Result<Vec<_>, _>>()?;
                merged.entry(groups).or_default().add(&super::rollups::totals_from(&sums));
            }
        }
        Ok(merged.into_iter().collect())
    }

    /// Deletes rollup rows of periods that ended by `before_ms`: hours in the hourly tier,
    /// days in the daily one; how many went.
    pub(crate) async fn prune_rollups(&self, before_ms: i64) -> Result<u64, StoreError> {
        let mut pruned = 0;
        for tier in [Tier::Hour, Tier::Day] {
            let (table, start) = super::rollups::table(tier);
            let done = sqlx::query(&format!("DELETE FROM {table} WHERE {start} < $1"))
                .bind(tier.start_of(before_ms))
                .execute(&self.pool)
                .await?;
            pruned += DB::rows_affected(&done);
        }
        Ok(pruned)
    }

    /// The first hour `deployment` served anything: its first day from the (small) daily tier,
    /// then the hour within it (the day itself when that day's hours were pruned).
    pub(crate) async fn first_served_hour(&self, deployment: &str) -> Result<Option<i64>, StoreError> {
        let day = sqlx::query("SELECT MIN(day) FROM usage_rollups_daily WHERE deployment = $1")
            .bind(deployment)
            .fetch_one(&self.pool)
            .await?
            .try_get::<Option<i64>, _>(0)?;
        let Some(day) = day else { return Ok(None) };
        let hour =
            sqlx::query("SELECT MIN(hour) FROM usage_rollups WHERE hour >= $1 AND hour < $2 AND deployment = $3")
                .bind(day)
                .bind(day + moat_core::rollup::DAY_MS)
                .bind(deployment)
                .fetch_one(&self.pool)
                .await?
                .try_get::<Option<i64>, _>(0)?;
        Ok(Some(hour.unwrap_or(day)))
    }

    fn key_from_row(row: &DB::Row) -> Result<KeyRecord, StoreError> {
        let role: String = row.try_get("role")?;
        let role = Role::parse(&role).ok_or_else(|| corrupt("keys", format!("unknown role `{role}`")))?;
        let models: Option<String> = row.try_get("models")?;
        let user_active: Option<bool> = row.try_get("user_active")?;
        let user_role: Option<String> = row.try_get("user_role")?;
        let user_state = match (user_active, user_role) {
            (Some(active), Some(role)) => {
                Some((active, OrgRole::parse(&role).ok_or_else(|| corrupt("users", format!("unknown role `{role}`")))?))
            }
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

    fn usage_from_row(row: &DB::Row) -> Result<UsageRecord, StoreError> {
        let status: i64 = row.try_get("status")?;
        let ttft: Option<i64> = row.try_get("ttft_ms")?;
        Ok(UsageRecord {
            id: row.try_get("id")?,
            created_at_ms: row.try_get("created_at")?,
            key_id: row.try_get("key_id")?,
            model: row.try_get("model")?,
            deployment: row.try_get("deployment")?,
            endpoint: row.try_get("endpoint")?,
            status: u16::try_from(status).map_err(|_| corrupt("usage_records", format!("status {status}")))?,
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
            cache_hit: row.try_get("cache_hit")?,
            cost_micro_usd: to_u64(row.try_get("cost_micro_usd")?),
            user_id: row.try_get("user_id")?,
            team_id: row.try_get("team_id")?,
            reference_cost_micro_usd: to_u64(row.try_get("reference_cost_micro_usd")?),
            deployment_location: named(row.try_get("deployment_location")?, "deployment_location")?,
            secrets_found: match row.try_get::<Option<String>, _>("secrets_found")? {
                Some(text) => serde_json::from_str(&text)
                    .map_err(|e| corrupt("usage_records", format!("secrets_found {text}: {e}")))?,
                None => Default::default(),
            },
            secrets_action: named(row.try_get("secrets_action")?, "secrets_action")?,
        })
    }
}

/// A usage column holding one of an enum's names (`internal`, `redact`), read back into it.
fn named<T: serde::de::DeserializeOwned>(text: Option<String>, column: &str) -> Result<Option<T>, StoreError> {
    text.map(|text| {
        serde_json::from_value(serde_json::Value::String(text.clone()))
            .map_err(|_| corrupt("usage_records", format!("{column} {text}")))
    })
    .transpose()
}

/// Findings by kind as stored: `NULL` for none, the common case, so the column costs nothing.
fn secrets_to_json(found: &std::collections::BTreeMap<String, u32>) -> Option<String> {
    if found.is_empty() { None } else { serde_json::to_string(found).ok() }
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
        Some(json) => {
            serde_json::from_str(json).map(ModelAccess::Only).map_err(|e| corrupt("keys", format!("models: {e}")))
        }
    }
}
