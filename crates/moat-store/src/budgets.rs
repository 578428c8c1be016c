//! Budgets and limits as stored, and the ledger's spend they are measured against.

use moat_core::budget::{Budget, Limit, Scope};

use crate::{Store, StoreError, on_backend};

impl Store {
    /// Inserts a budget, or replaces the one with its id.
    pub async fn put_budget(&self, budget: &Budget) -> Result<(), StoreError> {
        on_backend!(self, s => s.put_budget(budget))
    }

    /// Every budget, oldest first.
    pub async fn list_budgets(&self) -> Result<Vec<Budget>, StoreError> {
        on_backend!(self, s => s.list_budgets())
    }

    /// Deletes a budget and its alert history; whether it existed.
    pub async fn delete_budget(&self, id: &str) -> Result<bool, StoreError> {
        on_backend!(self, s => s.delete_budget(id))
    }

    /// Inserts a limit, or replaces the one with its id.
    pub async fn put_limit(&self, limit: &Limit) -> Result<(), StoreError> {
        on_backend!(self, s => s.put_limit(limit))
    }

    /// Every limit, oldest first.
    pub async fn list_limits(&self) -> Result<Vec<Limit>, StoreError> {
        on_backend!(self, s => s.list_limits())
    }

    /// Deletes a limit; whether it existed.
    pub async fn delete_limit(&self, id: &str) -> Result<bool, StoreError> {
        on_backend!(self, s => s.delete_limit(id))
    }

    /// Micro-dollars the usage records of `[from_ms, to_ms)` spent toward `scope` (a team's
    /// spend is its keys' and its members' keys'). Budget counters start from this.
    pub async fn spend(
        &self,
        scope: Scope,
        scope_id: &str,
        from_ms: i64,
        to_ms: Option<i64>,
    ) -> Result<u64, StoreError> {
        on_backend!(self, s => s.spend(scope, scope_id, from_ms, to_ms))
    }

    /// Claims the alert for `threshold` percent of a budget's period starting at
    /// `period_start`: `true` for the one caller that should send it, across every replica.
    pub async fn claim_budget_alert(
        &self,
        budget_id: &str,
        period_start: i64,
        threshold: u32,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        on_backend!(self, s => s.claim_budget_alert(budget_id, period_start, threshold, now_ms))
    }
}
