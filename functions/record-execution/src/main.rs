//! record_execution: marks the execution SUCCEEDED with its signal and order summary.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use tradeflow_adapters::Deps;
use tradeflow_adapters::step::finished;
use tradeflow_adapters::step::{StepCtx, now_rfc3339, serve};
use tradeflow_core::execution::{Execution, ExecutionStatus};
use tradeflow_core::payloads::{CheckOrderOutput, ParseSignalOutput, PlaceOrderOutput};
use tradeflow_core::{Step, StepError};

#[derive(Deserialize)]
struct Input {
    parse_signal: ParseSignalOutput,
    #[serde(default)]
    place_order: Option<PlaceOrderOutput>,
    #[serde(default)]
    check_order: Option<CheckOrderOutput>,
}

async fn handle(input: Input, ctx: StepCtx, deps: Arc<Deps>) -> Result<Value, StepError> {
    let order = input
        .check_order
        .and_then(|c| c.order)
        .or_else(|| input.place_order.as_ref().and_then(|p| p.order.clone()));
    let summary = json!({
        "signal": input.parse_signal.signal,
        "order_id": order.as_ref().map(|o| o.order_id.clone()),
        "order_status": order.as_ref().map(|o| o.status),
        "place_order_reason": input.place_order.map(|p| p.reason),
    });
    let finished_at = now_rfc3339();
    deps.store()
        .finish_execution(&Execution {
            summary: Some(summary.clone()),
            ..finished(&ctx, ExecutionStatus::Succeeded, &finished_at)
        })
        .await?;
    Ok(json!({"status": "SUCCEEDED", "finished_at": finished_at, "summary": summary}))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(Step::RecordExecution, handle).await
}
