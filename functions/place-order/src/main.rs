//! place_order: turns a BUY/SELL signal into one risk-sized limit order (DAY), exactly
//! once per execution: the cOID comes from the execution and the leg, the order item
//! is created before the broker call, and a retry resumes that item (reconciling
//! with the broker by cOID) instead of sending another order. Dry-run strategies
//! record the would-be order without sending it.

use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use serde::Deserialize;
use tradeflow_adapters::Deps;
use tradeflow_adapters::ibkr::IbkrClient;
use tradeflow_adapters::lease::LeasedBroker;
use tradeflow_adapters::orders::OrderBook;
use tradeflow_adapters::step::{StepCtx, now_rfc3339, serve};
use tradeflow_core::orders::{
    Intent, NewOrder, Order, OrderStatus, OrderStore, Placement, client_order_id, decide,
    place_once, purpose,
};
use tradeflow_core::payloads::{LoadStrategyOutput, ParseSignalOutput, PlaceOrderOutput};
use tradeflow_core::risk::{EntryRequest, size_entry};
use tradeflow_core::signal::{Action, Signal};
use tradeflow_core::strategy::Strategy;
use tradeflow_core::{Step, StepError};

#[derive(Deserialize)]
struct Input {
    load_strategy: LoadStrategyOutput,
    parse_signal: ParseSignalOutput,
}

fn output(p: Placement, poll_seconds: u32) -> PlaceOrderOutput {
    let o = p.order();
    let what = format!(
        "{} {} {} {}{} {}",
        o.side.as_str(),
        o.quantity,
        o.symbol,
        o.order_type,
        o.limit_price.map(|p| format!(" {p}")).unwrap_or_default(),
        o.tif
    );
    let (placed, reason) = match &p {
        Placement::Placed(_) => (true, format!("placed: {what}")),
        Placement::AlreadyPlaced(_) => (
            true,
            format!("already placed by an earlier attempt: {what}"),
        ),
        Placement::Rejected(o) => (
            false,
            format!(
                "rejected: {}",
                o.history
                    .last()
                    .and_then(|h| h.note.clone())
                    .unwrap_or_default()
            ),
        ),
        Placement::DryRun(_) => (false, format!("dry run: order recorded, not sent: {what}")),
    };
    PlaceOrderOutput {
        placed,
        reason,
        order: Some(p.order().clone()),
        poll_seconds,
    }
}

fn nothing(reason: String, poll_seconds: u32) -> PlaceOrderOutput {
    tracing::info!(%reason, "no order");
    PlaceOrderOutput {
        placed: false,
        reason,
        order: None,
        poll_seconds,
    }
}

/// Cash the account can spend: the broker ledger's balance in the strategy's
/// currency (else the base currency); the strategy capital in a dry run.
async fn available_cash(s: &Strategy, ibkr: &IbkrClient) -> Result<Decimal, StepError> {
    if s.dry_run {
        return Ok(s.risk.capital);
    }
    let ledger = ibkr.ledger().await?;
    let entry = ledger
        .get(&s.currency)
        .or_else(|| ledger.get("BASE"))
        .ok_or_else(|| StepError::fatal(format!("no {} or BASE ledger at IBKR", s.currency)))?;
    Ok(Decimal::from_f64(entry.cashbalance)
        .unwrap_or_default()
        .round_dp(2))
}

async fn entry_order(
    s: &Strategy,
    sig: &Signal,
    side: tradeflow_core::orders::Side,
    order_id: String,
    execution_id: &str,
    book: &OrderBook,
    ibkr: &IbkrClient,
) -> Result<Result<NewOrder, String>, StepError> {
    // The kill switch's "today" is the exchange's trading day, not the UTC date.
    let clock = s
        .market
        .clock()
        .map_err(|e| StepError::fatal(format!("strategy {}: market.{e}", s.strategy_id)))?;
    let now = Utc::now();
    let since = clock
        .trading_day_lower_bound(now)
        .to_rfc3339_opts(SecondsFormat::Millis, true);
    let recent = book.trades_closed_since(&s.strategy_id, &since).await?;
    let realized_today = clock.realized_on_trading_day(&recent, now);
    let open_positions = book
        .positions_of(&s.strategy_id)
        .await?
        .iter()
        .filter(|p| p.is_open())
        .count() as u32;
    let req = EntryRequest {
        side,
        entry: sig.entry,
        stop: sig.stop,
        confidence: sig.confidence,
        available_cash: available_cash(s, ibkr).await?,
        open_positions,
        realized_today,
    };
    let sizing = match size_entry(&s.risk, &req) {
        Ok(sz) => sz,
        Err(no) => return Ok(Err(no.to_string())),
    };
    tracing::info!(qty = %sizing.quantity, limited_by = %sizing.limited_by, "entry sized");
    Ok(Ok(NewOrder {
        order_id,
        strategy_id: s.strategy_id.clone(),
        execution_id: execution_id.to_string(),
        conid: s.conid,
        symbol: s.symbol.clone(),
        side,
        order_type: "LMT".into(),
        quantity: sizing.quantity,
        limit_price: Some(sizing.entry),
        tif: "DAY".into(),
        stop: sig.stop,
        target: sig.target,
        purpose: purpose::ENTRY.into(),
        position_id: None,
        sizing: Some(sizing),
    }))
}

