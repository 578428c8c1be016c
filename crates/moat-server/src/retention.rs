//! Usage housekeeping: this month's and next month's partitions made ahead of need, records
//! older than `usage.retention`, hourly rollups older than `usage.rollup_retention` and prompt
//! logs past their policy's retention removed. Runs on every replica; each pass is
//! idempotent, so replicas doing the same work at once is harmless.

use std::sync::Arc;
use std::time::Duration;

use crate::state::AppState;
use crate::time::now_ms;

/// How often a pass runs. Partitions are monthly, so hourly is ample.
const EVERY: Duration = Duration::from_secs(3600);

/// Runs a pass at start-up and then every hour until the gateway stops.
pub(crate) async fn run(state: Arc<AppState>, retention: Option<Duration>, rollup_retention: Option<Duration>) {
    loop {
        pass(&state, retention).await;
        prune_rollups(&state, rollup_retention).await;
        prune_prompt_logs(&state).await;
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            () = state.stopping.cancelled() => return,
        }
    }
}

async fn prune_rollups(state: &AppState, retention: Option<Duration>) {
    let Some(retention) = retention else { return };
    let cut = now_ms().saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
    match state.store.prune_rollups(cut).await {
        Ok(0) => {}
        Ok(rows) => tracing::info!(rows, "old usage rollups removed"),
        Err(error) => tracing::warn!(%error, "usage rollup retention pass failed; the next one retries"),
    }
}

/// Deletes logged exchanges whose retention has ended (reads already hide them).
async fn prune_prompt_logs(state: &AppState) {
    if state.prompt_vault.is_none() {
        return;
    }
    match state.store.prune_prompt_logs(now_ms()).await {
        Ok(0) => {}
        Ok(rows) => tracing::info!(rows, "expired prompt logs removed"),
        Err(error) => tracing::warn!(%error, "prompt log retention pass failed; the next one retries"),
    }
}

async fn pass(state: &AppState, retention: Option<Duration>) {
    let now = now_ms();
    if let Err(error) = state.store.prepare_usage_partitions(now).await {
        tracing::warn!(%error, "could not create the coming usage partitions; the first batch of the month will");
    }
    let Some(retention) = retention else { return };
    let cut = now.saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
    match state.store.prune_usage(cut).await {
        Ok(pruned) if pruned.partitions > 0 || pruned.records > 0 => {
            tracing::info!(partitions = pruned.partitions, records = pruned.records, "old usage records removed");
        }
        Ok(_) => {}
        Err(error) => tracing::warn!(%error, "usage retention pass failed; the next one retries"),
    }
}
