//! Positions, trades and P&L: fills applied to positions at average cost, realised
//! P&L per closing fill (commission included), valuation at market prices and the
//! statistics of a strategy. Exact decimals; money rounds to the cent only where a
//! cost is split between the part closed and the part kept.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::orders::{Fill, Order, Side};

/// The positions table's sort key is a string; the conid travels as one there.
pub(crate) mod conid_string {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            S(String),
            N(i64),
        }
        match Either::deserialize(d)? {
            Either::S(s) => s.parse().map_err(serde::de::Error::custom),
            Either::N(n) => Ok(n),
        }
    }
}

/// A strategy's position in one contract. A closed position keeps its item with
/// quantity 0 until the next entry replaces it; its history lives in trades.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Position {
    pub strategy_id: String,
    #[serde(with = "conid_string")]
    pub conid: i64,
    pub symbol: String,
    /// The entry order that opened it.
    pub position_id: String,
    /// Signed: negative for a short.
    pub quantity: Decimal,
    /// Σ price × signed quantity of the shares still open (exact).
    pub cost_basis: Decimal,
    /// cost_basis / quantity, rounded to 4 places, for readers (prompts, UI).
    pub avg_cost: Decimal,
    /// Entry commissions of the open shares, realised as they close.
    pub open_commission: Decimal,
    /// True when the broker reported the commission of every fill of the open
    /// shares (false: `open_commission` lacks what it had not reported yet).
    #[serde(default)]
    pub commission_reported: bool,
    /// Realised P&L over the position's life, net of commission.
    pub realized_pnl: Decimal,
    pub stop: Option<Decimal>,
    pub target: Option<Decimal>,
    /// The execution whose signal opened it.
    pub execution_id: String,
    pub opened_at: String,
    pub updated_at: String,
    #[serde(default)]
    pub closed_at: Option<String>,
    /// The exit order working on it (one at a time: the monitor and a SELL signal
    /// must not both sell it).
    #[serde(default)]
    pub exit_order_id: Option<String>,
    /// Exit orders placed so far (a cancelled exit is retried under a new cOID).
    #[serde(default)]
    pub exit_attempts: u32,
    /// When the exit claim was taken: a claim whose order never got created is
    /// stale after `reconcile::CLAIM_GRACE_SECONDS` and released (I5).
    #[serde(default)]
    pub exit_claimed_at: Option<String>,
    /// The entry order working on this (strategy, contract): at most one at a time
    /// (I2). Taken with a conditional write before sizing, released when the entry
    /// settles; the order item can only be created while it is held.
    #[serde(default)]
    pub entry_order_id: Option<String>,
    #[serde(default)]
    pub entry_claimed_at: Option<String>,
    #[serde(default)]
    pub version: u64,
}

impl Position {
    /// A flat item for a contract the strategy has never held: what an entry claim
    /// is written on.
    pub fn flat(strategy_id: &str, conid: i64, symbol: &str, now: &str) -> Self {
        Self {
            strategy_id: strategy_id.to_string(),
            conid,
            symbol: symbol.to_string(),
            position_id: String::new(),
            quantity: Decimal::ZERO,
            cost_basis: Decimal::ZERO,
            avg_cost: Decimal::ZERO,
            open_commission: Decimal::ZERO,
            commission_reported: true,
            realized_pnl: Decimal::ZERO,
            stop: None,
            target: None,
            execution_id: String::new(),
            opened_at: now.to_string(),
            updated_at: now.to_string(),
            closed_at: None,
            exit_order_id: None,
            exit_attempts: 0,
            exit_claimed_at: None,
            entry_order_id: None,
            entry_claimed_at: None,
            version: 0,
        }
    }

    /// True while it holds shares or an entry is working on it: the monitor and
    /// the reconciler watch these.
    pub fn is_watched(&self) -> bool {
        self.is_open() || self.entry_order_id.is_some() || self.exit_order_id.is_some()
    }

    pub fn is_open(&self) -> bool {
        !self.quantity.is_zero()
    }

    pub fn is_long(&self) -> bool {
        self.quantity > Decimal::ZERO
    }

