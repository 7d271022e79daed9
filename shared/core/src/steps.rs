//! The catalogue of workflow steps: one name per step, used as the state name in
//! the state machine, the lineage `step_name`, and (kebab-cased) the crate, binary
//! and Lambda function name.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    LoadStrategy,
    FetchMarketData,
    ComputeIndicators,
    RenderCharts,
    AnalyzeChart,
    ParseSignal,
    PlaceOrder,
    CheckOrder,
    UpdatePortfolio,
    RecordExecution,
    RecordFailure,
}

impl Step {
    pub const ALL: [Step; 11] = [
        Step::LoadStrategy,
        Step::FetchMarketData,
        Step::ComputeIndicators,
        Step::RenderCharts,
        Step::AnalyzeChart,
        Step::ParseSignal,
        Step::PlaceOrder,
        Step::CheckOrder,
        Step::UpdatePortfolio,
        Step::RecordExecution,
        Step::RecordFailure,
    ];

    /// The state name and lineage `step_name`, e.g. `fetch_market_data`.
    pub fn name(self) -> &'static str {
        match self {
            Step::LoadStrategy => "load_strategy",
            Step::FetchMarketData => "fetch_market_data",
            Step::ComputeIndicators => "compute_indicators",
            Step::RenderCharts => "render_charts",
            Step::AnalyzeChart => "analyze_chart",
            Step::ParseSignal => "parse_signal",
            Step::PlaceOrder => "place_order",
            Step::CheckOrder => "check_order",
            Step::UpdatePortfolio => "update_portfolio",
            Step::RecordExecution => "record_execution",
            Step::RecordFailure => "record_failure",
        }
    }

    /// The position of the step in the workflow, shown in lineage order.
    pub fn number(self) -> u32 {
        match self {
            Step::RecordFailure => 99,
            other => Step::ALL
                .iter()
                .position(|s| *s == other)
                .map_or(0, |i| i as u32 + 1),
        }
    }

    /// The Lambda function, crate and binary name, e.g. `fetch-market-data`.
    pub fn function_name(self) -> String {
        self.name().replace('_', "-")
    }

    pub fn from_name(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_numbers_follow_the_workflow_order() {
        for (i, step) in Step::ALL.iter().enumerate() {
            assert_eq!(Step::from_name(step.name()), Some(*step));
            if *step != Step::RecordFailure {
                assert_eq!(step.number(), i as u32 + 1);
            }
        }
        assert_eq!(Step::FetchMarketData.function_name(), "fetch-market-data");
        assert_eq!(Step::RecordFailure.number(), 99);
    }
}
