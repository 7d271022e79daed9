//! Step outputs as they travel in the workflow state. Each step's output is placed
//! by the state machine at `$.<step_name>`, so later steps read earlier outputs by
//! name. Outputs stay small (Step Functions caps state at 256 KiB): bulky data
//! (bars, series, charts, answers) lives in S3 and travels as keys.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::orders::Order;
use crate::signal::Signal;
use crate::strategy::Strategy;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadStrategyOutput {
    pub strategy: Strategy,
    /// `schedule` or `manual`.
    pub trigger: String,
    pub tick: String,
    /// True when nothing runs: an inactive strategy, a tick that is not a run in
    /// market time or falls on a closed day, a re-delivered tick already claimed.
    pub skipped: bool,
    /// `inactive`, `not_scheduled: …`, `holiday: …`, `early_close: …` or
    /// `duplicate tick, …`.
    pub skip_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FetchMarketDataOutput {
    pub bars_key: String,
    pub rows: usize,
    pub timeframe: String,
    pub first: String,
    pub last: String,
    pub latest_close: f64,
    /// The close of the bar before the latest (crossover rules read it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_close: Option<f64>,
    pub latest_volume: f64,
    /// Where the bars came from, e.g. `ibkr` or `synthetic`.
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesSummary {
    pub latest: Option<f64>,
    /// The value at the bar before the latest (crossover rules read it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<f64>,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComputeIndicatorsOutput {
    /// S3 key of the full series (for the chart step).
    pub series_key: String,
    /// Latest value and count per series (lineage holds these, not the full series).
    pub series: BTreeMap<String, SeriesSummary>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChartRef {
    pub timeframe: String,
    pub key: String,
    pub bytes: usize,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderChartsOutput {
    pub bucket: String,
    pub charts: Vec<ChartRef>,
    /// What was left off a chart and why, e.g. an indicator needing more weekly bars.
    #[serde(default)]
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TokenUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalyzeChartOutput {
    pub provider: String,
    pub model: String,
    pub template_id: String,
    pub template_version: u32,
    /// `builtin` (shipped default) or `store` (PROMPTS_TABLE).
    #[serde(default)]
    pub template_source: String,
    pub prompt: String,
    /// The analyst's raw answer (kept verbatim for audit); only its head when
    /// `answer_key` is set.
    pub answer: String,
    /// S3 key of the full answer when it was too large to travel in the state.
    #[serde(default)]
    pub answer_key: Option<String>,
    /// S3 keys of the charts the analyst was shown (none for `rules`).
    #[serde(default)]
    pub charts: Vec<String>,
    pub latency_ms: u64,
    pub usage: TokenUsage,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParseSignalOutput {
    pub signal: Signal,
    pub last_close: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaceOrderOutput {
    pub placed: bool,
    pub reason: String,
    pub order: Option<Order>,
    pub poll_seconds: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckOrderOutput {
    pub poll: u32,
    pub done: bool,
    pub status: String,
    pub order: Option<Order>,
    pub note: Option<String>,
}
