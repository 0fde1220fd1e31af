//! The UTC time a run started, as RFC 3339 to the second (`2026-12-05T12:30:09Z`): the
//! report header's `started`, by which `trend` orders reports. A few lines of calendar
//! arithmetic instead of a date crate: nothing else here needs dates.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in UTC.
pub fn now() -> String {
    at(SystemTime::now())
}

/// `time` in UTC (a time before 1970 reads as the epoch: no run started then).
pub fn at(time: SystemTime) -> String {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rest = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// The proleptic Gregorian (year, month, day) of a count of days since 1970-01-01: Howard
/// Hinnant's `civil_from_days`, which counts in 400-year eras starting on 1 March so that
/// the leap day comes last.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March first
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn after_epoch(secs: u64) -> String {
        at(UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn known_instants() {
        assert_eq!(after_epoch(0), "1970-01-01T00:00:00Z");
        assert_eq!(after_epoch(86_399), "1970-01-01T23:59:59Z");
        // A leap day, the day after, and the turn of a century that is a leap year.
        assert_eq!(after_epoch(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(after_epoch(951_868_800), "2000-03-01T00:00:00Z");
        assert_eq!(after_epoch(1_709_164_800), "2024-02-29T00:00:00Z");
        // 2100 is not a leap year: 28 February is followed by 1 March.
        assert_eq!(after_epoch(4_107_456_000), "2100-02-28T00:00:00Z");
        assert_eq!(after_epoch(4_107_542_400), "2100-03-01T00:00:00Z");
        assert_eq!(after_epoch(1_796_473_809), "2026-12-05T12:30:09Z");
        assert_eq!(after_epoch(253_402_300_799), "9999-12-31T23:59:59Z");
    }

    #[test]
    fn every_day_follows_the_one_before() {
        // Forty years of days: the date only ever moves to the next day.
        let mut last = civil_from_days(-1);
        for day in 0..(40 * 366) {
            let (y, m, d) = civil_from_days(day);
            let next = if d > 1 {
                (last.0, last.1, d) == (y, m, d) && last.2 + 1 == d
            } else if m > 1 {
                last.0 == y && last.1 + 1 == m && last.2 >= 28
            } else {
                last.0 + 1 == y && (last.1, last.2) == (12, 31)
            };
            assert!(next, "{last:?} then {:?}", (y, m, d));
            last = (y, m, d);
        }
        assert!(now().ends_with('Z') && now().len() == 20);
    }
}
