//! Strategy schedules in the market's time and calendar.
//!
//! A strategy's `schedule` is AWS's 6-field `cron(minutes hours day-of-month month
//! day-of-week year)`, read in the market's time zone (`cron(30 9 ? * MON-FRI *)`
//! is 09:30 New York all year), or `rate(n unit)`, which has no time of day and is
//! left as it is. EventBridge rules run in UTC, so the rule carries a *cover*: a UTC
//! cron that fires at every instant the local cron can map to under each of the
//! zone's offsets (both sides of daylight saving time). Each tick then passes the
//! *tick filter* ([`MarketSchedule::check`]), which keeps only the ticks that are
//! runs of the local cron on a day the exchange trades. The next runs shown to the
//! user are computed the same way (cover ticks through the filter), so what the API
//! shows is what the deployed rule and filter do.
//!
//! Local times that a daylight saving change skips (02:30 New York on the March
//! change day) have no run; a local time that occurs twice (01:30 on the November
//! change day) runs once, at its first occurrence.

use std::collections::BTreeSet;
use std::fmt;

use chrono::offset::LocalResult;
use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::calendar::MarketSession;
use crate::holidays::{ExchangeCalendar, SessionDay};
use crate::strategy::Strategy;

/// A validated schedule expression.
#[derive(Debug, Clone)]
pub enum ScheduleExpr {
    Cron(Box<CronExpr>),
    Rate(Duration),
}

/// A parsed `cron(...)`: its six AWS fields and the matcher.
#[derive(Debug, Clone)]
pub struct CronExpr {
    fields: [String; 6],
    cron: Cron,
}

impl ScheduleExpr {
    /// Parses an EventBridge schedule expression.
    ///
    /// # Errors
    /// A message saying what is wrong, for a 400 on `schedule`.
    pub fn parse(expr: &str) -> Result<Self, String> {
        let expr = expr.trim();
        if let Some(inner) = expr.strip_prefix("rate(").and_then(|r| r.strip_suffix(')')) {
            return parse_rate(inner).map(Self::Rate);
        }
        let Some(inner) = expr.strip_prefix("cron(").and_then(|r| r.strip_suffix(')')) else {
            return Err("must be cron(minutes hours day-of-month month day-of-week year), in the market's time zone, or rate(n unit)".into());
        };
        let f: Vec<&str> = inner.split_whitespace().collect();
        let Ok(fields) = <[&str; 6]>::try_from(f.as_slice()) else {
            return Err(format!(
                "cron needs 6 fields (minutes hours day-of-month month day-of-week year), got {}",
                f.len()
            ));
        };
        let [minutes, hours, dom, month, dow, year] = fields;
        // AWS refuses a cron that sets both days or neither: exactly one is '?'.
        if (dom == "?") == (dow == "?") {
            return Err("exactly one of day-of-month and day-of-week must be '?'".into());
        }
        if fields
            .iter()
            .enumerate()
            .any(|(i, v)| v.contains('?') && i != 2 && i != 4)
        {
            return Err("'?' is allowed only in day-of-month and day-of-week".into());
        }
        if year != "*"
            && !year
                .split([',', '-', '/'])
                .all(|y| y.parse::<u32>().is_ok_and(|y| (1970..=2199).contains(&y)) || y.is_empty())
        {
            return Err(format!("year {year:?} must be '*' or years in 1970-2199"));
        }
        let pattern = format!("0 {minutes} {hours} {dom} {month} {dow} {year}");
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .year(Year::Required)
            .alternative_weekdays(true)
            .build()
            .parse(&pattern)
            .map_err(|e| format!("invalid cron: {e}"))?;
        Ok(Self::Cron(Box::new(CronExpr {
            fields: fields.map(String::from),
            cron,
        })))
    }

    /// The first match strictly after `after`, reading the cron in UTC. For `rate`,
    /// EventBridge counts from the moment the rule is created, so this is
    /// `after + interval`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Schedules tick on whole minutes; croner would carry sub-seconds through.
        let after = after.with_nanosecond(0)?;
        match self {
            Self::Cron(c) => c.cron.find_next_occurrence(&after, false).ok(),
            Self::Rate(d) => Some(after + *d),
        }
    }
}

