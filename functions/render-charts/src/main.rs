//! render_charts: candlestick charts with the indicator panels, as PNG in S3 under
//! `charts/{strategy_id}/{execution_id}/{timeframe}.png`.

use std::sync::Arc;

use serde::Deserialize;
use tradeflow_adapters::Deps;
use tradeflow_adapters::step::{StepCtx, serve};
use tradeflow_charts::{ChartOptions, render_png};
use tradeflow_core::indicators::IndicatorSeries;
use tradeflow_core::market::Bar;
use tradeflow_core::payloads::{
    ChartRef, ComputeIndicatorsOutput, FetchMarketDataOutput, LoadStrategyOutput,
    RenderChartsOutput,
};
use tradeflow_core::{Step, StepError};

#[derive(Deserialize)]
struct Input {
    load_strategy: LoadStrategyOutput,
    fetch_market_data: FetchMarketDataOutput,
    compute_indicators: ComputeIndicatorsOutput,
}

async fn handle(
    input: Input,
    ctx: StepCtx,
    deps: Arc<Deps>,
) -> Result<RenderChartsOutput, StepError> {
    let blobs = deps.blobs();
    let transient = |e: tradeflow_adapters::blobs::BlobError| StepError::transient(e.to_string());
    let bars: Vec<Bar> = blobs
        .get_json(&input.fetch_market_data.bars_key)
        .await
        .map_err(transient)?;
    let series: Vec<IndicatorSeries> = blobs
        .get_json(&input.compute_indicators.series_key)
        .await
        .map_err(transient)?;
    let s = &input.load_strategy.strategy;
    let opts = ChartOptions {
        title: format!(
            "{} {} close {:.2}",
            s.symbol, input.fetch_market_data.timeframe, input.fetch_market_data.latest_close
        ),
        ..ChartOptions::default()
    };
    let png = render_png(&bars, &series, &opts).map_err(|e| StepError::fatal(e.to_string()))?;
    let timeframe = input.fetch_market_data.timeframe.clone();
    let key = format!(
        "charts/{}/{}/{}.png",
        s.strategy_id, ctx.execution_name, timeframe
    );
    let bytes = png.len();
    blobs.put(&key, png, "image/png").await.map_err(transient)?;
    Ok(RenderChartsOutput {
        bucket: blobs.bucket().to_string(),
        charts: vec![ChartRef {
            timeframe,
            key,
            bytes,
            width: opts.width,
            height: opts.height,
        }],
    })
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(Step::RenderCharts, handle).await
}