    /// The side that closes it.
    pub fn closing_side(&self) -> Side {
        if self.is_long() {
            Side::Sell
        } else {
            Side::Buy
        }
    }

    fn refresh_avg(&mut self) {
        self.avg_cost = if self.quantity.is_zero() {
            Decimal::ZERO
        } else {
            (self.cost_basis / self.quantity).round_dp(4)
        };
    }
}

/// One realisation: the part of a position a fill closed, with its P&L.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trade {
    pub strategy_id: String,
    /// `<closing order id>#<cumulative filled>`: one per applied fill.
    pub trade_id: String,
    pub conid: i64,
    pub symbol: String,
    pub position_id: String,
    /// `LONG` or `SHORT`.
    pub direction: String,
    pub quantity: Decimal,
    /// Average cost of the closed shares.
    pub entry_price: Decimal,
    pub exit_price: Decimal,
    /// (exit − entry) × quantity, signed by direction.
    pub gross_pnl: Decimal,
    /// Entry commission share of the closed shares + the closing fill's commission.
    pub commission: Decimal,
    /// gross_pnl − commission.
    pub realized_pnl: Decimal,
    /// True when the broker had reported the commission of the closed shares' entry
    /// fills and of the closing fill; false means `commission` lacks what it had not
    /// reported yet (counted as 0).
    #[serde(default)]
    pub commission_reported: bool,
    pub opened_at: String,
    pub closed_at: String,
    /// Signal → order → trade: the entry order and its execution, the closing order
    /// and its execution.
    pub entry_order_id: String,
    pub entry_execution_id: String,
    pub exit_order_id: String,
    pub exit_execution_id: String,
    /// Why the closing order was placed (`signal_exit`, `stop_exit`, …).
    pub exit_purpose: String,
    /// Optimistic-locking counter: a commission back-fill rewrites the item only if
    /// it is still the version it read.
    #[serde(default)]
    pub version: u64,
}

/// What a fill did to the position.
#[derive(Debug, Clone, PartialEq)]
pub struct FillOutcome {
    /// The position after the fill (quantity 0 when closed).
    pub position: Position,
    pub trade: Option<Trade>,
    /// The position this fill closed.
    pub closed: Option<String>,
}

/// Splits `amount` in the ratio `part / whole`, rounded to the cent, so that the
/// parts of successive splits add up to the amount exactly.
fn share(amount: Decimal, part: Decimal, whole: Decimal) -> Decimal {
    if whole.is_zero() || part >= whole {
        return amount;
    }
    (amount * part / whole).round_dp(2)
}

fn open_new(
    order: &Order,
    fill: &Fill,
    quantity: Decimal,
    value: Decimal,
    commission: Decimal,
) -> Position {
    let mut p = Position {
        strategy_id: order.strategy_id.clone(),
        conid: order.conid,
        symbol: order.symbol.clone(),
        position_id: order.order_id.clone(),
        quantity: quantity * fill.side.sign(),
        cost_basis: value * fill.side.sign(),
        avg_cost: Decimal::ZERO,
        open_commission: commission,
        commission_reported: fill.commission_reported,
        realized_pnl: Decimal::ZERO,
        stop: order.stop,
        target: order.target,
        execution_id: order.execution_id.clone(),
        opened_at: fill.at.clone(),
        updated_at: fill.at.clone(),
        closed_at: None,
        exit_order_id: None,
        exit_attempts: 0,
        exit_claimed_at: None,
        entry_order_id: None,
        entry_claimed_at: None,
        version: 0,
    };
    p.refresh_avg();
    p
}

