//! parse_signal: turns the analyst's answer into a validated signal (structured JSON
//! first, then the tolerant text reader). Anything unparseable or inconsistent
//! becomes HOLD with the reason; the raw answer stays in the analyze_chart lineage.

use std::sync::Arc;

use serde::Deserialize;
use tradeflow_adapters::Deps;
use tradeflow_adapters::step::{StepCtx, serve};
use tradeflow_core::payloads::{AnalyzeChartOutput, FetchMarketDataOutput, ParseSignalOutput};
use tradeflow_core::signal::parse_answer;
use tradeflow_core::{Step, StepError};

#[derive(Deserialize)]
struct Input {
    fetch_market_data: FetchMarketDataOutput,
    analyze_chart: AnalyzeChartOutput,
}

async fn handle(
    input: Input,
    _ctx: StepCtx,
    deps: Arc<Deps>,
) -> Result<ParseSignalOutput, StepError> {
    let last_close = input.fetch_market_data.latest_close;
    let a = &input.analyze_chart;
    // A large answer travels in S3; parsing its inline head could miss the verdict.
    let answer = match &a.answer_key {
        Some(key) => {
            let bytes = deps
                .blobs()
                .get(key)
                .await
                .map_err(|e| StepError::transient(e.to_string()))?;
            String::from_utf8_lossy(&bytes).into_owned()
        }
        None => a.answer.clone(),
    };
    let mut signal = parse_answer(&answer, last_close);
    signal.template_id = Some(a.template_id.clone());
    signal.template_version = Some(a.template_version);
    tracing::info!(action = signal.action.as_str(), parsed_from = %signal.parsed_from, reason = %signal.reason, "signal parsed");
    Ok(ParseSignalOutput { signal, last_close })
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(Step::ParseSignal, handle).await
}
