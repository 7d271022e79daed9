//! position-monitor: run by an EventBridge rate rule (every minute). Exits open
//! positions whose price crossed their stop or target while their market is open,
//! then reconciles the books with the broker (working orders to their end, stale
//! claims released, positions compared and differences reported), then back-fills
//! late commissions: `tradeflow_adapters::monitor`. Not a workflow step, so no step
//! harness; the run's report is its answer.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use tradeflow_adapters::Deps;
use tradeflow_adapters::ibkr::IbkrClient;

async fn handle(
    event: LambdaEvent<Value>,
    deps: &Deps,
    ibkr: &IbkrClient,
) -> Result<Value, lambda_runtime::Error> {
    Ok(tradeflow_adapters::monitor::run(deps, ibkr, &event.context.request_id).await)
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tradeflow_adapters::telemetry::init();
    let deps = Deps::for_function("position-monitor").await?;
    let ibkr = deps.ibkr()?;
    lambda_runtime::run(service_fn(|ev| handle(ev, &deps, &ibkr))).await
}
