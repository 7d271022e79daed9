//! update_portfolio: positions with market value and P&L, written as a snapshot.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use tradeflow_adapters::Deps;
use tradeflow_adapters::step::{StepCtx, now_rfc3339, serve};
use tradeflow_core::payloads::{FetchMarketDataOutput, LoadStrategyOutput};
use tradeflow_core::{Step, StepError};

#[derive(Deserialize)]
struct Input {
    load_strategy: LoadStrategyOutput,
    fetch_market_data: FetchMarketDataOutput,
}

async fn handle(input: Input, ctx: StepCtx, deps: Arc<Deps>) -> Result<Value, StepError> {
    let s = &input.load_strategy.strategy;
    let store = deps.store();
    let positions: Vec<Value> = store
        .query(
            &store.tables.positions,
            None,
            "strategy_id",
            &s.strategy_id,
            false,
            None,
        )
        .await?;
    let snapshot = json!({
        "portfolio_id": s.strategy_id,
        "snapshot_at": now_rfc3339(),
        "execution_id": ctx.execution_name,
        "positions": positions,
        "last_price": input.fetch_market_data.latest_close,
        "capital": s.risk.capital,
    });
    store.put(&store.tables.portfolio, &snapshot, None).await?;
    Ok(snapshot)
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(Step::UpdatePortfolio, handle).await
}
