//! check_order: one poll of the order placed by place_order, in the state machine's
//! Wait loop (`tradeflow_core::tracking`). Records every status transition, applies
//! new (partial) fills, publishes OrderFilled/PositionClosed, cancels the order at
//! ORDER_MAX_POLLS and keeps polling until it is settled (a Filled report without an
//! average price is not). `done` ends the loop; an order still unsettled a few polls
//! after its cancel stays in the orders' `working` index for the reconciler.

use std::sync::Arc;

use serde::Deserialize;
use tradeflow_adapters::Deps;
use tradeflow_adapters::step::{StepCtx, serve};
use tradeflow_core::payloads::{CheckOrderOutput, PlaceOrderOutput};
use tradeflow_core::tracking::{Verdict, cancel, poll, verdict};
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
    let poll_no = input.check_order.as_ref().map_or(1, |c| c.poll + 1);
    let Some(placed) = input.place_order.order else {
        let note = Some("no order".into());
        return Ok(CheckOrderOutput {
            poll: poll_no,
            done: true,
            status: "NONE".into(),
            order: None,
            note,
        });
    };
    let (books, ibkr) = (deps.books(), deps.ibkr()?);
    let (max, every) = (deps.config.order_max_polls, deps.config.order_poll_seconds);
    let now = chrono::Utc::now();
    let mut order = poll(&ibkr, &books, &placed.order_id, now).await?;
    let (done, note) = match verdict(&order, poll_no, max, every) {
        Verdict::Done => (true, None),
        Verdict::Wait => (false, None),
        Verdict::Cancel(why) => {
            order = cancel(&ibkr, &books, &order.order_id, &why, now).await?;
            (order.is_settled(), Some(why))
        }
        Verdict::HandOff(why) => (true, Some(why)),
    };
    tracing::info!(poll = poll_no, done, status = ?order.status, filled = %order.filled_quantity, "order checked");
    Ok(CheckOrderOutput {
        poll: poll_no,
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
