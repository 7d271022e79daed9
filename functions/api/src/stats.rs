//! Statistics of a step over its lineage records: count, success rate, average and
//! p95 duration, the most common errors.

use std::collections::HashMap;

use serde::Serialize;
use tradeflow_core::lineage::{LineageRecord, StepStatus};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorCount {
    pub error: String,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepStatistics {
    pub step_name: String,
    pub days: u32,
    pub count: usize,
    pub succeeded: usize,
    pub failed: usize,
    /// In [0, 1]; absent when there were no records.
    pub success_rate: Option<f64>,
    pub avg_duration_ms: Option<f64>,
    /// Nearest-rank 95th percentile.
    pub p95_duration_ms: Option<u64>,
    /// Up to five, most frequent first.
    pub common_errors: Vec<ErrorCount>,
}

/// Errors differ in ids and numbers; the first line, trimmed, groups them well enough.
fn error_class(e: &str) -> String {
    let line = e.lines().next().unwrap_or_default().trim();
    line.chars().take(160).collect()
}

pub fn step_statistics(step_name: &str, days: u32, records: &[LineageRecord]) -> StepStatistics {
    let count = records.len();
    let succeeded = records
        .iter()
        .filter(|r| r.status == StepStatus::Succeeded)
        .count();
    let mut durations: Vec<u64> = records.iter().map(|r| r.duration_ms).collect();
    durations.sort_unstable();
    let p95 = (!durations.is_empty()).then(|| {
        let rank = (0.95 * durations.len() as f64).ceil() as usize;
        durations[rank.clamp(1, durations.len()) - 1]
    });
    let mut errors: HashMap<String, usize> = HashMap::new();
    for r in records {
        // A retried-then-succeeded step keeps its earlier errors: they count too.
        for e in r.error.iter().chain(&r.previous_errors) {
            *errors.entry(error_class(e)).or_default() += 1;
        }
    }
    let mut common: Vec<ErrorCount> = errors
        .into_iter()
        .map(|(error, count)| ErrorCount { error, count })
        .collect();
    common.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.error.cmp(&b.error)));
    common.truncate(5);
    StepStatistics {
        step_name: step_name.to_string(),
        days,
        count,
        succeeded,
        failed: count - succeeded,
        success_rate: (count > 0).then(|| succeeded as f64 / count as f64),
        avg_duration_ms: (count > 0).then(|| durations.iter().sum::<u64>() as f64 / count as f64),
        p95_duration_ms: p95,
        common_errors: common,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ms: u64, error: Option<&str>) -> LineageRecord {
        LineageRecord {
            execution_id: "e".into(),
            execution_arn: "arn".into(),
            step_key: "fetch_market_data".into(),
            step_name: "fetch_market_data".into(),
            step_number: 2,
            strategy_id: "s".into(),
            status: if error.is_some() {
                StepStatus::Failed
            } else {
                StepStatus::Succeeded
            },
            input: None,
            output: None,
            error: error.map(String::from),
            error_type: None,
            duration_ms: ms,
            recorded_at: "2026-01-01T00:00:00Z".into(),
            attempts: 1,
            previous_errors: vec![],
            payload_key: None,
        }
    }

    #[test]
    fn statistics_count_rates_durations_and_errors() {
        let mut records: Vec<LineageRecord> = (1..=18).map(|i| rec(i * 10, None)).collect();
        records.push(rec(1000, Some("ibkr unavailable\nretry later")));
        records.push(rec(2000, Some("ibkr unavailable")));

        let s = step_statistics("fetch_market_data", 7, &records);

        assert_eq!((s.count, s.succeeded, s.failed), (20, 18, 2));
        assert_eq!(s.success_rate, Some(0.9));
        assert_eq!(s.avg_duration_ms, Some((1710.0 + 3000.0) / 20.0));
        assert_eq!(s.p95_duration_ms, Some(1000));
        assert_eq!(
            s.common_errors,
            vec![ErrorCount {
                error: "ibkr unavailable".into(),
                count: 2
            }]
        );
    }

    #[test]
    fn no_records_give_no_rates() {
        let s = step_statistics("x", 1, &[]);

        assert_eq!(s.count, 0);
        assert_eq!(s.success_rate, None);
        assert_eq!(s.p95_duration_ms, None);
    }
}
