//! The counters in Redis: one Lua script per operation.

use std::sync::LazyLock;
use std::time::Duration;

use moat_core::quota::{Admission, Check, Held, Settle, Standing, Totals, Window};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{FromRedisValue, Script, Value};

use super::CounterError;

const COMMON: &str = include_str!("common.lua");

fn script(body: &str) -> Script {
    Script::new(&format!("{COMMON}\n{body}"))
}

static ADMIT: LazyLock<Script> = LazyLock::new(|| script(include_str!("admit.lua")));
static SETTLE: LazyLock<Script> = LazyLock::new(|| script(include_str!("settle.lua")));
static SEED: LazyLock<Script> = LazyLock::new(|| script(include_str!("seed.lua")));
static RESET: LazyLock<Script> = LazyLock::new(|| script(include_str!("reset.lua")));
static TOTALS: LazyLock<Script> = LazyLock::new(|| script(include_str!("totals.lua")));

/// Counters shared by every replica through one Redis.
#[derive(Clone)]
pub struct RedisCounters {
    connection: ConnectionManager,
    prefix: String,
    timeout: Duration,
}

impl std::fmt::Debug for RedisCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounters").field("prefix", &self.prefix).field("timeout", &self.timeout).finish()
    }
}

impl RedisCounters {
    /// Counters under `<prefix>:q1:` in the Redis at `url`. Connects lazily (and reconnects
    /// by itself), so moat starts while Redis is down; each operation waits at most `timeout`.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<RedisCounters, CounterError> {
        let client = redis::Client::open(url).map_err(|e| CounterError::Unavailable(e.to_string()))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        let connection = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| CounterError::Unavailable(e.to_string()))?;
        Ok(RedisCounters { connection, prefix: prefix.to_owned(), timeout })
    }

    async fn run<T: FromRedisValue>(&self, script: &Script, args: Vec<String>) -> Result<T, CounterError> {
        let mut invocation = script.prepare_invoke();
        for arg in &args {
            invocation.arg(arg);
        }
        let mut connection = self.connection.clone();
        match tokio::time::timeout(self.timeout, invocation.invoke_async(&mut connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(CounterError::Unavailable(error.to_string())),
            Err(_) => Err(CounterError::Unavailable(format!("no answer within {:?}", self.timeout))),
        }
    }

    pub(super) async fn ping(&self) -> Result<(), CounterError> {
        let mut connection = self.connection.clone();
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut connection);
        match tokio::time::timeout(self.timeout, ping).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(CounterError::Unavailable(error.to_string())),
            Err(_) => Err(CounterError::Unavailable(format!("no answer within {:?}", self.timeout))),
        }
    }

    fn head(&self, at_ms: Option<i64>) -> Vec<String> {
        vec![self.prefix.clone(), at_ms.map(|t| t.to_string()).unwrap_or_default()]
    }

    pub(super) async fn admit(
        &self,
        id: &str,
        checks: &[Check],
        ttl_ms: i64,
        at_ms: Option<i64>,
    ) -> Result<Admission, CounterError> {
        let mut args = self.head(at_ms);
        args.push(id.to_owned());
        args.push(ttl_ms.to_string());
        for check in checks {
            let (kind, param) = window_args(check.window);
            args.extend([
                check.counter.clone(),
                kind.to_owned(),
                param,
                check.limit.to_string(),
                check.amount.to_string(),
                if check.seeded { "1" } else { "0" }.to_owned(),
            ]);
        }
        let reply: Vec<Value> = self.run(&ADMIT, args).await?;
        parse_admission(&reply, checks).ok_or_else(|| CounterError::Unavailable("malformed admit reply".into()))
    }

    pub(super) async fn settle(&self, id: &str, settles: &[Settle], at_ms: Option<i64>) -> Result<bool, CounterError> {
        let mut args = self.head(at_ms);
        args.push(id.to_owned());
        for settle in settles {
            args.push(settle.bucket.clone());
            args.push(settle.actual.to_string());
        }
        let settled: i64 = self.run(&SETTLE, args).await?;
        Ok(settled == 1)
    }

    pub(super) async fn seed(
        &self,
        bucket: &str,
        settled: u64,
        expires_at_ms: Option<i64>,
    ) -> Result<bool, CounterError> {
        let mut args = self.head(None);
        args.extend([bucket.to_owned(), settled.to_string(), expires_at_ms.map(|t| t.to_string()).unwrap_or_default()]);
        let created: i64 = self.run(&SEED, args).await?;
        Ok(created == 1)
    }

    pub(super) async fn reset(&self, buckets: &[String]) -> Result<(), CounterError> {
        let mut args = self.head(None);
        args.extend(buckets.iter().cloned());
        let _: i64 = self.run(&RESET, args).await?;
        Ok(())
    }

    pub(super) async fn totals(&self, check: &Check, at_ms: Option<i64>) -> Result<Totals, CounterError> {
        let mut args = self.head(at_ms);
        let (kind, param) = window_args(check.window);
        args.extend([check.counter.clone(), kind.to_owned(), param]);
        let reply: Vec<Value> = self.run(&TOTALS, args).await?;
        let number = |i: usize| reply.get(i).and_then(as_u64);
        match (number(0), number(1), number(2)) {
            (Some(settled), Some(reserved), Some(exists)) => Ok(Totals { settled, reserved, exists: exists == 1 }),
            _ => Err(CounterError::Unavailable("malformed totals reply".into())),
        }
    }
}

fn window_args(window: Window) -> (&'static str, String) {
    match window {
        Window::Fixed { expires_at_ms } => ("f", expires_at_ms.map(|t| t.to_string()).unwrap_or_default()),
        Window::Sliding { length_ms } => ("s", length_ms.to_string()),
    }
}

fn as_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

fn as_string(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

fn parse_admission(reply: &[Value], checks: &[Check]) -> Option<Admission> {
    let index = |value: &Value| as_u64(value).and_then(|n| usize::try_from(n).ok());
    match reply.first().and_then(as_u64)? {
        1 => {
            let mut held = Vec::with_capacity(checks.len());
            let mut standings = Vec::with_capacity(checks.len());
            for (check, pair) in checks.iter().zip(reply[1..].chunks(2)) {
                held.push(Held { bucket: as_string(pair.first()?)?, amount: check.amount });
                standings.push(Standing { limit: check.limit, used: as_u64(pair.get(1)?)? });
            }
            (held.len() == checks.len()).then_some(Admission::Admitted { held, standings })
        }
        0 => {
            let check = index(reply.get(1)?)?;
            let used = as_u64(reply.get(2)?)?;
            Some(Admission::Refused { check, standing: Standing { limit: checks.get(check)?.limit, used } })
        }
        2 => Some(Admission::Unseeded { checks: reply[1..].iter().map(index).collect::<Option<Vec<_>>>()? }),
        _ => None,
    }
}
