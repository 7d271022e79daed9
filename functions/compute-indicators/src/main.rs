//! compute_indicators: the strategy's indicators over the fetched bars. Full series go
//! to S3 for the chart step; lineage holds latest value and count per series.

use std::sync::Arc;

use serde::Deserialize;
use tradeflow_adapters::Deps;
use tradeflow_adapters::step::{StepCtx, serve};
use tradeflow_core::indicators::compute_all;
use tradeflow_core::market::Bar;
use tradeflow_core::payloads::{
    ComputeIndicatorsOutput, FetchMarketDataOutput, LoadStrategyOutput, SeriesSummary,
};
use tradeflow_core::{Step, StepError};

#[derive(Deserialize)]
struct Input {
    load_strategy: LoadStrategyOutput,
    fetch_market_data: FetchMarketDataOutput,
}

async fn handle(
    input: Input,
    ctx: StepCtx,
    deps: Arc<Deps>,
) -> Result<ComputeIndicatorsOutput, StepError> {
    let blobs = deps.blobs();
    let bars: Vec<Bar> = blobs
        .get_json(&input.fetch_market_data.bars_key)
        .await
        .map_err(|e| StepError::transient(e.to_string()))?;
    let s = &input.load_strategy.strategy;
    let series = compute_all(&s.indicators, &bars).map_err(|e| StepError::fatal(e.to_string()))?;
    let key = format!(
        "data/{}/{}/indicators.json",
        s.strategy_id, ctx.execution_name
    );
    blobs
        .put_json(&key, &series)
        .await
        .map_err(|e| StepError::transient(e.to_string()))?;
    Ok(ComputeIndicatorsOutput {
        series_key: key,
        series: series
            .iter()
            .map(|x| {
                (
                    x.name.clone(),
                    SeriesSummary {
                        latest: x.latest(),
                        previous: x.values.len().checked_sub(2).and_then(|i| x.values.get(i)),
                        count: x.count(),
                    },
                )
            })
            .collect(),
    })
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(Step::ComputeIndicators, handle).await
}
