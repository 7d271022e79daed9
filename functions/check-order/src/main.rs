//! check_order: one poll of the order placed by place_order, in the state machine's
//! Wait loop. Records every status transition on the order item, applies new
//! (partial) fills to the position and trades, publishes OrderFilled/PositionClosed,
//! and cancels the order at ORDER_MAX_POLLS, recording why. `done` ends the loop.

use std::sync::Arc;

use serde::Deserialize;
use tradeflow_adapters::Deps;
use tradeflow_adapters::orders::{cancel_order, poll_order};
use tradeflow_adapters::step::{StepCtx, now_rfc3339, serve};
use tradeflow_core::payloads::{CheckOrderOutput, PlaceOrderOutput};
use tradeflow_core::{Step, StepError};

#[derive(Deserialize)]
struct Input {
    place_order: PlaceOrderOutput,
    #[serde(default)]
    check_order: Option<CheckOrderOutput>,
}

fn status_name(s: tradeflow_core::orders::OrderStatus) -> String {
    serde_json::to_value(s)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

async fn handle(
    input: Input,
    _ctx: StepCtx,
    deps: Arc<Deps>,
) -> Result<CheckOrderOutput, StepError> {
    let poll = input.check_order.as_ref().map_or(1, |c| c.poll + 1);
    let Some(placed) = input.place_order.order else {
        return Ok(CheckOrderOutput {
            poll,
            done: true,
            status: "NONE".into(),
            order: None,
            note: Some("no order".into()),
        });
    };
    let book = deps.order_book();
    let ibkr = deps.ibkr()?;
    let now = now_rfc3339();
    let mut order = poll_order(&book, &ibkr, &placed.order_id, &now).await?;
    let max = deps.config.order_max_polls;
    let mut note = None;
    if !order.status.is_final() && poll >= max {
        let why = format!(
            "not filled after {poll} polls {}s apart (ORDER_MAX_POLLS={max})",
            deps.config.order_poll_seconds
        );
        order = cancel_order(&book, &ibkr, &order.order_id, &why, &now).await?;
        note = Some(why);
    }
    // After a cancel request the loop ends even if the broker still says
    // PendingCancel: the position monitor and the next run see the final state.
    let done = order.status.is_final() || note.is_some();
    tracing::info!(poll, done, status = ?order.status, filled = %order.filled_quantity, "order checked");
    Ok(CheckOrderOutput {
        poll,
        done,
        status: status_name(order.status),
        order: Some(order),
        note,
    })
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(Step::CheckOrder, handle).await
}
