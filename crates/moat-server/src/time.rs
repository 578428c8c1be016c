//! Wall-clock helpers: moat stores instants as Unix milliseconds and shows them as RFC 3339.

use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Now, in Unix milliseconds.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Unix milliseconds as RFC 3339 (UTC, millisecond precision).
pub(crate) fn format_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// RFC 3339 text as Unix milliseconds.
pub(crate) fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips_at_millisecond_precision() {
        let ms = 1_795_872_140_123;
        let text = format_ms(ms);
        assert_eq!(text, "2026-11-28T13:22:20.123Z");
        assert_eq!(parse_rfc3339_ms(&text), Some(ms));
        assert_eq!(parse_rfc3339_ms("2026-11-28T14:22:20.123+01:00"), Some(ms));
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
    }
}
