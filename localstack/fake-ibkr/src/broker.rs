//! The fake gateway's in-memory state: session, orders with a deterministic fill
//! model, positions and cash. Every rule here is plain code on plain values.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tradeflow_core::market::resample_weekly;
use tradeflow_core::synthetic;

/// Starting cash of the paper account.
pub const START_CASH: f64 = 1_000_000.0;
/// IBKR Pro Fixed pricing for US stocks: USD 0.005 per share, at least USD 1.00 and
/// at most 1% of the trade value per order (exchange and regulatory fees left out).
/// The minimum is per order, so the executions of a partially filled order carry
/// the growth of the order's cumulative commission: the first pays the minimum,
/// later ones only what the per-share rate adds beyond it.
const COMMISSION_PER_SHARE: f64 = 0.005;
const COMMISSION_MIN: f64 = 1.0;
const COMMISSION_MAX_OF_VALUE: f64 = 0.01;

/// The fixed commission, in cents, of an order that has filled `qty` shares worth
/// `value` so far.
pub fn fixed_commission_cents(qty: f64, value: f64) -> i64 {
    if qty <= 0.0 {
        return 0;
    }
    let c = (qty * COMMISSION_PER_SHARE)
        .max(COMMISSION_MIN)
        .min(value * COMMISSION_MAX_OF_VALUE);
    (c * 100.0).round() as i64
}
/// A limit further than this from the market triggers IBKR's price-percentage question.
const PRICE_PERCENT_LIMIT: f64 = 0.03;

pub const NO_MARKET_DATA_ID: &str = "o354";
pub const NO_MARKET_DATA_TEXT: &str = "You are submitting an order without market data. We strongly recommend against this as it may result in erroneous and unexpected trades. Are you sure you want to submit this order?";
pub const PRICE_PERCENT_ID: &str = "o163";

#[derive(Debug, Clone, Deserialize)]
pub struct OrderTicket {
    #[serde(rename = "acctId", default)]
    pub acct_id: Option<String>,
    pub conid: i64,
    #[serde(rename = "cOID", default)]
    pub coid: Option<String>,
    #[serde(rename = "orderType")]
    pub order_type: String,
    #[serde(default)]
    pub price: Option<f64>,
    pub side: String,
    #[serde(default = "day")]
    pub tif: String,
    pub quantity: f64,
    #[serde(rename = "outsideRTH", default)]
    pub outside_rth: bool,
}

fn day() -> String {
    "DAY".into()
}

#[derive(Debug, Clone, Serialize)]
pub struct FakeOrder {
    pub order_id: u64,
    pub coid: Option<String>,
    pub account: String,
    pub conid: i64,
    pub symbol: String,
    pub side: String,
    pub order_type: String,
    pub price: Option<f64>,
    pub quantity: f64,
    pub tif: String,
    pub status: String,
    pub filled: f64,
    pub avg_price: f64,
    pub commission: f64,
    pub placed_at: DateTime<Utc>,
    pub last_execution: Option<DateTime<Utc>>,
    /// The brokerage session it was placed in: after a reset the gateway no longer
    /// lists it nor answers its status (it still works and fills at the exchange).
    pub session: u32,
}

impl FakeOrder {
    fn is_working(&self) -> bool {
        matches!(self.status.as_str(), "PreSubmitted" | "Submitted")
    }

    fn remaining(&self) -> f64 {
        (self.quantity - self.filled).max(0.0)
    }

    pub fn live_json(&self) -> Value {
        json!({
            "acct": self.account,
            "orderId": self.order_id,
            "conid": self.conid,
            "conidex": self.conid.to_string(),
            "ticker": self.symbol,
            "description1": self.symbol,
            "status": self.status,
            "filledQuantity": self.filled,
            "remainingQuantity": self.remaining(),
            "totalSize": self.quantity,
            "avgPrice": (self.filled > 0.0).then(|| format!("{:.4}", self.avg_price)),
            "price": self.price.map(|p| format!("{p}")),
            "side": self.side,
            "orderType": if self.order_type == "LMT" { "Limit" } else { "Market" },
            "timeInForce": self.tif,
            "order_ref": self.coid,
            "lastExecutionTime_r": self.last_execution.map(|t| t.timestamp_millis()),
        })
    }