/// Applies a fill of `order` to the strategy's position in the contract: opens or
/// extends it at average cost, or reduces/closes it and realises P&L (commission
/// included). A fill larger than the position closes it and opens the rest the
/// other way.
pub fn apply_fill(current: Option<&Position>, order: &Order, fill: &Fill) -> FillOutcome {
    let open = current.filter(|p| p.is_open());
    let Some(pos) = open else {
        let mut p = open_new(order, fill, fill.quantity, fill.value, fill.commission);
        if let Some(prev) = current {
            // The item of a closed position is reused; its version and the entry
            // claim that this fill belongs to continue.
            p.version = prev.version;
            p.entry_order_id.clone_from(&prev.entry_order_id);
            p.entry_claimed_at.clone_from(&prev.entry_claimed_at);
        }
        return FillOutcome {
            position: p,
            trade: None,
            closed: None,
        };
    };
    let mut p = pos.clone();
    p.updated_at = fill.at.clone();
    let same_direction = (p.quantity > Decimal::ZERO) == (fill.side == Side::Buy);
    if same_direction {
        p.quantity += fill.quantity * fill.side.sign();
        p.cost_basis += fill.value * fill.side.sign();
        p.open_commission += fill.commission;
        p.commission_reported &= fill.commission_reported;
        // A new entry's protective levels replace the old ones when given.
        if order.stop.is_some() {
            p.stop = order.stop;
        }
        if order.target.is_some() {
            p.target = order.target;
        }
        p.refresh_avg();
        return FillOutcome {
            position: p,
            trade: None,
            closed: None,
        };
    }
    let held = p.quantity.abs();
    let closing = fill.quantity.min(held);
    let direction_sign = if p.is_long() {
        Decimal::ONE
    } else {
        Decimal::NEGATIVE_ONE
    };
    let basis_closed = share(p.cost_basis, closing, held);
    let entry_commission = share(p.open_commission, closing, held);
    let exit_value = share(fill.value, closing, fill.quantity);
    let exit_commission = share(fill.commission, closing, fill.quantity);
    let gross = exit_value * direction_sign - basis_closed;
    let commission = entry_commission + exit_commission;
    let realized = gross - commission;
    let trade = Trade {
        strategy_id: p.strategy_id.clone(),
        trade_id: format!(
            "{}#{}",
            order.order_id,
            order.applied_quantity + fill.quantity
        ),
        conid: p.conid,
        symbol: p.symbol.clone(),
        position_id: p.position_id.clone(),
        direction: if direction_sign > Decimal::ZERO {
            "LONG"
        } else {
            "SHORT"
        }
        .into(),
        quantity: closing,
        entry_price: (basis_closed.abs() / closing).round_dp(4),
        exit_price: (exit_value / closing).round_dp(4),
        gross_pnl: gross,
        commission,
        realized_pnl: realized,
        commission_reported: p.commission_reported && fill.commission_reported,
        opened_at: p.opened_at.clone(),
        closed_at: fill.at.clone(),
        entry_order_id: p.position_id.clone(),
        entry_execution_id: p.execution_id.clone(),
        exit_order_id: order.order_id.clone(),
        exit_execution_id: order.execution_id.clone(),
        exit_purpose: order.purpose.clone(),
        version: 0,
    };
    p.quantity -= closing * direction_sign;
    p.cost_basis -= basis_closed;
    p.open_commission -= entry_commission;
    p.realized_pnl += realized;
    p.refresh_avg();
    let mut closed = None;
    if p.quantity.is_zero() {
        p.cost_basis = Decimal::ZERO;
        p.open_commission = Decimal::ZERO;
        p.closed_at = Some(fill.at.clone());
        p.exit_order_id = None;
        p.exit_claimed_at = None;
        closed = Some(p.position_id.clone());
    }
    let rest = fill.quantity - closing;
    if rest > Decimal::ZERO {
        let mut flipped = open_new(
            order,
            fill,
            rest,
            fill.value - exit_value,
            fill.commission - exit_commission,
        );
        flipped.version = p.version;
        p = flipped;
    }
    FillOutcome {
        position: p,
        trade: Some(trade),
        closed,
    }
}

/// Why the monitor exits a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitTrigger {
    Stop,
    Target,
}

impl ExitTrigger {
    pub fn purpose(self) -> &'static str {
        match self {
            ExitTrigger::Stop => crate::orders::purpose::STOP_EXIT,
            ExitTrigger::Target => crate::orders::purpose::TARGET_EXIT,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ExitTrigger::Stop => "stop",
            ExitTrigger::Target => "target",
        }
    }
}

