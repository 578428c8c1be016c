//! Where moat's own outbound calls may go: budget-alert webhooks and single sign-on (the
//! provider's discovery document, token endpoint and keys).
//!
//! A URL that reaches an internal address can turn the gateway into a proxy into the company's
//! network: a cloud metadata service hands out credentials, an admin port trusts loopback.
//! These URLs come from the config, but the addresses behind a name change (DNS), and an
//! identity provider's discovery document names further endpoints. So every address a call
//! connects to is checked as it is resolved: loopback, private, link-local (cloud metadata
//! included), carrier-grade NAT, unique-local, unspecified and multicast addresses are refused
//! unless `[egress] allowed_networks` names them. Redirects are not followed. Deployments are
//! not subject to this: they are the company's own model servers, usually on private
//! addresses, and their URLs come only from the config.
//!
//! It lives here because sign-on is the first of these callers; the alert webhooks use it too.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The networks outbound calls may reach besides the public internet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    allowed: Vec<IpNet>,
}

impl EgressPolicy {
    /// Public addresses, plus `allowed` (e.g. `10.20.0.0/16` for an identity provider inside
    /// the company, `127.0.0.0/8` for one on the same machine).
    pub fn new(allowed: Vec<IpNet>) -> Self {
        EgressPolicy { allowed }
    }

    /// The networks allowed besides public ones, as configured (for the settings view).
    pub fn allowed(&self) -> &[IpNet] {
        &self.allowed
    }

    /// Why a call may not connect to `ip`, or `None` when it may.
    pub fn refuses(&self, ip: IpAddr) -> Option<&'static str> {
        if self.allowed.iter().any(|net| net.contains(&ip)) {
            return None;
        }
        non_public(ip)
    }

    /// Checks a URL whose host is an address written out (names are checked as they resolve;
    /// what is not a URL at all is left to whoever parses it).
    pub fn check_url(&self, url: &str) -> Result<(), String> {
        let Ok(parsed) = reqwest::Url::parse(url) else { return Ok(()) };
        let host = parsed.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
        let Ok(ip) = host.parse::<IpAddr>() else { return Ok(()) };
        match self.refuses(ip) {
            Some(why) => Err(refusal(&ip.to_string(), why)),
            None => Ok(()),
        }
    }

    /// An HTTP client under this policy: each resolved address checked, no redirects, and
    /// `timeout` on every call. It never goes through a proxy named in the environment
    /// (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`): the proxy would resolve the target's name
    /// itself, out of reach of the address check, and could be led to a metadata service.
    pub fn client(&self, timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
        reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(CheckedResolver { policy: self.clone() }))
            .build()
    }
}

/// The egress policy's refusal behind a failed call, if that is why it failed: the one
/// transport error worth telling an operator about in words.
pub fn refusal_in(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut source = Some(error);
    while let Some(current) = source {
        let text = current.to_string();
        if text.starts_with("the egress policy refuses") {
            return Some(text);
        }
        source = current.source();
    }
    None
}

fn refusal(host: &str, why: &str) -> String {
    format!("the egress policy refuses `{host}`: {why}; allow its network in [egress] allowed_networks")
}

/// Why `ip` is not a public internet address, if it is not.
fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_link_local() {
                Some("a link-local address (where cloud metadata services answer)")
            } else if v4.is_private() || (a == 100 && b & 0xc0 == 64) {
                Some("a private address")
            } else if v4.is_unspecified() || v4.is_broadcast() || v4.is_multicast() || a == 0 {
                Some("not a unicast address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return non_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            if v6.is_loopback() {
                Some("a loopback address")
            } else if first & 0xffc0 == 0xfe80 {
                Some("a link-local address (where cloud metadata services answer)")
            } else if first & 0xfe00 == 0xfc00 {
                Some("a private address")
            } else if v6.is_unspecified() || v6.is_multicast() {
                Some("not a unicast address")
            } else {
                None
            }
        }
    }
}

/// Resolves names as the system does, then keeps only the addresses the policy allows.
struct CheckedResolver {
    policy: EgressPolicy,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut reason = "it resolves to no address";
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| match policy.refuses(addr.ip()) {
                    Some(why) => {
                        reason = why;
                        false
                    }
                    None => true,
                })
                .collect();
            if allowed.is_empty() {
                let error = std::io::Error::new(std::io::ErrorKind::PermissionDenied, refusal(&host, reason));
                return Err(Box::new(error) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|_| panic!("{text} is an address"))
    }

    #[test]
    fn internal_and_metadata_addresses_are_refused_public_ones_pass() {
        let policy = EgressPolicy::default();
        for refused in [
            "127.0.0.1",
            "10.0.0.8",
            "172.16.3.4",
            "192.168.0.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::",
            "224.0.0.1",
        ] {
            assert!(policy.refuses(ip(refused)).is_some(), "{refused} should be refused");
        }
        for public in ["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700::1111"] {
            assert_eq!(policy.refuses(ip(public)), None, "{public} should pass");
        }
    }

    #[test]
    fn allowed_networks_open_exactly_themselves() {
        let policy =
            EgressPolicy::new(vec!["10.20.0.0/16".parse().expect("net"), "127.0.0.1/32".parse().expect("net")]);
        assert_eq!(policy.refuses(ip("10.20.9.9")), None);
        assert_eq!(policy.refuses(ip("127.0.0.1")), None);
        assert!(policy.refuses(ip("10.21.0.1")).is_some());
        assert!(policy.refuses(ip("127.0.0.2")).is_some());
    }

    #[test]
    fn urls_with_addresses_are_checked_names_wait_for_resolution() {
        let policy = EgressPolicy::default();
        let refused = policy.check_url("http://169.254.169.254/latest/meta-data/").expect_err("metadata");
        assert!(refused.contains("169.254.169.254") && refused.contains("allowed_networks"), "{refused}");
        assert!(policy.check_url("http://[::1]:8080/hook").is_err());
        assert_eq!(policy.check_url("https://hooks.slack.com/services/x"), Ok(()));
        assert_eq!(policy.check_url("https://8.8.8.8/"), Ok(()));
    }

    #[tokio::test]
    async fn a_name_that_resolves_inside_is_refused_when_called() {
        let client = EgressPolicy::default().client(Duration::from_secs(5)).expect("client");
        let error = client.get("http://localhost:9/").send().await.expect_err("refused");
        let refusal = refusal_in(&error).expect("the refusal is in the error's chain");
        assert!(refusal.contains("egress policy refuses `localhost`: a loopback address"), "{refusal}");
    }
}
