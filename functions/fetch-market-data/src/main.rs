//! fetch_market_data: historical bars for the strategy's contract and timeframe from
//! the IBKR gateway, validated, stored in S3; lineage gets rows, date range and
//! latest price.

use std::sync::Arc;

use serde::Deserialize;
use tradeflow_adapters::Deps;
use tradeflow_adapters::market::MarketSource;
use tradeflow_adapters::step::{StepCtx, serve};
use tradeflow_core::market::validate_bars;
use tradeflow_core::payloads::{FetchMarketDataOutput, LoadStrategyOutput};
use tradeflow_core::{Step, StepError};

#[derive(Deserialize)]
struct Input {
    load_strategy: LoadStrategyOutput,
}

async fn handle(
    input: Input,
    ctx: StepCtx,
    deps: Arc<Deps>,
) -> Result<FetchMarketDataOutput, StepError> {
    let s = &input.load_strategy.strategy;
    let ibkr = deps.ibkr().map_err(StepError::from)?;
    let bars = MarketSource::history(&ibkr, s.conid, s.timeframe, s.bars).await?;
    validate_bars(&bars)
        .map_err(|e| StepError::fatal(format!("invalid bars for conid {}: {e}", s.conid)))?;
    let key = format!("data/{}/{}/bars.json", s.strategy_id, ctx.execution_name);
    deps.blobs()
        .put_json(&key, &bars)
        .await
        .map_err(|e| StepError::transient(e.to_string()))?;
    let (first, last) = (bars[0], bars[bars.len() - 1]);
    tracing::info!(conid = s.conid, rows = bars.len(), "bars fetched from ibkr");
    Ok(FetchMarketDataOutput {
        bars_key: key,
        rows: bars.len(),
        timeframe: s.timeframe.as_str().into(),
        first: first.time().to_rfc3339(),
        last: last.time().to_rfc3339(),
        latest_close: last.close,
        previous_close: bars.len().checked_sub(2).map(|i| bars[i].close),
        latest_volume: last.volume,
        source: "ibkr".into(),
    })
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(Step::FetchMarketData, handle).await
}
