//! The exchange's clock: which trading day an instant belongs to and whether the
//! regular session is open. The kill switch counts losses per *trading day* in the
//! exchange's time zone (a US loss at 15:55 New York is 20:55 or 21:55 UTC, and a
//! UTC day would split one session or join two), and the position monitor acts
//! only while the session is open, when the snapshot price is a live one.
//!
//! Exchange holidays and half days are not modelled: on a holiday the monitor's
//! exit orders would wait for the next open like any order sent outside hours.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::holidays::ExchangeCalendar;
use crate::portfolio::Trade;

/// A strategy's market session. Defaults to the US equity regular session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarketSession {
    /// IANA time zone of the exchange, e.g. `America/New_York`, `Europe/Berlin`.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Regular session open and close, local time, `HH:MM`.
    #[serde(default = "default_open")]
    pub open: String,
    #[serde(default = "default_close")]
    pub close: String,
    /// A product that trades around the clock every day (crypto, some futures), and
    /// the switch local runs use so the monitor acts at any hour.
    #[serde(default)]
    pub always_open: bool,
    /// The exchange calendar whose holidays and early closes scheduled runs skip:
    /// `nyse` (NYSE/Nasdaq) or `none`. Unset means `nyse` for a New York session
    /// that is not `always_open`, `none` otherwise (see `holidays`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
}

fn default_timezone() -> String {
    "America/New_York".into()
}
fn default_open() -> String {
    "09:30".into()
}
fn default_close() -> String {
    "16:00".into()
}

impl Default for MarketSession {
    fn default() -> Self {
        Self {
            timezone: default_timezone(),
            open: default_open(),
            close: default_close(),
            always_open: false,
            calendar: None,
        }
    }
}

/// The session with its fields parsed; build it with [`MarketSession::clock`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Clock {
    tz: Tz,
    open: NaiveTime,
    close: NaiveTime,
    always_open: bool,
}

/// Which field of a session is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SessionError {
    pub field: &'static str,
    pub message: String,
}

impl MarketSession {
    /// Parses the session.
    ///
    /// # Errors
    /// An unknown time zone, a time that is not `HH:MM`, or open not before close.
    pub fn clock(&self) -> Result<Clock, SessionError> {
        let tz: Tz = self.timezone.parse().map_err(|_| SessionError {
            field: "timezone",
            message: format!("unknown IANA time zone {:?}", self.timezone),
        })?;
        let time = |field: &'static str, v: &str| {
            NaiveTime::parse_from_str(v, "%H:%M").map_err(|_| SessionError {
                field,
                message: format!("must be HH:MM, got {v:?}"),
            })
        };
        let (open, close) = (time("open", &self.open)?, time("close", &self.close)?);
        if open >= close {
            return Err(SessionError {
                field: "close",
                message: "must be after open".into(),
            });
        }
        self.exchange_calendar()?;
        Ok(Clock {
            tz,
            open,
            close,
            always_open: self.always_open,
        })
    }

    /// The exchange calendar in force (see `calendar`).
    ///
    /// # Errors
    /// A `calendar` other than `nyse` or `none`.
    pub fn exchange_calendar(&self) -> Result<Option<ExchangeCalendar>, SessionError> {
        match self.calendar.as_deref() {
            None if self.always_open || self.timezone != "America/New_York" => Ok(None),
            None | Some("nyse") => Ok(Some(ExchangeCalendar::Nyse)),
            Some("none") => Ok(None),
            Some(other) => Err(SessionError {
                field: "calendar",
                message: format!("must be nyse or none, got {other:?}"),
            }),
        }
    }
}

impl Clock {
    /// The trading day `at` belongs to: the exchange's local date, with Saturday and
    /// Sunday counted to the Friday before, so a limit hit on Friday holds until
    /// Monday ("until the next trading day").
    #[must_use]
    pub fn trading_day(&self, at: DateTime<Utc>) -> NaiveDate {
        let local = at.with_timezone(&self.tz).date_naive();
        if self.always_open {
            return local;
        }
        match local.weekday() {
            Weekday::Sat => local - Duration::days(1),
            Weekday::Sun => local - Duration::days(2),
            _ => local,
        }
    }

