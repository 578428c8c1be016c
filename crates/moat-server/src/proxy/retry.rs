//! When a failed attempt may be retried, and after how long.
//!
//! A retry on a deployment not yet tried goes at once: another server owes nothing to the
//! one that failed. A retry on a deployment already tried waits a jittered exponential
//! backoff (full jitter: uniform between zero and `base × 2^(n-1)`, capped), or the
//! deployment's own `retry-after` when that is longer. No retry starts past the request's
//! deadline: the caller gets the last error instead.

use std::time::{Duration, Instant};

use crate::config::RoutingSettings;

/// The retry bookkeeping of one request.
#[derive(Debug)]
pub(super) struct Schedule {
    settings: RoutingSettings,
    deadline: Instant,
    /// Per hop of the plan: attempts made there, and the earliest next one its `retry-after`
    /// allows.
    hops: Vec<(u32, Option<Instant>)>,
}

impl Schedule {
    pub(super) fn new(settings: RoutingSettings, started: Instant, hops: usize) -> Self {
        Schedule { settings, deadline: started + settings.retry_deadline, hops: vec![(0, None); hops] }
    }

    /// Notes a failed attempt on hop `index`, with the upstream's `retry-after`, if any.
    pub(super) fn failed(&mut self, index: usize, retry_after_secs: Option<u64>) {
        if let Some((attempts, not_before)) = self.hops.get_mut(index) {
            *attempts += 1;
            *not_before = retry_after_secs.map(|secs| Instant::now() + Duration::from_secs(secs));
        }
    }

    /// How long to wait before the next attempt, on hop `index` (`revisit` when it was tried
    /// before), given a `random` number in `[0, 1)`; `None` when the deadline forbids it.
    pub(super) fn wait_before(&self, index: usize, revisit: bool, random: f64) -> Option<Duration> {
        let now = Instant::now();
        let (attempts, not_before) = self.hops.get(index).copied().unwrap_or_default();
        let backoff = if revisit { self.backoff(attempts, random) } else { Duration::ZERO };
        let told = not_before.map_or(Duration::ZERO, |at| at.saturating_duration_since(now));
        let wait = backoff.max(told);
        (now + wait < self.deadline).then_some(wait)
    }

    /// The jittered backoff before retry number `n` (1-based) on one deployment.
    fn backoff(&self, n: u32, random: f64) -> Duration {
        let exponent = n.saturating_sub(1).min(20);
        let ceiling = self.settings.backoff_base.saturating_mul(1 << exponent).min(self.settings.backoff_max);
        ceiling.mul_f64(random.clamp(0.0, 1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> RoutingSettings {
        RoutingSettings {
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(500),
            retry_deadline: Duration::from_secs(10),
            ..RoutingSettings::default()
        }
    }

    #[test]
    fn another_deployment_goes_at_once_and_the_same_one_backs_off() {
        let mut schedule = Schedule::new(settings(), Instant::now(), 2);
        schedule.failed(0, None);
        assert_eq!(schedule.wait_before(1, false, 0.99), Some(Duration::ZERO));
        schedule.failed(1, None);
        let wait = schedule.wait_before(0, true, 0.99).expect("within the deadline");
        assert!(wait > Duration::from_millis(90) && wait <= Duration::from_millis(100), "{wait:?}");
        schedule.failed(0, None);
        schedule.failed(0, None);
        let capped = schedule.wait_before(0, true, 0.999).expect("within the deadline");
        assert!(capped <= Duration::from_millis(500) && capped > Duration::from_millis(390), "{capped:?}");
        assert_eq!(schedule.wait_before(0, true, 0.0), Some(Duration::ZERO), "full jitter reaches zero");
    }

    #[test]
    fn retry_after_is_honoured_and_the_deadline_ends_retries() {
        let mut schedule = Schedule::new(settings(), Instant::now(), 1);
        schedule.failed(0, Some(2));
        let wait = schedule.wait_before(0, true, 0.0).expect("2 s fits in 10 s");
        assert!(wait > Duration::from_millis(1900), "{wait:?}");
        schedule.failed(0, Some(30));
        assert_eq!(schedule.wait_before(0, true, 0.0), None, "30 s passes the deadline");
    }
}
