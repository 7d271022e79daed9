//! Exits: the position monitor's stop and target checks. A position whose price
//! crossed its stop or target is closed with a market order through the same
//! exactly-once placement as the workflow (cOID from the position, the trigger and
//! the attempt); the position's exit claim keeps a SELL signal and the monitor from
//! both selling it, and the order item is only created while that claim holds.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::books::Books;
use crate::orders::{
    Broker, NewOrder, Order, OrderError, OrderStatus, OrderStoreError, Placement, client_order_id,
    place_once,
};
use crate::portfolio::{Position, exit_trigger};
use crate::tracking::{free_claims, poll, stamp};

/// Checks one watched position at `price` and exits it when a trigger hit.
/// Returns what it did, for the run's report.
///
/// # Errors
/// Broker and store errors (the next minute's run tries again).
pub async fn check_position<B: Broker, S: Books>(
    broker: &B,
    books: &S,
    mut p: Position,
    market_open: bool,
    price: Option<Decimal>,
    run_id: &str,
    now: DateTime<Utc>,
) -> Result<Value, OrderError> {
    let at = stamp(now);
    let ids = json!({"strategy_id": p.strategy_id, "conid": p.conid, "position_id": p.position_id});
    if let Some(exit_id) = p.exit_order_id.clone()
        && books.get(&exit_id).await?.is_some()
    {
        let o = poll(broker, books, &exit_id, now).await?;
        return Ok(
            json!({"position": ids, "action": "tracking_exit", "order_id": exit_id, "status": o.status}),
        );
    }
    if let Some(entry) = &p.entry_order_id {
        return Ok(json!({"position": ids, "action": "entry_working", "order_id": entry}));
    }
    if !p.is_open() {
        return Ok(json!({"position": ids, "action": "flat"}));
    }
    if !market_open {
        return Ok(json!({"position": ids, "action": "market_closed"}));
    }
    let Some(price) = price else {
        return Ok(json!({"position": ids, "action": "no_price"}));
    };
    let Some(trigger) = exit_trigger(&p, price) else {
        return Ok(
            json!({"position": ids, "action": "hold", "price": price, "stop": p.stop, "target": p.target}),
        );
    };
    let order_id = match &p.exit_order_id {
        // Claimed by a run that died before creating the order: that cOID is used,
        // so a late creation by the dead run and this one are the same order.
        Some(claimed) => claimed.clone(),
        None => {
            let id = client_order_id(
                &p.position_id,
                &format!("exit-{}-{}", trigger.as_str(), p.exit_attempts + 1),
            );
            p.exit_order_id = Some(id.clone());
            p.exit_claimed_at = Some(at.clone());
            p.exit_attempts += 1;
            books.save_position(&mut p).await?;
            id
        }
    };
    let why = format!(
        "{} hit: price {price}, stop {}, target {}",
        trigger.as_str(),
        p.stop.map_or_else(|| "-".into(), |x| x.to_string()),
        p.target.map_or_else(|| "-".into(), |x| x.to_string()),
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
        &at,
        Some(why.clone()),
    );
    let placement = match place_once(broker, books, order, &at).await {
        Ok(pl) => pl,
        Err(OrderError::Store(OrderStoreError::ClaimLost(_))) => {
            return Ok(json!({"position": ids, "action": "claim_lost", "order_id": order_id}));
        }
        Err(e) => return Err(e),
    };
    if let Placement::Rejected(o) = &placement {
        free_claims(books, &o.strategy_id, o.conid, None, Some(&o.order_id), now).await?;
    }
    Ok(
        json!({"position": ids, "action": "exit", "trigger": trigger, "reason": why,
              "order_id": order_id, "placed": placement.is_live(), "status": placement.order().status}),
    )
}
