//! Budgets, limits, budget alerts and the spend they are measured against, on every SQL
//! backend.

use moat_core::Period;
use moat_core::budget::{Budget, Limit, Scope};
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::{Dialect, SqlStore, corrupt, to_i64, to_u64};
use crate::StoreError;

const BUDGET_COLUMNS: &str =
    "id, scope, scope_id, amount_micro_usd, period, time_zone, thresholds, reset_at, created_at, updated_at";
const LIMIT_COLUMNS: &str =
    "id, scope, scope_id, requests_per_minute, tokens_per_minute, concurrent_requests, created_at, updated_at";

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
    for<'q> Option<i64>: Encode<'q, DB> + Decode<'q, DB>,
    for<'q> bool: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Vec<u8>: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    /// Inserts `budget`, or replaces the one with its id.
    pub(crate) async fn put_budget(&self, budget: &Budget) -> Result<(), StoreError> {
        let thresholds = serde_json::to_string(&budget.thresholds).unwrap_or_else(|_| "[]".into());
        sqlx::query(&format!(
            "INSERT INTO budgets ({BUDGET_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (id) DO UPDATE SET amount_micro_usd = $4, period = $5, time_zone = $6, thresholds = $7, \
             reset_at = $8, updated_at = $10"
        ))
        .bind(&budget.id)
        .bind(budget.scope.as_str())
        .bind(&budget.scope_id)
        .bind(to_i64(budget.amount_micro_usd))
        .bind(budget.period.as_str())
        .bind(&budget.time_zone)
        .bind(thresholds)
        .bind(budget.reset_at_ms)
        .bind(budget.created_at_ms)
        .bind(budget.updated_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn list_budgets(&self) -> Result<Vec<Budget>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {BUDGET_COLUMNS} FROM budgets ORDER BY created_at, id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::budget_from_row).collect()
    }

    pub(crate) async fn delete_budget(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM budgets WHERE id = $1").bind(id).execute(&self.pool).await?;
        sqlx::query("DELETE FROM budget_alerts WHERE budget_id = $1").bind(id).execute(&self.pool).await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    /// Inserts `limit`, or replaces the one with its id.
    pub(crate) async fn put_limit(&self, limit: &Limit) -> Result<(), StoreError> {
        let opt = |n: Option<u64>| n.map(to_i64);
        sqlx::query(&format!(
            "INSERT INTO limits ({LIMIT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO UPDATE SET requests_per_minute = $4, tokens_per_minute = $5, \
             concurrent_requests = $6, updated_at = $8"
        ))
        .bind(&limit.id)
        .bind(limit.scope.as_str())
        .bind(&limit.scope_id)
        .bind(opt(limit.requests_per_minute))
        .bind(opt(limit.tokens_per_minute))
        .bind(opt(limit.concurrent_requests))
        .bind(limit.created_at_ms)
        .bind(limit.updated_at_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(crate) async fn list_limits(&self) -> Result<Vec<Limit>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {LIMIT_COLUMNS} FROM limits ORDER BY created_at, id"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::limit_from_row).collect()
    }

    pub(crate) async fn delete_limit(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM limits WHERE id = $1").bind(id).execute(&self.pool).await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    /// Micro-dollars spent in `[from_ms, to_ms)` by requests counting toward `scope`.
    pub(crate) async fn spend(
        &self,
        scope: Scope,
        scope_id: &str,
        from_ms: i64,
        to_ms: Option<i64>,
    ) -> Result<u64, StoreError> {
        let filter = match scope {
            Scope::Org => "TRUE",
            Scope::Key => "u.key_id = $3",
            Scope::User => "u.key_id IN (SELECT id FROM keys WHERE user_id = $3)",
            Scope::Team => {
                "u.key_id IN (SELECT id FROM keys WHERE team_id = $3 OR user_id IN \
                 (SELECT user_id FROM memberships WHERE team_id = $3))"
            }
            Scope::Model => "u.model = $3",
        };
        let sql = format!(
            "SELECT CAST(COALESCE(SUM(u.cost_micro_usd), 0) AS BIGINT) FROM usage_records u \
             WHERE u.created_at >= $1 AND u.created_at < $2 AND {filter}"
        );
        let query = sqlx::query(&sql).bind(from_ms).bind(to_ms.unwrap_or(i64::MAX));
        let query = if scope == Scope::Org { query } else { query.bind(scope_id) };
        let total: i64 = query.fetch_one(&self.pool).await?.try_get(0)?;
        Ok(to_u64(total))
    }

    /// Records that `threshold` of budget `budget_id` fired in the period starting at
    /// `period_start`; `false` if it already had.
    pub(crate) async fn claim_budget_alert(
        &self,
        budget_id: &str,
        period_start: i64,
        threshold: u32,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO budget_alerts (budget_id, period_start, threshold, sent_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(budget_id)
        .bind(period_start)
        .bind(i64::from(threshold))
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(DB::rows_affected(&done) > 0)
    }

    fn budget_from_row(row: &DB::Row) -> Result<Budget, StoreError> {
        let scope: String = row.try_get("scope")?;
        let period: String = row.try_get("period")?;
        let thresholds: String = row.try_get("thresholds")?;
        Ok(Budget {
            id: row.try_get("id")?,
            scope: Scope::parse(&scope).ok_or_else(|| corrupt("budgets", format!("scope `{scope}`")))?,
            scope_id: row.try_get("scope_id")?,
            amount_micro_usd: to_u64(row.try_get("amount_micro_usd")?),
            period: Period::parse(&period).ok_or_else(|| corrupt("budgets", format!("period `{period}`")))?,
            time_zone: row.try_get("time_zone")?,
            thresholds: serde_json::from_str(&thresholds)
                .map_err(|e| corrupt("budgets", format!("thresholds: {e}")))?,
            reset_at_ms: row.try_get("reset_at")?,
            created_at_ms: row.try_get("created_at")?,
            updated_at_ms: row.try_get("updated_at")?,
        })
    }

    fn limit_from_row(row: &DB::Row) -> Result<Limit, StoreError> {
        let scope: String = row.try_get("scope")?;
        let opt = |column: &str| -> Result<Option<u64>, StoreError> {
            Ok(row.try_get::<Option<i64>, _>(column)?.map(to_u64))
        };
        Ok(Limit {
            id: row.try_get("id")?,
            scope: Scope::parse(&scope).ok_or_else(|| corrupt("limits", format!("scope `{scope}`")))?,
            scope_id: row.try_get("scope_id")?,
            requests_per_minute: opt("requests_per_minute")?,
            tokens_per_minute: opt("tokens_per_minute")?,
            concurrent_requests: opt("concurrent_requests")?,
            created_at_ms: row.try_get("created_at")?,
            updated_at_ms: row.try_get("updated_at")?,
        })
    }
}
