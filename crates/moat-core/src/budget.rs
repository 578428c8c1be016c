//! Budgets and limits: what a company caps, and which counters one request touches.
//!
//! A budget caps spend (micro-dollars) of a key, a user, a team or the whole org over a
//! calendar period; a limit caps requests per minute, tokens per minute and concurrent
//! requests of a key, a user, a team or a model. A request counts toward its key, the key's
//! user, every team it belongs to (a team key's team, or the user's teams for a personal key),
//! the org, and its model. [`Policies::checks`] turns the ones that apply into counter checks
//! for [`crate::quota`].

use std::collections::HashMap;

use crate::period::{Period, Window as PeriodWindow, time_zone};
use crate::quota::{Check, Window};

/// The length of a rate limit's sliding window.
pub const MINUTE_MS: i64 = 60_000;
/// How long a budget period's counter outlives the period, for requests settling late.
pub const BUDGET_GRACE_MS: i64 = 3_600_000;

/// What a budget or limit is set on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// One virtual key.
    Key,
    /// One user: all their keys.
    User,
    /// One team: its keys and its members' keys.
    Team,
    /// Everything (budgets only).
    Org,
    /// One public model (limits only).
    Model,
}

impl Scope {
    /// The name used in the API, the CLI and the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Key => "key",
            Scope::User => "user",
            Scope::Team => "team",
            Scope::Org => "org",
            Scope::Model => "model",
        }
    }

    /// Parses a scope name.
    pub fn parse(s: &str) -> Option<Scope> {
        match s {
            "key" => Some(Scope::Key),
            "user" => Some(Scope::User),
            "team" => Some(Scope::Team),
            "org" => Some(Scope::Org),
            "model" => Some(Scope::Model),
            _ => None,
        }
    }
}

/// A spend cap over a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// `bud_…`.
    pub id: String,
    /// What it caps.
    pub scope: Scope,
    /// The key, user or team id; empty for the org.
    pub scope_id: String,
    /// The cap per period, in micro-dollars.
    pub amount_micro_usd: u64,
    /// How often it starts again.
    pub period: Period,
    /// The IANA time zone its calendar follows.
    pub time_zone: String,
    /// Alert thresholds, in percent of the amount.
    pub thresholds: Vec<u32>,
    /// Spend before this instant does not count (set by a reset).
    pub reset_at_ms: Option<i64>,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    /// Unix milliseconds.
    pub updated_at_ms: i64,
}

impl Budget {
    /// The period holding `now_ms`. An unknown time zone (validated on the way in, so only a
    /// database edited by hand has one) reads as UTC.
    pub fn window(&self, now_ms: i64) -> PeriodWindow {
        let zone = time_zone(&self.time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
        self.period.window(&zone, now_ms)
    }

    /// The counter of the period `window`: named by its start, so a new period is a new counter.
    pub fn counter(&self, window: PeriodWindow) -> String {
        format!("budget:{}:{}", self.id, window.start_ms)
    }

    /// The check reserving `amount` micro-dollars in the period holding `now_ms`.
    pub fn check(&self, now_ms: i64, amount: u64) -> Check {
        let window = self.window(now_ms);
        Check {
            counter: self.counter(window),
            window: Window::Fixed { expires_at_ms: window.end_ms.map(|end| end + BUDGET_GRACE_MS) },
            limit: self.amount_micro_usd,
            amount,
            seeded: true,
        }
    }

    /// Where the ledger's spend for the period `window` starts counting: the period's start,
    /// or the last reset if later.
    pub fn counts_from(&self, window: PeriodWindow) -> i64 {
        self.reset_at_ms.map_or(window.start_ms, |reset| reset.max(window.start_ms))
    }

    /// The thresholds that spend `spent` has reached. Alerts are claimed once per threshold
    /// and period in the database, so asking again after every request is safe, and no
    /// threshold is missed when requests settle concurrently.
    pub fn reached(&self, spent: u64) -> Vec<u32> {
        let at = |percent: u32| u128::from(self.amount_micro_usd) * u128::from(percent) / 100;
        self.thresholds.iter().copied().filter(|&percent| u128::from(spent) >= at(percent)).collect()
    }
}

/// Parses a dollar amount written for people (`25`, `25.5`, `"0.000125"`) into micro-dollars,
/// exactly: no float ever holds money. `None` for anything else, or more than six decimals.
pub fn parse_usd(text: &str) -> Option<u64> {
    let text = text.trim().trim_start_matches('$');
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() && fraction.is_empty() || !digits(whole) || !digits(fraction) || fraction.len() > 6 {
        return None;
    }
    let whole: u64 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let fraction: u64 = format!("{fraction:0<6}").parse().ok()?;
    whole.checked_mul(1_000_000)?.checked_add(fraction)
}

/// Request, token and concurrency caps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    /// `lim_…`.
    pub id: String,
    /// What it caps.
    pub scope: Scope,
    /// The key, user, team id or model name.
    pub scope_id: String,
    /// Requests admitted per sliding minute.
    pub requests_per_minute: Option<u64>,
    /// Tokens (input plus output) per sliding minute; requests reserve their estimate.
    pub tokens_per_minute: Option<u64>,
    /// Requests in flight at once.
    pub concurrent_requests: Option<u64>,
    /// Unix milliseconds.
    pub created_at_ms: i64,
    /// Unix milliseconds.
    pub updated_at_ms: i64,
}

