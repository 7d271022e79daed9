//! Exchange calendars: which local dates an exchange is closed or closes early.
//!
//! NYSE and Nasdaq share one calendar for US equities. The table below is NYSE's
//! published schedule ("Holidays & Trading Hours", nyse.com/markets/hours-calendars,
//! read for 2025–2027; the 2025-01-09 closure is the National Day of Mourning for
//! President Carter, announced by NYSE on 2024-12-30). Early closes are at 13:00
//! New York time. Years outside the table follow NYSE's standing rules (the same
//! rules the tests check the table against), which cannot know ad hoc closures:
//! extend the table when NYSE publishes a new year.

use chrono::{Datelike, Duration, NaiveDate, NaiveTime, Weekday};
use serde::{Deserialize, Serialize};

/// An exchange calendar a market session can name (`market.calendar`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExchangeCalendar {
    /// NYSE and Nasdaq (US equities and ETFs).
    Nyse,
}

/// What an exchange does on one local date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionDay {
    /// A normal session (or a weekend: the calendar lists exceptions only).
    Regular,
    /// Closed all day for the named holiday.
    Closed(&'static str),
    /// Open, but closing at the given local time.
    EarlyClose(NaiveTime, &'static str),
}

/// NYSE's published closures, 2025–2027.
const NYSE_CLOSED: &[(i32, u32, u32, &str)] = &[
    (2025, 1, 1, "New Year's Day"),
    (2025, 1, 9, "National Day of Mourning"),
    (2025, 1, 20, "Martin Luther King, Jr. Day"),
    (2025, 2, 17, "Washington's Birthday"),
    (2025, 4, 18, "Good Friday"),
    (2025, 5, 26, "Memorial Day"),
    (2025, 6, 19, "Juneteenth National Independence Day"),
    (2025, 7, 4, "Independence Day"),
    (2025, 9, 1, "Labor Day"),
    (2025, 11, 27, "Thanksgiving Day"),
    (2025, 12, 25, "Christmas Day"),
    (2026, 1, 1, "New Year's Day"),
    (2026, 1, 19, "Martin Luther King, Jr. Day"),
    (2026, 2, 16, "Washington's Birthday"),
    (2026, 4, 3, "Good Friday"),
    (2026, 5, 25, "Memorial Day"),
    (2026, 6, 19, "Juneteenth National Independence Day"),
    (2026, 7, 3, "Independence Day (observed)"),
    (2026, 9, 7, "Labor Day"),
    (2026, 11, 26, "Thanksgiving Day"),
    (2026, 12, 25, "Christmas Day"),
    (2027, 1, 1, "New Year's Day"),
    (2027, 1, 18, "Martin Luther King, Jr. Day"),
    (2027, 2, 15, "Washington's Birthday"),
    (2027, 3, 26, "Good Friday"),
    (2027, 5, 31, "Memorial Day"),
    (
        2027,
        6,
        18,
        "Juneteenth National Independence Day (observed)",
    ),
    (2027, 7, 5, "Independence Day (observed)"),
    (2027, 9, 6, "Labor Day"),
    (2027, 11, 25, "Thanksgiving Day"),
    (2027, 12, 24, "Christmas Day (observed)"),
];

/// NYSE's published 13:00 early closes, 2025–2027.
const NYSE_EARLY: &[(i32, u32, u32, &str)] = &[
    (2025, 7, 3, "day before Independence Day"),
    (2025, 11, 28, "day after Thanksgiving"),
    (2025, 12, 24, "Christmas Eve"),
    (2026, 11, 27, "day after Thanksgiving"),
    (2026, 12, 24, "Christmas Eve"),
    (2027, 11, 26, "day after Thanksgiving"),
];

const NYSE_TABLE_YEARS: std::ops::RangeInclusive<i32> = 2025..=2027;

impl ExchangeCalendar {
    /// The calendar's name as `market.calendar` spells it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nyse => "nyse",
        }
    }

    /// The exchange's session on a local date.
    #[must_use]
    pub fn day(self, date: NaiveDate) -> SessionDay {
        match self {
            Self::Nyse if NYSE_TABLE_YEARS.contains(&date.year()) => nyse_table(date),
            Self::Nyse => nyse_rules(date),
        }
    }
}

fn nyse_table(date: NaiveDate) -> SessionDay {
    let key = (date.year(), date.month(), date.day());
    if let Some(h) = NYSE_CLOSED.iter().find(|h| (h.0, h.1, h.2) == key) {
        return SessionDay::Closed(h.3);
    }
    if let Some(h) = NYSE_EARLY.iter().find(|h| (h.0, h.1, h.2) == key) {
        return SessionDay::EarlyClose(one_pm(), h.3);
    }
    SessionDay::Regular
}

fn one_pm() -> NaiveTime {
    NaiveTime::from_hms_opt(13, 0, 0).unwrap_or(NaiveTime::MIN)
}

fn ymd(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)
}