fn parse_rate(inner: &str) -> Result<Duration, String> {
    let usage =
        "rate needs a positive whole number and minute(s), hour(s) or day(s), e.g. rate(5 minutes)";
    let mut parts = inner.split_whitespace();
    let (Some(n), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(usage.into());
    };
    let n: i64 = n.parse().map_err(|_| usage.to_string())?;
    if n < 1 {
        return Err(usage.into());
    }
    // AWS wants the singular for 1 and the plural otherwise.
    let (singular, plural) = (n == 1, n != 1);
    let d = match unit {
        "minute" if singular => Duration::minutes(n),
        "minutes" if plural => Duration::minutes(n),
        "hour" if singular => Duration::hours(n),
        "hours" if plural => Duration::hours(n),
        "day" if singular => Duration::days(n),
        "days" if plural => Duration::days(n),
        _ => return Err(format!("{usage} (singular unit for 1, plural otherwise)")),
    };
    Ok(d)
}

/// A schedule or market field that does not parse, named as in the strategy JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ScheduleError {
    pub field: String,
    pub message: String,
}

/// Why a tick is not a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The tick's market time is not a run of the local cron (the cover fires at
    /// both DST offsets; one of them is always off).
    NotScheduled { local: String },
    /// The exchange is closed all day.
    Holiday {
        date: NaiveDate,
        name: &'static str,
        calendar: ExchangeCalendar,
    },
    /// The exchange closed early, before this run's time.
    EarlyClose {
        date: NaiveDate,
        close: NaiveTime,
        calendar: ExchangeCalendar,
    },
}

impl SkipReason {
    /// The reason's keyword, which `skip_reason` starts with (the ASL matches it).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NotScheduled { .. } => "not_scheduled",
            Self::Holiday { .. } => "holiday",
            Self::EarlyClose { .. } => "early_close",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotScheduled { local } => {
                write!(f, "not_scheduled: {local} is not a run of the schedule")
            }
            Self::Holiday {
                date,
                name,
                calendar,
            } => write!(
                f,
                "holiday: {} is closed on {date} ({name})",
                calendar.as_str()
            ),
            Self::EarlyClose {
                date,
                close,
                calendar,
            } => write!(
                f,
                "early_close: {} closes at {} on {date}",
                calendar.as_str(),
                close.format("%H:%M")
            ),
        }
    }
}

/// A strategy's schedule bound to its market: zone, calendar and session close.
#[derive(Debug, Clone)]
pub struct MarketSchedule {
    expr: ScheduleExpr,
    tz: Tz,
    calendar: Option<ExchangeCalendar>,
    close: NaiveTime,
}

/// How far ahead the cover looks for the zone's UTC offsets (two years holds both
/// sides of any daylight saving rule; the rule is recomputed at every save).
const OFFSET_HORIZON_DAYS: i64 = 2 * 366;
/// Bounds the search for next runs (a cron may have no run for years, or never).
const MAX_COVER_TICKS: usize = 200_000;

impl MarketSchedule {
    /// Binds a schedule to a market session.
    ///
    /// # Errors
    /// The field that does not parse: `schedule`, `market.timezone`,
    /// `market.close`, `market.calendar`.
    pub fn new(schedule: &str, market: &MarketSession) -> Result<Self, ScheduleError> {
        let expr = ScheduleExpr::parse(schedule).map_err(|message| ScheduleError {
            field: "schedule".into(),
            message,
        })?;
        let market_err = |e: crate::calendar::SessionError| ScheduleError {
            field: format!("market.{}", e.field),
            message: e.message,
        };
        market.clock().map_err(market_err)?;
        let calendar = market.exchange_calendar().map_err(market_err)?;
        let tz: Tz = market.timezone.parse().map_err(|_| ScheduleError {
            field: "market.timezone".into(),
            message: format!("unknown IANA time zone {:?}", market.timezone),
        })?;
        let close =
            NaiveTime::parse_from_str(&market.close, "%H:%M").map_err(|_| ScheduleError {
                field: "market.close".into(),
                message: format!("must be HH:MM, got {:?}", market.close),
            })?;
        Ok(Self {
            expr,
            tz,
            calendar,
            close,
        })
    }

