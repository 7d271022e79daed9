//! position-monitor: run by an EventBridge rate rule (every minute). Checks every
//! open position against its stop and target at the current IBKR price and exits a
//! position that crossed one, through the same exactly-once path as place_order
//! (cOID from the position id, the trigger and the attempt; the position's exit
//! claim keeps a SELL signal and the monitor from both selling it). Exit orders are
//! tracked here until they end. Triggers are judged only while the strategy's market
//! session is open: outside it the snapshot is a stale or thin pre/post-market print
//! and a market exit would sit until the open anyway. After the checks, at any
//! hour, a bounded pass back-fills commissions IBKR reported after an order's last
//! fill was applied (`tradeflow_adapters::backfill`); its report is part of the
//! run's. Not a workflow step, so no step harness.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use lambda_runtime::{LambdaEvent, service_fn};
use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use serde_json::{Value, json};
use tradeflow_adapters::Deps;
use tradeflow_adapters::backfill as commission_backfill;
use tradeflow_adapters::ibkr::IbkrClient;
use tradeflow_adapters::lease::{LeasedBroker, SubmissionLease};
use tradeflow_adapters::orders::{OrderBook, poll_order, release_exit_claim};
use tradeflow_adapters::step::now_rfc3339;
use tradeflow_core::StepError;
use tradeflow_core::calendar::{Clock, MarketSession};
use tradeflow_core::orders::{
    NewOrder, Order, OrderStatus, OrderStore, Placement, client_order_id, place_once,
};
use tradeflow_core::portfolio::{Position, exit_trigger};

/// Polls of a fresh exit order within the same run (the rest happens next minute).
const FOLLOW_UP_POLLS: u32 = 3;
const FOLLOW_UP_WAIT: Duration = Duration::from_secs(1);

fn store_err(e: tradeflow_core::orders::OrderStoreError) -> StepError {
    tradeflow_core::orders::OrderError::from(e).into()
}

async fn follow_up(
    book: &OrderBook,
    ibkr: &IbkrClient,
    order_id: &str,
) -> Result<Order, StepError> {
    let mut last = None;
    for _ in 0..FOLLOW_UP_POLLS {
        tokio::time::sleep(FOLLOW_UP_WAIT).await;
        let o = poll_order(book, ibkr, order_id, &now_rfc3339()).await?;
        let done = o.status.is_final();
        last = Some(o);
        if done {
            break;
        }
    }
    last.ok_or_else(|| StepError::fatal("no poll made"))
}

async fn check_position(
    book: &OrderBook,
    ibkr: &IbkrClient,
    lease: &SubmissionLease,
    mut p: Position,
    market_open: bool,
    price: Option<Decimal>,
    run_id: &str,
) -> Result<Value, StepError> {
    let now = now_rfc3339();
    let ids = json!({"strategy_id": p.strategy_id, "conid": p.conid, "position_id": p.position_id});
    if let Some(exit_id) = p.exit_order_id.clone()
        && book.get(&exit_id).await.map_err(store_err)?.is_some()
    {
        let o = poll_order(book, ibkr, &exit_id, &now).await?;
        return Ok(
            json!({"position": ids, "action": "tracking_exit", "order_id": exit_id, "status": o.status}),
        );
    }
    if !market_open {
        return Ok(json!({"position": ids, "action": "market_closed"}));
    }
    let Some(price) = price else {
        return Ok(json!({"position": ids, "action": "no_price"}));
    };
    let Some(trigger) = exit_trigger(&p, price) else {
        if p.exit_order_id.is_some() {
            // Claimed by a run that died before creating the order; the trigger is gone.
            p.exit_order_id = None;
            book.save_position(&mut p).await?;
        }
        return Ok(
            json!({"position": ids, "action": "hold", "price": price, "stop": p.stop, "target": p.target}),
        );
    };
    let order_id = match &p.exit_order_id {
        Some(claimed) => claimed.clone(),
        None => {
            let id = client_order_id(
                &p.position_id,
                &format!("exit-{}-{}", trigger.as_str(), p.exit_attempts + 1),
            );
            p.exit_order_id = Some(id.clone());
            p.exit_attempts += 1;
            book.save_position(&mut p).await?;
            id
        }
    };
    let why = format!(
        "{} hit: price {price}, stop {}, target {}",
        trigger.as_str(),
        p.stop.map(|x| x.to_string()).unwrap_or_else(|| "-".into()),
        p.target
            .map(|x| x.to_string())
            .unwrap_or_else(|| "-".into())
    );
    tracing::warn!(strategy_id = %p.strategy_id, conid = p.conid, %why, "exiting position");
    let order = Order::new(
        NewOrder {
            order_id: order_id.clone(),
            strategy_id: p.strategy_id.clone(),
            execution_id: format!("position-monitor/{run_id}"),
            conid: p.conid,
            symbol: p.symbol.clone(),
            side: p.closing_side(),
            // Getting out matters more than the price: a limit could be left behind.
            order_type: "MKT".into(),
            quantity: p.quantity.abs(),
            limit_price: None,
            tif: "DAY".into(),
            stop: None,
            target: None,
            purpose: trigger.purpose().into(),
            position_id: Some(p.position_id.clone()),
            sizing: None,
        },
        OrderStatus::Submitting,
        &now,
        Some(why.clone()),
    );
    // Submissions hold the gateway session alone (IBKR's question/reply must not interleave).
    let broker = LeasedBroker::new(ibkr.clone(), lease.clone());
    let placement = place_once(&broker, book, order, &now).await?;
    let live = placement.is_live();
    let mut status = placement.order().status;
    if let Placement::Rejected(o) = &placement {
        release_exit_claim(book, o).await?;
    }
    if live {
        status = follow_up(book, ibkr, &order_id).await?.status;
    }
    Ok(
        json!({"position": ids, "action": "exit", "trigger": trigger, "reason": why,
              "order_id": order_id, "placed": live, "status": status}),
    )
}

