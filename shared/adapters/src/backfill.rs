//! The commission back-fill pass of the position monitor: orders whose last fill was
//! applied before IBKR reported its commission are settled and never polled again,
//! so this pass finds them through the orders table's sparse `commission_pending`
//! index, reads IBKR's executions once for all of them and, when the commission is
//! reported, applies the difference to the order, its trades and the position in
//! one versioned transaction (`commission::backfill` does the arithmetic). Bounded
//! per run, independent of market hours, and it never fails the monitor: whatever
//! goes wrong is in its report and retried next run.

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use tradeflow_core::commission::{backfill, give_up, past_report_window};
use tradeflow_core::orders::{Order, OrderStore, OrderStoreError};

use crate::books::{BookError, DynamoBooks, trade_days};
use crate::ibkr::IbkrClient;
use crate::ibkr::types::{Execution, order_commission};

/// Orders looked at per run, oldest first; the rest wait for the next minute.
pub const BATCH: i32 = 25;

/// What one order's turn came to, for the report.
fn entry(o: &Order, outcome: &str, detail: Value) -> Value {
    let mut v = json!({"order_id": o.order_id, "strategy_id": o.strategy_id, "outcome": outcome});
    if let (Some(m), Value::Object(d)) = (v.as_object_mut(), detail) {
        m.extend(d);
    }
    v
}

/// Runs one back-fill pass. Returns its report: `pending` (orders read from the
/// index), `backfilled` (order, reported commission, the difference applied, the
/// trades changed), and the orders left for later with the reason (`waiting`), given
/// up (`gave_up`) or failed (`errors`).
pub async fn run(book: &DynamoBooks, ibkr: &IbkrClient, now: DateTime<Utc>) -> Value {
    let pending = match book.commission_pending(BATCH).await {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "commission back-fill: index unreadable");
            return json!({"pending": null, "error": e.to_string()});
        }
    };
    let at = now.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut report = Report::default();
    let mut due = Vec::new();
    for listed in &pending {
        // The index lags the table: decide on the item as it is now.
        let o = match book.get(&listed.order_id).await {
            Ok(Some(o)) if o.commission_pending.is_some() => o,
            Ok(_) => continue,
            Err(e) => {
                report
                    .errors
                    .push(entry(listed, "error", json!({"error": e.to_string()})));
                continue;
            }
        };
        if past_report_window(&o.created_at, now) {
            report.push(give_up_order(book, &o, &at).await);
        } else if !o.is_settled() {
            // Its next fill takes in what was reported meanwhile (the fill path).
            report.waiting.push(entry(
                &o,
                "waiting",
                json!({"reason": "order still working: its next fill takes the commission in"}),
            ));
        } else {
            due.push(o);
        }
    }
    if !due.is_empty() {
        let oldest = due.iter().map(|o| o.created_at.as_str()).min();
        // One paced call (1 per 5 s) covers every order of the run.
        match ibkr.trades(oldest.and_then(|c| trade_days(c, now))).await {
            Ok(executions) => {
                for o in &due {
                    report.push(apply(book, o, &executions, &at).await);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "commission back-fill: no executions from ibkr");
                for o in &due {
                    report
                        .errors
                        .push(entry(o, "error", json!({"error": e.to_string()})));
                }
            }
        }
    }
    json!({
        "pending": pending.len(),
        "backfilled": report.backfilled,
        "waiting": report.waiting,
        "gave_up": report.gave_up,
        "errors": report.errors,
    })
}

#[derive(Default)]
struct Report {
    backfilled: Vec<Value>,
    waiting: Vec<Value>,
    gave_up: Vec<Value>,
    errors: Vec<Value>,
}

impl Report {
    fn push(&mut self, v: Value) {
        let list = match v["outcome"].as_str() {
            Some("backfilled") => &mut self.backfilled,
            Some("waiting") => &mut self.waiting,
            Some("gave_up") => &mut self.gave_up,
            _ => &mut self.errors,
        };
        list.push(v);
    }
}

async fn give_up_order(book: &DynamoBooks, o: &Order, at: &str) -> Value {
    let Some(mut done) = give_up(o, at) else {
        return entry(o, "waiting", json!({"reason": "no longer pending"}));
    };
    match book.save(&mut done).await {
        Ok(()) => {
            tracing::warn!(order_id = %o.order_id, "commission never reported by ibkr; given up");
            entry(
                o,
                "gave_up",
                json!({"reason": done.history.last().and_then(|h| h.note.clone())}),
            )
        }
        Err(e) => entry(o, "error", json!({"error": e.to_string()})),
    }
}

/// Back-fills one settled order from the executions, if IBKR reported its commission.
async fn apply(book: &DynamoBooks, o: &Order, executions: &[Execution], at: &str) -> Value {
    let Some(reported) = order_commission(
        executions,
        &o.order_id,
        o.broker_order_id.as_deref(),
        o.applied_quantity,
    ) else {
        return entry(
            o,
            "waiting",
            json!({"reason": "commission not reported by ibkr yet"}),
        );
    };
    match commit(book, o, reported, at).await {
        Ok(Some(v)) => v,
        Ok(None) => entry(o, "waiting", json!({"reason": "no longer pending"})),
        Err(Failed::Book(BookError::Conflict(what))) => entry(
            o,
            "waiting",
            json!({"reason": format!("{what} changed concurrently; next run")}),
        ),
        Err(e) => entry(o, "error", json!({"error": e.to_string()})),
    }
}

#[derive(Debug, thiserror::Error)]
enum Failed {
    #[error(transparent)]
    Book(#[from] BookError),
    #[error(transparent)]
    Orders(#[from] OrderStoreError),
}

async fn commit(
    book: &DynamoBooks,
    o: &Order,
    reported: rust_decimal::Decimal,
    at: &str,
) -> Result<Option<Value>, Failed> {
    let position = book.position(&o.strategy_id, o.conid).await?;
    let trades = book.trades_of_order(&o.strategy_id, &o.order_id).await?;
    // Whether the other order of each trade has its commission reported: a trade is
    // complete only when both are. An order without an item has nothing pending.
    let mut others: HashMap<String, bool> = HashMap::new();
    for t in &trades {
        let other = if t.exit_order_id == o.order_id {
            &t.entry_order_id
        } else {
            &t.exit_order_id
        };
        if others.contains_key(other) {
            continue;
        }
        let reported = book.get(other).await?.is_none_or(|x| x.commission_reported);
        others.insert(other.clone(), reported);
    }
    let Some(mut b) = backfill(
        o,
        reported,
        &trades,
        position.as_ref(),
        |id| others.get(id).copied().unwrap_or(true),
        at,
    ) else {
        return Ok(None);
    };
    book.commit_backfill(&mut b).await?;
    let summary = b.summary();
    tracing::info!(order_id = %o.order_id, commission = %summary.commission, difference = %summary.difference, trades = summary.trades.len(), "late commission back-filled");
    Ok(Some(entry(
        o,
        "backfilled",
        serde_json::to_value(&summary).unwrap_or(Value::Null),
    )))
}