    /// Whether the regular session is open at `at` (Monday to Friday, open ≤ t < close).
    #[must_use]
    pub fn is_open(&self, at: DateTime<Utc>) -> bool {
        if self.always_open {
            return true;
        }
        let local = at.with_timezone(&self.tz);
        let weekday = !matches!(local.weekday(), Weekday::Sat | Weekday::Sun);
        let t = local.time();
        weekday && self.open <= t && t < self.close
    }

    /// An instant no later than the start of `now`'s trading day: its local midnight
    /// read as UTC, less a day, so no zone offset (all within ±14 h) or DST change
    /// can put a trade of the day before it. For range reads; the exact filter is
    /// [`Clock::realized_on_trading_day`].
    #[must_use]
    pub fn trading_day_lower_bound(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let midnight = self.trading_day(now).and_time(NaiveTime::MIN).and_utc();
        midnight - Duration::days(1)
    }

    /// Realised P&L (net of commission) of the trades closed on `now`'s trading day.
    /// A trade whose `closed_at` does not parse is counted: the kill switch errs
    /// towards blocking, never towards trading through a loss it cannot date.
    #[must_use]
    pub fn realized_on_trading_day(&self, trades: &[Trade], now: DateTime<Utc>) -> Decimal {
        let today = self.trading_day(now);
        trades
            .iter()
            .filter(|t| {
                DateTime::parse_from_rfc3339(&t.closed_at)
                    .map_or(true, |at| self.trading_day(at.to_utc()) == today)
            })
            .map(|t| t.realized_pnl)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;
    use rust_decimal_macros::dec;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    fn ny() -> Clock {
        MarketSession::default().clock().unwrap()
    }

    #[rstest]
    // 2026-11-20 is a Friday; New York is UTC−5 (EST) then.
    #[case("2026-11-20T14:29:59Z", false)] // 09:29:59 local
    #[case("2026-11-20T14:30:00Z", true)] // 09:30 open
    #[case("2026-11-20T20:59:59Z", true)]
    #[case("2026-11-20T21:00:00Z", false)] // 16:00 close
    #[case("2026-11-21T15:00:00Z", false)] // Saturday
    #[case("2026-11-23T15:00:00Z", true)] // Monday 10:00
    // Summer: UTC−4 (EDT), so the open is 13:30 UTC.
    #[case("2026-07-15T13:30:00Z", true)]
    #[case("2026-07-15T13:29:00Z", false)]
    #[case("2026-07-15T20:00:00Z", false)]
    fn the_us_session_is_open_in_new_york_hours_across_daylight_saving(
        #[case] at: &str,
        #[case] open: bool,
    ) {
        assert_eq!(ny().is_open(utc(at)), open, "{at}");
    }

    #[rstest]
    // 21:30 New York on Thursday is already Friday in UTC.
    #[case("2026-11-20T02:30:00Z", "2026-11-19")]
    #[case("2026-11-20T20:55:00Z", "2026-11-20")]
    // The weekend belongs to Friday's session.
    #[case("2026-11-21T18:00:00Z", "2026-11-20")]
    #[case("2026-11-23T04:59:00Z", "2026-11-20")] // Sunday 23:59 local
    #[case("2026-11-23T05:00:00Z", "2026-11-23")] // Monday 00:00 local
    fn the_trading_day_is_the_exchange_date_with_weekends_held_to_friday(
        #[case] at: &str,
        #[case] day: &str,
    ) {
        assert_eq!(ny().trading_day(utc(at)).to_string(), day, "{at}");
    }

    #[test]
    fn another_exchange_uses_its_own_zone_and_hours() {
        let xetra = MarketSession {
            timezone: "Europe/Berlin".into(),
            open: "09:00".into(),
            close: "17:30".into(),
            ..MarketSession::default()
        }
        .clock()
        .unwrap();
        // 08:30 UTC = 09:30 Berlin (CET, UTC+1) on a Monday.
        assert!(xetra.is_open(utc("2026-11-23T08:30:00Z")));
        assert!(!ny().is_open(utc("2026-11-23T08:30:00Z")));
        assert!(!xetra.is_open(utc("2026-11-23T16:30:00Z")));
    }

    #[test]
    fn an_always_open_session_is_open_on_a_sunday_night_with_calendar_days() {
        let c = MarketSession {
            always_open: true,
            ..MarketSession::default()
        }
        .clock()
        .unwrap();
        assert!(c.is_open(utc("2026-11-22T03:00:00Z")));
        assert_eq!(
            c.trading_day(utc("2026-11-22T18:00:00Z")).to_string(),
            "2026-11-22"
        );
    }

    #[rstest]
    #[case("Mars/Olympus", "timezone")]
    #[case("", "timezone")]
    fn a_bad_zone_is_refused_naming_the_field(#[case] tz: &str, #[case] field: &str) {
        let e = MarketSession {
            timezone: tz.into(),
            ..MarketSession::default()
        }
        .clock()
        .unwrap_err();
        assert_eq!(e.field, field);
    }

    #[rstest]
    #[case("9:3x", "16:00", "open")]
    #[case("09:30", "25:00", "close")]
    #[case("16:00", "09:30", "close")]
    #[case("09:30", "09:30", "close")]
    fn bad_hours_are_refused_naming_the_field(
        #[case] open: &str,
        #[case] close: &str,
        #[case] field: &str,
    ) {
        let e = MarketSession {
            open: open.into(),
            close: close.into(),
            ..MarketSession::default()
        }
        .clock()
        .unwrap_err();
        assert_eq!(e.field, field, "{e}");
    }

    fn trade(closed_at: &str, pnl: Decimal) -> Trade {
        Trade {
            strategy_id: "s".into(),
            trade_id: format!("o#{closed_at}"),
            conid: 1,
            symbol: "X".into(),
            position_id: "p".into(),
            direction: "LONG".into(),
            quantity: dec!(1),
            entry_price: dec!(10),
            exit_price: dec!(10) + pnl,
            gross_pnl: pnl,
            commission: Decimal::ZERO,
            commission_reported: true,
            realized_pnl: pnl,
            opened_at: closed_at.into(),
            closed_at: closed_at.into(),
            entry_order_id: "e".into(),
            entry_execution_id: "x".into(),
            exit_order_id: "o".into(),
            exit_execution_id: "x".into(),
            exit_purpose: "stop_exit".into(),
            version: 0,
        }
    }

    #[test]
    fn the_kill_switch_sums_the_new_york_session_not_the_utc_date() {
        let trades = [
            // Thursday's session, though already Friday in UTC: not today.
            trade("2026-11-20T01:00:00.000Z", dec!(-5000)),
            // Friday's session, after the UTC date changed: today.
            trade("2026-11-20T15:00:00.000Z", dec!(-1200.50)),
            trade("2026-11-20T20:59:00.000Z", dec!(300.25)),
            // Next Monday: not today.
            trade("2026-11-23T15:00:00.000Z", dec!(-800)),
        ];
        // Friday 21:30 New York = Saturday 02:30 UTC: still Friday's session.
        let now = utc("2026-11-21T02:30:00Z");
        // (The UTC-date rule this replaces summed the trades dated 2026-11-21: none.)
        assert_eq!(ny().realized_on_trading_day(&trades, now), dec!(-900.25));
    }

    #[rstest]
    #[case("America/New_York")]
    #[case("Pacific/Kiritimati")] // UTC+14
    #[case("Pacific/Pago_Pago")] // UTC−11
    #[case("Australia/Lord_Howe")] // half-hour DST
    fn the_range_bound_precedes_every_instant_of_the_trading_day(#[case] tz: &str) {
        let c = MarketSession {
            timezone: tz.into(),
            ..MarketSession::default()
        }
        .clock()
        .unwrap();
        // Every 15 minutes over three weeks, through a weekend and DST changes.
        let mut t = utc("2026-03-01T00:00:00Z");
        while t < utc("2026-03-22T00:00:00Z") {
            let bound = c.trading_day_lower_bound(t);
            assert!(bound <= t, "{tz} {t}");
            // The day's local midnight (the earliest instant of the day) is after it.
            let day = c.trading_day(t);
            let local_midnight = day
                .and_time(NaiveTime::MIN)
                .and_local_timezone(c.tz)
                .earliest()
                .unwrap();
            assert!(bound <= local_midnight.to_utc(), "{tz} {t}");
            t += Duration::minutes(15);
        }
    }

    #[test]
    fn a_trade_with_an_unreadable_close_time_counts_against_the_limit() {
        let trades = [trade("yesterday-ish", dec!(-2500))];
        assert_eq!(
            ny().realized_on_trading_day(&trades, utc("2026-11-20T15:00:00Z")),
            dec!(-2500)
        );
    }
}
