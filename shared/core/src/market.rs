//! Market data: OHLCV bars, timeframes, validation and resampling.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// One OHLCV bar. `t` is the bar's start in epoch milliseconds, as IBKR sends it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    pub t: i64,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
}

impl Bar {
    pub fn time(&self) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(self.t).unwrap_or_default()
    }

    pub fn date(&self) -> NaiveDate {
        self.time().date_naive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Timeframe {
    #[default]
    Daily,
    Weekly,
}

impl Timeframe {
    /// IBKR's `bar` parameter for `/iserver/marketdata/history`.
    pub fn ibkr_bar(self) -> &'static str {
        match self {
            Timeframe::Daily => "1d",
            Timeframe::Weekly => "1w",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Timeframe::Daily => "daily",
            Timeframe::Weekly => "weekly",
        }
    }
}

#[derive(Debug, Error, PartialEq)]
pub enum BarError {
    #[error("no bars")]
    Empty,
    #[error("bar {index}: timestamp {t} is not after the previous bar's {prev}")]
    NotMonotonic { index: usize, t: i64, prev: i64 },
    #[error("bar {index}: {field} is not a finite positive number ({value})")]
    NotFinite {
        index: usize,
        field: &'static str,
        value: f64,
    },
    #[error("bar {index}: high {high} is below max(open, close)")]
    HighTooLow { index: usize, high: f64 },
    #[error("bar {index}: low {low} is above min(open, close)")]
    LowTooHigh { index: usize, low: f64 },
}

/// Checks what every later step relies on: strictly increasing timestamps,
/// finite positive prices, h ≥ max(o, c), l ≤ min(o, c), volume ≥ 0.
///
/// # Errors
/// The first violation found, naming the bar index.
pub fn validate_bars(bars: &[Bar]) -> Result<(), BarError> {
    if bars.is_empty() {
        return Err(BarError::Empty);
    }
    for (index, b) in bars.iter().enumerate() {
        for (field, value) in [
            ("open", b.open),
            ("high", b.high),
            ("low", b.low),
            ("close", b.close),
        ] {
            if !value.is_finite() || value <= 0.0 {
                return Err(BarError::NotFinite {
                    index,
                    field,
                    value,
                });
            }
        }
        if !b.volume.is_finite() || b.volume < 0.0 {
            return Err(BarError::NotFinite {
                index,
                field: "volume",
                value: b.volume,
            });
        }
        if b.high < b.open.max(b.close) {
            return Err(BarError::HighTooLow {
                index,
                high: b.high,
            });
        }
        if b.low > b.open.min(b.close) {
            return Err(BarError::LowTooHigh { index, low: b.low });
        }
        if index > 0 && b.t <= bars[index - 1].t {
            return Err(BarError::NotMonotonic {
                index,
                t: b.t,
                prev: bars[index - 1].t,
            });
        }
    }
    Ok(())
}

/// Resamples daily bars to ISO weeks: first open, max high, min low, last close,
/// summed volume; the weekly bar is stamped with its first daily bar's time.
pub fn resample_weekly(daily: &[Bar]) -> Vec<Bar> {
    let mut out: Vec<Bar> = Vec::new();
    let mut current: Option<(i32, u32)> = None;
    for b in daily {
        let week = b.date().iso_week();
        let key = (week.year(), week.week());
        match (current, out.last_mut()) {
            (Some(k), Some(w)) if k == key => {
                w.high = w.high.max(b.high);
                w.low = w.low.min(b.low);
                w.close = b.close;
                w.volume += b.volume;
            }
            _ => {
                out.push(*b);
                current = Some(key);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(day: u32, o: f64, h: f64, l: f64, c: f64, v: f64) -> Bar {
        let t = NaiveDate::from_ymd_opt(2024, 1, day)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc()
            .timestamp_millis();
        Bar {
            t,
            open: o,
            high: h,
            low: l,
            close: c,
            volume: v,
        }
    }

    #[test]
    fn weekly_resample_takes_first_open_extremes_last_close_and_summed_volume() {
        // 2024-01-01 is a Monday; 8th starts the next ISO week.
        let daily = [
            bar(1, 10.0, 12.0, 9.0, 11.0, 100.0),
            bar(2, 11.0, 15.0, 10.5, 14.0, 200.0),
            bar(5, 14.0, 14.5, 8.0, 9.5, 50.0),
            bar(8, 9.5, 10.0, 9.0, 9.8, 10.0),
        ];

        let weekly = resample_weekly(&daily);

        assert_eq!(weekly.len(), 2);
        assert_eq!(weekly[0], bar(1, 10.0, 15.0, 8.0, 9.5, 350.0));
        assert_eq!(weekly[1], daily[3]);
    }

    #[test]
    fn validation_names_the_offending_bar() {
        let mut bars = vec![
            bar(1, 10.0, 12.0, 9.0, 11.0, 1.0),
            bar(2, 10.0, 12.0, 9.0, 11.0, 1.0),
        ];
        assert_eq!(validate_bars(&bars), Ok(()));

        bars[1].high = 10.5;
        assert_eq!(
            validate_bars(&bars),
            Err(BarError::HighTooLow {
                index: 1,
                high: 10.5
            })
        );

        bars[1].high = 12.0;
        bars[1].t = bars[0].t;
        assert!(matches!(
            validate_bars(&bars),
            Err(BarError::NotMonotonic { index: 1, .. })
        ));

        bars[1].t += 86_400_000;
        bars[1].close = f64::NAN;
        assert!(matches!(
            validate_bars(&bars),
            Err(BarError::NotFinite { field: "close", .. })
        ));
        assert_eq!(validate_bars(&[]), Err(BarError::Empty));
    }
}
