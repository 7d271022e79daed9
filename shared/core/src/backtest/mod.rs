//! Backtests: the workflow's own core code run bar by bar over history. At each bar
//! t the engine does what one scheduled execution does, with the bars up to t and
//! nothing later: the last `strategy.bars` bars (what fetch_market_data would have
//! fetched) → `indicators::compute_all` → the analyst → `signal::parse_answer` →
//! `orders::decide` → `risk::size_entry` (or a fraction of equity) → an order that
//! fills on a later bar by the rules of [`fills`] → `portfolio::apply_fill` →
//! positions, trades and P&L net of commission ([`costs`]). Equity is marked at each
//! close; the report's numbers are backtesting.py's ([`metrics`]).

pub mod cache;
pub mod costs;
pub mod fills;
pub mod metrics;

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::analyst::{Latest, RuleBar, rules_analyst_answer};
use crate::indicators::{IndicatorError, IndicatorSeries, compute_all};
use crate::market::{Bar, BarError, validate_bars};
use crate::orders::{Fill, Intent, NewOrder, Order, OrderStatus, Side, decide, purpose};
use crate::portfolio::{ExitTrigger, Position, apply_fill};
use crate::risk::{EntryRequest, NoOrder, kill_switch, size_entry};
use crate::signal::{Action, Signal, parse_answer};
use crate::strategy::{Strategy, ValidationError};

pub use costs::CommissionModel;
use fills::{Opened, limit_fill, protective_exit};
pub use metrics::Metrics;

/// How orders are sent, hence how they fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FillMode {
    /// As the live workflow sends them: entries (and exits with a price) are DAY
    /// limit orders at the signal's entry, filled on the next bar only if it trades
    /// through the limit.
    #[default]
    Limit,
    /// Every order is a market order filled at the next bar's open (how
    /// backtesting.py and most backtesters fill by default: like-for-like runs).
    NextOpen,
}

/// How an entry's quantity is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SizingMode {
    /// As live: `risk::size_entry` (capital × risk_per_trade / risk per share,
    /// capped by cash and max position value).
    #[default]
    Risk,
    /// Spend `fraction` of the equity at the decision (after the same gates: kill
    /// switch, open positions, confidence; capped by cash and max position value).
    /// A market order's shares are counted at its fill price, as a cash-quantity
    /// order would be (and as backtesting.py sizes `buy(size=0.9999)`).
    EquityFraction { fraction: Decimal },
}

/// The settings of one backtest (the strategy brings the rest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacktestConfig {
    #[serde(default)]
    pub fill: FillMode,
    #[serde(default)]
    pub sizing: SizingMode,
    #[serde(default)]
    pub commission: CommissionModel,
    /// Whether the position monitor's stop and target exits are simulated.
    #[serde(default = "yes")]
    pub protective_exits: bool,
}

fn yes() -> bool {
    true
}

impl Default for BacktestConfig {
    fn default() -> Self {
        Self {
            fill: FillMode::default(),
            sizing: SizingMode::default(),
            commission: CommissionModel::default(),
            protective_exits: true,
        }
    }
}

/// What the analyst sees at one decision: only bars up to the decision bar.
#[derive(Debug, Clone, Copy)]
pub struct DecisionContext<'a> {
    pub strategy: &'a Strategy,
    /// The last `strategy.bars` bars, ending at the decision bar.
    pub bars: &'a [Bar],
    /// The strategy's indicators over `bars`.
    pub series: &'a [IndicatorSeries],
    /// Every series' value at the decision bar and at the bar before.
    pub latest: &'a Latest,
    pub previous: &'a Latest,
    pub position: Option<&'a Position>,
}

/// An analyst's answer to one decision.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub text: String,
    pub model: String,
    /// True when it came from the answer cache (no call made).
    pub cached: bool,
}

/// Why an analyst did not answer.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum AnalystStop {
    /// The call budget is spent: the backtest ends here with a partial report.
    #[error("call budget spent: {0}")]
    Budget(String),
    /// The analyst failed: the backtest stops with this error rather than guess.
    #[error("analyst failed: {0}")]
    Failed(String),
}

