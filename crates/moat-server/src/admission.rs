//! Admission: each request reserves its estimate on every budget and limit it touches before
//! it is sent upstream, and settles the reservation with what it actually used once it ends.
//!
//! The arithmetic is [`moat_core::quota`]'s; the counters are a [`CounterStore`] (this process,
//! or Redis shared by the fleet). Budget counters start from the ledger: the first request of a
//! period (or the first after a restart, or after Redis lost its keys) seeds the counter with
//! the spend the usage records already hold, so no restart forgets a month's spend.
//!
//! Budgets and limits are read from the database into a snapshot that requests share; admin
//! changes swap it at once on the replica that made them, and every replica re-reads it each
//! `[admission] refresh_interval`.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use moat_core::ErrorCode;
use moat_core::budget::{Estimate, Measure, Policies, Subject};
use moat_core::quota::{Admission as Outcome, Check, Held, Settle, Standing};
use moat_store::counters::CounterStore;
use moat_store::{Store, StoreError};

use crate::config::raw::{AdmissionConfig, FailMode};
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::time::now_ms;

/// How long a client is told to wait when the counters are unavailable.
const UNAVAILABLE_RETRY_SECS: u64 = 5;

/// Budgets, limits and their counters.
#[derive(Debug)]
pub(crate) struct Admission {
    counters: CounterStore,
    policies: ArcSwap<Policies>,
    config: AdmissionConfig,
    store: Store,
}

/// What a request holds from admission until it settles.
#[derive(Debug)]
pub(crate) struct Reservation {
    id: String,
    held: Vec<(Measure, Held)>,
    /// The snapshot the request was admitted under, which names its budgets.
    policies: Arc<Policies>,
    admitted_at_ms: i64,
}

/// A request let through, with the rate-limit headers its response carries.
#[derive(Debug, Default)]
pub(crate) struct Admitted {
    /// `None` when nothing applied, or the counters were down and the request went uncounted.
    pub(crate) reservation: Option<Reservation>,
    pub(crate) headers: HeaderMap,
}

/// Why admission failed, with the headers the refusal carries.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) error: ApiError,
    pub(crate) headers: HeaderMap,
}

impl Admission {
    pub(crate) fn new(counters: CounterStore, config: AdmissionConfig, store: Store) -> Admission {
        Admission { counters, policies: ArcSwap::from_pointee(Policies::default()), config, store }
    }

    /// The counter store, for reading and resetting counters from the admin API.
    pub(crate) fn counters(&self) -> &CounterStore {
        &self.counters
    }

    /// The budgets and limits in force.
    pub(crate) fn policies(&self) -> Arc<Policies> {
        self.policies.load_full()
    }

    /// Output tokens reserved for a request that names no maximum.
    pub(crate) fn default_output_tokens(&self) -> u64 {
        self.config.default_output_tokens
    }

    /// How often to re-read budgets and limits.
    pub(crate) fn refresh_interval(&self) -> Duration {
        self.config.refresh_interval
    }

    /// Re-reads budgets and limits from the database.
    pub(crate) async fn refresh(&self) -> Result<(), StoreError> {
        let (budgets, limits) = (self.store.list_budgets().await?, self.store.list_limits().await?);
        self.policies.store(Arc::new(Policies::new(budgets, limits)));
        Ok(())
    }

