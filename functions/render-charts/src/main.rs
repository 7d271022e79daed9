//! render_charts: candlestick charts with the indicator panels, as PNG in S3 under
//! `charts/{strategy_id}/{execution_id}/{timeframe}.png`: the strategy's timeframe
//! always, and a weekly chart resampled from daily bars when the strategy asks.

use std::sync::Arc;

use serde::Deserialize;
use tradeflow_adapters::Deps;
use tradeflow_adapters::blobs::BlobError;
use tradeflow_adapters::step::{StepCtx, serve};
use tradeflow_charts::{ChartOptions, chart_jobs, render_jobs_png};
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

fn transient(e: BlobError) -> StepError {
    StepError::transient(e.to_string())
}

async fn handle(
    input: Input,
    ctx: StepCtx,
    deps: Arc<Deps>,
) -> Result<RenderChartsOutput, StepError> {
    let blobs = deps.blobs();
    let bars: Vec<Bar> = blobs
        .get_json(&input.fetch_market_data.bars_key)
        .await
        .map_err(transient)?;
    let series: Vec<IndicatorSeries> = blobs
        .get_json(&input.compute_indicators.series_key)
        .await
        .map_err(transient)?;
    let s = &input.load_strategy.strategy;
    let (jobs, notes) = chart_jobs(s, bars, series).map_err(|e| StepError::fatal(e.to_string()))?;
    for note in &notes {
        tracing::warn!(note = %note, "indicator left off a chart");
    }
    let mut charts = Vec::with_capacity(jobs.len());
    let pngs = render_jobs_png(&jobs);
    for (job, png) in jobs.into_iter().zip(pngs) {
        let opts = ChartOptions::default();
        let png = png.map_err(|e| StepError::fatal(e.to_string()))?;
        let timeframe = job.timeframe.as_str().to_string();
        let key = format!(
            "charts/{}/{}/{}.png",
            s.strategy_id, ctx.execution_name, timeframe
        );
        let bytes = png.len();
        blobs.put(&key, png, "image/png").await.map_err(transient)?;
        tracing::info!(key = %key, bytes, bars = job.bars.len(), "chart stored");
        charts.push(ChartRef {
            timeframe,
            key,
            bytes,
            width: opts.width,
            height: opts.height,
        });
    }
    Ok(RenderChartsOutput {
        bucket: blobs.bucket().to_string(),
        charts,
        notes,
    })
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tradeflow_charts::fonts::init()?;
    serve(Step::RenderCharts, handle).await
}
