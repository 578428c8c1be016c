//! A deployment's passive health: a circuit breaker fed by the outcome of real requests (and
//! of active checks, where configured).
//!
//! Closed, it admits everything and watches outcomes; enough consecutive failures, or a high
//! enough failure rate over recent requests, opens it. Open, it admits nothing until its
//! cooldown ends; then one request at a time is admitted as a probe (half-open). A probe that
//! succeeds closes it; one that fails opens it for another cooldown; one that never reports
//! (its client left) frees the probe slot after a cooldown. Time is passed in, so every
//! transition is testable without waiting.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// When a breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the breaker.
    pub consecutive_failures: u32,
    /// Failure share of the recent window (0 to 1) that opens it.
    pub failure_rate: f64,
    /// How many recent outcomes the rate is computed over.
    pub window: usize,
    /// Outcomes needed in the window before the rate can open it.
    pub min_requests: usize,
    /// How long it stays open before a probe.
    pub cooldown: Duration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            consecutive_failures: 5,
            failure_rate: 0.5,
            window: 20,
            min_requests: 10,
            cooldown: Duration::from_secs(30),
        }
    }
}

/// A breaker's state, as shown to operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    /// Serving.
    Up,
    /// Not serving until its cooldown ends.
    Down,
    /// Cooldown over: the next request is a probe.
    Probing,
}

impl HealthState {
    /// The name used in the admin API and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthState::Up => "up",
            HealthState::Down => "down",
            HealthState::Probing => "probing",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed,
    Open {
        until: Instant,
    },
    /// A probe may be sent when `probe_until` is `None` or has passed.
    HalfOpen {
        probe_until: Option<Instant>,
    },
}

/// One deployment's breaker.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    policy: BreakerPolicy,
    state: State,
    consecutive: u32,
    /// Recent outcomes, `true` for a failure.
    recent: VecDeque<bool>,
    opened: u64,
}

impl CircuitBreaker {
    /// A closed breaker.
    pub fn new(policy: BreakerPolicy) -> Self {
        CircuitBreaker { policy, state: State::Closed, consecutive: 0, recent: VecDeque::new(), opened: 0 }
    }

    /// The state at `now`.
    pub fn state(&self, now: Instant) -> HealthState {
        match self.state {
            State::Closed => HealthState::Up,
            State::Open { until } if now < until => HealthState::Down,
            State::HalfOpen { probe_until: Some(until) } if now < until => HealthState::Down,
            State::Open { .. } | State::HalfOpen { .. } => HealthState::Probing,
        }
    }

    /// Whether a request may be routed here at `now` (without claiming the probe).
    pub fn is_available(&self, now: Instant) -> bool {
        self.state(now) != HealthState::Down
    }

    /// Claims the right to send a request at `now`: always when closed; once per cooldown as
    /// the probe otherwise.
    pub fn try_acquire(&mut self, now: Instant) -> bool {
        match self.state(now) {
            HealthState::Up => true,
            HealthState::Down => false,
            HealthState::Probing => {
                self.state = State::HalfOpen { probe_until: Some(now + self.policy.cooldown) };
                true
            }
        }
    }

    /// A claimed request was never sent (moat itself declined it, say a body it could not
    /// redact safely): says nothing about the deployment, so a claimed probe slot is freed at
    /// once rather than after a cooldown.
    pub fn release(&mut self) {
        if let State::HalfOpen { probe_until: Some(_) } = self.state {
            self.state = State::HalfOpen { probe_until: None };
        }
    }

    /// A request succeeded: a probe's success closes the breaker.
    pub fn on_success(&mut self) {
        if self.state != State::Closed {
            self.state = State::Closed;
            self.recent.clear();
        }
        self.consecutive = 0;
        self.remember(false);
    }

