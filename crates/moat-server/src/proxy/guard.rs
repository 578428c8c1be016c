//! The data policy on the request path: which deployments a request may reach, and what
//! happens to credentials in a request bound for an external one.
//!
//! Routing keeps only the deployments the caller's policy allows ([`Guard::allows`]). Before
//! the first attempt, the client's body is scanned once if any deployment left in the plan is
//! external ([`Guard::screen`]): with `block`, external deployments leave the plan (and with
//! nothing left the client gets `secret_detected`); with `redact`, each attempt on an
//! external deployment sends its body with the secrets replaced ([`Guard::outbound`]). What
//! was found is counted by kind on the usage record and in metrics; a secret's value is never
//! logged, recorded or echoed.

use std::collections::BTreeMap;
use std::sync::Arc;

use moat_core::{ErrorCode, Location, Policy, SecretAction};
use moat_wire::secret_scan::{SecretScanner, count_by_kind, redact};

use super::{Hop, Meter};
use crate::error::ApiError;
use crate::fleet::Deployment;
use crate::metrics::Metrics;

/// One request's data policy and what screening found.
#[derive(Debug)]
pub(crate) struct Guard {
    policy: Arc<Policy>,
    /// Whether [`Guard::screen`] ran, and then whether it found credentials.
    screened: bool,
    found: bool,
}

impl Guard {
    pub(crate) fn new(policy: Arc<Policy>) -> Self {
        Guard { policy, screened: false, found: false }
    }

    /// Whether the policy lets this request reach `deployment`.
    pub(crate) fn allows(&self, deployment: &Deployment) -> bool {
        self.policy.may_reach(&deployment.spec().name, deployment.spec().location)
    }

    /// Scans `body` if the plan reaches outside, and applies `block` to the plan. Counts what
    /// was found on the meter and in metrics.
    pub(crate) fn screen(
        &mut self,
        body: &[u8],
        hops: &mut Vec<(Arc<Deployment>, Hop)>,
        meter: &mut Meter,
        metrics: &Metrics,
    ) -> Result<(), ApiError> {
        self.screened = true;
        if !hops.iter().any(|(deployment, _)| is_external(deployment)) {
            return Ok(());
        }
        let findings = SecretScanner::shared().scan(body);
        if findings.is_empty() {
            return Ok(());
        }
        self.found = true;
        let action = self.policy.secrets;
        let by_kind = count_by_kind(&findings);
        for (kind, n) in &by_kind {
            metrics.observe_secrets(kind.as_str(), action.as_str(), *n);
        }
        let counts: BTreeMap<String, u32> =
            by_kind.into_iter().map(|(kind, n)| (kind.as_str().to_owned(), n)).collect();
        let summary = summary(&counts);
        meter.note_secrets(counts, action);
        if action == SecretAction::Block {
            hops.retain(|(deployment, _)| !is_external(deployment));
            if hops.is_empty() {
                return Err(ApiError::new(
                    ErrorCode::SecretDetected,
                    format!(
                        "this request contains credentials ({summary}) and its data policy blocks sending them \
                         outside the company; remove them, or use a model served in-house"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The body to send to `deployment`: as built, or with its credentials replaced when it
    /// is external and the policy redacts. `None` when it must not go there: the policy
    /// blocks credentials it holds, or a redaction could not be made safely.
    pub(crate) fn outbound(&self, deployment: &Deployment, body: Vec<u8>) -> Option<Vec<u8>> {
        let clean = self.screened && !self.found;
        if clean || !is_external(deployment) || self.policy.secrets == SecretAction::Allow {
            return Some(body);
        }
        let findings = SecretScanner::shared().scan(&body);
        if findings.is_empty() {
            return Some(body);
        }
        if self.policy.secrets == SecretAction::Block {
            return None;
        }
        let redacted = redact(&body, &findings);
        // The scanner keeps escapes whole, so this holds; checked because the alternative to
        // a malformed body is a leaked secret, not a bad request.
        let valid = std::str::from_utf8(&redacted).is_ok()
            && serde_json::from_slice::<serde::de::IgnoredAny>(&redacted).is_ok();
        valid.then_some(redacted)
    }
}

fn is_external(deployment: &Deployment) -> bool {
    deployment.spec().location == Location::External
}

/// `github_token ×2, jwt ×1`: what was found, for the error message (kinds, never values).
fn summary(counts: &BTreeMap<String, u32>) -> String {
    counts.iter().map(|(kind, n)| format!("{kind} ×{n}")).collect::<Vec<_>>().join(", ")
}