    /// Reserves `estimate` on every budget and limit `subject` touches, or refuses.
    /// `estimate` is only worked out when some budget or limit exists.
    pub(crate) async fn admit(
        &self,
        metrics: &Metrics,
        subject: Subject<'_>,
        estimate: impl FnOnce() -> Estimate,
    ) -> Result<Admitted, Box<Refusal>> {
        let policies = self.policies.load_full();
        if policies.is_empty() {
            return Ok(Admitted::default());
        }
        let estimate = estimate();
        // Its own id, not the request id a client may choose: a reused id must not make a
        // settlement look like a repeat.
        let reservation_id = uuid::Uuid::now_v7().to_string();
        let request_id = reservation_id.as_str();
        let now = now_ms();
        let measured = policies.checks(subject, estimate, now);
        if measured.is_empty() {
            return Ok(Admitted::default());
        }
        let checks: Vec<Check> = measured.iter().map(|(_, check)| check.clone()).collect();
        // A seed can race another replica's; the second round then finds the bucket made.
        for _ in 0..3 {
            let outcome = self.counters.admit(request_id, &checks, self.config.reservation_ttl, None).await;
            metrics.observe_counters(outcome.is_ok());
            match outcome {
                Ok(Outcome::Admitted { held, standings }) => {
                    metrics.observe_admission("admitted");
                    let headers = rate_headers(&measured, &standings, now);
                    let held = measured.iter().map(|(measure, _)| *measure).zip(held).collect();
                    let reservation = Reservation { id: request_id.to_owned(), held, policies, admitted_at_ms: now };
                    return Ok(Admitted { reservation: Some(reservation), headers });
                }
                Ok(Outcome::Refused { check, standing }) => {
                    let (measure, refused) = &measured[check];
                    return Err(Box::new(self.refusal(metrics, &policies, *measure, refused, standing, estimate, now)));
                }
                Ok(Outcome::Unseeded { checks: unseeded }) => {
                    for index in unseeded {
                        if let Err(error) = self.seed(&policies, measured[index].0, &measured[index].1, now).await {
                            tracing::warn!(%error, "cannot seed a budget counter from the ledger");
                            return self.unavailable(metrics, &measured);
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "budget and limit counters unavailable");
                    return self.unavailable(metrics, &measured);
                }
            }
        }
        self.unavailable(metrics, &measured)
    }

    /// Starts a budget's counter for the current period from the ledger's spend.
    async fn seed(&self, policies: &Policies, measure: Measure, check: &Check, now: i64) -> Result<(), String> {
        let Measure::Spend(index) = measure else { return Ok(()) };
        let budget = &policies.budgets[index];
        let window = budget.window(now);
        let spent = self
            .store
            .spend(budget.scope, &budget.scope_id, budget.counts_from(window), window.end_ms)
            .await
            .map_err(|e| e.to_string())?;
        let expires = match check.window {
            moat_core::quota::Window::Fixed { expires_at_ms } => expires_at_ms,
            moat_core::quota::Window::Sliding { .. } => None,
        };
        self.counters.seed(&check.counter, spent, expires).await.map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The counters cannot be reached: admit uncounted or refuse, as configured per kind.
    fn unavailable(&self, metrics: &Metrics, measured: &[(Measure, Check)]) -> Result<Admitted, Box<Refusal>> {
        let budgets = measured.iter().any(|(m, _)| matches!(m, Measure::Spend(_)));
        let limits = measured.iter().any(|(m, _)| !matches!(m, Measure::Spend(_)));
        let refuse = (budgets && self.config.budgets_fail == FailMode::Closed)
            || (limits && self.config.limits_fail == FailMode::Closed);
        if refuse {
            metrics.observe_admission("refused_unavailable");
            let error = ApiError::new(
                ErrorCode::AdmissionUnavailable,
                "moat cannot check this request's budgets and limits right now; try again shortly",
            )
            .with_retry_after(Some(UNAVAILABLE_RETRY_SECS));
            return Err(Box::new(Refusal { error, headers: HeaderMap::new() }));
        }
        metrics.observe_admission("uncounted");
        Ok(Admitted::default())
    }

    #[allow(clippy::too_many_arguments)]
    fn refusal(
        &self,
        metrics: &Metrics,
        policies: &Policies,
        measure: Measure,
        check: &Check,
        standing: Standing,
        estimate: Estimate,
        now: i64,
    ) -> Refusal {
        let mut headers = HeaderMap::new();
        match measure {
            Measure::Spend(index) => {
                metrics.observe_admission("budget_exceeded");
                let budget = &policies.budgets[index];
                let window = budget.window(now);
                let retry_after = window.end_ms.map(|end| secs_until(end, now));
                let scope = match budget.scope {
                    moat_core::budget::Scope::Org => "the organization".to_owned(),
                    scope => format!("{} `{}`", scope.as_str(), budget.scope_id),
                };
                let message = format!(
                    "the {period} budget of {scope} is used up: {used} of {limit} spent or reserved, and this \
                     request may cost up to {estimate}{resets}",
                    period = budget.period.as_str().replace("none", "lifetime"),
                    used = dollars(standing.used),
                    limit = dollars(standing.limit),
                    estimate = dollars(estimate.cost),
                    resets = if window.end_ms.is_some() { "; it renews when its period ends" } else { "" },
                );
                Refusal {
                    error: ApiError::new(ErrorCode::BudgetExceeded, message).with_retry_after(retry_after),
                    headers,
                }
            }
            measure => {
                metrics.observe_admission("rate_limit_exceeded");
                let reset_ms = check.window.reset_after_ms(now);
                let what = match measure {
                    Measure::Requests => "requests per minute",
                    Measure::Tokens => "tokens per minute",
                    _ => "concurrent requests",
                };
                if let Some(kind) = header_kind(measure) {
                    insert(&mut headers, &format!("x-ratelimit-limit-{kind}"), standing.limit.to_string());
                    insert(&mut headers, &format!("x-ratelimit-remaining-{kind}"), standing.remaining().to_string());
                    insert(&mut headers, &format!("x-ratelimit-reset-{kind}"), reset_text(reset_ms));
                }
                // Concurrency frees when a request ends: a second is a fair guess.
                let retry_after = if reset_ms > 0 { secs_until(now + reset_ms, now) } else { 1 };
                let message = format!(
                    "rate limit reached: {used} of {limit} {what} in use{need}; retry after {retry_after} s",
                    used = standing.used,
                    limit = standing.limit,
                    need = if measure == Measure::Tokens {
                        format!(" and this request needs up to {}", check.amount)
                    } else {
                        String::new()
                    },
                );
                Refusal {
                    error: ApiError::new(ErrorCode::RateLimitExceeded, message).with_retry_after(Some(retry_after)),
                    headers,
                }
            }
        }
    }

    /// Ends `reservation` with the request's actual cost and tokens, exactly once. With
    /// `alerting` (some webhook would receive an alert), also returns the budgets whose spend
    /// has reached alert thresholds (alerts claim each once); without, it reads nothing more.
    pub(crate) async fn settle(
        &self,
        metrics: &Metrics,
        reservation: Reservation,
        cost: u64,
        tokens: u64,
        alerting: bool,
    ) -> Vec<Crossing> {
        let settles: Vec<Settle> = reservation
            .held
            .iter()
            .map(|(measure, held)| Settle {
                bucket: held.bucket.clone(),
                actual: match measure {
                    Measure::Spend(_) => cost,
                    Measure::Requests => 1,
                    Measure::Tokens => tokens,
                    Measure::Concurrent => 0,
                },
            })
            .collect();
        // Settling is retried a little: a reservation left unsettled holds its estimate until
        // it expires, and the spend would count only when the counter is next seeded.
        for attempt in 0..3 {
            let result = self.counters.settle(&reservation.id, &settles, None).await;
            metrics.observe_counters(result.is_ok());
            match result {
                Ok(_) => break,
                Err(error) if attempt == 2 => {
                    tracing::warn!(%error, request_id = %reservation.id, "could not settle a reservation; it expires")
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200 << attempt)).await,
            }
        }
        if cost == 0 || !alerting {
            return Vec::new();
        }
        let mut crossings = Vec::new();
        for (measure, held) in &reservation.held {
            let Measure::Spend(index) = measure else { continue };
            let budget = &reservation.policies.budgets[*index];
            if budget.thresholds.is_empty() {
                continue;
            }
            let check = budget.check(reservation.admitted_at_ms, 0);
            if check.counter != held.bucket {
                continue;
            }
            let Ok(totals) = self.counters.totals(&check, None).await else { continue };
            let thresholds = budget.reached(totals.settled);
            if !thresholds.is_empty() {
                let window = budget.window(reservation.admitted_at_ms);
                crossings.push(Crossing {
                    budget: budget.clone(),
                    period_start_ms: window.start_ms,
                    spent: totals.settled,
                    thresholds,
                });
            }
        }
        crossings
    }
}

/// Re-reads budgets, limits and teams' data policies every `[admission] refresh_interval`
/// until the gateway stops, so changes made through another replica apply here.
pub(crate) async fn refresh_loop(state: Arc<crate::state::AppState>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(state.admission.refresh_interval()) => {}
            () = state.stopping.cancelled() => return,
        }
        if let Err(error) = state.admission.refresh().await {
            tracing::warn!(%error, "could not re-read budgets and limits; the last ones read stay in force");
        }
        if let Err(error) = state.data_policies.refresh(&state.store).await {
            tracing::warn!(%error, "could not re-read teams' data policies; the last ones read stay in force");
        }
        if let Some(vault) = &state.prompt_vault
            && let Err(error) = vault.refresh(&state.store).await
        {
            tracing::warn!(%error, "could not re-read the data key in use; prompt logs keep the last one");
        }
    }
}