/// The analyst port of a backtest.
pub trait Analyst {
    /// Answers the decision in the structured JSON the workflow asks for.
    ///
    /// # Errors
    /// `Budget` to end the backtest early, `Failed` to abort it.
    fn answer(&mut self, ctx: &DecisionContext<'_>) -> Result<Answer, AnalystStop>;
}

/// The `rules` analyst, exactly as the workflow's `rules` provider answers.
#[derive(Debug, Clone, Copy, Default)]
pub struct RulesAnalyst;

impl Analyst for RulesAnalyst {
    fn answer(&mut self, ctx: &DecisionContext<'_>) -> Result<Answer, AnalystStop> {
        let n = ctx.bars.len();
        let bar = RuleBar {
            close: ctx.bars[n - 1].close,
            latest: ctx.latest,
            previous_close: n.checked_sub(2).map(|i| ctx.bars[i].close),
            previous: ctx.previous,
        };
        Ok(Answer {
            text: rules_analyst_answer(ctx.strategy.provider.rules.as_ref(), &bar),
            model: "rules".into(),
            cached: false,
        })
    }
}

#[derive(Debug, Error)]
pub enum BacktestError {
    #[error(transparent)]
    Strategy(#[from] ValidationError),
    #[error("bars: {0}")]
    Bars(#[from] BarError),
    #[error("indicators: {0}")]
    Indicators(#[from] IndicatorError),
    #[error("bar {bar}: {stop}")]
    Analyst { bar: usize, stop: AnalystStop },
}

/// One closed trade of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TradeRecord {
    pub direction: String,
    pub quantity: Decimal,
    pub entry_bar: usize,
    pub exit_bar: usize,
    pub entry_time: String,
    pub exit_time: String,
    pub entry_price: Decimal,
    pub exit_price: Decimal,
    /// Entry + exit commission.
    pub commission: Decimal,
    /// Net of commission.
    pub pnl: Decimal,
    /// pnl / (quantity × entry price).
    pub return_frac: f64,
    /// pnl / (quantity × |entry − initial stop|): the trade in units of the risk it
    /// was opened with.
    pub r_multiple: Option<f64>,
    /// `signal_exit`, `stop_exit` or `target_exit`.
    pub exit_reason: String,
    /// The analyst's reasoning for the entry.
    pub entry_reason: String,
}

/// A position still open after the last bar, at the last close.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenPosition {
    pub quantity: Decimal,
    pub entry_bar: usize,
    pub entry_price: Decimal,
    pub last_close: f64,
    pub unrealized_pnl: f64,
}

/// An order that did not fill or was not sent, with why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unfilled {
    pub bar: usize,
    pub time: String,
    pub reason: String,
}

/// Counts of what the decisions were.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DecisionCounts {
    pub decisions: u32,
    pub buy: u32,
    pub sell: u32,
    pub hold: u32,
    /// Answers served from the cache, and calls actually made.
    pub cached_answers: u32,
    pub analyst_calls: u32,
}

/// The outcome of a backtest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacktestResult {
    pub strategy_id: String,
    pub symbol: String,
    pub config: BacktestConfig,
    pub initial_equity: Decimal,
    pub bars: usize,
    /// The first bar the strategy could act on (every indicator warm).
    pub first_trading_bar: Option<usize>,
    /// Set when the analyst's call budget ended the run before the last bar.
    pub stopped_early: Option<String>,
    pub metrics: Metrics,
    pub trades: Vec<TradeRecord>,
    pub open_position: Option<OpenPosition>,
    pub unfilled: Vec<Unfilled>,
    pub decisions: DecisionCounts,
    pub times: Vec<String>,
    pub equity: Vec<f64>,
    pub closes: Vec<f64>,
}

fn dec(x: f64) -> Decimal {
    Decimal::from_f64_retain(x)
        .map(|d| d.round_dp(8).normalize())
        .unwrap_or_default()
}

