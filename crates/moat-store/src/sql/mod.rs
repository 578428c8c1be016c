//! The queries every SQL backend shares, written once over [`sqlx::Database`].
//!
//! SQLite and PostgreSQL take the same SQL here: `$N` placeholders (sqlx binds them on both),
//! `ON CONFLICT`, `RETURNING`, integer milliseconds for time and `BIGINT`-sized counts. What
//! differs (locking, case-insensitive matching, usage partitions) is a [`Dialect`] item, and
//! what only one backend does (opening, retention) lives in `sqlite.rs` or `postgres.rs`.
//!
//! Rust does not carry a `where` clause from a struct or trait to its users, so each file's
//! `impl` repeats the bounds that say "this backend can bind and read moat's column types";
//! both backends meet them, and a backend that did not would fail to compile, not at run time.

mod budgets;
mod identity;
mod keys;
mod policies;
mod prompt_logs;
pub(crate) mod rollups;
mod sign_in;
mod statement;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use sqlx::{Database, Pool};

use crate::StoreError;

/// Ids looked up in one `IN (…)` list, well under every backend's limit on bound values.
pub(crate) const IDS_PER_LOOKUP: usize = 500;

/// What one SQL backend does differently from the other, in the shared queries.
pub(crate) trait Dialect: Database {
    /// Starts a transaction that reads, then writes. SQLite must take its write lock up
    /// front (a deferred transaction that read before another connection wrote would fail);
    /// PostgreSQL's row locks need nothing special.
    const BEGIN_WRITE: &'static str;

    /// Run first in an audit append's transaction so that appenders on every replica take
    /// turns and the chain stays linear. SQLite's write lock already does this.
    const AUDIT_TURN: Option<&'static str>;

    /// The text around a placeholder that compares `column` to it regardless of case:
    /// `(before, after)` as in `{before}$1{after}`.
    fn nocase_eq(column: &str) -> (String, &'static str);

    /// The statement that makes sure the usage partition for the month starting at
    /// `from_ms` (up to `to_ms`) exists, where usage records are partitioned.
    fn usage_partition_ddl(month: &Month) -> Option<String>;

    /// Rows per multi-row insert or upsert. PostgreSQL pays a round trip per statement;
    /// SQLite runs in process, where a statement's cost is mostly its rows.
    const ROWS_PER_STATEMENT: usize;

    /// Whether built statements bind with anonymous `?` placeholders rather than `$N`. SQLite
    /// finds each named parameter by a linear search, so binding `$N` names takes time in the
    /// square of a statement's parameters (see [`statement`]).
    const POSITIONAL_PLACEHOLDERS: bool;

    /// A query answering whether sqlx's migrations table exists (`true` or `false`).
    const MIGRATIONS_TABLE_EXISTS: &'static str;

    /// This build's migrations for the backend.
    fn migrator() -> &'static sqlx::migrate::Migrator;

    /// How many rows a statement changed (each backend reports it its own way).
    fn rows_affected(result: &Self::QueryResult) -> u64;
}

/// One calendar month in UTC: the unit usage records are partitioned and retained by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Month {
    /// e.g. 2026
    pub(crate) year: i32,
    /// 1 to 12
    pub(crate) month: u8,
}

impl Month {
    /// The month a Unix-millisecond instant falls in; `None` outside the years 1 to 9999.
    pub(crate) fn of(ms: i64) -> Option<Month> {
        let at = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).ok()?;
        (1..=9999).contains(&at.year()).then(|| Month { year: at.year(), month: u8::from(at.month()) })
    }

    /// The month after this one.
    pub(crate) fn next(self) -> Month {
        if self.month == 12 { Month { year: self.year + 1, month: 1 } } else { Month { month: self.month + 1, ..self } }
    }

    /// Its first instant, Unix milliseconds.
    pub(crate) fn start_ms(self) -> i64 {
        let month = time::Month::try_from(self.month).unwrap_or(time::Month::January);
        time::Date::from_calendar_date(self.year, month, 1)
            .map(|d| d.midnight().assume_utc().unix_timestamp() * 1000)
            .unwrap_or(i64::MAX)
    }

    /// The partition's table name, `usage_records_p202611`.
    pub(crate) fn partition_name(self) -> String {
        format!("usage_records_p{:04}{:02}", self.year, self.month)
    }

    /// The month a partition name stands for, if it is one of moat's.
    pub(crate) fn from_partition_name(name: &str) -> Option<Month> {
        let digits = name.strip_prefix("usage_records_p")?;
        if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let year = digits[..4].parse().ok()?;
        let month = digits[4..].parse().ok()?;
        (1..=12).contains(&month).then_some(Month { year, month })
    }
}

/// A SQL store: a pool and the little state the shared queries keep.
#[derive(Debug)]
pub(crate) struct SqlStore<DB: Database> {
    pub(crate) pool: Pool<DB>,
    /// Serializes this process's audit appends, so each links to the one before.
    pub(crate) audit_lock: Arc<tokio::sync::Mutex<()>>,
    /// Usage partitions known to exist, so a batch checks its months without a round trip.
    pub(crate) partitions: Arc<Mutex<HashSet<Month>>>,
}

impl<DB: Database> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        SqlStore { pool: self.pool.clone(), audit_lock: self.audit_lock.clone(), partitions: self.partitions.clone() }
    }
}

impl<DB: Database> SqlStore<DB> {
    pub(crate) fn new(pool: Pool<DB>) -> Self {
        SqlStore { pool, audit_lock: Arc::default(), partitions: Arc::default() }
    }
}

/// A unique-constraint failure becomes a conflict naming `what`; anything else stays a
/// database error.
pub(crate) fn conflict_or(error: sqlx::Error, what: String) -> StoreError {
    match error.as_database_error() {
        Some(db) if db.is_unique_violation() => StoreError::Conflict(what),
        _ => StoreError::Database(error),
    }
}

pub(crate) fn corrupt(table: &'static str, detail: String) -> StoreError {
    StoreError::Corrupt { table, detail }
}

/// Counts are u64 in the domain and i64 in SQL; anything past i64::MAX is clamped, not wrapped.
pub(crate) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::Month;

    #[test]
    fn months_bound_partitions_in_utc() {
        // 2026-11-30T23:59:59.999Z and the next millisecond.
        let last = 1_796_083_199_999;
        assert_eq!(Month::of(last), Some(Month { year: 2026, month: 11 }));
        assert_eq!(Month::of(last + 1), Some(Month { year: 2026, month: 12 }));
        assert_eq!(Month { year: 2026, month: 12 }.start_ms(), last + 1);
        assert_eq!(Month { year: 2026, month: 12 }.next(), Month { year: 2027, month: 1 });
        assert_eq!(Month::of(-1), Some(Month { year: 1969, month: 12 }));
    }

    #[test]
    fn only_moat_partition_names_parse() {
        let m = Month { year: 2026, month: 3 };
        assert_eq!(Month::from_partition_name(&m.partition_name()), Some(m));
        assert_eq!(Month::from_partition_name("usage_records_p202613"), None);
        assert_eq!(Month::from_partition_name("usage_records_default"), None);
        assert_eq!(Month::from_partition_name("other_p202601"), None);
    }
}
