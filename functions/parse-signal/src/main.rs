//! parse_signal: turns the analyst's answer into a validated signal. Anything
//! unparseable or inconsistent becomes HOLD with the reason; the raw answer stays in
//! the analyze_chart lineage.

use std::sync::Arc;

use serde::Deserialize;
use tradeflow_adapters::Deps;
use tradeflow_adapters::step::{StepCtx, serve};
use tradeflow_core::payloads::{AnalyzeChartOutput, FetchMarketDataOutput, ParseSignalOutput};
use tradeflow_core::signal::{Signal, StructuredAnswer, from_structured};
use tradeflow_core::{Step, StepError};

#[derive(Deserialize)]
struct Input {
    fetch_market_data: FetchMarketDataOutput,
    analyze_chart: AnalyzeChartOutput,
}

async fn handle(
    input: Input,
    _ctx: StepCtx,
    _deps: Arc<Deps>,
) -> Result<ParseSignalOutput, StepError> {
    let last_close = input.fetch_market_data.latest_close;
    let a = &input.analyze_chart;
    let mut signal = match serde_json::from_str::<StructuredAnswer>(a.answer.trim()) {
        Ok(structured) => from_structured(&structured, last_close),
        Err(e) => Signal::hold(format!("answer is not the expected JSON: {e}")),
    };
    signal.template_id = Some(a.template_id.clone());
    signal.template_version = Some(a.template_version);
    Ok(ParseSignalOutput { signal, last_close })
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(Step::ParseSignal, handle).await
}