async fn handle(
    input: Input,
    ctx: StepCtx,
    deps: Arc<Deps>,
) -> Result<PlaceOrderOutput, StepError> {
    let s = &input.load_strategy.strategy;
    let sig = &input.parse_signal.signal;
    let poll_seconds = deps.config.order_poll_seconds;
    if sig.action == Action::Hold {
        return Ok(nothing("HOLD".into(), poll_seconds));
    }
    let book = deps.order_book();
    let ibkr = deps.ibkr()?;
    // Submissions hold the gateway session alone (IBKR's question/reply must not
    // interleave); the strategy may confirm questions beyond the deployment's.
    let broker = LeasedBroker::new(
        ibkr.with_strategy_confirm(&s.confirm_message_ids),
        deps.submission_lease(),
    );
    let now = now_rfc3339();
    let execution_id = &ctx.execution_name;
    // A retry resumes the order an earlier attempt created, whatever changed since.
    for leg in ["entry", "exit"] {
        let id = client_order_id(execution_id, leg);
        if let Some(existing) = book.get(&id).await.map_err(store_err)? {
            tracing::info!(order_id = %id, status = ?existing.status, "resuming the order of an earlier attempt");
            let p = place_once(&broker, &book, existing, &now).await?;
            return Ok(output(p, poll_seconds));
        }
    }
    let position = book.position(&s.strategy_id, s.conid).await?;
    let intent = decide(sig.action, position.as_ref(), s.risk.allow_short);
    let Some(leg) = intent.leg() else {
        let Intent::Nothing(why) = intent else {
            return Err(StepError::fatal("intent without a leg"));
        };
        return Ok(nothing(why, poll_seconds));
    };
    let order_id = client_order_id(execution_id, leg);
    let new = match intent {
        Intent::Enter(side) => {
            match entry_order(s, sig, side, order_id, execution_id, &book, &ibkr).await? {
                Ok(n) => n,
                Err(why) => return Ok(nothing(why, poll_seconds)),
            }
        }
        Intent::Exit { side, quantity } => {
            let Some(mut p) = position else {
                return Err(StepError::fatal("exit without a position"));
            };
            if let Some(other) = p.exit_order_id.as_ref().filter(|x| **x != order_id) {
                return Ok(nothing(
                    format!("exit order {other} is already working on the position"),
                    poll_seconds,
                ));
            }
            if !s.dry_run {
                // The claim keeps the position monitor from selling the same shares.
                p.exit_order_id = Some(order_id.clone());
                p.exit_attempts += 1;
                book.save_position(&mut p).await?;
            }
            NewOrder {
                order_id,
                strategy_id: s.strategy_id.clone(),
                execution_id: execution_id.clone(),
                conid: s.conid,
                symbol: s.symbol.clone(),
                side,
                order_type: if sig.entry.is_some() { "LMT" } else { "MKT" }.into(),
                quantity,
                limit_price: sig.entry,
                tif: "DAY".into(),
                stop: None,
                target: None,
                purpose: purpose::SIGNAL_EXIT.into(),
                position_id: Some(p.position_id.clone()),
                sizing: None,
            }
        }
        Intent::Nothing(why) => return Ok(nothing(why, poll_seconds)),
    };
    let (status, note) = if s.dry_run {
        (OrderStatus::DryRun, Some("dry run: not sent".to_string()))
    } else {
        (OrderStatus::Submitting, None)
    };
    let order = Order::new(new, status, &now, note);
    let placement = place_once(&broker, &book, order, &now).await?;
    if let Placement::Rejected(o) = &placement {
        tradeflow_adapters::orders::release_exit_claim(&book, o).await?;
    }
    Ok(output(placement, poll_seconds))
}

fn store_err(e: tradeflow_core::orders::OrderStoreError) -> StepError {
    tradeflow_core::orders::OrderError::from(e).into()
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(Step::PlaceOrder, handle).await
}
