//! Data policies: where a team's prompts may go, and what happens to credentials in them.
//!
//! A company deploys moat so that prompts and keys stay inside its walls. A policy says which
//! deployments a team's traffic may reach (self-hosted ones only, or a named list) and what to
//! do with a credential found in a prompt bound for a deployment outside the company. Each
//! team may have one; the rest follow the organisation's default. A request that counts toward
//! several teams follows the strictest of their policies, so joining a team never loosens
//! what another team's policy promised.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Where a deployment runs, which decides whether a prompt sent to it leaves the company.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Location {
    /// Inside the company's network: self-hosted vLLM, SGLang, llama.cpp, Ollama.
    Internal,
    /// A third party's API: hosted open-model providers, frontier labs.
    External,
}

impl Location {
    /// Where a deployment at `host` (a URL's host: a name, an IPv4 address, or an IPv6 one in
    /// brackets) presumably runs, when its config does not say: inside for loopback, private,
    /// link-local and carrier-grade NAT addresses, single-label names (a compose service, a
    /// Kubernetes service in the same namespace) and names under `.local`, `.internal`,
    /// `.localhost`, `.lan`, `.home.arpa`, `.svc` or `.cluster.local`; outside for the rest.
    /// The guess errs towards outside, where prompts are scanned.
    pub fn presumed_for_host(host: &str) -> Location {
        let host = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase();
        let inside = match host.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V4(ip)) => {
                ip.is_loopback()
                    || ip.is_private()
                    || ip.is_link_local()
                    || (ip.octets()[0] == 100 && ip.octets()[1] & 0xc0 == 64)
            }
            Ok(std::net::IpAddr::V6(ip)) => {
                let first = ip.segments()[0];
                ip.is_loopback() || first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfe80
            }
            Err(_) => {
                const SUFFIXES: [&str; 7] =
                    [".local", ".internal", ".localhost", ".lan", ".home.arpa", ".svc", ".cluster.local"];
                host == "localhost" || !host.contains('.') || SUFFIXES.iter().any(|suffix| host.ends_with(suffix))
            }
        };
        if inside { Location::Internal } else { Location::External }
    }

    /// The name used in config, API answers and usage records.
    pub const fn as_str(self) -> &'static str {
        match self {
            Location::Internal => "internal",
            Location::External => "external",
        }
    }
}

/// What happens to a credential found in a request bound for an external deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SecretAction {
    /// Sent as written; the usage record still counts what was found.
    Allow,
    /// Replaced by a placeholder (`[REDACTED:aws_access_key:1]`) before it leaves.
    #[default]
    Redact,
    /// The request does not go to an external deployment at all.
    Block,
}

impl SecretAction {
    /// The name used in config, API answers and usage records.
    pub const fn as_str(self) -> &'static str {
        match self {
            SecretAction::Allow => "allow",
            SecretAction::Redact => "redact",
            SecretAction::Block => "block",
        }
    }
}

/// How much of a request moat keeps beyond forwarding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PromptLogging {
    /// Only the usage ledger budgets and chargeback need (who, model, tokens, cost, status);
    /// the request's trace spans are not exported either.
    None,
    /// The usage record and the request's trace spans: metadata, never content.
    #[default]
    Metadata,
    /// Also the prompt and the completion, encrypted at rest, for the retention period.
    Full,
}

impl PromptLogging {
    /// The name used in config and API answers.
    pub const fn as_str(self) -> &'static str {
        match self {
            PromptLogging::None => "none",
            PromptLogging::Metadata => "metadata",
            PromptLogging::Full => "full",
        }
    }
}

/// Days a fully logged prompt is kept when a policy does not say.
pub const DEFAULT_PROMPT_RETENTION_DAYS: u32 = 30;

const fn default_prompt_retention_days() -> u32 {
    DEFAULT_PROMPT_RETENTION_DAYS
}

/// One team's data policy, or the organisation's default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Only internal deployments may serve this traffic.
    #[serde(default)]
    pub internal_only: bool,
    /// Only these deployments (by name) may serve it; absent: any the model routes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployments: Option<BTreeSet<String>>,
    /// What happens to credentials in prompts bound for external deployments.
    #[serde(default)]
    pub secrets: SecretAction,
    /// What is kept of each request: nothing but the ledger, metadata, or the full exchange.
    #[serde(default)]
    pub prompts: PromptLogging,
    /// With `prompts = full`: days each exchange is kept before it is deleted.
    #[serde(default = "default_prompt_retention_days")]
    pub prompt_retention_days: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            internal_only: false,
            deployments: None,
            secrets: SecretAction::default(),
            prompts: PromptLogging::default(),
            prompt_retention_days: DEFAULT_PROMPT_RETENTION_DAYS,
        }
    }
}

impl Policy {
    /// Whether traffic under this policy may go to the deployment `name` at `location`.
    pub fn may_reach(&self, name: &str, location: Location) -> bool {
        (!self.internal_only || location == Location::Internal)
            && self.deployments.as_ref().is_none_or(|allowed| allowed.contains(name))
    }