    /// The market's time zone.
    #[must_use]
    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The calendar whose holidays and early closes are skipped, if any.
    #[must_use]
    pub fn calendar(&self) -> Option<ExchangeCalendar> {
        self.calendar
    }

    /// The UTC expression of the EventBridge rule: for a cron, its cover over the
    /// zone's offsets from `now` on; a rate as it is.
    #[must_use]
    pub fn rule_expression(&self, now: DateTime<Utc>) -> String {
        match &self.expr {
            ScheduleExpr::Rate(_) => rate_text(&self.expr),
            ScheduleExpr::Cron(c) => cover(&c.fields, &zone_offsets(self.tz, now)),
        }
    }

    /// The tick filter: whether the tick scheduled at `scheduled` (the Scheduled
    /// Event's `time`) is a run. Rates run at every tick.
    ///
    /// # Errors
    /// Why the tick is not a run.
    pub fn check(&self, scheduled: DateTime<Utc>) -> Result<(), SkipReason> {
        let ScheduleExpr::Cron(c) = &self.expr else {
            return Ok(());
        };
        // EventBridge stamps the scheduled minute; never trust stray seconds.
        let at = floor_minute(scheduled);
        let local = at.with_timezone(&self.tz);
        let matches = c.cron.is_time_matching(&local).unwrap_or(false);
        let first = match self.tz.from_local_datetime(&local.naive_local()) {
            LocalResult::Ambiguous(earliest, _) => earliest == local,
            _ => true,
        };
        if !(matches && first) {
            return Err(SkipReason::NotScheduled {
                local: local.format("%Y-%m-%d %H:%M %Z").to_string(),
            });
        }
        let Some(calendar) = self.calendar else {
            return Ok(());
        };
        let date = local.date_naive();
        match calendar.day(date) {
            SessionDay::Closed(name) => Err(SkipReason::Holiday {
                date,
                name,
                calendar,
            }),
            // A run after the regular close (an evening analysis) is not affected.
            SessionDay::EarlyClose(close, _)
                if close <= local.time() && local.time() < self.close =>
            {
                Err(SkipReason::EarlyClose {
                    date,
                    close,
                    calendar,
                })
            }
            _ => Ok(()),
        }
    }

    /// The next `n` runs strictly after `after`: the rule's ticks that pass the
    /// filter. Rates: every interval from `after` (EventBridge counts from the
    /// rule's creation, so these are indicative).
    #[must_use]
    pub fn next_runs(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        let cover = match &self.expr {
            ScheduleExpr::Rate(_) => {
                return std::iter::successors(self.expr.next_after(after), |t| {
                    self.expr.next_after(*t)
                })
                .take(n)
                .collect();
            }
            ScheduleExpr::Cron(_) => match ScheduleExpr::parse(&self.rule_expression(after)) {
                Ok(c) => c,
                Err(_) => return Vec::new(),
            },
        };
        let mut out = Vec::with_capacity(n);
        let mut t = after;
        for _ in 0..MAX_COVER_TICKS {
            if out.len() >= n {
                break;
            }
            let Some(next) = cover.next_after(t) else {
                break;
            };
            if self.check(next).is_ok() {
                out.push(next);
            }
            t = next;
        }
        out
    }
}

/// The tick filter applied to a strategy's Scheduled Event `time` (RFC 3339).
///
/// # Errors
/// A time that does not parse, or a stored schedule or market that does not
/// (the API refuses both, so only a strategy written around it can have one).
pub fn check_tick(strategy: &Strategy, time: &str) -> Result<Result<(), SkipReason>, String> {
    let at = DateTime::parse_from_rfc3339(time)
        .map_err(|e| format!("scheduled event time {time:?}: {e}"))?
        .to_utc();
    let s = MarketSchedule::new(&strategy.schedule, &strategy.market).map_err(|e| e.to_string())?;
    Ok(s.check(at))
}

