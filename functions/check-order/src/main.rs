//! check_order: one poll of the order placed by place_order; `done` ends the Wait loop.

use std::sync::Arc;

use serde::Deserialize;
use tradeflow_adapters::Deps;
use tradeflow_adapters::step::{StepCtx, serve};
use tradeflow_core::payloads::{CheckOrderOutput, PlaceOrderOutput};
use tradeflow_core::{Step, StepError};

#[derive(Deserialize)]
struct Input {
    place_order: PlaceOrderOutput,
    #[serde(default)]
    check_order: Option<CheckOrderOutput>,
}

async fn handle(
    input: Input,
    _ctx: StepCtx,
    deps: Arc<Deps>,
) -> Result<CheckOrderOutput, StepError> {
    let poll = input.check_order.as_ref().map_or(1, |c| c.poll + 1);
    let Some(order) = input.place_order.order else {
        return Ok(CheckOrderOutput {
            poll,
            done: true,
            status: "NONE".into(),
            order: None,
            note: Some("no order".into()),
        });
    };
    let done = order.status.is_final() || poll >= deps.config.order_max_polls;
    Ok(CheckOrderOutput {
        poll,
        done,
        status: format!("{:?}", order.status),
        order: Some(order),
        note: None,
    })
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(Step::CheckOrder, handle).await
}
