//! Signal scoring: every BUY/SELL signal linked to the orders its execution placed
//! and the trades that closed the position it opened, with the realised R multiple
//! (P&L net of commission in units of the risk the entry was sized with), and
//! statistics per strategy, per prompt template version and per model.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};

use crate::orders::{Order, purpose};
use crate::portfolio::Trade;
use crate::signal::Action;

/// A signal as the workflow recorded it (parse_signal's output and analyze_chart's
/// provider and model, from lineage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalRecord {
    pub execution_id: String,
    pub strategy_id: String,
    pub recorded_at: String,
    pub action: Action,
    pub confidence: f64,
    pub template_id: Option<String>,
    pub template_version: Option<u32>,
    pub provider: Option<String>,
    pub model: Option<String>,
}

/// What became of a signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// No entry order (HOLD, gated, an exit, or nothing to do).
    NoEntry,
    /// An entry order, no closed trade yet (working, open position or unfilled).
    Open,
    Win,
    Loss,
    /// Closed at exactly zero net P&L.
    Flat,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredSignal {
    #[serde(flatten)]
    pub signal: SignalRecord,
    /// Orders its execution placed (entry and/or exit), by id.
    pub orders: Vec<String>,
    /// Trades that closed shares of the position its entry opened.
    pub trades: Vec<String>,
    pub realized_pnl: Decimal,
    pub r_multiple: Option<f64>,
    pub outcome: Outcome,
}

/// Links signals to orders and trades. A signal's trades are those whose entry
/// execution is the signal's; its R multiple is their net P&L over quantity ×
/// the entry's risk per share (from the entry order's sizing).
pub fn score(signals: &[SignalRecord], orders: &[Order], trades: &[Trade]) -> Vec<ScoredSignal> {
    signals
        .iter()
        .map(|s| {
            let mine: Vec<&Order> = orders
                .iter()
                .filter(|o| o.execution_id == s.execution_id)
                .collect();
            let entry = mine.iter().find(|o| o.purpose == purpose::ENTRY);
            let closed: Vec<&Trade> = trades
                .iter()
                .filter(|t| t.entry_execution_id == s.execution_id)
                .collect();
            let realized_pnl: Decimal = closed.iter().map(|t| t.realized_pnl).sum();
            let quantity: Decimal = closed.iter().map(|t| t.quantity).sum();
            let risk = entry
                .and_then(|o| o.sizing.as_ref())
                .map(|z| z.risk_per_share * quantity)
                .filter(|r| !r.is_zero());
            let r_multiple = risk.and_then(|r| (realized_pnl / r).to_f64());
            let outcome = match (entry, closed.is_empty()) {
                (None, true) => Outcome::NoEntry,
                (_, true) => Outcome::Open,
                _ if realized_pnl > Decimal::ZERO => Outcome::Win,
                _ if realized_pnl < Decimal::ZERO => Outcome::Loss,
                _ => Outcome::Flat,
            };
            ScoredSignal {
                signal: s.clone(),
                orders: mine.iter().map(|o| o.order_id.clone()).collect(),
                trades: closed.iter().map(|t| t.trade_id.clone()).collect(),
                realized_pnl,
                r_multiple,
                outcome,
            }
        })
        .collect()
}

/// Statistics of one group of signals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupStats {
    pub key: String,
    /// BUY and SELL signals (HOLDs are not counted).
    pub signals: u32,
    /// Signals whose position has closed.
    pub closed: u32,
    pub wins: u32,
    pub losses: u32,
    /// wins / closed.
    pub win_rate: Option<f64>,
    /// Mean R multiple of the closed signals with a known risk.
    pub avg_r: Option<f64>,
    /// win rate × average winning R − loss rate × average losing R (equal to the
    /// mean R when every closed signal has one).
    pub expectancy_r: Option<f64>,
    pub realized_pnl: Decimal,
}

