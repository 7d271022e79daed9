//! place_order: turns a BUY/SELL signal into at most one order per signal leg
//! (`tradeflow_core::placement`): an entry takes its claim on the contract before
//! it is sized against the strategy's and the account's limits; the cOID comes
//! from the execution and the leg, and a retry resumes the order an earlier
//! attempt created instead of sending another. Dry-run strategies record the
//! would-be order without sending it.

use std::sync::Arc;

use serde::Deserialize;
use tradeflow_adapters::Deps;
use tradeflow_adapters::lease::LeasedBroker;
use tradeflow_adapters::step::{StepCtx, serve};
use tradeflow_core::payloads::{LoadStrategyOutput, ParseSignalOutput, PlaceOrderOutput};
use tradeflow_core::placement::place_signal;
use tradeflow_core::{Step, StepError};

#[derive(Deserialize)]
struct Input {
    load_strategy: LoadStrategyOutput,
    parse_signal: ParseSignalOutput,
}

async fn handle(
    input: Input,
    ctx: StepCtx,
    deps: Arc<Deps>,
) -> Result<PlaceOrderOutput, StepError> {
    let s = &input.load_strategy.strategy;
    let books = deps.books();
    // Submissions hold the gateway session alone (IBKR's question/reply must not
    // interleave); the strategy may confirm questions beyond the deployment's.
    let broker = LeasedBroker::new(
        deps.ibkr()?.with_strategy_confirm(&s.confirm_message_ids),
        deps.submission_lease(),
    );
    let signal = &input.parse_signal.signal;
    let now = chrono::Utc::now();
    let placed = place_signal(&broker, &books, s, signal, &ctx.execution_name, now).await?;
    Ok(placed.into_output(deps.config.order_poll_seconds))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(Step::PlaceOrder, handle).await
}