/// Returns the exit a price calls for: a long exits at or below its stop and at or
/// above its target; a short the other way round. A price at the stop is a stop.
pub fn exit_trigger(p: &Position, price: Decimal) -> Option<ExitTrigger> {
    if !p.is_open() {
        return None;
    }
    let (hit_stop, hit_target) = if p.is_long() {
        (
            p.stop.is_some_and(|s| price <= s),
            p.target.is_some_and(|t| price >= t),
        )
    } else {
        (
            p.stop.is_some_and(|s| price >= s),
            p.target.is_some_and(|t| price <= t),
        )
    };
    if hit_stop {
        Some(ExitTrigger::Stop)
    } else if hit_target {
        Some(ExitTrigger::Target)
    } else {
        None
    }
}

/// A position at a market price.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionValue {
    pub conid: i64,
    pub symbol: String,
    pub quantity: Decimal,
    pub avg_cost: Decimal,
    pub market_price: Decimal,
    pub market_value: Decimal,
    /// market value − cost basis (before the commission of a future exit).
    pub unrealized_pnl: Decimal,
}

pub fn value_position(p: &Position, price: Decimal) -> PositionValue {
    let market_value = (p.quantity * price).round_dp(2);
    PositionValue {
        conid: p.conid,
        symbol: p.symbol.clone(),
        quantity: p.quantity,
        avg_cost: p.avg_cost,
        market_price: price,
        market_value,
        unrealized_pnl: market_value - p.cost_basis,
    }
}

/// A strategy's book at market prices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Valuation {
    pub positions: Vec<PositionValue>,
    pub market_value: Decimal,
    pub unrealized_pnl: Decimal,
    /// Σ realised P&L of the strategy's trades.
    pub realized_pnl: Decimal,
    /// Cash of the broker account (ledger).
    pub cash: Option<Decimal>,
    /// Broker cash + the strategy's market value (the account's value when the
    /// strategy is the account's only user).
    pub total_value: Option<Decimal>,
    /// capital + realised + unrealised: the strategy's own equity curve point.
    pub equity: Decimal,
}

pub fn valuation(
    positions: &[(Position, Decimal)],
    realized_pnl: Decimal,
    cash: Option<Decimal>,
    capital: Decimal,
) -> Valuation {
    let values: Vec<PositionValue> = positions
        .iter()
        .filter(|(p, _)| p.is_open())
        .map(|(p, price)| value_position(p, *price))
        .collect();
    let market_value = values.iter().map(|v| v.market_value).sum();
    let unrealized_pnl = values.iter().map(|v| v.unrealized_pnl).sum();
    Valuation {
        positions: values,
        market_value,
        unrealized_pnl,
        realized_pnl,
        cash,
        total_value: cash.map(|c| c + market_value),
        equity: capital + realized_pnl + unrealized_pnl,
    }
}

/// Performance of a strategy from its trades and equity snapshots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Statistics {
    pub trades: u32,
    pub wins: u32,
    pub losses: u32,
    /// wins / trades, 4 places; none without trades.
    pub win_rate: Option<Decimal>,
    pub avg_win: Option<Decimal>,
    pub avg_loss: Option<Decimal>,
    pub largest_win: Option<Decimal>,
    pub largest_loss: Option<Decimal>,
    pub gross_profit: Decimal,
    pub gross_loss: Decimal,
    /// gross profit / |gross loss|, 4 places; none without losses.
    pub profit_factor: Option<Decimal>,
    pub net_pnl: Decimal,
    /// Largest fall from a peak of the equity snapshots, in money and as a fraction.
    pub max_drawdown: Decimal,
    pub max_drawdown_pct: Option<Decimal>,
}

/// The running peak and largest fall of an equity series, so each snapshot can
/// carry it forward instead of every run re-reading all earlier snapshots.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Drawdown {
    pub peak: Option<Decimal>,
    pub max: Decimal,
    pub max_pct: Option<Decimal>,
}