fn group(key: String, members: &[&ScoredSignal]) -> GroupStats {
    let closed: Vec<&&ScoredSignal> = members
        .iter()
        .filter(|s| matches!(s.outcome, Outcome::Win | Outcome::Loss | Outcome::Flat))
        .collect();
    let wins = closed.iter().filter(|s| s.outcome == Outcome::Win).count() as u32;
    let losses = closed.iter().filter(|s| s.outcome == Outcome::Loss).count() as u32;
    let rs: Vec<f64> = closed.iter().filter_map(|s| s.r_multiple).collect();
    let mean = |xs: &[f64]| (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64);
    let (win_r, loss_r): (Vec<f64>, Vec<f64>) = rs.iter().partition(|&&r| r > 0.0);
    let n = rs.len() as f64;
    let expectancy_r = (!rs.is_empty()).then(|| {
        let w = win_r.len() as f64 / n;
        let l = loss_r.iter().filter(|&&r| r < 0.0).count() as f64 / n;
        w * mean(&win_r).unwrap_or(0.0)
            - l * mean(
                &loss_r
                    .iter()
                    .copied()
                    .filter(|&r| r < 0.0)
                    .collect::<Vec<_>>(),
            )
            .map_or(0.0, f64::abs)
    });
    GroupStats {
        key,
        signals: members.len() as u32,
        closed: closed.len() as u32,
        wins,
        losses,
        win_rate: (!closed.is_empty()).then(|| f64::from(wins) / closed.len() as f64),
        avg_r: mean(&rs),
        expectancy_r,
        realized_pnl: members.iter().map(|s| s.realized_pnl).sum(),
    }
}

/// Scoring statistics, each list ordered by key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scoreboard {
    pub by_strategy: Vec<GroupStats>,
    /// Keyed `template_id@vN`.
    pub by_prompt_version: Vec<GroupStats>,
    /// Keyed `provider/model`.
    pub by_model: Vec<GroupStats>,
}

