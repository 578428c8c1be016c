//! Budget periods: calendar days, weeks and months in a time zone.
//!
//! A finance team's "month" is the month on its own calendar: a budget for Tokyo resets at
//! midnight Tokyo time on the first, not at midnight UTC. Periods are computed from an instant
//! and a time zone, so a day across a daylight-saving change is 23 or 25 hours long and every
//! month ends where the calendar says. Weeks start on Monday (ISO 8601).

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// How often a budget starts again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    /// Each calendar day.
    Day,
    /// Each ISO week, Monday to Sunday.
    Week,
    /// Each calendar month.
    Month,
    /// Never: the budget is a lifetime cap.
    Never,
}

impl Period {
    /// The name used in the API, the CLI and the database.
    pub const fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Never => "none",
        }
    }

    /// Parses a period name.
    pub fn parse(s: &str) -> Option<Period> {
        match s {
            "day" | "daily" => Some(Period::Day),
            "week" | "weekly" => Some(Period::Week),
            "month" | "monthly" => Some(Period::Month),
            "none" | "never" => Some(Period::Never),
            _ => None,
        }
    }

    /// The period holding the instant `at_ms` (Unix milliseconds) on the calendar of `zone`.
    ///
    /// Instants too far from today for the calendar (beyond the year 9999) fall in the
    /// lifetime window, which is never wrong, only coarse.
    pub fn window(self, zone: &TimeZone, at_ms: i64) -> Window {
        self.calendar_window(zone, at_ms).unwrap_or(Window { start_ms: 0, end_ms: None })
    }

    fn calendar_window(self, zone: &TimeZone, at_ms: i64) -> Option<Window> {
        let date = Timestamp::from_millisecond(at_ms).ok()?.to_zoned(zone.clone()).date();
        let (start, next): (Date, Date) = match self {
            Period::Never => return Some(Window { start_ms: 0, end_ms: None }),
            Period::Day => (date, date.checked_add(1.day()).ok()?),
            Period::Week => {
                let monday = date.checked_sub(i64::from(date.weekday().to_monday_zero_offset()).days()).ok()?;
                (monday, monday.checked_add(1.week()).ok()?)
            }
            Period::Month => {
                let first = date.first_of_month();
                (first, first.checked_add(1.month()).ok()?)
            }
        };
        // Midnight can fall in a daylight-saving gap (it did in São Paulo); the calendar's
        // compatible reading takes the first instant after the gap.
        let start_ms = start.to_zoned(zone.clone()).ok()?.timestamp().as_millisecond();
        let end_ms = next.to_zoned(zone.clone()).ok()?.timestamp().as_millisecond();
        Some(Window { start_ms, end_ms: Some(end_ms) })
    }
}

/// One period: from `start_ms` up to, not including, `end_ms` (Unix milliseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The first instant of the period.
    pub start_ms: i64,
    /// The first instant of the next period; `None` for a lifetime budget.
    pub end_ms: Option<i64>,
}

/// The time zone named `name` (IANA, e.g. `Europe/Paris`, or `UTC`), or `None` if unknown.
pub fn time_zone(name: &str) -> Option<TimeZone> {
    TimeZone::get(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>().map(|t| t.as_millisecond()).unwrap_or(i64::MIN)
    }

    fn zone(name: &str) -> TimeZone {
        time_zone(name).unwrap_or(TimeZone::UTC)
    }

    #[test]
    fn months_follow_the_calendar_of_the_zone() {
        let tokyo = zone("Asia/Tokyo");
        // 2026-01-31 20:00 UTC is already February 1st in Tokyo.
        let window = Period::Month.window(&tokyo, ms("2026-01-31T20:00:00Z"));
        assert_eq!(window.start_ms, ms("2026-01-31T15:00:00Z"));
        assert_eq!(window.end_ms, Some(ms("2026-02-28T15:00:00Z")));
        // February of a leap year, in UTC.
        let window = Period::Month.window(&TimeZone::UTC, ms("2028-02-29T23:59:59.999Z"));
        assert_eq!(window.start_ms, ms("2028-02-01T00:00:00Z"));
        assert_eq!(window.end_ms, Some(ms("2028-03-01T00:00:00Z")));
        // December rolls into the next year.
        let window = Period::Month.window(&TimeZone::UTC, ms("2026-12-31T12:00:00Z"));
        assert_eq!(window.end_ms, Some(ms("2027-01-01T00:00:00Z")));
    }

    #[test]
    fn days_across_daylight_saving_are_23_or_25_hours() {
        let paris = zone("Europe/Paris");
        let spring = Period::Day.window(&paris, ms("2026-03-29T12:00:00Z"));
        assert_eq!(spring.start_ms, ms("2026-03-28T23:00:00Z"));
        assert_eq!(spring.end_ms, Some(ms("2026-03-29T22:00:00Z")));
        let autumn = Period::Day.window(&paris, ms("2026-10-25T12:00:00Z"));
        assert_eq!(autumn.end_ms.map(|end| end - autumn.start_ms), Some(25 * 3_600_000));
    }

    #[test]
    fn weeks_start_on_monday() {
        // Sunday 2026-11-29, 23:30 in New York, is Monday 04:30 UTC.
        let new_york = zone("America/New_York");
        let window = Period::Week.window(&new_york, ms("2026-11-30T04:30:00Z"));
        assert_eq!(window.start_ms, ms("2026-11-23T05:00:00Z"));
        assert_eq!(window.end_ms, Some(ms("2026-11-30T05:00:00Z")));
    }

    #[test]
    fn a_lifetime_budget_never_ends() {
        assert_eq!(Period::Never.window(&TimeZone::UTC, 123), Window { start_ms: 0, end_ms: None });
    }

    #[test]
    fn names_round_trip() {
        for period in [Period::Day, Period::Week, Period::Month, Period::Never] {
            assert_eq!(Period::parse(period.as_str()), Some(period));
        }
        assert_eq!(Period::parse("fortnight"), None);
        assert!(time_zone("Mars/Olympus_Mons").is_none());
    }

    proptest! {
        /// Every instant lies in its period, the period ends where the next one starts, and
        /// no period is shorter than 23 hours or longer than 31 days and an hour.
        #[test]
        fn periods_tile_time(
            at in 0_i64..4_102_444_800_000,
            zone_index in 0_usize..5,
            period_index in 0_usize..3,
        ) {
            let zones = ["UTC", "Europe/Paris", "America/Sao_Paulo", "Asia/Kolkata", "Pacific/Chatham"];
            let zone = zone(zones[zone_index]);
            let period = [Period::Day, Period::Week, Period::Month][period_index];
            let window = period.window(&zone, at);
            let end = window.end_ms.unwrap_or(i64::MAX);
            prop_assert!(window.start_ms <= at && at < end);
            prop_assert!(end - window.start_ms >= 23 * 3_600_000);
            prop_assert!(end - window.start_ms <= (31 * 24 + 1) * 3_600_000);
            let next = period.window(&zone, end);
            prop_assert_eq!(next.start_ms, end);
            let last_of_this = period.window(&zone, end - 1);
            prop_assert_eq!(last_of_this, window);
        }
    }
}