/// A budget whose spend has reached alert thresholds.
#[derive(Debug, Clone)]
pub(crate) struct Crossing {
    pub(crate) budget: moat_core::budget::Budget,
    pub(crate) period_start_ms: i64,
    pub(crate) spent: u64,
    pub(crate) thresholds: Vec<u32>,
}

/// `x-ratelimit-*` headers for the tightest requests limit and the tightest tokens limit.
fn rate_headers(measured: &[(Measure, Check)], standings: &[Standing], now: i64) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for kind in [Measure::Requests, Measure::Tokens] {
        let tightest = measured
            .iter()
            .zip(standings)
            .filter(|((measure, _), _)| *measure == kind)
            .min_by_key(|(_, standing)| standing.remaining());
        if let (Some(((_, check), standing)), Some(name)) = (tightest, header_kind(kind)) {
            insert(&mut headers, &format!("x-ratelimit-limit-{name}"), standing.limit.to_string());
            insert(&mut headers, &format!("x-ratelimit-remaining-{name}"), standing.remaining().to_string());
            insert(&mut headers, &format!("x-ratelimit-reset-{name}"), reset_text(check.window.reset_after_ms(now)));
        }
    }
    headers
}

fn header_kind(measure: Measure) -> Option<&'static str> {
    match measure {
        Measure::Requests => Some("requests"),
        Measure::Tokens => Some("tokens"),
        _ => None,
    }
}