/// Groups the BUY and SELL signals three ways.
pub fn scoreboard(scored: &[ScoredSignal]) -> Scoreboard {
    let trades: Vec<&ScoredSignal> = scored
        .iter()
        .filter(|s| s.signal.action != Action::Hold)
        .collect();
    let by = |key: &dyn Fn(&ScoredSignal) -> String| {
        let mut groups: BTreeMap<String, Vec<&ScoredSignal>> = BTreeMap::new();
        for s in &trades {
            groups.entry(key(s)).or_default().push(s);
        }
        groups
            .into_iter()
            .map(|(k, members)| group(k, &members))
            .collect()
    };
    Scoreboard {
        by_strategy: by(&|s| s.signal.strategy_id.clone()),
        by_prompt_version: by(&|s| {
            format!(
                "{}@v{}",
                s.signal.template_id.as_deref().unwrap_or("?"),
                s.signal
                    .template_version
                    .map_or("?".into(), |v| v.to_string())
            )
        }),
        by_model: by(&|s| {
            format!(
                "{}/{}",
                s.signal.provider.as_deref().unwrap_or("?"),
                s.signal.model.as_deref().unwrap_or("?")
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;
    use crate::orders::tests::order;
    use crate::orders::{Fill, OrderStatus, Side};
    use crate::portfolio::apply_fill;
    use crate::risk::{Cap, Sizing};

    fn signal(exec: &str, action: Action, version: u32, model: &str) -> SignalRecord {
        SignalRecord {
            execution_id: exec.into(),
            strategy_id: "s1".into(),
            recorded_at: "2026-01-05T15:00:00Z".into(),
            action,
            confidence: 0.8,
            template_id: Some("default-analysis".into()),
            template_version: Some(version),
            provider: Some("openai".into()),
            model: Some(model.into()),
        }
    }

    /// A round trip opened by `exec` at 100 (stop 95: 5 risk per share), 10 shares,
    /// closed at `exit` by the next execution; commission 1 per fill.
    fn round_trip(exec: &str, exit: &str, price: Decimal) -> (Vec<Order>, Trade) {
        let mut entry = order(&format!("{exec}-entry"), OrderStatus::Filled);
        entry.execution_id = exec.into();
        entry.sizing = Some(Sizing {
            quantity: dec!(10),
            entry: dec!(100),
            stop: dec!(95),
            risk_per_share: dec!(5),
            risk_budget: dec!(50),
            limited_by: Cap::Risk,
        });
        let fill = |o: &Order, side, p| {
            Fill::at_price(
                &o.order_id,
                side,
                dec!(10),
                p,
                dec!(1),
                "2026-01-05T15:00:00Z",
            )
        };
        let opened = apply_fill(None, &entry, &fill(&entry, Side::Buy, dec!(100))).position;
        let mut close = order(&format!("{exit}-exit"), OrderStatus::Filled);
        close.execution_id = exit.into();
        close.side = Side::Sell;
        close.purpose = purpose::SIGNAL_EXIT.into();
        let trade = apply_fill(Some(&opened), &close, &fill(&close, Side::Sell, price))
            .trade
            .unwrap();
        (vec![entry, close], trade)
    }

    #[test]
    fn a_signal_is_scored_by_the_trade_its_entry_opened_in_r() {
        let (mut orders, win) = round_trip("e1", "e2", dec!(110));
        let (more, loss) = round_trip("e3", "e4", dec!(95));
        orders.extend(more);
        let signals = [
            signal("e1", Action::Buy, 1, "gpt-a"),
            signal("e2", Action::Sell, 1, "gpt-a"),
            signal("e3", Action::Buy, 2, "gpt-b"),
            signal("e5", Action::Hold, 2, "gpt-b"),
        ];

        let scored = score(&signals, &orders, &[win, loss]);

        // +100 gross − 2 commission = 98 on 50 risked; −50 − 2 = −52.
        assert_eq!(scored[0].outcome, Outcome::Win);
        assert_eq!(scored[0].realized_pnl, dec!(98));
        assert!((scored[0].r_multiple.unwrap() - 1.96).abs() < 1e-12);
        assert_eq!(scored[0].orders, vec!["e1-entry".to_string()]);
        assert_eq!(
            scored[1].outcome,
            Outcome::NoEntry,
            "the exit signal opened nothing"
        );
        assert_eq!(scored[1].orders, vec!["e2-exit".to_string()]);
        assert!((scored[2].r_multiple.unwrap() - -1.04).abs() < 1e-12);
        assert_eq!(scored[3].outcome, Outcome::NoEntry);
    }

    #[test]
    fn the_scoreboard_groups_by_strategy_prompt_version_and_model() {
        let (mut orders, win) = round_trip("e1", "e2", dec!(110));
        let (more, loss) = round_trip("e3", "e4", dec!(95));
        orders.extend(more);
        let signals = [
            signal("e1", Action::Buy, 1, "gpt-a"),
            signal("e3", Action::Buy, 2, "gpt-a"),
            signal("e5", Action::Hold, 2, "gpt-b"),
        ];

        let board = scoreboard(&score(&signals, &orders, &[win, loss]));

        let s = &board.by_strategy[0];
        assert_eq!((s.signals, s.closed, s.wins, s.losses), (2, 2, 1, 1));
        assert_eq!(s.win_rate, Some(0.5));
        assert!((s.avg_r.unwrap() - 0.46).abs() < 1e-12);
        assert!((s.expectancy_r.unwrap() - (0.5 * 1.96 - 0.5 * 1.04)).abs() < 1e-12);
        assert_eq!(s.realized_pnl, dec!(46));
        let keys: Vec<&str> = board
            .by_prompt_version
            .iter()
            .map(|g| g.key.as_str())
            .collect();
        assert_eq!(keys, ["default-analysis@v1", "default-analysis@v2"]);
        assert_eq!(board.by_model.len(), 1, "HOLDs are not scored");
        assert_eq!(board.by_model[0].key, "openai/gpt-a");
    }
}
