//! place_order: sizes and places the order for a BUY/SELL signal, exactly once.

use std::sync::Arc;

use rust_decimal::Decimal;
use serde::Deserialize;
use tradeflow_adapters::Deps;
use tradeflow_adapters::step::{StepCtx, now_rfc3339, serve};
use tradeflow_core::orders::{Order, OrderStatus, Side, StatusChange, client_order_id};
use tradeflow_core::payloads::{LoadStrategyOutput, ParseSignalOutput, PlaceOrderOutput};
use tradeflow_core::signal::Action;
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
    let sig = &input.parse_signal.signal;
    let poll_seconds = deps.config.order_poll_seconds;
    let side = match sig.action {
        Action::Buy => Side::Buy,
        Action::Sell => Side::Sell,
        Action::Hold => {
            return Ok(PlaceOrderOutput {
                placed: false,
                reason: "HOLD".into(),
                order: None,
                poll_seconds,
            });
        }
    };
    let (Some(entry), Some(stop)) = (sig.entry, sig.stop) else {
        return Ok(PlaceOrderOutput {
            placed: false,
            reason: "signal without entry/stop".into(),
            order: None,
            poll_seconds,
        });
    };
    let risk_per_share = (entry - stop).abs();
    if risk_per_share.is_zero() {
        return Ok(PlaceOrderOutput {
            placed: false,
            reason: "zero risk distance".into(),
            order: None,
            poll_seconds,
        });
    }
    let qty = ((s.risk.capital * s.risk.risk_per_trade) / risk_per_share)
        .min(s.risk.max_position_value / entry)
        .floor();
    if qty <= Decimal::ZERO {
        return Ok(PlaceOrderOutput {
            placed: false,
            reason: "quantity rounds to 0".into(),
            order: None,
            poll_seconds,
        });
    }
    if !s.dry_run {
        return Err(StepError::fatal(
            "live ordering needs the IBKR client (not configured in this build)",
        ));
    }
    let now = now_rfc3339();
    let order = Order {
        order_id: client_order_id(&ctx.execution_name, "entry"),
        strategy_id: s.strategy_id.clone(),
        execution_id: ctx.execution_name.clone(),
        conid: s.conid,
        symbol: s.symbol.clone(),
        side,
        order_type: "LMT".into(),
        quantity: qty,
        limit_price: Some(entry),
        tif: "DAY".into(),
        status: OrderStatus::DryRun,
        broker_order_id: None,
        filled_quantity: Decimal::ZERO,
        avg_fill_price: None,
        commission: Decimal::ZERO,
        stop: sig.stop,
        target: sig.target,
        created_at: now.clone(),
        updated_at: now.clone(),
        history: vec![StatusChange {
            status: OrderStatus::DryRun,
            at: now,
            note: Some("dry run: not sent".into()),
        }],
        purpose: "entry".into(),
    };
    let store = deps.store();
    match store
        .put(&store.tables.orders, &order, Some("order_id"))
        .await
    {
        Ok(()) | Err(tradeflow_adapters::store::StoreError::AlreadyExists { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(PlaceOrderOutput {
        placed: false,
        reason: "dry run: order recorded, not sent".into(),
        order: Some(order),
        poll_seconds,
    })
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(Step::PlaceOrder, handle).await
}
