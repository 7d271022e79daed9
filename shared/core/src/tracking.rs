//! Tracking: an order followed to its end at the broker, whoever placed it. One
//! poll reads the broker's view, records the status transition, applies fills not
//! applied yet (order, position, trade and the account's day in one commit), frees
//! the claims of a settled order, and publishes due domain events. check_order, the
//! position monitor and the reconciler all poll through here.
//!
//! When the gateway's session no longer knows an order (IBKR answers 503 on order
//! status for orders of an earlier session, and a reset forgets live orders), the
//! order is looked up by cOID, then by its executions (`order_ref` = cOID); one the
//! session cannot show is cancelled by id and closed with the fills its executions
//! show, so nothing is left working that nobody can follow.

use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::account::account_day;
use crate::books::{Books, ClaimChange, FillCommit};
use crate::orders::{
    Broker, BrokerError, BrokerExecution, BrokerOrder, ExecutedFills, Order, OrderError,
    OrderStatus, StatusChange, with_commission,
};
use crate::portfolio::apply_fill;

/// Event source of tradeflow's domain events (rules match on it).
pub const EVENT_SOURCE: &str = "tradeflow";
pub const ORDER_FILLED: &str = "OrderFilled";
pub const POSITION_CLOSED: &str = "PositionClosed";
/// A difference between the broker's positions and the books (I4).
pub const POSITION_MISMATCH: &str = "PositionMismatch";

/// How long an order may stay SUBMITTING without the broker listing it before it
/// counts as never sent. The item is written (or touched) right before the broker
/// call; that call waits ≤ 30 s for the submission lease, then sends the order and
/// up to two replies at ≤ 15 s each (the IBKR client's request timeout): 75 s.
/// 120 s leaves room for slow DynamoDB writes; after it no attempt can still be
/// sending (place_order's own timeout ends any attempt at 150 s from its start,
/// and the item is touched again before a resend).
pub const SUBMIT_GRACE_SECONDS: i64 = 120;

/// RFC 3339 with milliseconds, as every item's timestamps.
pub fn stamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Seconds from `since` (RFC 3339) to `now`; an unparsable time counts as old.
pub fn age_seconds(since: &str, now: DateTime<Utc>) -> i64 {
    DateTime::parse_from_rfc3339(since).map_or(i64::MAX, |t| (now - t.to_utc()).num_seconds())
}

/// The executions of `order` (by cOID, else by broker id) summed, if any.
pub fn executed(executions: &[BrokerExecution], order: &Order) -> Option<ExecutedFills> {
    let mut seen = std::collections::HashSet::new();
    let mut broker_order_id: Option<String> = None;
    let (mut filled, mut value, mut commission) =
        (Decimal::ZERO, Decimal::ZERO, Some(Decimal::ZERO));
    for e in executions.iter().filter(|e| {
        e.order_ref == order.order_id
            || (e.order_ref.is_empty()
                && e.broker_order_id.is_some()
                && e.broker_order_id == order.broker_order_id)
    }) {
        // IBKR may list an execution more than once across days.
        if !e.execution_id.is_empty() && !seen.insert(e.execution_id.as_str()) {
            continue;
        }
        if broker_order_id.is_none() {
            broker_order_id.clone_from(&e.broker_order_id);
        }
        filled += e.size;
        value += e.size * e.price;
        commission = match (commission, e.commission) {
            (Some(c), Some(x)) => Some(c + x),
            _ => None,
        };
    }
    (filled > Decimal::ZERO).then(|| ExecutedFills {
        broker_order_id,
        filled,
        avg_price: Some((value / filled).round_dp(6).normalize()),
        commission,
    })
}

fn report_from(
    order: &Order,
    fills: Option<ExecutedFills>,
    status: OrderStatus,
    raw: &str,
) -> BrokerOrder {
    let broker_order_id = order
        .broker_order_id
        .clone()
        .or_else(|| fills.as_ref().and_then(|f| f.broker_order_id.clone()))
        .unwrap_or_default();
    let (filled, avg_price, commission) = fills.map_or((Decimal::ZERO, None, None), |f| {
        (f.filled, f.avg_price, f.commission)
    });
    let status = if filled >= order.quantity && filled > Decimal::ZERO {
        OrderStatus::Filled
    } else {
        status
    };
    BrokerOrder {
        broker_order_id,
        status,
        raw_status: raw.to_string(),
        filled,
        avg_price,
        commission,
    }
}