fn f(x: Decimal) -> f64 {
    x.to_f64().unwrap_or(f64::NAN)
}

fn iso(t: i64) -> String {
    chrono::DateTime::from_timestamp_millis(t)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Price {
    Market,
    Limit(Decimal),
}

/// An order waiting for the next bar.
#[derive(Debug, Clone)]
struct Pending {
    order: Order,
    price: Price,
    /// Equity-fraction entries sent at market: the money to spend, turned into
    /// shares at the fill price.
    budget: Option<Decimal>,
    reason: String,
}

/// The open position's protective levels and origin.
#[derive(Debug, Clone)]
struct OpenMeta {
    entry_bar: usize,
    entry_price: Decimal,
    stop: Option<f64>,
    target: Option<f64>,
    risk_per_share: Option<Decimal>,
    inside_bar: bool,
    reason: String,
}

struct Engine<'a> {
    strategy: &'a Strategy,
    config: &'a BacktestConfig,
    bars: &'a [Bar],
    cash: Decimal,
    position: Option<Position>,
    meta: Option<OpenMeta>,
    trades: Vec<TradeRecord>,
    unfilled: Vec<Unfilled>,
    orders: u64,
}

impl Engine<'_> {
    fn open(&self) -> Option<&Position> {
        self.position.as_ref().filter(|p| p.is_open())
    }

    fn new_order(
        &mut self,
        t: usize,
        side: Side,
        quantity: Decimal,
        price: Price,
        p: &str,
        sig: Option<&Signal>,
    ) -> Order {
        self.orders += 1;
        let s = self.strategy;
        let order = NewOrder {
            order_id: format!("bt-{}-{}", self.orders, p),
            strategy_id: s.strategy_id.clone(),
            execution_id: format!("backtest-bar-{t}"),
            conid: s.conid,
            symbol: s.symbol.clone(),
            side,
            order_type: if matches!(price, Price::Market) {
                "MKT"
            } else {
                "LMT"
            }
            .into(),
            quantity,
            limit_price: match price {
                Price::Limit(l) => Some(l),
                Price::Market => None,
            },
            tif: "DAY".into(),
            stop: sig.and_then(|s| s.stop),
            target: sig.and_then(|s| s.target),
            purpose: p.into(),
            position_id: self.open().map(|p| p.position_id.clone()),
            sizing: None,
        };
        Order::new(order, OrderStatus::Submitted, &iso(self.bars[t].t), None)
    }

    /// Applies a fill of `order` at `price` on bar `t`.
    fn fill(
        &mut self,
        t: usize,
        mut order: Order,
        quantity: Decimal,
        price: Decimal,
        reason: &str,
        inside_bar: bool,
    ) {
        let at = iso(self.bars[t].t);
        let commission = self.config.commission.commission(quantity, price);
        let fill = Fill::at_price(
            &order.order_id,
            order.side,
            quantity,
            price,
            commission,
            &at,
        );
        match order.side {
            Side::Buy => self.cash -= fill.value + commission,
            Side::Sell => self.cash += fill.value - commission,
        }
        let outcome = apply_fill(self.position.as_ref(), &order, &fill);
        order.mark_applied(&fill);
        order.transition(OrderStatus::Filled, &at, None);
        if let Some(trade) = outcome.trade
            && let Some(meta) = self.meta.take()
        {
            let basis = trade.quantity * meta.entry_price;
            self.trades.push(TradeRecord {
                direction: trade.direction.clone(),
                quantity: trade.quantity,
                entry_bar: meta.entry_bar,
                exit_bar: t,
                entry_time: iso(self.bars[meta.entry_bar].t),
                exit_time: at.clone(),
                entry_price: meta.entry_price,
                exit_price: price,
                commission: trade.commission,
                pnl: trade.realized_pnl,
                return_frac: f(trade.realized_pnl) / f(basis),
                r_multiple: meta
                    .risk_per_share
                    .filter(|r| !r.is_zero())
                    .map(|r| f(trade.realized_pnl) / f(r * trade.quantity)),
                exit_reason: order.purpose.clone(),
                entry_reason: meta.reason,
            });
        }
        if outcome.position.is_open() && self.meta.is_none() {
            let long = outcome.position.is_long();
            let (stop, target) = (order.stop.map(f), order.target.map(f));
            self.meta = Some(OpenMeta {
                entry_bar: t,
                entry_price: price,
                stop,
                target,
                risk_per_share: order.stop.map(|s| if long { price - s } else { s - price }),
                inside_bar,
                reason: reason.to_string(),
            });
        }
        self.position = Some(outcome.position);
    }

    fn entry_quantity(&self, budget: Decimal, price: Decimal) -> Decimal {
        let c = &self.config.commission;
        let mut qty = (budget / c.cost_per_share(price)).floor();
        qty = qty.min((self.strategy.risk.max_position_value / price).floor());
        // The fixed part of a commission must fit in the cash too.
        if qty > Decimal::ZERO && qty * price + c.commission(qty, price) > self.cash {
            qty = ((self.cash - c.commission(qty, price)) / price).floor();
        }
        qty.max(Decimal::ZERO)
    }

    fn protect(&mut self, t: usize) {
        if !self.config.protective_exits {
            return;
        }
        let (Some(p), Some(meta)) = (self.open(), self.meta.as_ref()) else {
            return;
        };
        let opened = if meta.entry_bar == t && meta.inside_bar {
            Opened::InsideTheBar
        } else {
            Opened::BeforeTheBar
        };
        let (long, qty, side) = (p.is_long(), p.quantity.abs(), p.closing_side());
        if let Some((trigger, price)) =
            protective_exit(long, meta.stop, meta.target, &self.bars[t], opened)
        {
            let p = match trigger {
                ExitTrigger::Stop => purpose::STOP_EXIT,
                ExitTrigger::Target => purpose::TARGET_EXIT,
            };
            let order = self.new_order(t, side, qty, Price::Market, p, None);
            self.fill(t, order, qty, dec(price), p, false);
        }
    }

    /// Fills (or expires) the order sent after the previous bar: market orders at
    /// the open, before anything else on the bar; limits after the protective exits.
    fn work(&mut self, t: usize, pending: Pending, at_open: bool) {
        let bar = self.bars[t];
        let is_entry = pending.order.purpose == purpose::ENTRY;
        // The position may have changed since the order was sent (a stop filled).
        if is_entry == self.open().is_some() {
            return;
        }
        let side = pending.order.side;
        match pending.price {
            Price::Market if at_open => {
                let price = dec(bar.open);
                let qty = match pending.budget {
                    Some(budget) => self.entry_quantity(budget, price),
                    None => pending.order.quantity,
                };
                if qty.is_zero() {
                    self.unfilled.push(Unfilled {
                        bar: t,
                        time: iso(bar.t),
                        reason: "quantity rounds to 0 at the fill price".into(),
                    });
                    return;
                }
                let mut order = pending.order;
                order.quantity = qty;
                self.fill(t, order, qty, price, &pending.reason, false);
            }
            Price::Limit(limit) if !at_open => match limit_fill(side, f(limit), &bar) {
                Some(price) => {
                    let qty = pending.order.quantity;
                    self.fill(t, pending.order, qty, dec(price), &pending.reason, true);
                    if is_entry {
                        self.protect(t);
                    }
                }
                None => self.unfilled.push(Unfilled {
                    bar: t,
                    time: iso(bar.t),
                    reason: format!(
                        "{} {} limit {limit} not reached: DAY order expired",
                        pending.order.purpose,
                        side.as_str()
                    ),
                }),
            },
            _ => {}
        }
    }

    /// Turns a signal into the order for the next bar, as place_order would.
    fn place(&mut self, t: usize, signal: &Signal, equity: Decimal) -> Option<Pending> {
        let s = self.strategy;
        let bar = self.bars[t];
        let market = self.config.fill == FillMode::NextOpen;
        let refuse = |e: &mut Self, why: String| {
            e.unfilled.push(Unfilled {
                bar: t,
                time: iso(bar.t),
                reason: why,
            });
            None
        };
        match decide(signal.action, self.open(), s.risk.allow_short) {
            Intent::Nothing(_) => None,
            Intent::Exit { side, quantity } => {
                let price = match signal.entry {
                    Some(e) if !market => Price::Limit(e),
                    _ => Price::Market,
                };
                let order =
                    self.new_order(t, side, quantity, price, purpose::SIGNAL_EXIT, Some(signal));
                Some(Pending {
                    order,
                    price,
                    budget: None,
                    reason: signal.reason.clone(),
                })
            }
            Intent::Enter(side) => {
                let day = chrono::DateTime::from_timestamp_millis(bar.t)
                    .unwrap_or_default()
                    .date_naive();
                let realized_today: Decimal = self
                    .trades
                    .iter()
                    .filter(|tr| self.bars[tr.exit_bar].date() == day)
                    .map(|tr| tr.pnl)
                    .sum();
                let open_positions = u32::from(self.open().is_some());
                let (quantity, budget, price) = match self.config.sizing {
                    SizingMode::Risk => {
                        let req = EntryRequest {
                            side,
                            entry: signal.entry,
                            stop: signal.stop,
                            confidence: signal.confidence,
                            available_cash: self.cash,
                            open_positions,
                            realized_today,
                        };
                        match size_entry(&s.risk, &req) {
                            Ok(sz) => (
                                sz.quantity,
                                None,
                                if market {
                                    Price::Market
                                } else {
                                    Price::Limit(sz.entry)
                                },
                            ),
                            Err(no) => return refuse(self, no.to_string()),
                        }
                    }
                    SizingMode::EquityFraction { fraction } => {
                        let gate = kill_switch(&s.risk, realized_today).and_then(|()| {
                            if open_positions >= s.risk.max_open_positions {
                                return Err(NoOrder::MaxOpenPositions {
                                    open: open_positions,
                                    max: s.risk.max_open_positions,
                                });
                            }
                            if signal.confidence < s.risk.min_confidence {
                                return Err(NoOrder::LowConfidence {
                                    confidence: signal.confidence,
                                    min: s.risk.min_confidence,
                                });
                            }
                            Ok(())
                        });
                        if let Err(no) = gate {
                            return refuse(self, no.to_string());
                        }
                        let budget = equity * fraction;
                        match (market, signal.entry) {
                            (false, Some(limit)) => {
                                let qty = self.entry_quantity(budget, limit);
                                if qty.is_zero() {
                                    return refuse(self, "quantity rounds to 0".into());
                                }
                                (qty, None, Price::Limit(limit))
                            }
                            _ => (Decimal::ZERO, Some(budget), Price::Market),
                        }
                    }
                };
                let order = self.new_order(t, side, quantity, price, purpose::ENTRY, Some(signal));
                Some(Pending {
                    order,
                    price,
                    budget,
                    reason: signal.reason.clone(),
                })
            }
        }
    }
}