/// What a counter measures, which decides what its settlement adds and which headers report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Micro-dollars of the budget with this index in [`Policies::budgets`].
    Spend(usize),
    /// Requests per minute.
    Requests,
    /// Tokens per minute.
    Tokens,
    /// Requests in flight.
    Concurrent,
}

impl Limit {
    /// The counter names of this limit, by measure.
    pub fn counter(&self, measure: Measure) -> String {
        let kind = match measure {
            Measure::Requests => "rpm",
            Measure::Tokens => "tpm",
            Measure::Concurrent | Measure::Spend(_) => "concurrent",
        };
        format!("{kind}:{}", self.id)
    }

    /// The checks of this limit for a request estimated at `tokens`.
    pub fn checks(&self, tokens: u64) -> Vec<(Measure, Check)> {
        let sliding = Window::Sliding { length_ms: MINUTE_MS };
        let mut checks = Vec::new();
        let mut push = |measure, limit: Option<u64>, window, amount| {
            if let Some(limit) = limit {
                checks.push((measure, Check { counter: self.counter(measure), window, limit, amount, seeded: false }));
            }
        };
        push(Measure::Requests, self.requests_per_minute, sliding, 1);
        push(Measure::Tokens, self.tokens_per_minute, sliding, tokens);
        push(Measure::Concurrent, self.concurrent_requests, Window::Fixed { expires_at_ms: None }, 1);
        checks
    }
}

/// Who a request counts toward.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// Its key (none for the bootstrap admin key).
    pub key_id: Option<&'a str>,
    /// The key's user.
    pub user_id: Option<&'a str>,
    /// The teams it counts toward.
    pub teams: &'a [String],
    /// The public model.
    pub model: &'a str,
}

impl Subject<'_> {
    fn scopes(&self) -> Vec<(Scope, &str)> {
        let mut scopes = vec![(Scope::Org, ""), (Scope::Model, self.model)];
        scopes.extend(self.key_id.map(|id| (Scope::Key, id)));
        scopes.extend(self.user_id.map(|id| (Scope::User, id)));
        scopes.extend(self.teams.iter().map(|id| (Scope::Team, id.as_str())));
        scopes
    }
}

/// Every budget and limit, indexed by what they are set on.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    /// Every budget.
    pub budgets: Vec<Budget>,
    /// Every limit.
    pub limits: Vec<Limit>,
    /// Indexes into `budgets` and `limits` by scope, then scope id (looked up by `&str`, so a
    /// request's lookups allocate nothing).
    budgets_by_scope: HashMap<Scope, HashMap<String, Vec<usize>>>,
    limits_by_scope: HashMap<Scope, HashMap<String, Vec<usize>>>,
}

/// A request's estimate: what admission reserves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Estimate {
    /// Micro-dollars.
    pub cost: u64,
    /// Input plus output tokens.
    pub tokens: u64,
}

impl Policies {
    /// Indexes `budgets` and `limits`.
    pub fn new(budgets: Vec<Budget>, limits: Vec<Limit>) -> Policies {
        let mut budgets_by_scope: HashMap<Scope, HashMap<String, Vec<usize>>> = HashMap::new();
        for (index, budget) in budgets.iter().enumerate() {
            budgets_by_scope.entry(budget.scope).or_default().entry(budget.scope_id.clone()).or_default().push(index);
        }
        let mut limits_by_scope: HashMap<Scope, HashMap<String, Vec<usize>>> = HashMap::new();
        for (index, limit) in limits.iter().enumerate() {
            limits_by_scope.entry(limit.scope).or_default().entry(limit.scope_id.clone()).or_default().push(index);
        }
        Policies { budgets, limits, budgets_by_scope, limits_by_scope }
    }

    /// Whether nothing is capped at all: admission then costs nothing.
    pub fn is_empty(&self) -> bool {
        self.budgets.is_empty() && self.limits.is_empty()
    }

