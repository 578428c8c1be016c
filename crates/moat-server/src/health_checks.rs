//! Active health checks: with `routing.health_check_interval` set, every deployment's
//! health-check URL is polled; a failed check counts as a failed request (and so can take the
//! deployment down), a passing one brings a down deployment back without waiting for a probe.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::state::AppState;

/// How often the loop looks again when checks are off (a reload may turn them on).
const IDLE_RECHECK: Duration = Duration::from_secs(5);

/// Runs until shutdown begins.
pub(crate) async fn run(state: Arc<AppState>) {
    loop {
        let routing = state.routing.load_full();
        let interval = routing.settings.health_check_interval;
        if interval.is_some() {
            let checks = routing.deployments.iter().map(|deployment| async move {
                match deployment.client.check_health().await {
                    Some(true) => deployment.live.succeeded(),
                    Some(false) => {
                        tracing::warn!(deployment = %deployment.spec().name, "health check failed");
                        deployment.live.failed(Instant::now());
                    }
                    None => {}
                }
            });
            futures_util::future::join_all(checks).await;
        }
        drop(routing);
        tokio::select! {
            () = tokio::time::sleep(interval.unwrap_or(IDLE_RECHECK)) => {}
            () = state.stopping.cancelled() => return,
        }
    }
}
