//! analyze_chart: renders the prompt template and asks the strategy's analyst. The
//! rendered prompt, template id+version, model, latency, usage and the verbatim
//! answer all go to lineage.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use serde_json::json;
use tradeflow_adapters::Deps;
use tradeflow_adapters::step::{StepCtx, serve};
use tradeflow_core::analyst::rules_answer;
use tradeflow_core::payloads::{
    AnalyzeChartOutput, ComputeIndicatorsOutput, FetchMarketDataOutput, LoadStrategyOutput,
    RenderChartsOutput, TokenUsage,
};
use tradeflow_core::prompts::{
    DEFAULT_TEMPLATE, DEFAULT_TEMPLATE_ID, DEFAULT_TEMPLATE_VERSION, render,
};
use tradeflow_core::{Step, StepError};

#[derive(Deserialize)]
struct Input {
    load_strategy: LoadStrategyOutput,
    fetch_market_data: FetchMarketDataOutput,
    compute_indicators: ComputeIndicatorsOutput,
    #[allow(dead_code)]
    render_charts: RenderChartsOutput,
}

async fn handle(
    input: Input,
    _ctx: StepCtx,
    _deps: Arc<Deps>,
) -> Result<AnalyzeChartOutput, StepError> {
    let s = &input.load_strategy.strategy;
    let md = &input.fetch_market_data;
    let latest: BTreeMap<String, f64> = input
        .compute_indicators
        .series
        .iter()
        .filter_map(|(k, v)| v.latest.map(|x| (k.clone(), x)))
        .collect();
    let context = json!({
        "symbol": s.symbol, "timeframe": md.timeframe, "close": md.latest_close,
        "volume": md.latest_volume, "indicators": latest, "risk": s.risk, "position": null,
    });
    let prompt = render(DEFAULT_TEMPLATE, &context).map_err(StepError::fatal)?;
    let started = Instant::now();
    let (model, answer) = match s.provider.kind.as_str() {
        "rules" => (
            "rules-v1".to_string(),
            rules_answer(md.latest_close, &latest),
        ),
        other => {
            return Err(StepError::fatal(format!(
                "provider {other} is not available in this build"
            )));
        }
    };
    Ok(AnalyzeChartOutput {
        provider: s.provider.kind.clone(),
        model,
        template_id: DEFAULT_TEMPLATE_ID.into(),
        template_version: DEFAULT_TEMPLATE_VERSION,
        prompt,
        answer,
        latency_ms: started.elapsed().as_millis() as u64,
        usage: TokenUsage::default(),
    })
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(Step::AnalyzeChart, handle).await
}
