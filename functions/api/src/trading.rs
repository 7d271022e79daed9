//! Orders, positions, trades, portfolio snapshots and overall stats, read from their
//! tables as stored. Items are read as JSON so the pages keep working while the
//! order and position types evolve; numbers are read leniently (string or number).

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};
use tradeflow_adapters::store::s;

use crate::app::{App, Reply, Req};
use crate::error::ApiError;
use crate::page::{Page, page_req};
use crate::repo::{self, PartitionQuery};

/// Overall stats read at most this many items per table.
const STATS_CAP: usize = 100_000;

/// A number stored as a JSON number or a decimal string.
pub fn num(v: Option<&Value>) -> Option<f64> {
    match v? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A list by strategy (`?strategy_id=`, newest first where the table sorts by
/// time) or of the whole table.
async fn list(
    app: &App,
    r: &Req<'_>,
    table: &str,
    index: Option<&str>,
) -> Result<Page<Value>, ApiError> {
    let req = page_req(&r.query)?;
    Ok(match r.q("strategy_id") {
        Some(id) => {
            repo::query_page(
                &app.store,
                &PartitionQuery {
                    table,
                    index,
                    pk_name: "strategy_id",
                    pk_value: id,
                    newest_first: true,
                },
                &req,
            )
            .await?
        }
        None => repo::scan_page(&app.store, table, &req).await?,
    })
}

pub async fn orders(app: &App, r: &Req<'_>) -> Result<Reply, ApiError> {
    let mut page = list(app, r, &app.store.tables.orders, Some("by_strategy")).await?;
    // The IBKR submission lease lives in the orders table under a reserved key.
    page.items
        .retain(|o| o["order_id"] != tradeflow_adapters::lease::LEASE_KEY);
    Reply::ok(&page)
}

pub async fn order(app: &App, id: &str) -> Result<Reply, ApiError> {
    let o: Option<Value> = app
        .store
        .get(
            &app.store.tables.orders,
            HashMap::from([("order_id".to_string(), s(id))]),
        )
        .await?;
    Reply::ok(&o.ok_or_else(|| ApiError::NotFound(format!("order {id}")))?)
}

pub async fn positions(app: &App, r: &Req<'_>) -> Result<Reply, ApiError> {
    let mut page = list(app, r, &app.store.tables.positions, None).await?;
    // The account item and the contract claims live in reserved `#` partitions.
    page.items.retain(|p| {
        !p["strategy_id"]
            .as_str()
            .is_some_and(|id| id.starts_with('#'))
    });
    Reply::ok(&page)
}

pub async fn trades(app: &App, r: &Req<'_>) -> Result<Reply, ApiError> {
    Reply::ok(&list(app, r, &app.store.tables.trades, None).await?)
}

/// Equity of a snapshot: its own `equity` if the writer set one, else capital plus
/// realised and unrealised P&L of its positions.
pub fn equity_of(snapshot: &Value) -> Option<f64> {
    if let Some(e) = num(snapshot.get("equity")) {
        return Some(e);
    }
    let capital = num(snapshot.get("capital"))?;
    let pnl: f64 = snapshot
        .get("positions")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    num(p.get("unrealized_pnl")).unwrap_or(0.0)
                        + num(p.get("realized_pnl")).unwrap_or(0.0)
                })
                .sum()
        })
        .unwrap_or(0.0);
    Some(capital + num(snapshot.get("realized_pnl")).unwrap_or(0.0) + pnl)
}