fn rate_text(expr: &ScheduleExpr) -> String {
    match expr {
        ScheduleExpr::Rate(d) => {
            let (n, unit) = if d.num_days() > 0 && *d == Duration::days(d.num_days()) {
                (d.num_days(), "day")
            } else if d.num_hours() > 0 && *d == Duration::hours(d.num_hours()) {
                (d.num_hours(), "hour")
            } else {
                (d.num_minutes(), "minute")
            };
            format!("rate({n} {unit}{})", if n == 1 { "" } else { "s" })
        }
        ScheduleExpr::Cron(c) => format!("cron({})", c.fields.join(" ")),
    }
}

fn floor_minute(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(0)
        .and_then(|t| t.with_second(0))
        .unwrap_or(t)
}

/// The zone's UTC offsets in minutes over the horizon from `now`.
fn zone_offsets(tz: Tz, now: DateTime<Utc>) -> BTreeSet<i32> {
    (-1..=OFFSET_HORIZON_DAYS)
        .map(|d| {
            let t = now + Duration::days(d);
            tz.offset_from_utc_datetime(&t.naive_utc())
                .fix()
                .local_minus_utc()
                .div_euclid(60)
        })
        .collect()
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// The values a cron field selects, or `None` for what this expander does not
/// model (`L`, `W`, `#`, `?`): the cover then widens that field to `*`.
fn expand(field: &str, min: u32, max: u32, names: &[&str]) -> Option<BTreeSet<u32>> {
    let value = |s: &str| -> Option<u32> {
        let v = names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(s))
            .and_then(|i| u32::try_from(i).ok())
            .map(|i| i + min)
            .or_else(|| s.parse().ok())?;
        (min..=max).contains(&v).then_some(v)
    };
    let mut out = BTreeSet::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0)?),
            None => (item, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let a = value(range)?;
            (a, if item.contains('/') { max } else { a })
        };
        if lo > hi {
            return None;
        }
        out.extend((lo..=hi).step_by(usize::try_from(step).ok()?));
    }
    Some(out)
}

/// A cron field for a set of values: `*`, `a/step`, or ranges and values.
fn compress(set: &BTreeSet<u32>, min: u32, max: u32) -> String {
    let v: Vec<u32> = set.iter().copied().collect();
    if v.len() == (max - min + 1) as usize {
        return "*".into();
    }
    if v.len() >= 3 {
        let step = v[1] - v[0];
        let last = v[v.len() - 1];
        if step > 1 && v.windows(2).all(|w| w[1] - w[0] == step) && last + step > max {
            return format!("{}/{step}", v[0]);
        }
    }
    let mut parts = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        if j - i >= 2 {
            parts.push(format!("{}-{}", v[i], v[j]));
        } else {
            parts.extend(v[i..=j].iter().map(u32::to_string));
        }
        i = j + 1;
    }
    parts.join(",")
}