    /// The checks a request by `subject`, estimated at `estimate`, must pass at `now_ms`:
    /// budgets first, then limits.
    pub fn checks(&self, subject: Subject<'_>, estimate: Estimate, now_ms: i64) -> Vec<(Measure, Check)> {
        let mut checks = Vec::new();
        let scopes = subject.scopes();
        for (scope, id) in &scopes {
            for &index in self.budgets_by_scope.get(scope).and_then(|ids| ids.get(*id)).into_iter().flatten() {
                checks.push((Measure::Spend(index), self.budgets[index].check(now_ms, estimate.cost)));
            }
        }
        for (scope, id) in &scopes {
            for &index in self.limits_by_scope.get(scope).and_then(|ids| ids.get(*id)).into_iter().flatten() {
                checks.extend(self.limits[index].checks(estimate.tokens));
            }
        }
        checks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget(id: &str, scope: Scope, scope_id: &str) -> Budget {
        Budget {
            id: id.into(),
            scope,
            scope_id: scope_id.into(),
            amount_micro_usd: 10_000_000,
            period: Period::Month,
            time_zone: "Europe/Paris".into(),
            thresholds: vec![50, 80, 100],
            reset_at_ms: None,
            created_at_ms: 0,
            updated_at_ms: 0,
        }
    }

    #[test]
    fn a_request_touches_its_key_user_teams_org_and_model() {
        let limit = Limit {
            id: "lim_m".into(),
            scope: Scope::Model,
            scope_id: "gemma".into(),
            requests_per_minute: Some(60),
            tokens_per_minute: None,
            concurrent_requests: Some(4),
            created_at_ms: 0,
            updated_at_ms: 0,
        };
        let policies = Policies::new(
            vec![
                budget("bud_org", Scope::Org, ""),
                budget("bud_key", Scope::Key, "key_1"),
                budget("bud_other", Scope::Key, "key_2"),
                budget("bud_team", Scope::Team, "team_a"),
                budget("bud_user", Scope::User, "usr_1"),
            ],
            vec![limit],
        );
        let teams = vec!["team_a".to_owned(), "team_b".to_owned()];
        let subject = Subject { key_id: Some("key_1"), user_id: Some("usr_1"), teams: &teams, model: "gemma" };
        let checks = policies.checks(subject, Estimate { cost: 7, tokens: 100 }, 0);
        let names: Vec<&str> = checks.iter().map(|(_, c)| c.counter.as_str()).collect();
        // Paris's month holding the epoch began on 1970-01-01 00:00 Paris (one hour earlier in UTC).
        assert_eq!(
            names,
            vec![
                "budget:bud_org:-3600000",
                "budget:bud_key:-3600000",
                "budget:bud_user:-3600000",
                "budget:bud_team:-3600000",
                "rpm:lim_m",
                "concurrent:lim_m"
            ]
        );
        assert!(checks[..4].iter().all(|(_, c)| c.amount == 7 && c.seeded));
        assert_eq!(checks[4].1.amount, 1);
    }

    #[test]
    fn thresholds_are_reached_at_their_share_of_the_amount() {
        let budget = budget("b", Scope::Org, "");
        assert_eq!(budget.reached(4_999_999), Vec::<u32>::new());
        assert_eq!(budget.reached(5_000_000), vec![50]);
        assert_eq!(budget.reached(9_000_000), vec![50, 80]);
        assert_eq!(budget.reached(12_000_000), vec![50, 80, 100]);
    }

    #[test]
    fn dollar_amounts_parse_exactly() {
        assert_eq!(parse_usd("25"), Some(25_000_000));
        assert_eq!(parse_usd("$25.5"), Some(25_500_000));
        assert_eq!(parse_usd("0.000125"), Some(125));
        assert_eq!(parse_usd(".5"), Some(500_000));
        assert_eq!(parse_usd("0.0000001"), None);
        assert_eq!(parse_usd("-1"), None);
        assert_eq!(parse_usd("1e3"), None);
        assert_eq!(parse_usd(""), None);
        assert_eq!(parse_usd("."), None);
        assert_eq!(parse_usd("99999999999999999999"), None);
    }

    #[test]
    fn a_reset_moves_where_spend_counts_from() {
        let mut budget = budget("b", Scope::Org, "");
        let window = PeriodWindow { start_ms: 1_000, end_ms: Some(9_000) };
        assert_eq!(budget.counts_from(window), 1_000);
        budget.reset_at_ms = Some(5_000);
        assert_eq!(budget.counts_from(window), 5_000);
        budget.reset_at_ms = Some(500);
        assert_eq!(budget.counts_from(window), 1_000);
    }
}