/// What became of an order its broker id no longer finds.
async fn forgotten<B: Broker>(broker: &B, order: &Order) -> Result<BrokerOrder, OrderError> {
    if let Some(found) = broker.find_by_ref(&order.order_id).await? {
        return Ok(found);
    }
    let fills = executed(&broker.executions(7).await?, order);
    if fills.as_ref().is_some_and(|f| f.filled >= order.quantity) {
        return Ok(report_from(
            order,
            fills,
            OrderStatus::Filled,
            "Filled (from executions)",
        ));
    }
    // Nobody can follow it any more: make sure it stops, keep what it filled.
    if let Some(id) = &order.broker_order_id {
        match broker.cancel(id).await {
            Ok(()) | Err(BrokerError::Failed(_) | BrokerError::Rejected(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(report_from(
        order,
        fills,
        OrderStatus::Cancelled,
        "unknown to the gateway's session: cancelled by id, fills from executions",
    ))
}

/// The broker's view of `order`, `None` while the broker does not list it.
async fn broker_view<B: Broker>(
    broker: &B,
    order: &Order,
) -> Result<Option<BrokerOrder>, OrderError> {
    match &order.broker_order_id {
        Some(id) => match broker.status(id).await {
            Ok(r) => Ok(Some(r)),
            Err(BrokerError::NotInSession(_)) => forgotten(broker, order).await.map(Some),
            Err(e) => Err(e.into()),
        },
        None => {
            if let Some(found) = broker.find_by_ref(&order.order_id).await? {
                return Ok(Some(found));
            }
            // Live orders forget an earlier session's orders; executions do not.
            let fills = executed(&broker.executions(7).await?, order);
            Ok(fills.map(|f| {
                report_from(
                    order,
                    Some(f),
                    OrderStatus::Submitted,
                    "listed only in executions",
                )
            }))
        }
    }
}

/// One poll of an order (see the module doc). Returns the order as stored.
///
/// # Errors
/// `Broker(Unavailable)` and store conflicts are transient; a missing order or a
/// failed broker call is not.
#[tracing::instrument(skip_all, fields(order_id))]
pub async fn poll<B: Broker, S: Books>(
    broker: &B,
    books: &S,
    order_id: &str,
    now: DateTime<Utc>,
) -> Result<Order, OrderError> {
    let at = stamp(now);
    let mut order = books
        .get(order_id)
        .await?
        .ok_or_else(|| OrderError::Missing(order_id.to_string()))?;
    if order.status == OrderStatus::DryRun {
        return Ok(order);
    }
    if !order.is_settled() {
        match broker_view(broker, &order).await? {
            Some(report) => apply_report(broker, books, &mut order, report, now).await?,
            None if order.status == OrderStatus::Submitting
                && age_seconds(&order.updated_at, now) >= SUBMIT_GRACE_SECONDS =>
            {
                order.transition(
                    OrderStatus::Cancelled,
                    &at,
                    Some(format!(
                        "never reached the broker: not listed by cOID nor in executions {SUBMIT_GRACE_SECONDS} s after the last attempt"
                    )),
                );
                order.refresh_working();
                books.save(&mut order).await?;
            }
            None => {
                tracing::info!(order_id, "order not listed at the broker yet");
                return Ok(order);
            }
        }
    }
    if order.is_settled() {
        let id = Some(order.order_id.as_str());
        let (entry, exit) = if order.is_entry() {
            (id, None)
        } else {
            (None, id)
        };
        free_claims(books, &order.strategy_id, order.conid, entry, exit, now).await?;
    }
    publish_due(books, &mut order).await?;
    Ok(order)
}

async fn apply_report<B: Broker, S: Books>(
    broker: &B,
    books: &S,
    order: &mut Order,
    report: BrokerOrder,
    now: DateTime<Utc>,
) -> Result<(), OrderError> {
    let at = stamp(now);
    let report = with_commission(broker, order, report).await;
    let before = order.clone();
    order.observe(&report, &at);
    if let Some(note) = report
        .raw_status
        .contains("executions")
        .then(|| report.raw_status.clone())
    {
        order.history.push(StatusChange {
            status: order.status,
            at: at.clone(),
            note: Some(note),
        });
    }
    match order.unapplied_fill(&report, &at) {
        Some(fill) => {
            let current = books.position(&order.strategy_id, order.conid).await?;
            let outcome = apply_fill(current.as_ref(), order, &fill);
            order.mark_applied(&fill);
            if let Some(closed) = &outcome.closed {
                order.closed_position_id = Some(closed.clone());
            }
            order.refresh_working();
            tracing::info!(qty = %fill.quantity, price = %fill.price, position_qty = %outcome.position.quantity, "fill applied");
            let realized = outcome
                .trade
                .as_ref()
                .map(|t| (account_day(now), t.realized_pnl));
            let mut commit = FillCommit {
                order: order.clone(),
                outcome,
                previous_position_version: current.map(|p| p.version),
                realized,
            };
            books.commit_fill(&mut commit).await?;
            *order = commit.order;
        }
        None if *order != before => {
            order.refresh_working();
            books.save(order).await?;
        }
        None => {}
    }
    Ok(())
}

/// Frees what a (strategy, contract) no longer needs, all idempotent: the entry
/// claim if it is still `entry`'s, the exit claim if it is still `exit`'s (the
/// order settled, or the reconciler found the claim stale), and the contract claim
/// once the strategy is flat with nothing working.
///
/// # Errors
/// Store errors; a conflict means someone else changed the position: next cycle.
pub async fn free_claims<S: Books>(
    books: &S,
    strategy_id: &str,
    conid: i64,
    entry: Option<&str>,
    exit: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<String>, OrderError> {
    let mut freed = Vec::new();
    let Some(mut p) = books.position(strategy_id, conid).await? else {
        return Ok(freed);
    };
    if entry.is_some() && p.entry_order_id.as_deref() == entry {
        freed.push(format!("entry claim {}", entry.unwrap_or_default()));
        p.entry_order_id = None;
        p.entry_claimed_at = None;
    }
    if exit.is_some() && p.exit_order_id.as_deref() == exit {
        freed.push(format!("exit claim {}", exit.unwrap_or_default()));
        p.exit_order_id = None;
        p.exit_claimed_at = None;
    }
    let claim = books
        .contract_claims()
        .await?
        .into_iter()
        .find(|c| c.conid == conid && c.holder == strategy_id);
    let flat = !p.is_open() && p.entry_order_id.is_none() && p.exit_order_id.is_none();
    let change = match claim {
        Some(c) if flat => Some(ClaimChange::Release(c)),
        Some(c) if c.entry_order_id.is_some() && p.entry_order_id.is_none() => {
            Some(ClaimChange::SettleEntry(c))
        }
        _ => None,
    };
    match (&change, freed.is_empty()) {
        (Some(ch), _) => {
            if let ClaimChange::Release(c) = ch {
                freed.push(format!("contract {} released by {}", c.conid, c.holder));
            }
            books.change_claim(&mut p, ch).await?;
        }
        (None, false) => books.save_position(&mut p).await?,
        (None, true) => {}
    }
    if !freed.is_empty() {
        tracing::info!(strategy_id, conid, ?freed, at = %stamp(now), "claims freed");
    }
    Ok(freed)
}

/// Cancels a working order at the broker and records why, then polls it once more
/// so fills that happened before the cancel are applied.
///
/// # Errors
/// As `poll`.
pub async fn cancel<B: Broker, S: Books>(
    broker: &B,
    books: &S,
    order_id: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Order, OrderError> {
    let mut order = books
        .get(order_id)
        .await?
        .ok_or_else(|| OrderError::Missing(order_id.to_string()))?;
    if order.status.is_final() {
        return poll(broker, books, order_id, now).await;
    }
    let note = match &order.broker_order_id {
        Some(id) => match broker.cancel(id).await {
            Ok(()) => format!("cancel requested: {reason}"),
            Err(e @ BrokerError::Unavailable(_)) => return Err(e.into()),
            // Finished in the meantime (e.g. filled): the poll below records it.
            Err(e) => format!("cancel refused ({e}); wanted because {reason}"),
        },
        None => format!("no broker order id to cancel yet: {reason}"),
    };
    tracing::warn!(order_id, %note, "cancelling order");
    order.history.push(StatusChange {
        status: order.status,
        at: stamp(now),
        note: Some(note),
    });
    books.save(&mut order).await?;
    poll(broker, books, order_id, now).await
}

/// What check_order does after a poll.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Settled: every fill applied, no more will come.
    Done,
    /// Still working (or a fill still lacks its price): poll again.
    Wait,
    /// Working after the allowed polls: cancel it, then keep polling until settled.
    Cancel(String),
    /// Still not settled long after the cancel: the reconciler follows it from here
    /// (it stays in the `working` index), so the loop may end.
    HandOff(String),
}

/// Polls check_order keeps making after its cancel before handing the order over.
pub const POLLS_AFTER_CANCEL: u32 = 5;

/// The loop's decision after poll number `poll` (1-based) of at most `max` before
/// a cancel. Settled, not `is_final`: a Filled report without an average price has
/// fills nobody applied yet.
pub fn verdict(order: &Order, poll: u32, max: u32, poll_seconds: u32) -> Verdict {
    if order.status == OrderStatus::DryRun || order.is_settled() {
        return Verdict::Done;
    }
    if poll >= max.saturating_add(POLLS_AFTER_CANCEL) {
        return Verdict::HandOff(format!(
            "not settled {POLLS_AFTER_CANCEL} polls after its cancel ({:?}); the position monitor's reconciler follows it",
            order.status
        ));
    }
    if poll == max && !order.status.is_final() {
        return Verdict::Cancel(format!(
            "not filled after {poll} polls {poll_seconds}s apart (ORDER_MAX_POLLS={max})"
        ));
    }
    Verdict::Wait
}

/// The event payload: ids to route and link on, the figures to notify with.
fn order_event(o: &Order) -> Value {
    json!({
        "event_id": format!("{}#{}", ORDER_FILLED, o.order_id),
        "order_id": o.order_id, "broker_order_id": o.broker_order_id,
        "strategy_id": o.strategy_id, "execution_id": o.execution_id,
        "symbol": o.symbol, "conid": o.conid, "side": o.side, "purpose": o.purpose,
        "quantity": o.filled_quantity, "avg_fill_price": o.avg_fill_price,
    })
}

/// Publishes the events an order's state calls for and that were not published yet
/// (a crash between commit and publish is repaired by the next poll).
async fn publish_due<S: Books>(books: &S, order: &mut Order) -> Result<(), OrderError> {
    let mut due = Vec::new();
    if order.status == OrderStatus::Filled {
        due.push((ORDER_FILLED.to_string(), order_event(order)));
    }
    if let Some(pid) = &order.closed_position_id {
        let mine = books.trades_of_position(&order.strategy_id, pid).await?;
        let realized: Decimal = mine.iter().map(|t| t.realized_pnl).sum();
        due.push((
            POSITION_CLOSED.to_string(),
            json!({
                "event_id": format!("{POSITION_CLOSED}#{pid}"),
                "position_id": pid, "strategy_id": order.strategy_id,
                "symbol": order.symbol, "conid": order.conid,
                "closing_order_id": order.order_id, "purpose": order.purpose,
                "realized_pnl": realized, "trades": mine.iter().map(|t| &t.trade_id).collect::<Vec<_>>(),
            }),
        ));
    }
    let mut published = false;
    for (kind, detail) in due {
        if order.published_events.contains(&kind) {
            continue;
        }
        books.publish(&kind, &detail).await?;
        order.published_events.push(kind);
        published = true;
    }
    if published {
        books.save(order).await?;
    }
    Ok(())
}
