//! EventBridge schedule expressions, checked before a rule is put: AWS's 6-field
//! `cron(minutes hours day-of-month month day-of-week year)` or `rate(n unit)`,
//! always in UTC (EventBridge rules have no time zone). The next run is computed
//! with croner in Quartz weekday mode, which numbers days like AWS (1 = SUN).

use chrono::{DateTime, Duration, Timelike, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// A validated schedule expression.
#[derive(Debug, Clone)]
pub enum ScheduleExpr {
    Cron(Box<Cron>),
    Rate(Duration),
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
            return Err("must be cron(minutes hours day-of-month month day-of-week year) or rate(n unit), in UTC".into());
        };
        let f: Vec<&str> = inner.split_whitespace().collect();
        if f.len() != 6 {
            return Err(format!(
                "cron needs 6 fields (minutes hours day-of-month month day-of-week year), got {}",
                f.len()
            ));
        }
        let (dom, dow) = (f[2], f[4]);
        // AWS refuses a cron that sets both days or neither: exactly one is '?'.
        if (dom == "?") == (dow == "?") {
            return Err("exactly one of day-of-month and day-of-week must be '?'".into());
        }
        if f.iter()
            .enumerate()
            .any(|(i, v)| v.contains('?') && i != 2 && i != 4)
        {
            return Err("'?' is allowed only in day-of-month and day-of-week".into());
        }
        let year = f[5];
        if year != "*"
            && !year
                .split([',', '-', '/'])
                .all(|y| y.parse::<u32>().is_ok_and(|y| (1970..=2199).contains(&y)) || y.is_empty())
        {
            return Err(format!("year {year:?} must be '*' or years in 1970-2199"));
        }
        let pattern = format!("0 {} {} {} {} {} {}", f[0], f[1], dom, f[3], dow, year);
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .year(Year::Required)
            .alternative_weekdays(true)
            .build()
            .parse(&pattern)
            .map_err(|e| format!("invalid cron: {e}"))?;
        Ok(Self::Cron(Box::new(cron)))
    }

    /// The first run strictly after `after`. For `rate`, EventBridge counts from the
    /// moment the rule is created, so this is `after + interval`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Schedules tick on whole minutes; croner would carry sub-seconds through.
        let after = after.with_nanosecond(0)?;
        match self {
            Self::Cron(c) => c.find_next_occurrence(&after, false).ok(),
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use rstest::rstest;

    use super::*;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
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
    fn the_next_run_follows_aws_semantics(
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
        assert!(ScheduleExpr::parse(expr).is_err(), "{expr} was accepted");
    }
}