    pub fn status_json(&self) -> Value {
        json!({
            "order_id": self.order_id,
            "conid": self.conid,
            "symbol": self.symbol,
            "side": if self.side == "BUY" { "B" } else { "S" },
            "order_status": self.status,
            "order_type": self.order_type,
            "limit_price": self.price.map(|p| format!("{p}")),
            "total_size": format!("{}", self.quantity),
            "cum_fill": format!("{}", self.filled),
            "average_price": (self.filled > 0.0).then(|| format!("{:.4}", self.avg_price)),
            "tif": self.tif,
            "account": self.account,
            "order_ref": self.coid,
        })
    }
}

/// One execution (a fill of part or all of an order), as `/iserver/account/trades`
/// lists it.
#[derive(Debug, Clone, Serialize)]
pub struct FakeExecution {
    pub execution_id: String,
    pub order_id: u64,
    pub coid: Option<String>,
    pub account: String,
    pub conid: i64,
    pub symbol: String,
    pub side: String,
    pub size: f64,
    pub price: f64,
    pub commission_cents: i64,
    /// Whether the commission is reported yet (see `CommissionReporting`).
    pub reported: bool,
    pub at: DateTime<Utc>,
}

impl FakeExecution {
    /// IBKR's shape: conid, price and commission as strings, size and net amount as
    /// numbers; the commission is `""` (or absent) until it is reported.
    pub fn trade_json(&self, form: UnreportedForm) -> Value {
        let buy = self.side == "BUY";
        let mut v = json!({
            "execution_id": self.execution_id,
            "symbol": self.symbol,
            "supports_tax_opt": "1",
            "side": if buy { "B" } else { "S" },
            "order_description": format!("{} {} @ {} on ISLAND", if buy { "Bought" } else { "Sold" }, self.size, self.price),
            "trade_time": self.at.format("%Y%m%d-%H:%M:%S").to_string(),
            "trade_time_r": self.at.timestamp_millis(),
            "size": self.size,
            "price": format!("{}", self.price),
            "order_ref": self.coid,
            "submitter": "fakeuser",
            "exchange": "ISLAND",
            "net_amount": self.size * self.price,
            "account": self.account,
            "accountCode": self.account,
            "company_name": synthetic::contract(self.conid).map_or("", |c| c.1),
            "contract_description_1": self.symbol,
            "sec_type": "STK",
            "listing_exchange": "NASDAQ.NMS",
            "conid": self.conid.to_string(),
            "conidEx": self.conid.to_string(),
            "clearing_id": "IB",
            "clearing_name": "IB",
            "liquidation_trade": "0",
            "is_event_trading": "0",
            "order_id": self.order_id,
        });
        if self.reported {
            v["commission"] = json!(format!(
                "{}.{:02}",
                self.commission_cents / 100,
                self.commission_cents % 100
            ));
        } else if form == UnreportedForm::Empty {
            v["commission"] = json!("");
        }
        v
    }
}

/// How an execution whose commission is not reported yet shows it.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UnreportedForm {
    /// `"commission": ""`.
    #[default]
    Empty,
    /// No `commission` field.
    Absent,
}

/// Whether new executions come with their commission (IBKR reports it a little
/// after the fill; tests hold it back to see that).
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
pub struct CommissionReporting {
    pub reported: bool,
    #[serde(default)]
    pub form: UnreportedForm,
}

