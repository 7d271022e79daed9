//! The time axis: x is the bar index, so weekends and holidays leave no gaps, and
//! grid lines and date labels sit on the first bar of a month.

use std::ops::Range;

use chrono::Datelike;
use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};
use tradeflow_core::market::Bar;

/// Month steps tried, smallest first, until the labels fit.
const MONTH_STEPS: [u32; 6] = [1, 2, 3, 6, 12, 24];

/// Indices of the bars that start a labelled month, at most `max_labels` of them.
///
/// A tick goes on the first bar of every `step`-th month (January-aligned, so a
/// 3-month step labels Jan/Apr/Jul/Oct), with the smallest step that fits.
pub fn month_ticks(bars: &[Bar], max_labels: usize) -> Vec<usize> {
    let mut starts: Vec<(usize, u32)> = Vec::new();
    let mut prev: Option<u32> = None;
    for (i, b) in bars.iter().enumerate() {
        let d = b.date();
        let month = d.year().unsigned_abs() * 12 + d.month0();
        if prev.is_some_and(|p| p != month) {
            starts.push((i, month));
        }
        prev = Some(month);
    }
    for step in MONTH_STEPS {
        let ticks: Vec<usize> = starts
            .iter()
            .filter(|(_, m)| m % step == 0)
            .map(|(i, _)| *i)
            .collect();
        if ticks.len() <= max_labels.max(1) {
            return ticks;
        }
    }
    // More than 24 labelled years: thin evenly rather than drop the axis.
    let every = starts.len().div_ceil(max_labels.max(1));
    starts.iter().step_by(every).map(|(i, _)| *i).collect()
}

/// Date label for a tick: `Mar 2024` (ticks sit on month starts).
pub fn date_label(bar: &Bar) -> String {
    bar.date().format("%b %Y").to_string()
}

/// The x axis: bar indices `-0.5..n-0.5`, with key points on the month ticks.
#[derive(Debug, Clone)]
pub struct BarAxis {
    start: f64,
    end: f64,
    ticks: Vec<f64>,
}

impl BarAxis {
    pub fn new(bars: usize, ticks: &[usize]) -> Self {
        Self {
            start: -0.5,
            end: bars as f64 - 0.5,
            ticks: ticks.iter().map(|&i| i as f64).collect(),
        }
    }
}

impl Ranged for BarAxis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = self.end - self.start;
        let pixels = limit.1 - limit.0;
        if pixels == 0 || span <= 0.0 {
            return limit.0;
        }
        limit.0 + (f64::from(pixels) * (value - self.start) / span + 1e-3).floor() as i32
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        let max = hint.max_num_points();
        if max == 0 || self.ticks.is_empty() {
            return Vec::new();
        }
        let every = self.ticks.len().div_ceil(max);
        self.ticks.iter().step_by(every).copied().collect()
    }

    fn range(&self) -> Range<f64> {
        self.start..self.end
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use tradeflow_core::synthetic::daily_bars;

    use super::*;

    fn bars(n: usize) -> Vec<Bar> {
        daily_bars(8314, NaiveDate::from_ymd_opt(2024, 12, 31).unwrap(), n)
    }

    #[test]
    fn ticks_sit_on_the_first_bar_of_each_month_when_they_fit() {
        let b = bars(130);

        let ticks = month_ticks(&b, 20);

        assert!(ticks.len() >= 5);
        for &i in &ticks {
            assert!(b[i].date().day() <= 3, "first weekday of the month");
            assert_ne!(b[i].date().month(), b[i - 1].date().month());
        }
    }

    #[test]
    fn long_histories_get_coarser_aligned_steps() {
        let b = bars(2_000);

        let ticks = month_ticks(&b, 10);

        assert!(ticks.len() <= 10 && ticks.len() >= 4, "{}", ticks.len());
        let months: Vec<u32> = ticks.iter().map(|&i| b[i].date().month0()).collect();
        let step = months
            .windows(2)
            .map(|w| (w[1] + 12 - w[0]) % 12)
            .max()
            .unwrap();
        assert!(months.iter().all(|m| m % step.max(1) == 0), "{months:?}");
    }

    #[test]
    fn axis_maps_bar_indices_linearly_across_the_pixels() {
        let axis = BarAxis::new(100, &[0, 50]);

        assert_eq!(axis.map(&-0.5, (0, 1000)), 0);
        assert_eq!(axis.map(&49.5, (0, 1000)), 500);
        assert_eq!(axis.map(&99.5, (0, 1000)), 1000);
    }
}