    /// A request failed at `now`: a probe's failure, or enough failures, opens the breaker.
    pub fn on_failure(&mut self, now: Instant) {
        if self.state != State::Closed {
            self.open(now);
            return;
        }
        self.consecutive += 1;
        self.remember(true);
        let failures = self.recent.iter().filter(|failed| **failed).count();
        let rate_exceeded = self.recent.len() >= self.policy.min_requests
            && failures as f64 >= self.policy.failure_rate * self.recent.len() as f64;
        if self.consecutive >= self.policy.consecutive_failures || rate_exceeded {
            self.open(now);
        }
    }

    /// How many times it has opened, for metrics.
    pub fn times_opened(&self) -> u64 {
        self.opened
    }

    /// Consecutive failures since the last success.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive
    }

    fn open(&mut self, now: Instant) {
        self.state = State::Open { until: now + self.policy.cooldown };
        self.opened += 1;
        self.recent.clear();
    }

    fn remember(&mut self, failed: bool) {
        self.recent.push_back(failed);
        while self.recent.len() > self.policy.window.max(1) {
            self.recent.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BreakerPolicy {
        BreakerPolicy { consecutive_failures: 3, cooldown: Duration::from_secs(10), ..BreakerPolicy::default() }
    }

    #[test]
    fn a_released_probe_frees_its_slot_and_changes_nothing_else() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(policy());
        breaker.release();
        assert_eq!(breaker.state(t0), HealthState::Up, "releasing while closed changes nothing");
        for _ in 0..3 {
            breaker.on_failure(t0);
        }
        let later = t0 + Duration::from_secs(10);
        assert!(breaker.try_acquire(later), "the probe");
        assert!(!breaker.try_acquire(later), "only one probe at a time");
        breaker.release();
        assert_eq!(breaker.state(later), HealthState::Probing);
        assert!(breaker.try_acquire(later), "the slot is free again without waiting a cooldown");
        assert_eq!(breaker.times_opened(), 1, "a released probe is neither a success nor a failure");
        assert_eq!(breaker.consecutive_failures(), 3);
    }

    #[test]
    fn consecutive_failures_open_it_and_a_probe_closes_it() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(policy());
        breaker.on_failure(t0);
        breaker.on_failure(t0);
        breaker.on_success();
        breaker.on_failure(t0);
        breaker.on_failure(t0);
        assert_eq!(breaker.state(t0), HealthState::Up, "a success in between resets the count");
        breaker.on_failure(t0);
        assert_eq!(breaker.state(t0), HealthState::Down);
        assert!(!breaker.try_acquire(t0 + Duration::from_secs(9)), "nothing during the cooldown");
        let later = t0 + Duration::from_secs(10);
        assert_eq!(breaker.state(later), HealthState::Probing);
        assert!(breaker.try_acquire(later), "the probe");
        assert!(!breaker.try_acquire(later), "only one probe at a time");
        breaker.on_success();
        assert_eq!(breaker.state(later), HealthState::Up);
        assert_eq!(breaker.times_opened(), 1);
    }

    #[test]
    fn a_failed_probe_opens_it_again_and_a_lost_probe_is_replaced() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(policy());
        (0..3).for_each(|_| breaker.on_failure(t0));
        let probe_time = t0 + Duration::from_secs(10);
        assert!(breaker.try_acquire(probe_time));
        breaker.on_failure(probe_time);
        assert_eq!(breaker.state(probe_time + Duration::from_secs(9)), HealthState::Down);
        let next = probe_time + Duration::from_secs(10);
        assert!(breaker.try_acquire(next), "a probe whose client left never reports…");
        assert!(!breaker.try_acquire(next + Duration::from_secs(5)));
        assert!(breaker.try_acquire(next + Duration::from_secs(10)), "…and frees the slot after a cooldown");
    }

    #[test]
    fn a_high_failure_rate_opens_it_without_a_run_of_failures() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(BreakerPolicy { consecutive_failures: 100, ..policy() });
        for i in 0..10 {
            if i % 2 == 1 {
                breaker.on_failure(t0);
            } else {
                breaker.on_success();
            }
        }
        assert_eq!(breaker.state(t0), HealthState::Down, "5 of 10 failed");
    }
}