/// The value of every series at bar `i` of the window.
fn values_at(series: &[IndicatorSeries], i: usize) -> Latest {
    series
        .iter()
        .filter_map(|s| s.values.get(i).map(|v| (s.name.clone(), v)))
        .collect()
}

/// Runs a backtest of `strategy` over `bars` with `analyst`.
///
/// # Errors
/// An invalid strategy or bars, an indicator that cannot be computed, or an
/// analyst failure (a spent call budget is not an error: the result says where it
/// stopped).
pub fn run(
    strategy: &Strategy,
    bars: &[Bar],
    config: &BacktestConfig,
    analyst: &mut impl Analyst,
) -> Result<BacktestResult, BacktestError> {
    strategy.validate()?;
    validate_bars(bars)?;
    let capital = strategy.risk.capital;
    let mut e = Engine {
        strategy,
        config,
        bars,
        cash: capital,
        position: None,
        meta: None,
        trades: Vec::new(),
        unfilled: Vec::new(),
        orders: 0,
    };
    let window = strategy.bars as usize;
    let mut pending: Option<Pending> = None;
    let mut equity = Vec::with_capacity(bars.len());
    let mut first_trading_bar = None;
    let mut counts = DecisionCounts::default();
    let mut stopped_early = None;
    for t in 0..bars.len() {
        let bar = bars[t];
        if let Some(p) = pending.take() {
            if matches!(p.price, Price::Market) {
                e.work(t, p, true);
            } else {
                pending = Some(p);
            }
        }
        e.protect(t);
        if let Some(p) = pending.take() {
            e.work(t, p, false);
        }
        let held = e.open().map_or(Decimal::ZERO, |p| p.quantity);
        let value = e.cash + held * dec(bar.close);
        equity.push(f(value));
        // A decision on the last bar could not fill: the run ends.
        if t + 1 == bars.len() || stopped_early.is_some() {
            continue;
        }
        let recent = &bars[(t + 1).saturating_sub(window)..=t];
        let series = match compute_all(&strategy.indicators, recent) {
            Ok(s) => s,
            Err(IndicatorError::NotEnoughBars { .. }) => continue,
            Err(other) => return Err(other.into()),
        };
        let last = recent.len() - 1;
        let latest = values_at(&series, last);
        if latest.len() < series.len() {
            continue;
        }
        first_trading_bar.get_or_insert(t);
        let previous = last
            .checked_sub(1)
            .map(|i| values_at(&series, i))
            .unwrap_or_default();
        let ctx = DecisionContext {
            strategy,
            bars: recent,
            series: &series,
            latest: &latest,
            previous: &previous,
            position: e.open(),
        };
        let answer = match analyst.answer(&ctx) {
            Ok(a) => a,
            Err(AnalystStop::Budget(why)) => {
                stopped_early = Some(format!("bar {t} ({}): {why}", iso(bar.t)));
                continue;
            }
            Err(stop) => return Err(BacktestError::Analyst { bar: t, stop }),
        };
        counts.decisions += 1;
        if answer.cached {
            counts.cached_answers += 1;
        } else {
            counts.analyst_calls += 1;
        }
        let signal = parse_answer(&answer.text, bar.close);
        match signal.action {
            Action::Buy => counts.buy += 1,
            Action::Sell => counts.sell += 1,
            Action::Hold => counts.hold += 1,
        }
        pending = e.place(t, &signal, value);
    }
    let n = bars.len();
    let closes: Vec<f64> = bars.iter().map(|b| b.close).collect();
    let times: Vec<i64> = bars.iter().map(|b| b.t).collect();
    let closed: Vec<metrics::ClosedTrade> = e
        .trades
        .iter()
        .map(|t| metrics::ClosedTrade {
            entry_bar: t.entry_bar,
            exit_bar: t.exit_bar,
            entry_t: bars[t.entry_bar].t,
            exit_t: bars[t.exit_bar].t,
            pnl: f(t.pnl),
            return_frac: t.return_frac,
            commission: f(t.commission),
        })
        .collect();
    let metrics = metrics::compute(
        &equity,
        &closes,
        &times,
        first_trading_bar.unwrap_or(0),
        &closed,
    );
    let open_position = match (e.open(), e.meta.as_ref()) {
        (Some(p), Some(meta)) => Some(OpenPosition {
            quantity: p.quantity,
            entry_bar: meta.entry_bar,
            entry_price: meta.entry_price,
            last_close: closes[n - 1],
            unrealized_pnl: f(p.quantity * dec(closes[n - 1]) - p.cost_basis),
        }),
        _ => None,
    };
    Ok(BacktestResult {
        strategy_id: strategy.strategy_id.clone(),
        symbol: strategy.symbol.clone(),
        config: config.clone(),
        initial_equity: capital,
        bars: n,
        first_trading_bar,
        stopped_early,
        metrics,
        trades: e.trades,
        open_position,
        unfilled: e.unfilled,
        decisions: counts,
        times: times.iter().map(|&t| iso(t)).collect(),
        equity,
        closes,
    })
}

#[cfg(test)]
mod tests;