fn insert(headers: &mut HeaderMap, name: &str, value: String) {
    if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
        headers.insert(name, value);
    }
}

/// A reset delay as OpenAI writes it: `"12s"`, `"1m0s"`.
fn reset_text(ms: i64) -> String {
    let secs = u64::try_from(ms).unwrap_or(0).div_ceil(1000);
    if secs >= 60 { format!("{}m{}s", secs / 60, secs % 60) } else { format!("{secs}s") }
}

fn secs_until(at_ms: i64, now_ms: i64) -> u64 {
    u64::try_from(at_ms.saturating_sub(now_ms)).unwrap_or(0).div_ceil(1000).max(1)
}

/// Micro-dollars as dollars for people: `$1.234567`, trailing zeros trimmed to cents.
pub(crate) fn dollars(micro: u64) -> String {
    let whole = micro / 1_000_000;
    let fraction = format!("{:06}", micro % 1_000_000);
    let trimmed = fraction.trim_end_matches('0');
    let fraction = if trimmed.len() < 2 { &fraction[..2] } else { trimmed };
    format!("${whole}.{fraction}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_and_delays_read_the_way_people_write_them() {
        assert_eq!(dollars(0), "$0.00");
        assert_eq!(dollars(1_500_000), "$1.50");
        assert_eq!(dollars(1_234_567), "$1.234567");
        assert_eq!(dollars(10), "$0.00001");
        assert_eq!(reset_text(12_001), "13s");
        assert_eq!(reset_text(60_000), "1m0s");
        assert_eq!(reset_text(0), "0s");
        assert_eq!(secs_until(1_500, 1_000), 1);
    }
}