async fn handle(
    event: LambdaEvent<Value>,
    deps: &Deps,
    ibkr: &IbkrClient,
) -> Result<Value, lambda_runtime::Error> {
    let book = deps.order_book();
    let positions = book.open_positions().await.map_err(StepError::from)?;
    let now = Utc::now();
    let mut report = if positions.is_empty() {
        json!({"checked": 0, "failures": 0, "positions": []})
    } else {
        check_positions(&event, deps, ibkr, &book, positions, now).await
    };
    // After the position checks, whatever they did: a separate, bounded pass that
    // never fails the run and does not depend on market hours.
    let backfill = commission_backfill::run(&book, ibkr, Utc::now()).await;
    report["at"] = json!(now.to_rfc3339_opts(SecondsFormat::Secs, true));
    report["commission_backfill"] = backfill;
    Ok(report)
}

async fn check_positions(
    event: &LambdaEvent<Value>,
    deps: &Deps,
    ibkr: &IbkrClient,
    book: &OrderBook,
    positions: Vec<Position>,
    now: chrono::DateTime<Utc>,
) -> Value {
    let clocks = session_clocks(deps, &positions).await;
    let is_open = |p: &Position| clocks.get(&p.strategy_id).is_some_and(|c| c.is_open(now));
    // Prices only for markets that are open: nothing else is judged this run.
    let mut conids: Vec<i64> = positions
        .iter()
        .filter(|p| is_open(p))
        .map(|p| p.conid)
        .collect();
    conids.sort_unstable();
    conids.dedup();
    let prices: HashMap<i64, Decimal> = if conids.is_empty() {
        HashMap::new()
    } else {
        match ibkr.snapshot(&conids).await {
            Ok(quotes) => quotes
                .iter()
                .filter_map(|q| Some((q.conid, Decimal::from_f64(q.price()?)?.round_dp(4))))
                .collect(),
            Err(e) => {
                // Exit orders still get tracked; triggers wait for the next run.
                tracing::warn!(error = %e, "no prices from ibkr");
                HashMap::new()
            }
        }
    };
    let lease = deps.submission_lease();
    let mut report = Vec::new();
    let mut failures = 0;
    for p in positions {
        let price = prices.get(&p.conid).copied();
        let open = is_open(&p);
        let key = json!({"strategy_id": p.strategy_id, "conid": p.conid});
        match check_position(
            book,
            ibkr,
            &lease,
            p,
            open,
            price,
            &event.context.request_id,
        )
        .await
        {
            Ok(r) => report.push(r),
            Err(e) => {
                failures += 1;
                tracing::error!(error = %e, position = %key, "position check failed");
                report.push(json!({"position": key, "action": "error", "error": e.to_string()}));
            }
        }
    }
    json!({"checked": report.len(), "failures": failures, "positions": report})
}

/// The market clock of each position's strategy. A strategy that is gone or whose
/// session does not parse falls back to the default (New York regular hours), so
/// its positions are still watched.
async fn session_clocks(deps: &Deps, positions: &[Position]) -> HashMap<String, Clock> {
    let fallback = MarketSession::default()
        .clock()
        .expect("the default session parses");
    let mut ids: Vec<&str> = positions.iter().map(|p| p.strategy_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    // One read per strategy, all at once: this runs every minute.
    let mut reads = tokio::task::JoinSet::new();
    for id in ids {
        let (store, id) = (deps.store(), id.to_string());
        reads.spawn(async move {
            let read = store.strategy(&id).await;
            (id, read)
        });
    }
    let mut clocks = HashMap::new();
    while let Some(joined) = reads.join_next().await {
        let Ok((id, read)) = joined else {
            continue; // a panicked read: its positions get the fallback below
        };
        let clock = match read {
            Ok(Some(s)) => s.market.clock().unwrap_or_else(|e| {
                tracing::warn!(strategy_id = %id, error = %e, "bad market session; New York hours used");
                fallback
            }),
            Ok(None) => fallback,
            Err(e) => {
                tracing::warn!(strategy_id = %id, error = %e, "strategy unreadable; New York hours used");
                fallback
            }
        };
        clocks.insert(id, clock);
    }
    for p in positions {
        clocks.entry(p.strategy_id.clone()).or_insert(fallback);
    }
    clocks
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tradeflow_adapters::telemetry::init();
    let deps = Deps::from_env().await?;
    let ibkr = deps.ibkr()?;
    lambda_runtime::run(service_fn(|ev| handle(ev, &deps, &ibkr))).await
}
