//! A deterministic market: the same conid and end date always give the same bars.
//! It feeds the fake IBKR gateway (the paper broker of the local stack) and tests.

use chrono::{Datelike, Duration, NaiveDate, Weekday};

use crate::market::Bar;

/// Contracts the synthetic market knows, as IBKR lists them.
pub const KNOWN_CONTRACTS: &[(i64, &str, &str, &str)] = &[
    (265598, "AAPL", "APPLE INC", "NASDAQ"),
    (272093, "MSFT", "MICROSOFT CORP", "NASDAQ"),
    (8314, "IBM", "INTL BUSINESS MACHINES CORP", "NYSE"),
    (756733, "SPY", "SPDR S&P 500 ETF TRUST", "ARCA"),
    (76792991, "TSLA", "TESLA INC", "NASDAQ"),
];

/// Returns (symbol, company, exchange) for a known conid.
pub fn contract(conid: i64) -> Option<(&'static str, &'static str, &'static str)> {
    KNOWN_CONTRACTS
        .iter()
        .find(|c| c.0 == conid)
        .map(|c| (c.1, c.2, c.3))
}

/// SplitMix64: tiny, fast and good enough for reproducible price paths.
struct SplitMix(u64);

impl SplitMix {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal via Box-Muller.
    fn normal(&mut self) -> f64 {
        let u1 = self.next_f64().max(1e-12);
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Daily bars for `count` weekdays ending on or before `end`, stamped at 00:00 UTC.
///
/// The path is a random walk with a slow cycle, so trends, reversals and
/// oversold/overbought phases all occur within a few hundred bars. It always starts
/// at the same epoch, so a later `end` extends the same history.
pub fn daily_bars(conid: i64, end: NaiveDate, count: usize) -> Vec<Bar> {
    let epoch = NaiveDate::from_ymd_opt(2000, 1, 3).unwrap_or_default();
    let mut rng = SplitMix(conid as u64 ^ 0x5EED);
    let base = 50.0 + (conid % 400) as f64;
    let mut close = base;
    let mut out: Vec<Bar> = Vec::new();
    let mut day = epoch;
    let mut i = 0i64;
    while day <= end {
        if !matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
            let open = close * (1.0 + 0.004 * rng.normal());
            let next = step(&mut rng, close, base, i);
            let spread = close * (0.004 + 0.01 * rng.next_f64());
            let high = open.max(next) + spread * rng.next_f64();
            let low = (open.min(next) - spread * rng.next_f64()).max(0.01);
            let volume = (1_000_000.0 * (1.0 + rng.next_f64())).round();
            let t = day
                .and_hms_opt(0, 0, 0)
                .map(|dt| dt.and_utc().timestamp_millis())
                .unwrap_or_default();
            let (open, close2) = (round2(open), round2(next));
            // Rounding may break h >= max(o, c) by a cent; repair it.
            out.push(Bar {
                t,
                open,
                high: round2(high).max(open).max(close2),
                low: round2(low).min(open).min(close2),
                close: close2,
                volume,
            });
            close = next;
            i += 1;
        }
        day += Duration::days(1);
    }
    let skip = out.len().saturating_sub(count);
    out.split_off(skip)
}

fn step(rng: &mut SplitMix, close: f64, base: f64, i: i64) -> f64 {
    let cycle = (i as f64 / 60.0).sin() * 0.002;
    let pull = (base - close) / base * 0.01;
    (close * (1.0 + cycle + pull + 0.015 * rng.normal())).max(1.0)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::validate_bars;

    #[test]
    fn bars_are_deterministic_valid_and_skip_weekends() {
        let end = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();

        let a = daily_bars(265598, end, 500);
        let b = daily_bars(265598, end, 500);

        assert_eq!(a, b);
        assert_eq!(a.len(), 500);
        assert_eq!(validate_bars(&a), Ok(()));
        assert!(
            a.iter()
                .all(|b| !matches!(b.date().weekday(), Weekday::Sat | Weekday::Sun))
        );
        assert_eq!(a.last().unwrap().date(), end);
        assert_ne!(a, daily_bars(8314, end, 500));
    }

    #[test]
    fn a_later_end_extends_the_same_history() {
        let end = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
        let a = daily_bars(265598, end, 100);
        let b = daily_bars(265598, end + Duration::days(3), 101);

        assert_eq!(&b[..100], &a[..]);
    }
}
