//! update_portfolio: the strategy's positions at market (IBKR snapshot, else the
//! latest close), cash from the broker ledger, realised and unrealised P&L, total
//! value and equity, statistics over its trades and equity snapshots; written as a
//! snapshot item in the portfolio table.

use std::collections::HashMap;
use std::sync::Arc;

use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use serde::Deserialize;
use serde_json::{Value, json};
use tradeflow_adapters::Deps;
use tradeflow_adapters::step::{StepCtx, now_rfc3339, serve};
use tradeflow_core::payloads::{FetchMarketDataOutput, LoadStrategyOutput};
use tradeflow_core::portfolio::{Position, statistics, valuation};
use tradeflow_core::{Step, StepError};

#[derive(Deserialize)]
struct Input {
    load_strategy: LoadStrategyOutput,
    fetch_market_data: FetchMarketDataOutput,
}

fn dec(x: f64) -> Option<Decimal> {
    Decimal::from_f64(x).map(|d| d.round_dp(4))
}

async fn handle(input: Input, ctx: StepCtx, deps: Arc<Deps>) -> Result<Value, StepError> {
    let s = &input.load_strategy.strategy;
    let book = deps.books();
    let open: Vec<Position> = book
        .positions_of(&s.strategy_id)
        .await?
        .into_iter()
        .filter(Position::is_open)
        .collect();
    let mut prices: HashMap<i64, Decimal> = HashMap::new();
    let mut price_source = "none";
    if let Some(close) = dec(input.fetch_market_data.latest_close) {
        prices.insert(s.conid, close);
        price_source = "latest_close";
    }
    let mut cash = None;
    if !s.dry_run {
        let ibkr = deps.ibkr()?;
        if !open.is_empty() {
            let conids: Vec<i64> = open.iter().map(|p| p.conid).collect();
            // A missing quote is not worth failing the run: the close is a fair mark.
            match ibkr.snapshot(&conids).await {
                Ok(quotes) => {
                    for q in quotes {
                        if let Some(p) = q.price().and_then(dec) {
                            prices.insert(q.conid, p);
                            price_source = "ibkr_snapshot";
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "no snapshot, marking at the latest close"),
            }
        }
        match ibkr.ledger().await {
            Ok(l) => {
                cash = l
                    .get(&s.currency)
                    .or_else(|| l.get("BASE"))
                    .and_then(|e| Decimal::from_f64(e.cashbalance))
                    .map(|c| c.round_dp(2));
            }
            Err(e) => tracing::warn!(error = %e, "no ledger, snapshot without cash"),
        }
    }
    let marked: Vec<(Position, Decimal)> = open
        .into_iter()
        .map(|p| {
            let px = prices.get(&p.conid).copied().unwrap_or(p.avg_cost);
            (p, px)
        })
        .collect();
    let trades = book.trades_of(&s.strategy_id).await?;
    let realized: Decimal = trades.iter().map(|t| t.realized_pnl).sum();
    let v = valuation(&marked, realized, cash, s.risk.capital);
    // The newest snapshot carries the running drawdown: one read, not all history.
    let mut drawdown = book.drawdown(&s.strategy_id).await?;
    drawdown.push(v.equity);
    let stats = statistics(&trades, &drawdown);
    let snapshot = json!({
        "portfolio_id": s.strategy_id,
        "snapshot_at": now_rfc3339(),
        "strategy_id": s.strategy_id,
        "execution_id": ctx.execution_name,
        "positions": v.positions,
        "market_value": v.market_value,
        "unrealized_pnl": v.unrealized_pnl,
        "realized_pnl": v.realized_pnl,
        "cash": v.cash,
        "total_value": v.total_value,
        "equity": v.equity,
        "capital": s.risk.capital,
        "price_source": price_source,
        "statistics": stats,
        "drawdown": drawdown,
    });
    book.put_snapshot(&snapshot).await?;
    tracing::info!(equity = %v.equity, positions = v.positions.len(), trades = stats.trades, "portfolio snapshot written");
    Ok(snapshot)
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(Step::UpdatePortfolio, handle).await
}