impl Default for CommissionReporting {
    fn default() -> Self {
        Self {
            reported: true,
            form: UnreportedForm::Empty,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Holding {
    pub quantity: f64,
    pub avg_cost: f64,
    pub realized: f64,
}

#[derive(Debug, Clone)]
pub struct PendingReply {
    pub id: String,
    pub ticket: OrderTicket,
    pub account: String,
    /// Questions still to be asked after this one, by message id.
    pub remaining: Vec<(String, String)>,
}

/// What a path fault does to the next matching requests.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// HTTP 500 with an IBKR-like body.
    Status500,
    /// HTTP 503.
    Status503,
    /// HTTP 429: over IBKR's pacing limits ("Pacing Limitations", Web API v1.0).
    Status429,
    /// HTTP 200 whose body is not JSON.
    Garbage,
    /// Wait `delay_ms`, then answer normally (long enough, a client timeout).
    Delay,
    /// Handle the request; if it registered an order, hold the answer `delay_ms`:
    /// the broker has the order but the client times out (a lost response).
    /// Only requests that register an order use up the count.
    DelayAfterOrder,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Fault {
    /// Matches request paths (below `/v1/api`) that start with this.
    pub path: String,
    pub kind: FaultKind,
    #[serde(default = "one")]
    pub count: u32,
    #[serde(default)]
    pub delay_ms: u64,
    /// `delay_after_order` only: applies to the order with this cOID alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coid: Option<String>,
}

fn one() -> u32 {
    1
}

#[derive(Debug)]
pub struct Gateway {
    pub account: String,
    /// An SSO (browser) login exists; without it every endpoint answers 401.
    pub logged_in: bool,
    /// The brokerage session is authenticated (iserver endpoints work).
    pub authenticated: bool,
    pub competing: bool,
    /// Questions of this brokerage session that were already confirmed.
    pub confirmed_questions: HashSet<String>,
    pub snapshot_primed: HashSet<i64>,
    pub prices: HashMap<i64, f64>,
    /// Shares that can fill per market tick, per conid (unlimited when absent).
    pub liquidity: HashMap<i64, f64>,
    pub pending: Option<PendingReply>,
    pub orders: Vec<FakeOrder>,
    pub executions: Vec<FakeExecution>,
    pub commission_reporting: CommissionReporting,
    pub coids: HashMap<String, DateTime<Utc>>,
    pub holdings: HashMap<i64, Holding>,
    pub cash: f64,
    pub faults: Vec<Fault>,
    /// Brokerage sessions reset so far (`POST /fake/session_reset`).
    pub session_no: u32,
    next_order_id: u64,
    next_reply: u64,
}

/// Result of an order submission or a reply.
pub enum OrderAnswer {
    Placed(Value),
    Question(Value),
    Error(String),
}

impl Gateway {
    pub fn new(account: String, logged_in: bool) -> Self {
        Self {
            account,
            logged_in,
            authenticated: logged_in,
            competing: false,
            confirmed_questions: HashSet::new(),
            snapshot_primed: HashSet::new(),
            prices: HashMap::new(),
            liquidity: HashMap::new(),
            pending: None,
            orders: Vec::new(),
            executions: Vec::new(),
            commission_reporting: CommissionReporting::default(),
            coids: HashMap::new(),
            holdings: HashMap::new(),
            cash: START_CASH,
            faults: Vec::new(),
            session_no: 0,
            next_order_id: 1_000_000_000,
            next_reply: 1,
        }
    }

    /// A new brokerage session: per-session quirks start over.
    pub fn new_session(&mut self) {
        self.authenticated = true;
        self.competing = false;
        self.confirmed_questions.clear();
        self.snapshot_primed.clear();
        self.pending = None;
    }

    pub fn auth_status(&self) -> Value {
        json!({
            "authenticated": self.authenticated,
            "competing": self.competing,
            "connected": self.logged_in,
            "message": "",
            "MAC": "00:00:00:00:00:00",
            "serverInfo": {"serverName": "FakeGateway", "serverVersion": "Build 10.0.0, fake"},
            "fail": "",
        })
    }

    pub fn today() -> NaiveDate {
        Utc::now().date_naive()
    }

    /// The current price: set by a test, else the latest synthetic close.
    pub fn price(&self, conid: i64) -> Option<f64> {
        synthetic::contract(conid)?;
        Some(self.prices.get(&conid).copied().unwrap_or_else(|| {
            synthetic::daily_bars(conid, Self::today(), 1)
                .last()
                .map_or(100.0, |b| b.close)
        }))
    }

    fn take_question(&mut self, ticket: &OrderTicket) -> Vec<(String, String)> {
        let mut qs = Vec::new();
        if !self.confirmed_questions.contains(NO_MARKET_DATA_ID) {
            qs.push((
                NO_MARKET_DATA_ID.to_string(),
                NO_MARKET_DATA_TEXT.to_string(),
            ));
        }
        if let (Some(limit), Some(market)) = (ticket.price, self.price(ticket.conid))
            && ((limit - market) / market).abs() > PRICE_PERCENT_LIMIT
        {
            qs.push((
                PRICE_PERCENT_ID.to_string(),
                format!(
                    "The following order \"{} {} @ {limit}\" price exceeds the Percentage constraint of 3%. Are you sure you want to submit this order?",
                    ticket.side, ticket.quantity
                ),
            ));
        }
        qs
    }

    fn question(
        &mut self,
        ticket: OrderTicket,
        account: String,
        mut qs: Vec<(String, String)>,
    ) -> Value {
        let (mid, text) = qs.remove(0);
        let id = format!("fake-reply-{:08x}", self.next_reply);
        self.next_reply += 1;
        self.pending = Some(PendingReply {
            id: id.clone(),
            ticket,
            account,
            remaining: qs,
        });
        json!([{ "id": id, "message": [text], "isSuppressed": false, "messageIds": [mid] }])
    }

    /// `POST /iserver/account/{acct}/orders`.
    pub fn place(&mut self, account: &str, tickets: Vec<OrderTicket>) -> OrderAnswer {
        if account != self.account {
            return OrderAnswer::Error(format!("Account {account} is not valid for this user"));
        }
        let [ticket]: [OrderTicket; 1] = match tickets.try_into() {
            Ok(t) => t,
            Err(_) => {
                return OrderAnswer::Error(
                    "the fake gateway accepts exactly one order per request".into(),
                );
            }
        };
        if let Some(e) = self.validate(&ticket) {
            return OrderAnswer::Error(e);
        }
        let qs = self.take_question(&ticket);
        if qs.is_empty() {
            self.submit(account.to_string(), ticket)
        } else {
            OrderAnswer::Question(self.question(ticket, account.to_string(), qs))
        }
    }

    fn validate(&self, t: &OrderTicket) -> Option<String> {
        if synthetic::contract(t.conid).is_none() {
            return Some(format!("Contract {} is not valid or not found", t.conid));
        }
        if !(t.quantity > 0.0 && t.quantity.is_finite()) {
            return Some("Order quantity must be greater than zero".into());
        }
        if !matches!(t.side.as_str(), "BUY" | "SELL") {
            return Some(format!("Invalid side {}", t.side));
        }
        match (t.order_type.as_str(), t.price) {
            ("LMT", Some(p)) if p > 0.0 => {}
            ("LMT", _) => return Some("Limit price is required for LMT orders".into()),
            ("MKT", _) => {}
            (other, _) => return Some(format!("Order type {other} is not supported")),
        }
        if let Some(coid) = &t.coid
            && self
                .coids
                .get(coid)
                .is_some_and(|at| Utc::now() - *at < Duration::hours(24))
        {
            // The text IBKR sends (matched in ibind ibkr_utils.handle_questions).
            return Some(format!(
                "Order couldn't be submitted: Local order ID={coid} is already registered."
            ));
        }
        None
    }

    /// `POST /iserver/reply/{id}`; `None` when the id is not the pending one.
    pub fn reply(&mut self, id: &str, confirmed: bool) -> Option<OrderAnswer> {
        let pending = self.pending.take_if(|p| p.id == id)?;
        if !confirmed {
            return Some(OrderAnswer::Error(
                "Order was not confirmed and has been discarded".into(),
            ));
        }
        self.confirmed_questions
            .insert(NO_MARKET_DATA_ID.to_string());
        if !pending.remaining.is_empty() {
            return Some(OrderAnswer::Question(self.question(
                pending.ticket,
                pending.account,
                pending.remaining,
            )));
        }
        // A duplicate may have been registered while the question was open.
        if let Some(e) = self.validate(&pending.ticket) {
            return Some(OrderAnswer::Error(e));
        }
        Some(self.submit(pending.account, pending.ticket))
    }

    fn submit(&mut self, account: String, t: OrderTicket) -> OrderAnswer {
        let order_id = self.next_order_id;
        self.next_order_id += 1;
        let now = Utc::now();
        if let Some(c) = &t.coid {
            self.coids.insert(c.clone(), now);
        }
        let symbol = synthetic::contract(t.conid).map_or("", |c| c.0).to_string();
        self.orders.push(FakeOrder {
            order_id,
            coid: t.coid,
            account,
            conid: t.conid,
            symbol,
            side: t.side,
            order_type: t.order_type,
            price: t.price,
            quantity: t.quantity,
            tif: t.tif,
            status: "PreSubmitted".into(),
            filled: 0.0,
            avg_price: 0.0,
            commission: 0.0,
            placed_at: now,
            last_execution: None,
            session: self.session_no,
        });
        OrderAnswer::Placed(json!([{
            "order_id": order_id.to_string(),
            "order_status": "PreSubmitted",
            "encrypt_message": "1",
        }]))
    }

    /// One tick of the simulated market: every working order moves one step.
    /// PreSubmitted becomes Submitted; a Submitted order fills (up to the conid's
    /// liquidity per tick) when the market trades through its limit.
    pub fn tick(&mut self) {
        let now = Utc::now();
        for i in 0..self.orders.len() {
            let o = &self.orders[i];
            if !o.is_working() {
                continue;
            }
            if o.status == "PreSubmitted" {
                self.orders[i].status = "Submitted".into();
                continue;
            }
            let Some(market) = self.price(o.conid) else {
                continue;
            };
            let buy = o.side == "BUY";
            let fill_price = match (o.order_type.as_str(), o.price) {
                ("LMT", Some(limit)) if buy && market <= limit => market.min(limit),
                ("LMT", Some(limit)) if !buy && market >= limit => market.max(limit),
                ("MKT", _) => market,
                _ => continue,
            };
            let qty = o.remaining().min(
                self.liquidity
                    .get(&o.conid)
                    .copied()
                    .unwrap_or(f64::INFINITY),
            );
            if qty <= 0.0 {
                continue;
            }
            let (conid, side_sign) = (o.conid, if buy { 1.0 } else { -1.0 });
            let before = fixed_commission_cents(o.filled, o.avg_price * o.filled);
            let after =
                fixed_commission_cents(o.filled + qty, o.avg_price * o.filled + fill_price * qty);
            let cents = after - before;
            let commission = cents as f64 / 100.0;
            let o = &mut self.orders[i];
            o.avg_price = (o.avg_price * o.filled + fill_price * qty) / (o.filled + qty);
            o.filled += qty;
            o.commission += commission;
            o.last_execution = Some(now);
            if o.remaining() <= 0.0 {
                o.status = "Filled".into();
            }
            let execution = FakeExecution {
                execution_id: format!("0000fake.{:08x}.01.01", self.executions.len() + 1),
                order_id: o.order_id,
                coid: o.coid.clone(),
                account: o.account.clone(),
                conid,
                symbol: o.symbol.clone(),
                side: o.side.clone(),
                size: qty,
                price: fill_price,
                commission_cents: cents,
                reported: self.commission_reporting.reported,
                at: now,
            };
            self.executions.push(execution);
            self.cash -= side_sign * qty * fill_price + commission;
            let h = self.holdings.entry(conid).or_default();
            apply_fill(h, side_sign * qty, fill_price);
        }
    }

    /// `GET /iserver/account/trades`: executions of the current day, or of the last
    /// `days` days (IBKR: at most 7), newest first.
    pub fn trades(&self, days: Option<u32>) -> Vec<Value> {
        let days = i64::from(days.unwrap_or(1).clamp(1, 7));
        let first_day = Self::today() - Duration::days(days - 1);
        self.executions
            .iter()
            .rev()
            .filter(|e| e.at.date_naive() >= first_day)
            .map(|e| e.trade_json(self.commission_reporting.form))
            .collect()
    }

    /// Sets whether new executions come with their commission; reporting again
    /// also reports the commission of every execution held back so far.
    pub fn set_commission_reporting(&mut self, r: CommissionReporting) {
        self.commission_reporting = r;
        if r.reported {
            for e in &mut self.executions {
                e.reported = true;
            }
        }
    }

    /// `DELETE /iserver/account/{acct}/order/{id}`.
    pub fn cancel(&mut self, account: &str, order_id: u64) -> Result<Value, String> {
        let Some(o) = self
            .orders
            .iter_mut()
            .find(|o| o.order_id == order_id && o.account == account)
        else {
            return Err(format!("OrderID {order_id} doesn't exist"));
        };
        if !o.is_working() {
            return Err(format!("OrderID {order_id} is already {}", o.status));
        }
        o.status = "Cancelled".into();
        Ok(json!({
            "msg": "Request was submitted",
            "order_id": order_id,
            "conid": o.conid,
            "account": account,
        }))
    }

    pub fn positions(&self) -> Vec<Value> {
        let mut out: Vec<Value> = self
            .holdings
            .iter()
            .filter(|(_, h)| h.quantity != 0.0 || h.realized != 0.0)
            .map(|(conid, h)| {
                let px = self.price(*conid).unwrap_or(h.avg_cost);
                let symbol = synthetic::contract(*conid).map_or("", |c| c.0);
                json!({
                    "acctId": self.account,
                    "conid": conid,
                    "contractDesc": symbol,
                    "ticker": symbol,
                    "position": h.quantity,
                    "mktPrice": px,
                    "mktValue": h.quantity * px,
                    "currency": "USD",
                    "avgCost": h.avg_cost,
                    "avgPrice": h.avg_cost,
                    "realizedPnl": h.realized,
                    "unrealizedPnl": (px - h.avg_cost) * h.quantity,
                    "assetClass": "STK",
                })
            })
            .collect();
        out.sort_by_key(|v| v["conid"].as_i64());
        out
    }

    /// (cash, stock market value, unrealized, realized).
    pub fn totals(&self) -> (f64, f64, f64, f64) {
        let (mut mv, mut unreal, mut real) = (0.0, 0.0, 0.0);
        for (conid, h) in &self.holdings {
            let px = self.price(*conid).unwrap_or(h.avg_cost);
            mv += h.quantity * px;
            unreal += (px - h.avg_cost) * h.quantity;
            real += h.realized;
        }
        (self.cash, mv, unreal, real)
    }

    /// Daily bars ending today, covering `period`, as `bar` (`1d` or `1w`).
    pub fn history(&self, conid: i64, period: &str, bar: &str) -> Result<Vec<Value>, String> {
        synthetic::contract(conid).ok_or_else(|| format!("Invalid conid {conid}"))?;
        let days = period_days(period).ok_or_else(|| format!("Invalid period {period}"))?;
        let today = Self::today();
        let start = today - Duration::days(days);
        let daily: Vec<_> = synthetic::daily_bars(conid, today, days as usize + 5)
            .into_iter()
            .filter(|b| b.date() > start)
            .collect();
        let bars = match bar {
            "1d" => daily,
            "1w" => resample_weekly(&daily),
            other => return Err(format!("bar {other} is not served by the fake gateway")),
        };
        // IBKR returns at most 1000 points.
        let skip = bars.len().saturating_sub(1000);
        Ok(bars[skip..]
            .iter()
            .map(|b| json!({"o": b.open, "c": b.close, "h": b.high, "l": b.low, "v": b.volume, "t": b.t}))
            .collect())
    }
}

fn apply_fill(h: &mut Holding, signed_qty: f64, price: f64) {
    let same_direction = h.quantity == 0.0 || (h.quantity > 0.0) == (signed_qty > 0.0);
    if same_direction {
        let new_qty = h.quantity + signed_qty;
        h.avg_cost = (h.avg_cost * h.quantity + price * signed_qty) / new_qty;
        h.quantity = new_qty;
    } else {
        let closing = signed_qty.abs().min(h.quantity.abs());
        let sign = h.quantity.signum();
        h.realized += (price - h.avg_cost) * closing * sign;
        h.quantity += signed_qty;
        if h.quantity == 0.0 {
            h.avg_cost = 0.0;
        } else if h.quantity.signum() != sign {
            h.avg_cost = price;
        }
    }
}

/// Calendar days of an IBKR `period` such as `2y`, `730d`, `52w`, `6m`, `4h`.
pub fn period_days(period: &str) -> Option<i64> {
    let split = period.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = period.split_at(split);
    let n: i64 = n.parse().ok()?;
    let days = match unit {
        "min" | "h" => 1,
        "d" => n,
        "w" => n * 7,
        "m" => n * 31,
        "y" => n * 366,
        _ => return None,
    };
    (n > 0).then_some(days)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(side: &str, ty: &str, price: Option<f64>, qty: f64, coid: &str) -> OrderTicket {
        OrderTicket {
            acct_id: None,
            conid: 265598,
            coid: Some(coid.into()),
            order_type: ty.into(),
            price,
            side: side.into(),
            tif: "DAY".into(),
            quantity: qty,
            outside_rth: false,
        }
    }

    fn placed_after_reply(g: &mut Gateway, t: OrderTicket) -> u64 {
        let acct = g.account.clone();
        let mut answer = g.place(&acct, vec![t]);
        loop {
            match answer {
                OrderAnswer::Question(q) => {
                    let id = q[0]["id"].as_str().unwrap().to_string();
                    answer = g.reply(&id, true).unwrap();
                }
                OrderAnswer::Placed(v) => {
                    return v[0]["order_id"].as_str().unwrap().parse().unwrap();
                }
                OrderAnswer::Error(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn limit_buy_fills_only_once_the_market_trades_at_or_below_the_limit() {
        let mut g = Gateway::new("DU1".into(), true);
        g.prices.insert(265598, 101.0);
        let id = placed_after_reply(&mut g, ticket("BUY", "LMT", Some(100.0), 10.0, "a"));

        g.tick();
        g.tick();
        let before = g.orders[0].status.clone();
        g.prices.insert(265598, 99.5);
        g.tick();

        assert_eq!(before, "Submitted");
        assert_eq!(g.orders[0].order_id, id);
        assert_eq!(g.orders[0].status, "Filled");
        assert_eq!(g.orders[0].avg_price, 99.5);
        assert_eq!(g.holdings[&265598].quantity, 10.0);
        assert!((g.cash - (START_CASH - 995.0 - 1.0)).abs() < 1e-9);
    }

    #[test]
    fn limited_liquidity_fills_an_order_in_parts() {
        let mut g = Gateway::new("DU1".into(), true);
        g.prices.insert(265598, 100.0);
        g.liquidity.insert(265598, 4.0);
        placed_after_reply(&mut g, ticket("BUY", "MKT", None, 10.0, "b"));

        g.tick();
        g.tick();
        let partial = (g.orders[0].status.clone(), g.orders[0].filled);
        g.tick();
        g.tick();

        assert_eq!(partial, ("Submitted".to_string(), 4.0));
        assert_eq!(g.orders[0].status, "Filled");
        assert_eq!(g.orders[0].filled, 10.0);
    }

    #[test]
    fn partial_fills_pay_the_per_order_minimum_once_and_the_per_share_rate_beyond() {
        let mut g = Gateway::new("DU1".into(), true);
        g.prices.insert(265598, 100.0);
        g.liquidity.insert(265598, 150.0);
        placed_after_reply(&mut g, ticket("BUY", "MKT", None, 300.0, "c"));

        for _ in 0..4 {
            g.tick();
        }

        let cents: Vec<i64> = g.executions.iter().map(|e| e.commission_cents).collect();
        // 150 shares: 0.75 -> minimum 1.00; 300 shares: 1.50 in all.
        assert_eq!(cents, vec![100, 50]);
        assert!((g.orders[0].commission - 1.5).abs() < 1e-9);
        let rows = g.trades(None);
        assert_eq!(rows[0]["commission"], "0.50");
        assert_eq!(rows[1]["commission"], "1.00");
        assert_eq!(rows[1]["price"], "100");
        assert_eq!(rows[1]["conid"], "265598");
        assert_eq!(rows[1]["order_ref"], "c");
    }

    #[test]
    fn commission_is_capped_at_one_percent_of_a_small_trade() {
        assert_eq!(fixed_commission_cents(1.0, 50.0), 50);
        assert_eq!(fixed_commission_cents(10.0, 945.0), 100);
        assert_eq!(fixed_commission_cents(1000.0, 100_000.0), 500);
        assert_eq!(fixed_commission_cents(0.0, 0.0), 0);
    }

    #[test]
    fn held_back_commissions_show_empty_or_absent_until_reported() {
        let mut g = Gateway::new("DU1".into(), true);
        g.prices.insert(265598, 100.0);
        g.set_commission_reporting(CommissionReporting {
            reported: false,
            form: UnreportedForm::Absent,
        });
        placed_after_reply(&mut g, ticket("BUY", "MKT", None, 10.0, "d"));
        g.tick();
        g.tick();

        let absent = g.trades(Some(7));
        g.commission_reporting.form = UnreportedForm::Empty;
        let empty = g.trades(None);
        g.set_commission_reporting(CommissionReporting::default());
        let reported = g.trades(None);

        assert!(absent[0].get("commission").is_none());
        assert_eq!(empty[0]["commission"], "");
        assert_eq!(reported[0]["commission"], "1.00");
    }

    #[test]
    fn selling_a_position_realizes_its_profit() {
        let mut h = Holding::default();

        apply_fill(&mut h, 10.0, 100.0);
        apply_fill(&mut h, -4.0, 110.0);

        assert_eq!(h.quantity, 6.0);
        assert_eq!(h.avg_cost, 100.0);
        assert_eq!(h.realized, 40.0);
    }

    #[test]
    fn periods_convert_to_calendar_days() {
        assert_eq!(period_days("2y"), Some(732));
        assert_eq!(period_days("730d"), Some(730));
        assert_eq!(period_days("10w"), Some(70));
        assert_eq!(period_days("y"), None);
        assert_eq!(period_days("0d"), None);
    }
}