    /// The policy that honours both: internal-only if either is, only deployments both allow,
    /// the stricter secrets action, the less kept of each request and the shorter retention.
    #[must_use]
    pub fn strictest(&self, other: &Policy) -> Policy {
        let deployments = match (&self.deployments, &other.deployments) {
            (Some(a), Some(b)) => Some(a.intersection(b).cloned().collect()),
            (Some(one), None) | (None, Some(one)) => Some(one.clone()),
            (None, None) => None,
        };
        Policy {
            internal_only: self.internal_only || other.internal_only,
            deployments,
            secrets: self.secrets.max(other.secrets),
            prompts: self.prompts.min(other.prompts),
            prompt_retention_days: self.prompt_retention_days.min(other.prompt_retention_days),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn only(names: &[&str]) -> Option<BTreeSet<String>> {
        Some(names.iter().map(|n| (*n).to_owned()).collect())
    }

    #[test]
    fn hosts_on_the_company_network_are_presumed_internal() {
        for host in [
            "localhost",
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.5",
            "192.168.1.10",
            "100.101.1.1",
            "[::1]",
            "[fd12:3456::1]",
            "vllm",
            "gpu-1.internal",
            "llm.svc.cluster.local",
            "box.local",
            "vllm.ml.svc",
        ] {
            assert_eq!(Location::presumed_for_host(host), Location::Internal, "{host}");
        }
        for host in [
            "api.together.xyz",
            "api.fireworks.ai",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "[2001:db8::1]",
            "internal.example.com",
        ] {
            assert_eq!(Location::presumed_for_host(host), Location::External, "{host}");
        }
    }

    #[test]
    fn internal_only_keeps_traffic_off_external_deployments() {
        let policy = Policy { internal_only: true, ..Policy::default() };
        assert!(policy.may_reach("vllm", Location::Internal));
        assert!(!policy.may_reach("together", Location::External));
        assert!(Policy::default().may_reach("together", Location::External));
    }

    #[test]
    fn an_allow_list_names_the_only_deployments_reachable() {
        let policy = Policy { deployments: only(&["vllm-a", "fireworks"]), ..Policy::default() };
        assert!(policy.may_reach("fireworks", Location::External));
        assert!(!policy.may_reach("vllm-b", Location::Internal));
    }

    #[test]
    fn the_strictest_of_two_policies_honours_both() {
        let research =
            Policy { deployments: only(&["vllm", "fireworks"]), secrets: SecretAction::Allow, ..Policy::default() };
        let finance = Policy {
            internal_only: true,
            deployments: only(&["vllm", "sglang"]),
            secrets: SecretAction::Block,
            ..Policy::default()
        };
        let both = research.strictest(&finance);
        assert_eq!(
            both,
            Policy {
                internal_only: true,
                deployments: only(&["vllm"]),
                secrets: SecretAction::Block,
                ..Policy::default()
            }
        );
        assert_eq!(both, finance.strictest(&research));
        assert_eq!(Policy::default().strictest(&research).deployments, research.deployments);
    }

    #[test]
    fn the_strictest_keeps_less_of_each_request_for_less_time() {
        let audited = Policy { prompts: PromptLogging::Full, prompt_retention_days: 90, ..Policy::default() };
        let brief = Policy { prompts: PromptLogging::Full, prompt_retention_days: 7, ..Policy::default() };
        let private = Policy { prompts: PromptLogging::None, ..Policy::default() };
        assert_eq!(audited.strictest(&brief).prompt_retention_days, 7);
        assert_eq!(audited.strictest(&brief).prompts, PromptLogging::Full);
        assert_eq!(audited.strictest(&Policy::default()).prompts, PromptLogging::Metadata);
        assert_eq!(private.strictest(&audited).prompts, PromptLogging::None);
    }

    #[test]
    fn policies_read_as_admins_write_them_and_refuse_unknown_fields() {
        let policy: Policy =
            serde_json::from_str(r#"{"internal_only": true, "secrets": "block"}"#).expect("a valid policy");
        assert_eq!(policy, Policy { internal_only: true, secrets: SecretAction::Block, ..Policy::default() });
        let full: Policy =
            serde_json::from_str(r#"{"prompts": "full", "prompt_retention_days": 14}"#).expect("a valid policy");
        assert_eq!((full.prompts, full.prompt_retention_days), (PromptLogging::Full, 14));
        assert!(serde_json::from_str::<Policy>(r#"{"prompts": "everything"}"#).is_err());
        assert!(serde_json::from_str::<Policy>(r#"{"internal": true}"#).is_err());
        assert!(serde_json::from_str::<Policy>(r#"{"secrets": "warn"}"#).is_err());
        assert_eq!(
            serde_json::to_value(Policy::default()).ok(),
            Some(serde_json::json!({
                "internal_only": false, "secrets": "redact", "prompts": "metadata", "prompt_retention_days": 30
            }))
        );
    }
}
