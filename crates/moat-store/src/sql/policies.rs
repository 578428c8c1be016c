//! Teams' data policies, on every SQL backend.

use moat_core::Policy;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::{Dialect, SqlStore, corrupt};
use crate::StoreError;

impl<DB> SqlStore<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB> + Default,
    for<'q> String: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
{
    pub(crate) async fn team_policies(&self) -> Result<Vec<(String, Policy)>, StoreError> {
        let rows =
            sqlx::query("SELECT team_id, policy FROM team_policies ORDER BY team_id").fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let team_id: String = row.try_get("team_id")?;
                let text: String = row.try_get("policy")?;
                let policy = serde_json::from_str(&text)
                    .map_err(|e| corrupt("team_policies", format!("team {team_id}: {e}")))?;
                Ok((team_id, policy))
            })
            .collect()
    }

    pub(crate) async fn set_team_policy(
        &self,
        team_id: &str,
        policy: Option<&Policy>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = match policy {
            Some(policy) => {
                let text = serde_json::to_string(policy)
                    .map_err(|e| corrupt("team_policies", format!("team {team_id}: {e}")))?;
                sqlx::query(
                    "INSERT INTO team_policies (team_id, policy, updated_at) \
                     SELECT id, $2, $3 FROM teams WHERE id = $1 \
                     ON CONFLICT (team_id) DO UPDATE SET policy = excluded.policy, updated_at = excluded.updated_at",
                )
                .bind(team_id)
                .bind(text)
                .bind(now_ms)
                .execute(&self.pool)
                .await?
            }
            None => {
                sqlx::query("DELETE FROM team_policies WHERE team_id = $1").bind(team_id).execute(&self.pool).await?
            }
        };
        Ok(DB::rows_affected(&done) > 0)
    }
}