/// The UTC cover of a local cron under the given offsets (minutes east of UTC).
fn cover(f: &[String; 6], offsets: &BTreeSet<i32>) -> String {
    let all = |min, max| (min..=max).collect::<BTreeSet<u32>>();
    let minutes = expand(&f[0], 0, 59, &[]).unwrap_or_else(|| all(0, 59));
    let hours = expand(&f[1], 0, 23, &[]).unwrap_or_else(|| all(0, 23));
    let (mut um, mut uh, mut shifts) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for &o in offsets {
        for &h in &hours {
            for &m in &minutes {
                // Local minute of day less the offset; the day shifts by at most one.
                let utc = i64::from(h * 60 + m) - i64::from(o);
                shifts.insert(utc.div_euclid(1440));
                let t = u32::try_from(utc.rem_euclid(1440)).unwrap_or_default();
                um.insert(t % 60);
                uh.insert(t / 60);
            }
        }
    }
    let shifts: Vec<i64> = shifts.into_iter().filter(|s| *s != 0).collect();
    let widen =
        |field: &str, min: u32, max: u32, names: &[&str], shift: &dyn Fn(u32, i64) -> Vec<u32>| {
            if field == "?" || shifts.is_empty() {
                return field.to_string();
            }
            match expand(field, min, max, names) {
                Some(set) => {
                    let mut out = set.clone();
                    for &v in &set {
                        for &s in &shifts {
                            out.extend(shift(v, s).into_iter().filter(|x| (min..=max).contains(x)));
                        }
                    }
                    compress(&out, min, max)
                }
                None => "*".into(),
            }
        };
    let cyclic = |n: u32| {
        move |v: u32, s: i64| -> Vec<u32> {
            let n = i64::from(n);
            let x = (i64::from(v) - 1 + s).rem_euclid(n) + 1;
            vec![u32::try_from(x).unwrap_or(1)]
        }
    };
    // Day of month: the day before or after, across month ends of any length.
    let dom_shift = |d: u32, s: i64| -> Vec<u32> {
        match s {
            1 if d >= 28 => vec![d + 1, 1],
            1 => vec![d + 1],
            _ if d == 1 => vec![28, 29, 30, 31],
            _ => vec![d - 1],
        }
    };
    let year_shift = |y: u32, s: i64| vec![if s > 0 { y + 1 } else { y - 1 }];
    format!(
        "cron({} {} {} {} {} {})",
        compress(&um, 0, 59),
        compress(&uh, 0, 23),
        widen(&f[2], 1, 31, &[], &dom_shift),
        widen(&f[3], 1, 12, &MONTHS, &cyclic(12)),
        widen(&f[4], 1, 7, &WEEKDAYS, &cyclic(7)),
        if f[5] == "*" {
            "*".to_string()
        } else {
            widen(&f[5], 1970, 2199, &[], &year_shift)
        },
    )
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use rstest::rstest;

    use super::*;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn market(tz: &str) -> MarketSession {
        MarketSession {
            timezone: tz.into(),
            ..MarketSession::default()
        }
    }

    fn sched(expr: &str, tz: &str) -> MarketSchedule {
        MarketSchedule::new(expr, &market(tz)).unwrap()
    }

    #[rstest]
    // 2026-11-20 is a Friday: the next weekday 14:30 is Monday the 23rd.
    #[case::weekdays(
        "cron(30 14 ? * MON-FRI *)",
        at(2026, 11, 20, 15, 0),
        at(2026, 11, 23, 14, 30)
    )]
    #[case::same_day(
        "cron(30 14 ? * MON-FRI *)",
        at(2026, 11, 20, 9, 0),
        at(2026, 11, 20, 14, 30)
    )]
    // AWS numbers weekdays from 1 = Sunday: 2 is Monday.
    #[case::numeric_weekday("cron(0 9 ? * 2 *)", at(2026, 11, 20, 0, 0), at(2026, 11, 23, 9, 0))]
    #[case::day_of_month("cron(15 10 1 * ? *)", at(2026, 11, 20, 0, 0), at(2026, 12, 1, 10, 15))]
    #[case::every_5_min(
        "cron(0/5 * ? * * *)",
        at(2026, 11, 20, 10, 2),
        at(2026, 11, 20, 10, 5)
    )]
    #[case::year("cron(0 12 1 1 ? 2027)", at(2026, 11, 20, 0, 0), at(2027, 1, 1, 12, 0))]
    #[case::rate("rate(5 minutes)", at(2026, 11, 20, 10, 2), at(2026, 11, 20, 10, 7))]
    #[case::rate_one_day("rate(1 day)", at(2026, 11, 20, 10, 2), at(2026, 11, 21, 10, 2))]
    fn the_utc_match_follows_aws_semantics(
        #[case] expr: &str,
        #[case] after: DateTime<Utc>,
        #[case] next: DateTime<Utc>,
    ) {
        let s = ScheduleExpr::parse(expr).unwrap();

        assert_eq!(s.next_after(after), Some(next));
    }

    #[rstest]
    #[case::five_fields("cron(30 14 * * MON-FRI)")]
    #[case::both_days("cron(30 14 1 * MON *)")]
    #[case::neither_day("cron(30 14 ? * ? *)")]
    #[case::bad_minute("cron(61 14 ? * MON-FRI *)")]
    #[case::bad_weekday("cron(0 14 ? * FUNDAY *)")]
    #[case::bad_year("cron(0 14 ? * MON 1900)")]
    #[case::unix_cron("30 14 * * 1-5")]
    #[case::rate_zero("rate(0 minutes)")]
    #[case::rate_plural_one("rate(1 minutes)")]
    #[case::rate_unit("rate(5 weeks)")]
    #[case::empty("")]
    fn invalid_expressions_are_refused(#[case] expr: &str) {
        let e = MarketSchedule::new(expr, &MarketSession::default()).unwrap_err();

        assert_eq!(e.field, "schedule", "{expr}");
    }

    #[test]
    fn an_unknown_calendar_is_refused_naming_the_field() {
        let m = MarketSession {
            calendar: Some("lse".into()),
            ..MarketSession::default()
        };

        let e = MarketSchedule::new("cron(30 9 ? * MON-FRI *)", &m).unwrap_err();

        assert_eq!(e.field, "market.calendar");
    }

    #[rstest]
    // New York: EST (−5) and EDT (−4); no day crosses at 09:30.
    #[case::new_york_open(
        "cron(30 9 ? * MON-FRI *)",
        "America/New_York",
        "cron(30 13,14 ? * MON-FRI *)"
    )]
    // London: GMT and BST (+1).
    #[case::london_open(
        "cron(0 8 ? * MON-FRI *)",
        "Europe/London",
        "cron(0 7,8 ? * MON-FRI *)"
    )]
    // Kolkata: +05:30 all year, no DST: one UTC time, half an hour off.
    #[case::kolkata("cron(15 9 ? * MON-FRI *)", "Asia/Kolkata", "cron(45 3 ? * MON-FRI *)")]
    // Sydney: 10:00 is 23:00 or 00:00 UTC, so Monday's run is on Sunday in UTC.
    #[case::sydney_crosses_midnight(
        "cron(0 10 ? * MON-FRI *)",
        "Australia/Sydney",
        "cron(0 0,23 ? * 1-6 *)"
    )]
    // 22:00 New York on 29 February is 1 March in UTC.
    #[case::leap_day(
        "cron(0 22 29 2 ? *)",
        "America/New_York",
        "cron(0 2,3 1,29,30 2,3 ? *)"
    )]
    #[case::every_five_minutes(
        "cron(0/5 9-15 ? * MON-FRI *)",
        "America/New_York",
        "cron(0/5 13-20 ? * MON-FRI *)"
    )]
    #[case::rate_unchanged("rate(5 minutes)", "America/New_York", "rate(5 minutes)")]
    #[case::rate_one_hour("rate(1 hour)", "Europe/London", "rate(1 hour)")]
    fn the_rule_covers_every_offset_of_the_zone(
        #[case] expr: &str,
        #[case] tz: &str,
        #[case] rule: &str,
    ) {
        let s = sched(expr, tz);

        assert_eq!(s.rule_expression(at(2026, 1, 15, 0, 0)), rule);
        assert!(ScheduleExpr::parse(rule).is_ok(), "{rule} does not parse");
    }

    fn runs(expr: &str, tz: &str, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        sched(expr, tz).next_runs(after, n)
    }

    #[rstest]
    // US DST ends Sunday 2026-11-01: 09:30 is 13:30 UTC before, 14:30 after.
    #[case::new_york_november(
        "cron(30 9 ? * MON-FRI *)", "America/New_York", at(2026, 10, 29, 0, 0),
        vec![at(2026, 10, 29, 13, 30), at(2026, 10, 30, 13, 30), at(2026, 11, 2, 14, 30), at(2026, 11, 3, 14, 30)]
    )]
    // US DST starts Sunday 2026-03-08.
    #[case::new_york_march(
        "cron(30 9 ? * MON-FRI *)", "America/New_York", at(2026, 3, 5, 0, 0),
        vec![at(2026, 3, 5, 14, 30), at(2026, 3, 6, 14, 30), at(2026, 3, 9, 13, 30)]
    )]
    // The UK changes on Sunday 2026-03-29, three weeks after the US.
    #[case::london_march(
        "cron(0 8 ? * MON-FRI *)", "Europe/London", at(2026, 3, 26, 0, 0),
        vec![at(2026, 3, 26, 8, 0), at(2026, 3, 27, 8, 0), at(2026, 3, 30, 7, 0)]
    )]
    #[case::london_october(
        "cron(0 8 ? * MON-FRI *)", "Europe/London", at(2026, 10, 22, 0, 0),
        vec![at(2026, 10, 22, 7, 0), at(2026, 10, 23, 7, 0), at(2026, 10, 26, 8, 0)]
    )]
    // Thanksgiving (26th) is skipped; the 27th closes at 13:00, after 09:30.
    #[case::thanksgiving(
        "cron(30 9 ? * MON-FRI *)", "America/New_York", at(2026, 11, 24, 0, 0),
        vec![at(2026, 11, 24, 14, 30), at(2026, 11, 25, 14, 30), at(2026, 11, 27, 14, 30), at(2026, 11, 30, 14, 30)]
    )]
    // A 15:00 run is past the 13:00 early close on the 27th.
    #[case::early_close(
        "cron(0 15 ? * MON-FRI *)", "America/New_York", at(2026, 11, 24, 0, 0),
        vec![at(2026, 11, 24, 20, 0), at(2026, 11, 25, 20, 0), at(2026, 11, 30, 20, 0)]
    )]
    // After the regular close, an early close changes nothing.
    #[case::evening_run_on_early_close_day(
        "cron(0 17 ? * MON-FRI *)", "America/New_York", at(2026, 11, 25, 23, 0),
        vec![at(2026, 11, 27, 22, 0)]
    )]
    // London has no exchange calendar here: its schedule runs on US holidays.
    #[case::london_on_thanksgiving(
        "cron(0 8 ? * MON-FRI *)", "Europe/London", at(2026, 11, 26, 0, 0),
        vec![at(2026, 11, 26, 8, 0)]
    )]
    #[case::leap_day(
        "cron(0 22 29 2 ? *)", "America/New_York", at(2026, 1, 1, 0, 0),
        vec![at(2028, 3, 1, 3, 0), at(2032, 3, 1, 3, 0)]
    )]
    // 01:30 happens twice on 2026-11-01 in New York: one run, the first.
    #[case::repeated_hour(
        "cron(30 1 ? * * *)", "America/New_York", at(2026, 10, 31, 0, 0),
        vec![at(2026, 10, 31, 5, 30), at(2026, 11, 1, 5, 30), at(2026, 11, 2, 6, 30)]
    )]
    // 02:30 does not exist on 2026-03-08 in New York: no run that day.
    #[case::skipped_hour(
        "cron(30 2 ? * * *)", "America/New_York", at(2026, 3, 7, 0, 0),
        vec![at(2026, 3, 7, 7, 30), at(2026, 3, 9, 6, 30)]
    )]
    #[case::rate_unchanged(
        "rate(2 hours)", "America/New_York", at(2026, 11, 26, 10, 0),
        vec![at(2026, 11, 26, 12, 0), at(2026, 11, 26, 14, 0)]
    )]
    fn next_runs_are_in_market_time_and_skip_closed_days(
        #[case] expr: &str,
        #[case] tz: &str,
        #[case] after: DateTime<Utc>,
        #[case] expected: Vec<DateTime<Utc>>,
    ) {
        assert_eq!(runs(expr, tz, after, expected.len()), expected);
    }

    #[rstest]
    #[case::holiday("cron(30 9 ? * MON-FRI *)", at(2026, 11, 26, 14, 30), "holiday")]
    #[case::early_close("cron(0 15 ? * MON-FRI *)", at(2026, 11, 27, 20, 0), "early_close")]
    // 14:30 UTC in July is 10:30 New York: the summer half of the cover.
    #[case::other_offset("cron(30 9 ? * MON-FRI *)", at(2026, 7, 15, 14, 30), "not_scheduled")]
    #[case::run("cron(30 9 ? * MON-FRI *)", at(2026, 7, 15, 13, 30), "run")]
    // EventBridge may stamp seconds: the minute decides.
    #[case::stray_seconds("cron(30 9 ? * MON-FRI *)", at(2026, 7, 15, 13, 30) + Duration::seconds(7), "run")]
    #[case::rate_on_holiday("rate(1 hour)", at(2026, 11, 26, 14, 30), "run")]
    fn the_tick_filter_names_why_a_tick_is_skipped(
        #[case] expr: &str,
        #[case] tick: DateTime<Utc>,
        #[case] verdict: &str,
    ) {
        let s = sched(expr, "America/New_York");

        let got = s.check(tick);

        assert_eq!(
            got.as_ref().map_or_else(SkipReason::kind, |()| "run"),
            verdict
        );
        if let Err(reason) = got {
            assert!(reason.to_string().starts_with(verdict), "{reason}");
        }
    }

    #[test]
    fn a_skip_reason_names_the_day_and_the_holiday() {
        let s = sched("cron(30 9 ? * MON-FRI *)", "America/New_York");

        let reason = s.check(at(2026, 11, 26, 14, 30)).unwrap_err().to_string();

        assert_eq!(
            reason,
            "holiday: nyse is closed on 2026-11-26 (Thanksgiving Day)"
        );
    }

    /// Invariant: every local run is a tick of the rule (the cover never misses a
    /// run), and the runs are exactly the ticks that pass the filter. Checked minute
    /// by minute over both DST changes of 2026 in several zones.
    #[rstest]
    #[case("cron(30 9 ? * MON-FRI *)", "America/New_York")]
    #[case("cron(0/20 1-3 ? * * *)", "America/New_York")]
    #[case("cron(0 8 ? * MON-FRI *)", "Europe/London")]
    #[case("cron(0 10 ? * MON-FRI *)", "Australia/Sydney")]
    #[case("cron(45 23 L * ? *)", "Europe/Berlin")]
    #[case("cron(0 0 1 * ? *)", "Asia/Tokyo")]
    #[case("cron(0 9 L * ? *)", "Australia/Sydney")]
    #[case("cron(30 22 ? * 6#3 *)", "America/New_York")]
    fn the_rule_never_misses_a_local_run(#[case] expr: &str, #[case] tz: &str) {
        let s = sched(expr, tz);
        let windows = [
            (at(2026, 2, 27, 0, 0), at(2026, 3, 10, 0, 0)),
            (at(2026, 3, 26, 0, 0), at(2026, 4, 7, 0, 0)),
            (at(2026, 10, 1, 0, 0), at(2026, 11, 4, 0, 0)),
        ];
        for (from, to) in windows {
            let rule = ScheduleExpr::parse(&s.rule_expression(from)).unwrap();
            let ScheduleExpr::Cron(rule) = rule else {
                panic!("a cron's rule is a cron");
            };
            let ScheduleExpr::Cron(local) = &s.expr else {
                panic!("a cron");
            };
            let mut expected = Vec::new();
            let mut t = from + Duration::minutes(1);
            while t < to {
                let l = t.with_timezone(&s.tz);
                let first = match s.tz.from_local_datetime(&l.naive_local()) {
                    LocalResult::Ambiguous(e, _) => e == l,
                    _ => true,
                };
                if local.cron.is_time_matching(&l).unwrap() && first {
                    assert!(
                        rule.cron.is_time_matching(&t).unwrap(),
                        "{expr} {tz}: rule misses {t}"
                    );
                    if s.check(t).is_ok() {
                        expected.push(t);
                    }
                }
                t += Duration::minutes(1);
            }

            let got: Vec<_> = s
                .next_runs(from, expected.len() + 1)
                .into_iter()
                .filter(|r| *r < to)
                .collect();

            assert_eq!(got, expected, "{expr} {tz} from {from}");
        }
    }
}