/// The n-th (1-based) `weekday` of a month, or the last one for `n == 0`.
fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u32) -> NaiveDate {
    if n == 0 {
        let next = if month == 12 {
            ymd(year + 1, 1, 1)
        } else {
            ymd(year, month + 1, 1)
        };
        let last = next - Duration::days(1);
        let back = (7 + last.weekday().num_days_from_monday() - weekday.num_days_from_monday()) % 7;
        return last - Duration::days(i64::from(back));
    }
    let first = ymd(year, month, 1);
    let ahead = (7 + weekday.num_days_from_monday() - first.weekday().num_days_from_monday()) % 7;
    first + Duration::days(i64::from(ahead + 7 * (n - 1)))
}

/// Easter Sunday (anonymous Gregorian algorithm).
fn easter(year: i32) -> NaiveDate {
    let a = year % 19;
    let (b, c) = (year / 100, year % 100);
    let (d, e) = (b / 4, b % 4);
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let (i, k) = (c / 4, c % 4);
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    ymd(year, month.unsigned_abs(), day.unsigned_abs())
}

/// A fixed-date holiday moved to Friday (Saturday) or Monday (Sunday).
fn observed(date: NaiveDate) -> NaiveDate {
    match date.weekday() {
        Weekday::Sat => date - Duration::days(1),
        Weekday::Sun => date + Duration::days(1),
        _ => date,
    }
}

/// NYSE Rule 7.2's standing holidays and the customary 13:00 closes.
fn nyse_rules(date: NaiveDate) -> SessionDay {
    let y = date.year();
    let new_year = ymd(y, 1, 1);
    let mut closed = vec![
        // NYSE does not close on Friday 31 December for a Saturday New Year's Day.
        (observed(new_year).max(new_year), "New Year's Day"),
        (
            nth_weekday(y, 1, Weekday::Mon, 3),
            "Martin Luther King, Jr. Day",
        ),
        (nth_weekday(y, 2, Weekday::Mon, 3), "Washington's Birthday"),
        (easter(y) - Duration::days(2), "Good Friday"),
        (nth_weekday(y, 5, Weekday::Mon, 0), "Memorial Day"),
        (observed(ymd(y, 7, 4)), "Independence Day"),
        (nth_weekday(y, 9, Weekday::Mon, 1), "Labor Day"),
        (nth_weekday(y, 11, Weekday::Thu, 4), "Thanksgiving Day"),
        (observed(ymd(y, 12, 25)), "Christmas Day"),
    ];
    if y >= 2022 {
        closed.push((
            observed(ymd(y, 6, 19)),
            "Juneteenth National Independence Day",
        ));
    }
    if let Some(h) = closed.iter().find(|h| h.0 == date) {
        return SessionDay::Closed(h.1);
    }
    let weekday = !matches!(date.weekday(), Weekday::Sat | Weekday::Sun);
    let early = [
        (ymd(y, 7, 3), "day before Independence Day"),
        (
            nth_weekday(y, 11, Weekday::Thu, 4) + Duration::days(1),
            "day after Thanksgiving",
        ),
        (ymd(y, 12, 24), "Christmas Eve"),
    ];
    match early.iter().find(|e| e.0 == date) {
        Some(e) if weekday => SessionDay::EarlyClose(one_pm(), e.1),
        _ => SessionDay::Regular,
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case::thanksgiving_2026("2026-11-26", "closed")]
    #[case::black_friday_2026("2026-11-27", "early")]
    #[case::ordinary_wednesday("2026-11-25", "regular")]
    #[case::good_friday_2026("2026-04-03", "closed")]
    #[case::independence_observed_friday("2026-07-03", "closed")]
    #[case::no_early_close_before_an_observed_friday("2026-07-02", "regular")]
    #[case::juneteenth_observed_2027("2027-06-18", "closed")]
    #[case::christmas_observed_2027("2027-12-24", "closed")]
    #[case::mourning_day_2025("2025-01-09", "closed")]
    #[case::leap_day_2028_by_rule("2028-02-29", "regular")]
    #[case::thanksgiving_2028_by_rule("2028-11-23", "closed")]
    #[case::black_friday_2028_by_rule("2028-11-24", "early")]
    fn nyse_days(#[case] date: &str, #[case] kind: &str) {
        let d: NaiveDate = date.parse().unwrap();

        let got = match ExchangeCalendar::Nyse.day(d) {
            SessionDay::Regular => "regular",
            SessionDay::Closed(_) => "closed",
            SessionDay::EarlyClose(t, _) => {
                assert_eq!(t, one_pm());
                "early"
            }
        };

        assert_eq!(got, kind, "{date}");
    }

    /// The published table and NYSE's standing rules agree on every day of the
    /// table's years, except the one ad hoc closure the rules cannot know.
    #[test]
    fn the_published_table_matches_the_standing_rules() {
        let mut d = ymd(2025, 1, 1);
        let mut differences = Vec::new();
        while d.year() <= 2027 {
            let (table, rules) = (nyse_table(d), nyse_rules(d));
            let same = matches!(
                (table, rules),
                (SessionDay::Regular, SessionDay::Regular)
                    | (SessionDay::Closed(_), SessionDay::Closed(_))
                    | (SessionDay::EarlyClose(..), SessionDay::EarlyClose(..))
            );
            if !same {
                differences.push(d.to_string());
            }
            d += Duration::days(1);
        }

        assert_eq!(differences, ["2025-01-09"]);
    }
}
