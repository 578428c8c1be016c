//! The deployments at run time: each one's client and what is known of it right now (requests
//! in flight, time to first token, circuit breaker), and the catalog that routes to them.
//!
//! A [`Routing`] is immutable once built; a config reload builds a new one and swaps it in, so
//! a request keeps the snapshot it started with. What is known of a deployment ([`Live`])
//! carries over to the new snapshot when the deployment keeps its name, so a reload neither
//! forgets that a server is down nor resets its latency.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use moat_core::{
    BreakerPolicy, CircuitBreaker, DeploymentId, DeploymentView, HealthState, ModelCatalog, PlanError, RoutePlan,
};
use moat_upstream::{DeploymentSpec, UpstreamClient};

use crate::config::RoutingSettings;

/// The newest sample counts for 1/`TTFT_SMOOTHING` of the time-to-first-token average.
const TTFT_SMOOTHING: u64 = 5;

/// One deployment: its client and its live state.
#[derive(Debug)]
pub(crate) struct Deployment {
    pub(crate) client: UpstreamClient,
    pub(crate) live: Arc<Live>,
}

impl Deployment {
    pub(crate) fn spec(&self) -> &DeploymentSpec {
        self.client.spec()
    }
}

/// What is known of a deployment now; shared by every snapshot that contains it.
#[derive(Debug)]
pub(crate) struct Live {
    in_flight: AtomicU64,
    /// Moving average of time to first token, in microseconds; 0 until measured.
    ttft_us: AtomicU64,
    breaker: Mutex<CircuitBreaker>,
}

impl Live {
    fn new(policy: BreakerPolicy) -> Self {
        Live {
            in_flight: AtomicU64::new(0),
            ttft_us: AtomicU64::new(0),
            breaker: Mutex::new(CircuitBreaker::new(policy)),
        }
    }

    fn breaker(&self) -> MutexGuard<'_, CircuitBreaker> {
        // A panic while holding this lock cannot leave the breaker half-updated in a way that
        // matters more than losing health tracking would.
        self.breaker.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts a request in flight until the guard is dropped.
    pub(crate) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Adds a time-to-first-token sample to the moving average.
    pub(crate) fn record_ttft(&self, sample: Duration) {
        let sample = u64::try_from(sample.as_micros()).unwrap_or(u64::MAX);
        let _ = self.ttft_us.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
            Some(if old == 0 {
                sample.max(1)
            } else {
                (old.saturating_mul(TTFT_SMOOTHING - 1).saturating_add(sample) / TTFT_SMOOTHING).max(1)
            })
        });
    }

    /// The moving average of time to first token, once measured.
    pub(crate) fn ttft(&self) -> Option<Duration> {
        match self.ttft_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// Claims the right to send a request now (the probe, when the deployment is down and its
    /// cooldown has passed).
    pub(crate) fn try_acquire(&self, now: Instant) -> bool {
        self.breaker().try_acquire(now)
    }

    /// A claimed request that was never sent: frees the probe slot if it held it.
    pub(crate) fn release(&self) {
        self.breaker().release();
    }

    pub(crate) fn succeeded(&self) {
        self.breaker().on_success();
    }

    pub(crate) fn failed(&self, now: Instant) {
        self.breaker().on_failure(now);
    }

    pub(crate) fn health(&self, now: Instant) -> HealthState {
        self.breaker().state(now)
    }

    pub(crate) fn times_opened(&self) -> u64 {
        self.breaker().times_opened()
    }

    pub(crate) fn consecutive_failures(&self) -> u32 {
        self.breaker().consecutive_failures()
    }
}

/// A request in flight to a deployment; dropping it ends the count.
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Live>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The catalog and deployments one request routes with.
#[derive(Debug)]
pub(crate) struct Routing {
    pub(crate) catalog: ModelCatalog,
    pub(crate) deployments: Vec<Arc<Deployment>>,
    pub(crate) settings: RoutingSettings,
}

impl Routing {
    /// Builds clients for `specs`, keeping the live state of deployments `previous` already
    /// knew by name. Fails with the deployment's name and why.
    pub(crate) fn build(
        catalog: ModelCatalog,
        specs: &[DeploymentSpec],
        settings: RoutingSettings,
        previous: Option<&Routing>,
    ) -> Result<Routing, (String, String)> {
        let known: HashMap<&str, &Arc<Live>> = previous
            .into_iter()
            .flat_map(|p| p.deployments.iter())
            .map(|d| (d.spec().name.as_str(), &d.live))
            .collect();
        let deployments = specs
            .iter()
            .map(|spec| {
                let client = UpstreamClient::new(spec.clone()).map_err(|message| (spec.name.clone(), message))?;
                let live = known
                    .get(spec.name.as_str())
                    .map_or_else(|| Arc::new(Live::new(settings.breaker)), |l| (*l).clone());
                Ok::<_, (String, String)>(Arc::new(Deployment { client, live }))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Routing { catalog, deployments, settings })
    }

    pub(crate) fn get(&self, id: DeploymentId) -> Option<&Arc<Deployment>> {
        self.deployments.get(id.0)
    }

    /// The deployments to try for a prompt of about `prompt_tokens` tokens to `model`, among
    /// those `usable` accepts (the ones that can serve the request's endpoint).
    pub(crate) fn plan(
        &self,
        model: &str,
        prompt_tokens: u64,
        usable: &dyn Fn(&Deployment) -> bool,
    ) -> Result<RoutePlan, PlanError> {
        let now = Instant::now();
        let view = |id: DeploymentId| match self.get(id) {
            Some(d) => DeploymentView {
                available: usable(d) && d.live.health(now) != HealthState::Down,
                in_flight: d.live.in_flight(),
                latency_ms: d.live.ttft().map(|t| t.as_secs_f64() * 1000.0),
                cost: d.spec().price.routing_cost(),
                context_window: d.spec().context_window,
            },
            None => DeploymentView { available: false, in_flight: 0, latency_ms: None, cost: 0, context_window: None },
        };
        let mut random = || rand::random::<f64>();
        self.catalog.plan(model, prompt_tokens, &view, &mut random)
    }
}