/// Portfolios (one per strategy): the latest snapshot and the equity curve, oldest first.
pub async fn portfolios(
    app: &App,
    strategy_id: Option<&str>,
    points: usize,
) -> Result<Vec<Value>, ApiError> {
    let table = &app.store.tables.portfolio;
    let snapshots: Vec<Value> = match strategy_id {
        Some(id) => {
            app.store
                .query(table, None, "portfolio_id", id, true, Some(points as i32))
                .await?
        }
        None => repo::scan_all(&app.store, table, STATS_CAP).await?,
    };
    let mut by_id: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for snap in snapshots {
        let id = snap
            .get("portfolio_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        by_id.entry(id).or_default().push(snap);
    }
    Ok(by_id
        .into_iter()
        .map(|(id, mut snaps)| {
            snaps.sort_by(|a, b| {
                a.get("snapshot_at")
                    .and_then(Value::as_str)
                    .cmp(&b.get("snapshot_at").and_then(Value::as_str))
            });
            let skip = snaps.len().saturating_sub(points);
            let curve: Vec<Value> = snaps[skip..]
                .iter()
                .filter_map(|s| Some(json!({"at": s.get("snapshot_at")?, "equity": equity_of(s)?})))
                .collect();
            let latest = snaps.last().cloned();
            json!({
                "portfolio_id": id,
                "latest": latest,
                "equity": latest.as_ref().and_then(equity_of),
                "equity_curve": curve,
            })
        })
        .collect())
}

pub async fn portfolio(app: &App, r: &Req<'_>) -> Result<Reply, ApiError> {
    let points = match r.q("points") {
        None => 200,
        Some(p) => p
            .parse::<usize>()
            .ok()
            .filter(|p| (2..=5000).contains(p))
            .ok_or_else(|| ApiError::bad("points", "must be an integer in 2..=5000"))?,
    };
    let items = portfolios(app, r.q("strategy_id"), points).await?;
    if items.is_empty() && r.q("strategy_id").is_some() {
        return Err(ApiError::NotFound("portfolio of this strategy".into()));
    }
    Reply::ok(&json!({"items": items, "next": null}))
}

fn count_by(items: &[Value], field: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for i in items {
        let k = match i.get(field) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Bool(b)) => b.to_string(),
            _ => "unknown".into(),
        };
        *out.entry(k).or_default() += 1;
    }
    out
}

/// Trade statistics from trade items: closed trades are those with a P&L.
pub fn trade_stats(trades: &[Value]) -> Value {
    let pnls: Vec<f64> = trades
        .iter()
        .filter_map(|t| num(t.get("realized_pnl")).or_else(|| num(t.get("pnl"))))
        .collect();
    let wins = pnls.iter().filter(|p| **p > 0.0).count();
    json!({
        "count": trades.len(),
        "closed": pnls.len(),
        "wins": wins,
        "losses": pnls.iter().filter(|p| **p < 0.0).count(),
        "win_rate": (!pnls.is_empty()).then(|| wins as f64 / pnls.len() as f64),
        // An empty f64 sum is -0.0; adding 0.0 prints it as 0.
        "realized_pnl": pnls.iter().sum::<f64>() + 0.0,
    })
}

pub async fn stats(app: &App) -> Result<Reply, ApiError> {
    let t = &app.store.tables;
    let (strategies, executions, orders, trades) = tokio::try_join!(
        repo::scan_all::<Value>(&app.store, &t.strategies, STATS_CAP),
        repo::scan_all::<Value>(&app.store, &t.executions, STATS_CAP),
        repo::scan_all::<Value>(&app.store, &t.orders, STATS_CAP),
        repo::scan_all::<Value>(&app.store, &t.trades, STATS_CAP),
    )?;
    let orders: Vec<Value> = orders
        .into_iter()
        .filter(|o| o["order_id"] != tradeflow_adapters::lease::LEASE_KEY)
        .collect();
    Reply::ok(&json!({
        "strategies": {"count": strategies.len(), "by_active": count_by(&strategies, "active")},
        "executions": {"count": executions.len(), "by_status": count_by(&executions, "status")},
        "orders": {"count": orders.len(), "by_status": count_by(&orders, "status")},
        "trades": trade_stats(&trades),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equity_prefers_the_stored_value_then_adds_pnl_to_capital() {
        assert_eq!(
            equity_of(&json!({"equity": "1000.5", "capital": 1})),
            Some(1000.5)
        );
        let snap = json!({"capital": "100000", "positions": [
            {"unrealized_pnl": "250.5"}, {"unrealized_pnl": -50, "realized_pnl": "10"}
        ]});
        assert_eq!(equity_of(&snap), Some(100_210.5));
        assert_eq!(equity_of(&json!({"positions": []})), None);
    }

    #[test]
    fn trade_stats_count_wins_and_sum_pnl() {
        let trades = [
            json!({"realized_pnl": "120"}),
            json!({"pnl": -20.0}),
            json!({"status": "OPEN"}),
        ];

        let s = trade_stats(&trades);

        assert_eq!(s["count"], 3);
        assert_eq!(s["closed"], 2);
        assert_eq!(s["win_rate"], 0.5);
        assert_eq!(s["realized_pnl"], 100.0);
    }
}