impl Drawdown {
    /// The drawdown of a whole series, oldest first.
    pub fn over(equity: &[Decimal]) -> Self {
        let mut d = Self::default();
        for &v in equity {
            d.push(v);
        }
        d
    }

    /// Adds the next equity value.
    pub fn push(&mut self, v: Decimal) {
        let top = self.peak.map_or(v, |p| p.max(v));
        self.peak = Some(top);
        let dd = top - v;
        if dd > self.max {
            self.max = dd;
            self.max_pct = (top > Decimal::ZERO).then(|| (dd / top).round_dp(4));
        }
    }
}

/// Computes the statistics. A trade with zero P&L counts as a trade but neither a
/// win nor a loss; `drawdown` is that of the equity snapshots.
pub fn statistics(trades: &[Trade], drawdown: &Drawdown) -> Statistics {
    let mut s = Statistics::default();
    for t in trades {
        s.trades += 1;
        s.net_pnl += t.realized_pnl;
        if t.realized_pnl > Decimal::ZERO {
            s.wins += 1;
            s.gross_profit += t.realized_pnl;
            s.largest_win = Some(
                s.largest_win
                    .map_or(t.realized_pnl, |w| w.max(t.realized_pnl)),
            );
        } else if t.realized_pnl < Decimal::ZERO {
            s.losses += 1;
            s.gross_loss += t.realized_pnl;
            s.largest_loss = Some(
                s.largest_loss
                    .map_or(t.realized_pnl, |l| l.min(t.realized_pnl)),
            );
        }
    }
    if s.trades > 0 {
        s.win_rate = Some((Decimal::from(s.wins) / Decimal::from(s.trades)).round_dp(4));
    }
    if s.wins > 0 {
        s.avg_win = Some((s.gross_profit / Decimal::from(s.wins)).round_dp(2));
    }
    if s.losses > 0 {
        s.avg_loss = Some((s.gross_loss / Decimal::from(s.losses)).round_dp(2));
        s.profit_factor = Some((s.gross_profit / -s.gross_loss).round_dp(4));
    }
    s.max_drawdown = drawdown.max;
    s.max_drawdown_pct = drawdown.max_pct;
    s
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;
    use crate::orders::tests::order;
    use crate::orders::{OrderStatus, purpose};

    fn buy_order(id: &str) -> Order {
        let mut o = order(id, OrderStatus::Submitted);
        o.execution_id = format!("exec-{id}");
        o
    }

    fn sell_order(id: &str) -> Order {
        let mut o = buy_order(id);
        o.side = Side::Sell;
        o.purpose = purpose::SIGNAL_EXIT.into();
        o.stop = None;
        o.target = None;
        o
    }

    fn fill(o: &Order, qty: Decimal, price: Decimal, commission: Decimal, at: &str) -> Fill {
        Fill::at_price(&o.order_id, o.side, qty, price, commission, at)
    }

    /// Buy 10 @ 100.00 and 5 @ 103.00 (USD 1.00 commission each), sell 6 @ 110.00,
    /// then 9 @ 95.00 (USD 1.00 each). Cash: −1517.00 + 659.00 + 854.00 = −4.00.
    #[test]
    fn two_buys_a_partial_sell_and_a_losing_close_add_up_to_the_cent() {
        let entry = buy_order("e1");
        let a = apply_fill(
            None,
            &entry,
            &fill(&entry, dec!(10), dec!(100.00), dec!(1.00), "t1"),
        );
        let b = apply_fill(
            Some(&a.position),
            &entry,
            &fill(&entry, dec!(5), dec!(103.00), dec!(1.00), "t2"),
        );

        assert_eq!(b.position.quantity, dec!(15));
        assert_eq!(b.position.cost_basis, dec!(1515.00));
        assert_eq!(b.position.avg_cost, dec!(101));
        assert_eq!(b.position.open_commission, dec!(2.00));
        assert_eq!(b.trade, None);

        let exit = sell_order("x1");
        let c = apply_fill(
            Some(&b.position),
            &exit,
            &fill(&exit, dec!(6), dec!(110.00), dec!(1.00), "t3"),
        );
        let t1 = c.trade.clone().unwrap();

        // 660.00 − 6/15 × 1515.00 = 54.00; commission 6/15 × 2.00 + 1.00 = 1.80.
        assert_eq!(
            (t1.gross_pnl, t1.commission, t1.realized_pnl),
            (dec!(54.00), dec!(1.80), dec!(52.20))
        );
        assert_eq!((t1.entry_price, t1.exit_price), (dec!(101), dec!(110)));
        assert_eq!(c.position.quantity, dec!(9));
        assert_eq!(c.position.cost_basis, dec!(909.00));
        assert_eq!(c.position.open_commission, dec!(1.20));
        assert_eq!(c.closed, None);

        let mut exit2 = sell_order("x2");
        exit2.execution_id = "monitor-1".into();
        let d = apply_fill(
            Some(&c.position),
            &exit2,
            &fill(&exit2, dec!(9), dec!(95.00), dec!(1.00), "t4"),
        );
        let t2 = d.trade.clone().unwrap();

        // 855.00 − 909.00 = −54.00; commission 1.20 + 1.00.
        assert_eq!(
            (t2.gross_pnl, t2.commission, t2.realized_pnl),
            (dec!(-54.00), dec!(2.20), dec!(-56.20))
        );
        assert_eq!(d.position.quantity, dec!(0));
        assert_eq!(d.position.realized_pnl, dec!(-4.00));
        assert_eq!(d.closed.as_deref(), Some("e1"));
        assert_eq!(d.position.closed_at.as_deref(), Some("t4"));
        assert_eq!(t1.realized_pnl + t2.realized_pnl, dec!(-4.00));
        assert_eq!(
            (
                t2.entry_order_id.as_str(),
                t2.entry_execution_id.as_str(),
                t2.exit_order_id.as_str(),
                t2.exit_execution_id.as_str()
            ),
            ("e1", "exec-e1", "x2", "monitor-1")
        );
    }

    #[test]
    fn thirds_of_a_position_split_the_cost_without_losing_a_cent() {
        let entry = buy_order("e2");
        let a = apply_fill(
            None,
            &entry,
            &fill(&entry, dec!(3), dec!(10.01), dec!(1.00), "t1"),
        );
        let exit = sell_order("x3");

        let mut p = a.position;
        let mut realized = Decimal::ZERO;
        for at in ["t2", "t3", "t4"] {
            let o = apply_fill(
                Some(&p),
                &exit,
                &fill(&exit, dec!(1), dec!(10.01), dec!(0), at),
            );
            realized += o.trade.unwrap().realized_pnl;
            p = o.position;
        }

        // 30.03 basis in thirds: 10.01 each; 1.00 commission as 0.33, 0.34, 0.33.
        assert_eq!(realized, dec!(-1.00));
        assert_eq!(p.quantity, dec!(0));
        assert_eq!(p.realized_pnl, dec!(-1.00));
    }

    #[test]
    fn a_profitable_long_with_commission_on_both_sides() {
        let entry = buy_order("e3");
        let exit = sell_order("x4");

        let a = apply_fill(
            None,
            &entry,
            &fill(&entry, dec!(100), dec!(187.23), dec!(1.00), "t1"),
        );
        let b = apply_fill(
            Some(&a.position),
            &exit,
            &fill(&exit, dec!(100), dec!(191.07), dec!(1.00), "t2"),
        );

        let t = b.trade.unwrap();
        // 19107.00 − 18723.00 = 384.00 gross, 2.00 commission.
        assert_eq!((t.gross_pnl, t.realized_pnl), (dec!(384.00), dec!(382.00)));
        assert_eq!(t.direction, "LONG");
    }

    #[test]
    fn a_trade_is_flagged_when_its_entry_commission_was_not_reported() {
        let entry = buy_order("e10");
        let exit = sell_order("x10");
        let mut unreported = fill(&entry, dec!(10), dec!(50.00), dec!(0), "t1");
        unreported.commission_reported = false;
        let a = apply_fill(None, &entry, &unreported);

        let b = apply_fill(
            Some(&a.position),
            &exit,
            &fill(&exit, dec!(10), dec!(51.00), dec!(1.00), "t2"),
        );

        assert!(!a.position.commission_reported);
        let t = b.trade.unwrap();
        assert_eq!((t.commission, t.realized_pnl), (dec!(1.00), dec!(9.00)));
        assert!(!t.commission_reported);
    }

    #[test]
    fn a_short_gains_when_the_price_falls() {
        let mut entry = buy_order("e4");
        entry.side = Side::Sell;
        let mut cover = buy_order("x5");
        cover.purpose = purpose::SIGNAL_EXIT.into();

        let a = apply_fill(
            None,
            &entry,
            &fill(&entry, dec!(10), dec!(50.00), dec!(1.00), "t1"),
        );
        let b = apply_fill(
            Some(&a.position),
            &cover,
            &fill(&cover, dec!(10), dec!(45.50), dec!(1.00), "t2"),
        );

        assert_eq!(a.position.quantity, dec!(-10));
        assert_eq!(a.position.avg_cost, dec!(50));
        let t = b.trade.unwrap();
        assert_eq!(
            (t.direction.as_str(), t.gross_pnl, t.realized_pnl),
            ("SHORT", dec!(45.00), dec!(43.00))
        );
        assert!(!b.position.is_open());
    }

    #[test]
    fn a_fill_larger_than_the_position_closes_it_and_opens_the_rest_the_other_way() {
        let entry = buy_order("e5");
        let exit = sell_order("x6");
        let a = apply_fill(
            None,
            &entry,
            &fill(&entry, dec!(10), dec!(20.00), dec!(0), "t1"),
        );

        let b = apply_fill(
            Some(&a.position),
            &exit,
            &fill(&exit, dec!(15), dec!(22.00), dec!(1.50), "t2"),
        );

        let t = b.trade.unwrap();
        assert_eq!((t.quantity, t.realized_pnl), (dec!(10), dec!(19.00)));
        assert_eq!(b.closed.as_deref(), Some("e5"));
        assert_eq!(b.position.quantity, dec!(-5));
        assert_eq!(b.position.position_id, "x6");
        assert_eq!(b.position.open_commission, dec!(0.50));
    }

    #[test]
    fn a_new_entry_after_a_close_starts_a_new_position() {
        let entry = buy_order("e6");
        let exit = sell_order("x7");
        let a = apply_fill(
            None,
            &entry,
            &fill(&entry, dec!(10), dec!(20.00), dec!(0), "t1"),
        );
        let closed = apply_fill(
            Some(&a.position),
            &exit,
            &fill(&exit, dec!(10), dec!(21.00), dec!(0), "t2"),
        )
        .position;
        let again = buy_order("e7");

        let b = apply_fill(
            Some(&closed),
            &again,
            &fill(&again, dec!(4), dec!(30.00), dec!(0), "t3"),
        );

        assert_eq!(b.position.position_id, "e7");
        assert_eq!(b.position.realized_pnl, dec!(0));
        assert_eq!(b.position.avg_cost, dec!(30));
        assert_eq!(b.position.closed_at, None);
    }

    #[rstest::rstest]
    #[case(dec!(10), dec!(96), None)]
    #[case(dec!(10), dec!(95), Some(ExitTrigger::Stop))]
    #[case(dec!(10), dec!(80), Some(ExitTrigger::Stop))]
    #[case(dec!(10), dec!(110), Some(ExitTrigger::Target))]
    #[case(dec!(-10), dec!(95), Some(ExitTrigger::Target))]
    #[case(dec!(-10), dec!(111), Some(ExitTrigger::Stop))]
    #[case(dec!(0), dec!(1), None)]
    fn stops_and_targets_trigger_on_the_losing_and_winning_side(
        #[case] qty: Decimal,
        #[case] price: Decimal,
        #[case] trigger: Option<ExitTrigger>,
    ) {
        let entry = buy_order("e8");
        let mut p = apply_fill(
            None,
            &entry,
            &fill(&entry, dec!(10), dec!(100), dec!(0), "t"),
        )
        .position;
        p.quantity = qty;
        if qty < Decimal::ZERO {
            (p.stop, p.target) = (Some(dec!(110)), Some(dec!(95)));
        }

        assert_eq!(exit_trigger(&p, price), trigger);
    }

    #[test]
    fn valuation_marks_open_positions_to_market() {
        let entry = buy_order("e9");
        let p = apply_fill(
            None,
            &entry,
            &fill(&entry, dec!(15), dec!(101.00), dec!(2.00), "t"),
        )
        .position;

        let v = valuation(
            &[(p, dec!(104.37))],
            dec!(52.20),
            Some(dec!(98000.00)),
            dec!(100000),
        );

        assert_eq!(v.market_value, dec!(1565.55));
        assert_eq!(v.unrealized_pnl, dec!(50.55));
        assert_eq!(v.total_value, Some(dec!(99565.55)));
        assert_eq!(v.equity, dec!(100102.75));
    }

    fn trade(pnl: Decimal) -> Trade {
        let entry = buy_order("e");
        let exit = sell_order("x");
        let a = apply_fill(
            None,
            &entry,
            &fill(&entry, dec!(1), dec!(100), dec!(0), "t1"),
        );
        let mut t = apply_fill(
            Some(&a.position),
            &exit,
            &fill(&exit, dec!(1), dec!(100), dec!(0), "t2"),
        )
        .trade
        .unwrap();
        t.realized_pnl = pnl;
        t
    }

    #[test]
    fn a_drawdown_carried_through_json_equals_one_over_the_whole_series() {
        let equity = [
            dec!(100),
            dec!(120),
            dec!(90),
            dec!(130),
            dec!(104),
            dec!(110),
        ];
        let mut carried = Drawdown::default();

        for v in equity {
            let json = serde_json::to_value(carried).unwrap();
            carried = serde_json::from_value(json).unwrap();
            carried.push(v);
        }

        assert_eq!(carried, Drawdown::over(&equity));
        // Peak 120, trough 90: 30, a quarter of the peak (130 -> 104 is only 26).
        assert_eq!((carried.max, carried.max_pct), (dec!(30), Some(dec!(0.25))));
    }

    #[test]
    fn statistics_of_wins_losses_and_drawdown() {
        let trades: Vec<Trade> = [
            dec!(52.20),
            dec!(-56.20),
            dec!(382.00),
            dec!(0),
            dec!(-20.00),
        ]
        .into_iter()
        .map(trade)
        .collect();
        let equity = [
            dec!(100000),
            dec!(100500),
            dec!(100200),
            dec!(99995),
            dec!(100600),
            dec!(100400),
        ];

        let s = statistics(&trades, &Drawdown::over(&equity));

        assert_eq!((s.trades, s.wins, s.losses), (5, 2, 2));
        assert_eq!(s.win_rate, Some(dec!(0.4)));
        assert_eq!(s.avg_win, Some(dec!(217.10)));
        assert_eq!(s.avg_loss, Some(dec!(-38.10)));
        assert_eq!(s.largest_win, Some(dec!(382.00)));
        assert_eq!(s.largest_loss, Some(dec!(-56.20)));
        // 434.20 / 76.20 = 5.69816…
        assert_eq!(s.profit_factor, Some(dec!(5.6982)));
        assert_eq!(s.net_pnl, dec!(358.00));
        assert_eq!(s.max_drawdown, dec!(505));
        assert_eq!(s.max_drawdown_pct, Some(dec!(0.0050)));
    }

    #[test]
    fn statistics_without_trades_or_losses_leave_ratios_empty() {
        let none = statistics(&[], &Drawdown::default());
        let only_wins = statistics(&[trade(dec!(10))], &Drawdown::over(&[dec!(1), dec!(2)]));

        assert_eq!(none.win_rate, None);
        assert_eq!(none.max_drawdown, dec!(0));
        assert_eq!(only_wins.profit_factor, None);
        assert_eq!(only_wins.win_rate, Some(dec!(1)));
    }
}
