//! The fake gateway's in-memory state: session, orders with a deterministic fill
//! model, positions and cash. Every rule here is plain code on plain values.

use std::collections::{BTreeMap, HashMap, HashSet};

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

// The order questions ("reply messages") and their ids. IBKR publishes no complete
// list (ibind issue #42); ids and texts are those of ibind's table
// (Voyz/ibind, ibind/client/ibkr_utils.py, `_MESSAGE_ID_TO_QUESTION_TYPE`) and of
// IBKR Campus, Web API v1.0, "Place Order" (the o163 example) and "Suppressible
// Message IDs".
pub const NO_MARKET_DATA_ID: &str = "o354";
pub const NO_MARKET_DATA_TEXT: &str = "You are submitting an order without market data. We strongly recommend against this as it may result in erroneous and unexpected trades. Are you sure you want to submit this order?";
pub const PRICE_PERCENT_ID: &str = "o163";
/// Market orders: "Warns about risks with Market Orders" (ibind's description; the
/// gateway's own text is not published).
pub const MARKET_ORDER_ID: &str = "o10151";
pub const MARKET_ORDER_TEXT: &str = "Warns about risks with Market Orders";
/// Market orders: IBKR may cap the price of a marketable order.
pub const CAP_PRICE_ID: &str = "o10153";
pub const CAP_PRICE_TEXT: &str = "<h4>Confirm Mandatory Cap Price</h4>To avoid trading at a price that is not consistent with a fair and orderly market, IB may set a cap (for a buy order) or sell order). THIS MAY CAUSE AN ORDER THAT WOULD OTHERWISE BE MARKETABLE TO NOT BE TRADED.";
/// A limit through the market.
pub const TRIGGER_FILL_ID: &str = "o403";
pub const TRIGGER_FILL_TEXT: &str = "This order will most likely trigger and fill immediately.\nAre you sure you want to submit this order?";
/// The account's order size and value presets (Client Portal / TWS presets).
pub const SIZE_LIMIT_ID: &str = "o383";
pub const VALUE_LIMIT_ID: &str = "o451";

/// The account's precautionary presets: orders above them draw o383 / o451.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq)]
pub struct Presets {
    #[serde(default)]
    pub size_limit: Option<f64>,
    #[serde(default)]
    pub value_limit: Option<f64>,
}

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
    /// The brokerage session the order was placed in.
    pub session: u64,
    /// Forgotten by a session reset: the gateway neither lists it nor answers its
    /// status (503); it still works and fills at the exchange, and its executions
    /// stay in `/iserver/account/trades`.
    pub forgotten: bool,
}

fn company(conid: i64) -> &'static str {
    synthetic::contract(conid).map_or("", |c| c.1)
}

fn exchange(conid: i64) -> &'static str {
    synthetic::contract(conid).map_or("", |c| c.2)
}

/// `YYMMDDhhmmss`, the live-orders and order-status time format.
fn short_time(t: DateTime<Utc>) -> String {
    t.format("%y%m%d%H%M%S").to_string()
}

/// IBKR prints quantities as floats (`"5.0"`).
fn qty_text(q: f64) -> String {
    format!("{q:.1}")
}

impl FakeOrder {
    fn is_working(&self) -> bool {
        matches!(self.status.as_str(), "PreSubmitted" | "Submitted")
    }

    fn remaining(&self) -> f64 {
        (self.quantity - self.filled).max(0.0)
    }

    fn type_word(&self) -> &'static str {
        if self.order_type == "LMT" {
            "Limit"
        } else {
            "Market"
        }
    }

    fn tif_word(&self) -> &'static str {
        match self.tif.as_str() {
            "GTC" => "GTC",
            "IOC" => "IOC",
            _ => "Day",
        }
    }

    fn description(&self) -> String {
        let verb = match (self.side.as_str(), self.filled > 0.0) {
            ("BUY", true) => "Bought",
            ("BUY", false) => "Buy",
            (_, true) => "Sold",
            (_, false) => "Sell",
        };
        let price = self.price.map(|p| format!(" {p}")).unwrap_or_default();
        format!(
            "{verb} {} {}{price}, {}",
            self.quantity,
            self.type_word(),
            self.tif_word()
        )
    }

    /// A row of `/iserver/account/orders`, in the shape of IBKR Campus, Web API
    /// v1.0, "Live Orders" (conid a number, quantities numbers, `avgPrice` a string,
    /// `order_ref` = cOID); `price` is a limit order's (OpenAPI model
    /// `LiveOrdersResponseOrdersInner`).
    pub fn live_json(&self) -> Value {
        let mut v = json!({
            "acct": self.account,
            "conidex": self.conid.to_string(),
            "conid": self.conid,
            "account": self.account,
            "orderId": self.order_id,
            "cashCcy": "USD",
            "sizeAndFills": if self.filled > 0.0 && self.remaining() > 0.0 {
                format!("{}/{}", self.filled, self.quantity)
            } else {
                format!("{}", self.quantity)
            },
            "orderDesc": self.description(),
            "description1": self.symbol,
            "ticker": self.symbol,
            "secType": "STK",
            "listingExchange": exchange(self.conid),
            "remainingQuantity": self.remaining(),
            "filledQuantity": self.filled,
            "totalSize": self.quantity,
            "companyName": company(self.conid),
            "status": self.status,
            "order_ccp_status": self.status,
            "origOrderType": self.type_word().to_uppercase(),
            "supportsTaxOpt": "1",
            "orderType": self.type_word(),
            "bgColor": "#FFFFFF",
            "fgColor": "#000000",
            "order_ref": self.coid,
            "timeInForce": self.tif,
            "side": self.side,
        });
        if self.filled > 0.0 {
            v["avgPrice"] = json!(format!("{:.2}", self.avg_price));
        }
        if let Some(t) = self.last_execution {
            v["lastExecutionTime"] = json!(short_time(t));
            v["lastExecutionTime_r"] = json!(t.timestamp_millis());
        }
        if let Some(p) = self.price {
            v["price"] = json!(format!("{p}"));
        }
        v
    }

    /// `/iserver/account/order/status/{id}`, in the shape of IBKR Campus, Web API
    /// v1.0, "Order Status" (quantities and prices as strings, `side` B/S).
    pub fn status_json(&self) -> Value {
        let desc = self.description();
        json!({
            "sub_type": null,
            "request_id": "209",
            "server_id": "0",
            "order_id": self.order_id,
            "conidex": self.conid.to_string(),
            "conid": self.conid,
            "symbol": self.symbol,
            "side": if self.side == "BUY" { "B" } else { "S" },
            "contract_description_1": self.symbol,
            "listing_exchange": exchange(self.conid),
            "option_acct": "c",
            "company_name": company(self.conid),
            "size": qty_text(self.remaining()),
            "total_size": qty_text(self.quantity),
            "currency": "USD",
            "account": self.account,
            "order_type": self.type_word().to_uppercase(),
            "cum_fill": qty_text(self.filled),
            "order_status": self.status,
            "order_ccp_status": if self.status == "Filled" { "2" } else { "1" },
            "order_status_description": format!("Order {}", self.status),
            "tif": self.tif,
            "fg_color": "#FFFFFF",
            "bg_color": "#000000",
            "order_not_editable": !self.is_working(),
            "editable_fields": "",
            "cannot_cancel_order": !self.is_working(),
            "deactivate_order": false,
            "sec_type": "STK",
            "available_chart_periods": "#R|1",
            "order_description": desc,
            "order_description_with_contract": format!("{} {}", self.symbol, desc),
            "alert_active": 1,
            "child_order_type": "0",
            "order_clearing_account": self.account,
            "size_and_fills": format!("{}", self.filled),
            "exit_strategy_display_price": format!("{:.2}", self.price.unwrap_or(self.avg_price)),
            "exit_strategy_chart_description": desc,
            "average_price": format!("{:.2}", self.avg_price),
            "exit_strategy_tool_availability": "1",
            "allowed_duplicate_opposite": true,
            "order_time": short_time(self.placed_at),
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
    /// IBKR's shape (IBKR Campus, Web API v1.0, "Trades"): `price` and `commission`
    /// strings, `size`, `net_amount` and `conid` numbers, the cOID as `order_ref`
    /// and no order id at all; the commission is `""` (or absent) until it is
    /// reported.
    pub fn trade_json(&self, form: UnreportedForm) -> Value {
        let buy = self.side == "BUY";
        let mut v = json!({
            "execution_id": self.execution_id,
            "symbol": self.symbol,
            "supports_tax_opt": "1",
            "side": if buy { "B" } else { "S" },
            "order_description": format!("{} {} @ {} on ISLAND", if buy { "Bot" } else { "Sold" }, self.size, self.price),
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
            "account_allocation_name": self.account,
            "company_name": company(self.conid),
            "contract_description_1": self.symbol,
            "sec_type": "STK",
            "listing_exchange": exchange(self.conid),
            "conid": self.conid,
            "conidEx": self.conid.to_string(),
            "clearing_id": "IB",
            "clearing_name": "IB",
            "liquidation_trade": "0",
            "is_event_trading": "0",
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
    /// A name the caller chose; a held answer (`GET /fake/held`) carries it, so a
    /// test can tell which of its faults holds which request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// An answer the gateway is holding right now (a `delay` or `delay_after_order`
/// fault), with the client's address: a lost or late answer is what a real gateway
/// or network does to a caller (orders lost or duplicated across disconnects:
/// nautilus_trader #5057, #4564; Lean IB #249), and a test that kills the caller
/// meanwhile needs to know which connection waits.
#[derive(Debug, Clone, Serialize)]
pub struct Held {
    pub id: u64,
    pub path: String,
    pub kind: FaultKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The order the request registered (`delay_after_order`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coid: Option<String>,
    /// The client's `ip:port`, when the server knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    pub since: DateTime<Utc>,
    pub delay_ms: u64,
}

fn one() -> u32 {
    1
}

/// Which orders a session reset forgets (see `Gateway::reset_session`).
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Forget {
    #[default]
    All,
    Finished,
}

/// What the order-question machinery did, for `/fake/stats`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct QuestionStats {
    /// Questions sent in answer to an order or a reply.
    pub questions_asked: u64,
    /// Replies that found their question.
    pub replies: u64,
    /// Replies whose question was gone (another request came in between, or none
    /// was pending): IBKR answers those 503.
    pub late_replies: u64,
    /// Requests that arrived while an order question waited for its reply: each
    /// cancelled that order (IBKR Campus, Web API v1.0, "Place Order Reply
    /// Confirmation": "Submitting other orders or other requests will cancel the
    /// order").
    pub interleaved_replies: u64,
}

#[derive(Debug)]
pub struct Gateway {
    pub account: String,
    /// An SSO (browser) login exists; without it every endpoint answers 401.
    pub logged_in: bool,
    /// The brokerage session is authenticated (iserver endpoints work).
    pub authenticated: bool,
    pub competing: bool,
    /// The brokerage session's number; a new session (login, `ssodh/init`, the
    /// daily reset) starts over on everything below that is per session.
    pub session: u64,
    /// Message ids suppressed in this brokerage session
    /// (`POST /iserver/questions/suppress`).
    pub suppressed: HashSet<String>,
    /// Message ids this gateway asks even when suppressed (tests use it to keep
    /// the question/reply exchange going; IBKR accepts only ids of its published
    /// "Suppressible Message IDs" list).
    pub unsuppressible: HashSet<String>,
    /// Whether this session's live-orders list was asked for once: the first
    /// request is a pre-flight answered `{"orders":[],"snapshot":false}`.
    pub live_orders_primed: bool,
    pub presets: Presets,
    pub snapshot_primed: HashSet<i64>,
    /// Conids the account has no market data for: snapshot rows without values.
    pub unpriced: HashSet<i64>,
    /// History `volumeFactor`: volumes are served divided by it.
    pub volume_factor: f64,
    pub prices: HashMap<i64, f64>,
    /// Shares that can fill per market tick, per conid (unlimited when absent).
    pub liquidity: HashMap<i64, f64>,
    pub pending: Option<PendingReply>,
    pub questions: QuestionStats,
    pub orders: Vec<FakeOrder>,
    pub executions: Vec<FakeExecution>,
    pub commission_reporting: CommissionReporting,
    pub coids: HashMap<String, DateTime<Utc>>,
    pub holdings: HashMap<i64, Holding>,
    pub cash: f64,
    pub faults: Vec<Fault>,
    /// Answers held by faults right now, by id.
    pub held: BTreeMap<u64, Held>,
    next_held: u64,
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
    /// Records an answer `fault` is about to hold; `release_held` ends it.
    pub fn hold(
        &mut self,
        path: &str,
        fault: &Fault,
        coid: Option<String>,
        peer: Option<String>,
    ) -> u64 {
        let id = self.next_held;
        self.next_held += 1;
        self.held.insert(
            id,
            Held {
                id,
                path: path.to_string(),
                kind: fault.kind.clone(),
                label: fault.label.clone(),
                coid,
                peer,
                since: Utc::now(),
                delay_ms: fault.delay_ms,
            },
        );
        id
    }

    pub fn release_held(&mut self, id: u64) {
        self.held.remove(&id);
    }

    pub fn new(account: String, logged_in: bool) -> Self {
        Self {
            account,
            logged_in,
            authenticated: logged_in,
            competing: false,
            session: 1,
            suppressed: HashSet::new(),
            unsuppressible: HashSet::new(),
            live_orders_primed: false,
            presets: Presets::default(),
            snapshot_primed: HashSet::new(),
            unpriced: HashSet::new(),
            volume_factor: 1.0,
            prices: HashMap::new(),
            liquidity: HashMap::new(),
            pending: None,
            questions: QuestionStats::default(),
            orders: Vec::new(),
            executions: Vec::new(),
            commission_reporting: CommissionReporting::default(),
            coids: HashMap::new(),
            holdings: HashMap::new(),
            cash: START_CASH,
            faults: Vec::new(),
            held: BTreeMap::new(),
            next_held: 1,
            next_order_id: 1_000_000_000,
            next_reply: 1,
        }
    }

    /// A new brokerage session (login, `ssodh/init`, a reset): per-session state
    /// starts over. Suppressed questions come back (suppression is per session,
    /// IBKR Campus "Suppress Messages"), snapshots need their pre-flight again and
    /// the live-orders list starts with a pre-flight. Which orders the session
    /// forgets is `reset_session`'s business; cOIDs stay taken for 24 h.
    pub fn new_session(&mut self) {
        self.authenticated = true;
        self.competing = false;
        self.session += 1;
        self.suppressed.clear();
        self.live_orders_primed = false;
        self.snapshot_primed.clear();
        self.pending = None;
    }

    /// `POST /iserver/auth/status`, in the shape of IBKR Campus, Web API v1.0,
    /// "Authentication Status"; a session without brokerage authentication answers
    /// its "Alternate Response Object" (four fields).
    pub fn auth_status(&self) -> Value {
        if !self.authenticated {
            return json!({
                "authenticated": false,
                "competing": self.competing,
                "connected": self.logged_in,
                "MAC": "00:00:00:00:00:00",
            });
        }
        json!({
            "authenticated": self.authenticated,
            "competing": self.competing,
            "connected": self.logged_in,
            "message": "",
            "MAC": "00:00:00:00:00:00",
            "serverInfo": {"serverName": "FakeGateway", "serverVersion": "Build 10.0.0, fake"},
            "hardware_info": "00000000|00:00:00:00:00:00",
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

    /// `POST /iserver/questions/suppress`: these ids are not asked again in this
    /// brokerage session.
    pub fn suppress(&mut self, ids: &[String]) {
        self.suppressed.extend(ids.iter().cloned());
    }

    fn asks(&self, id: &str) -> bool {
        !self.suppressed.contains(id) || self.unsuppressible.contains(id)
    }

    /// The questions an order draws, in the order they are asked: the missing
    /// market data warning (every order of a paper account without a
    /// subscription), the market-order warnings, a limit through the market or far
    /// from it, and the account's size and value presets.
    fn questions_for(&self, ticket: &OrderTicket) -> Vec<(String, String)> {
        let mut qs = Vec::new();
        let market = self.price(ticket.conid);
        qs.push((NO_MARKET_DATA_ID, NO_MARKET_DATA_TEXT.to_string()));
        if ticket.order_type == "MKT" {
            qs.push((MARKET_ORDER_ID, MARKET_ORDER_TEXT.to_string()));
            qs.push((CAP_PRICE_ID, CAP_PRICE_TEXT.to_string()));
        }
        let buy = ticket.side == "BUY";
        if let (Some(limit), Some(market)) = (ticket.price, market) {
            if ((limit - market) / market).abs() > PRICE_PERCENT_LIMIT {
                qs.push((
                    PRICE_PERCENT_ID,
                    format!(
                        "The following order \"{} {} {} @ {limit}\" price exceeds \nthe Percentage constraint of 3%.\nAre you sure you want to submit this order?",
                        ticket.side,
                        ticket.quantity,
                        synthetic::contract(ticket.conid).map_or("", |c| c.0)
                    ),
                ));
            } else if (buy && limit >= market) || (!buy && limit <= market) {
                qs.push((TRIGGER_FILL_ID, TRIGGER_FILL_TEXT.to_string()));
            }
        }
        let symbol = synthetic::contract(ticket.conid).map_or("", |c| c.0);
        if let Some(max) = self.presets.size_limit
            && ticket.quantity > max
        {
            qs.push((
                SIZE_LIMIT_ID,
                format!(
                    "The following order {} {} {symbol} size exceeds the Size Limit of {max}.\nAre you sure you want to submit this order?",
                    ticket.side, ticket.quantity
                ),
            ));
        }
        if let (Some(max), Some(px)) = (self.presets.value_limit, ticket.price.or(market)) {
            let value = px * ticket.quantity;
            if value > max {
                qs.push((
                    VALUE_LIMIT_ID,
                    format!(
                        "The following order {} {} {symbol} value estimate of {value:.2} USD exceeds \nthe Total Value Limit of {max} USD.\nAre you sure you want to submit this order?",
                        ticket.side, ticket.quantity
                    ),
                ));
            }
        }
        qs.into_iter()
            .filter(|(id, _)| self.asks(id))
            .map(|(id, text)| (id.to_string(), text))
            .collect()
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
        self.questions.questions_asked += 1;
        self.pending = Some(PendingReply {
            id: id.clone(),
            ticket,
            account,
            remaining: qs,
        });
        // The shape of IBKR Campus, Web API v1.0, "Place Order", alternate response.
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
        let qs = self.questions_for(&ticket);
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
        let Some(pending) = self.pending.take_if(|p| p.id == id) else {
            self.questions.late_replies += 1;
            return None;
        };
        self.questions.replies += 1;
        if !confirmed {
            return Some(OrderAnswer::Error(
                "Order was not confirmed and has been discarded".into(),
            ));
        }
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

    /// A request other than the reply arrived while a question waited: IBKR
    /// cancels that order.
    pub fn interrupt_pending(&mut self) {
        if self.pending.take().is_some() {
            self.questions.interleaved_replies += 1;
        }
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
            session: self.session,
            forgotten: false,
        });
        OrderAnswer::Placed(json!([{
            "order_id": order_id.to_string(),
            "order_status": "PreSubmitted",
            "encrypt_message": "1",
        }]))
    }

    /// A brokerage session reset (IBKR's daily one, at midnight of the region): a new
    /// session that forgets the orders placed before it, all of them (`All`: the
    /// live-orders list is of "the current brokerage session", OpenAPI
    /// `iserver_account_orders_get`) or only those already filled or cancelled
    /// (`Finished`: IBKR Campus, "Order Status", 503 for orders "cancelled or filled
    /// prior to the active session").
    pub fn reset_session(&mut self, forget: Forget) {
        for o in &mut self.orders {
            if forget == Forget::All || !o.is_working() {
                o.forgotten = true;
            }
        }
        self.new_session();
    }

    /// `GET /iserver/account/orders`. The session's first request is a pre-flight
    /// answered `{"orders":[],"snapshot":false}` (IBKR Campus, Web API v1.0, "Live
    /// Orders": "This endpoint requires a pre-flight request"); then the orders
    /// this session knows, newest first.
    pub fn live_orders(&mut self) -> Value {
        if !self.live_orders_primed {
            self.live_orders_primed = true;
            return json!({"orders": [], "snapshot": false});
        }
        let orders: Vec<Value> = self
            .orders
            .iter()
            .rev()
            .filter(|o| !o.forgotten)
            .map(FakeOrder::live_json)
            .collect();
        json!({"orders": orders, "snapshot": true})
    }

    /// `GET /iserver/account/order/status/{id}`; `None` (IBKR: 503) for an order
    /// unknown to this session.
    pub fn order_status(&self, order_id: u64) -> Option<Value> {
        self.orders
            .iter()
            .find(|o| o.order_id == order_id && !o.forgotten)
            .map(FakeOrder::status_json)
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
                // The shape of IBKR Campus, Web API v1.0, "Positions".
                json!({
                    "acctId": self.account,
                    "conid": conid,
                    "contractDesc": symbol,
                    "position": h.quantity,
                    "mktPrice": px,
                    "mktValue": h.quantity * px,
                    "currency": "USD",
                    "avgCost": h.avg_cost,
                    "avgPrice": h.avg_cost,
                    "realizedPnl": h.realized,
                    "unrealizedPnl": (px - h.avg_cost) * h.quantity,
                    "exchs": null,
                    "expiry": null,
                    "putOrCall": null,
                    "multiplier": null,
                    "strike": 0.0,
                    "exerciseStyle": null,
                    "conExchMap": [],
                    "assetClass": "STK",
                    "undConid": 0,
                    "model": "",
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

    /// Daily bars covering `period` before `end` (exclusive; today's bar
    /// included when absent), as `bar` (`1d` or `1w`), volumes divided by the
    /// `volumeFactor`. IBKR Campus, Web API v1.0, "Historical Market Data":
    /// periods `{1-1000}d`, `{1-792}w`, `{1-182}m`, `{1-15}y`, "a maximum of 1000
    /// data points"; `startTime` is where the chart starts going back from (IBKR's
    /// example: startTime Monday 13:30 UTC, period 1d, answers Friday's bar).
    ///
    /// # Errors
    /// An unknown conid, an unparsable or out-of-range period, an unserved bar.
    pub fn history(
        &self,
        conid: i64,
        period: &str,
        bar: &str,
        end: Option<NaiveDate>,
    ) -> Result<Vec<Value>, String> {
        synthetic::contract(conid).ok_or_else(|| format!("Invalid conid {conid}"))?;
        let days = period_days(period).ok_or_else(|| format!("Invalid period {period}"))?;
        let last = end.map_or(Self::today(), |e| e - Duration::days(1));
        let start = last - Duration::days(days);
        let daily: Vec<_> = synthetic::daily_bars(conid, last, days as usize + 5)
            .into_iter()
            .filter(|b| b.date() > start)
            .collect();
        let bars = match bar {
            "1d" => daily,
            "1w" => resample_weekly(&daily),
            other => return Err(format!("bar {other} is not served by the fake gateway")),
        };
        let skip = bars.len().saturating_sub(MAX_HISTORY_POINTS);
        let factor = self.volume_factor;
        Ok(bars[skip..]
            .iter()
            .map(|b| json!({"o": b.open, "c": b.close, "h": b.high, "l": b.low, "v": b.volume / factor, "t": b.t}))
            .collect())
    }
}

/// IBKR's cap on the points of one history request.
pub const MAX_HISTORY_POINTS: usize = 1000;

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

/// Calendar days of an IBKR `period` such as `2y`, `730d`, `52w`, `6m`, `4h`,
/// within IBKR's ranges (`{1-30}min`, `{1-8}h`, `{1-1000}d`, `{1-792}w`,
/// `{1-182}m`, `{1-15}y`); none outside them.
pub fn period_days(period: &str) -> Option<i64> {
    let split = period.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = period.split_at(split);
    let n: i64 = n.parse().ok()?;
    let (days, max) = match unit {
        "min" => (1, 30),
        "h" => (1, 8),
        "d" => (n, 1000),
        "w" => (n * 7, 792),
        "m" => (n * 31, 182),
        "y" => (n * 366, 15),
        _ => return None,
    };
    (1..=max).contains(&n).then_some(days)
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
        assert_eq!(rows[1]["conid"], 265598);
        assert_eq!(rows[1]["order_ref"], "c");
        assert!(rows[1].get("order_id").is_none());
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
    fn periods_convert_to_calendar_days_within_ibkrs_ranges() {
        assert_eq!(period_days("2y"), Some(732));
        assert_eq!(period_days("730d"), Some(730));
        assert_eq!(period_days("1000d"), Some(1000));
        assert_eq!(period_days("10w"), Some(70));
        assert_eq!(period_days("1001d"), None);
        assert_eq!(period_days("16y"), None);
        assert_eq!(period_days("y"), None);
        assert_eq!(period_days("0d"), None);
    }

    fn asked(g: &mut Gateway, t: OrderTicket) -> Vec<String> {
        let acct = g.account.clone();
        let mut ids = Vec::new();
        let mut answer = g.place(&acct, vec![t]);
        while let OrderAnswer::Question(q) = answer {
            ids.push(q[0]["messageIds"][0].as_str().unwrap().to_string());
            let id = q[0]["id"].as_str().unwrap().to_string();
            answer = g.reply(&id, true).unwrap();
        }
        ids
    }

    #[test]
    fn market_orders_draw_the_market_order_questions_every_time_until_suppressed() {
        let mut g = Gateway::new("DU1".into(), true);

        let first = asked(&mut g, ticket("SELL", "MKT", None, 10.0, "m1"));
        let second = asked(&mut g, ticket("SELL", "MKT", None, 10.0, "m2"));
        g.suppress(&["o354".into(), "o10151".into(), "o10153".into()]);
        let suppressed = asked(&mut g, ticket("SELL", "MKT", None, 10.0, "m3"));
        g.new_session();
        let next_session = asked(&mut g, ticket("SELL", "MKT", None, 10.0, "m4"));

        assert_eq!(first, ["o354", "o10151", "o10153"]);
        assert_eq!(second, first);
        assert!(suppressed.is_empty());
        assert_eq!(next_session, first);
        assert_eq!(g.orders.len(), 4);
    }

    #[test]
    fn limits_draw_questions_by_where_they_stand_against_the_market() {
        let mut g = Gateway::new("DU1".into(), true);
        g.prices.insert(265598, 100.0);
        g.suppress(&["o354".into()]);
        g.presets = Presets {
            size_limit: Some(500.0),
            value_limit: Some(100_000.0),
        };

        let resting = asked(&mut g, ticket("BUY", "LMT", Some(99.0), 10.0, "l1"));
        let marketable = asked(&mut g, ticket("BUY", "LMT", Some(100.5), 10.0, "l2"));
        let far = asked(&mut g, ticket("SELL", "LMT", Some(110.0), 10.0, "l3"));
        let big = asked(&mut g, ticket("BUY", "LMT", Some(99.0), 1200.0, "l4"));

        assert!(resting.is_empty());
        assert_eq!(marketable, ["o403"]);
        assert_eq!(far, ["o163"]);
        assert_eq!(big, ["o383", "o451"]);
    }

    #[test]
    fn an_unsuppressible_question_is_asked_despite_suppression() {
        let mut g = Gateway::new("DU1".into(), true);
        g.suppress(&["o354".into(), "o10151".into(), "o10153".into()]);
        g.unsuppressible.insert("o10153".into());

        assert_eq!(
            asked(&mut g, ticket("BUY", "MKT", None, 1.0, "u")),
            ["o10153"]
        );
    }

    #[test]
    fn a_request_between_question_and_reply_cancels_the_order() {
        let mut g = Gateway::new("DU1".into(), true);
        let acct = g.account.clone();
        let OrderAnswer::Question(q) = g.place(&acct, vec![ticket("BUY", "MKT", None, 1.0, "i")])
        else {
            panic!("a market order asks")
        };

        g.interrupt_pending();
        let late = g.reply(q[0]["id"].as_str().unwrap(), true);

        assert!(late.is_none());
        assert!(g.orders.is_empty());
        assert_eq!(g.questions.interleaved_replies, 1);
        assert_eq!(g.questions.late_replies, 1);
    }

    #[test]
    fn a_reset_session_starts_with_a_preflight_and_forgets_orders_finished_before_it() {
        let mut g = Gateway::new("DU1".into(), true);
        g.prices.insert(265598, 100.0);
        let filled = placed_after_reply(&mut g, ticket("BUY", "MKT", None, 1.0, "f"));
        let working = placed_after_reply(&mut g, ticket("BUY", "LMT", Some(90.0), 1.0, "w"));
        g.tick();
        g.tick();
        let preflight = g.live_orders();
        let listed = g.live_orders();

        g.reset_session(Forget::Finished);
        let after_preflight = g.live_orders();
        let after = g.live_orders();

        assert_eq!(preflight, json!({"orders": [], "snapshot": false}));
        assert_eq!(listed["orders"].as_array().unwrap().len(), 2);
        assert_eq!(after_preflight["snapshot"], false);
        let ids: Vec<u64> = after["orders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["orderId"].as_u64().unwrap())
            .collect();
        assert_eq!(ids, [working]);
        assert!(g.order_status(filled).is_none());
        assert!(g.order_status(working).is_some());
        assert_eq!(g.trades(None).len(), 1);
        g.reset_session(Forget::All);
        g.live_orders();
        assert_eq!(g.live_orders()["orders"], json!([]));
        assert!(g.order_status(working).is_none());
    }

    #[test]
    fn history_volumes_are_divided_by_the_volume_factor_and_capped_at_1000_points() {
        let mut g = Gateway::new("DU1".into(), true);
        let plain = g.history(265598, "30d", "1d", None).unwrap();
        g.volume_factor = 100.0;

        let scaled = g.history(265598, "30d", "1d", None).unwrap();
        let long = g.history(265598, "15y", "1d", None).unwrap();

        let v = |rows: &[Value]| rows[0]["v"].as_f64().unwrap();
        assert!((v(&plain) - v(&scaled) * 100.0).abs() < 1e-6);
        assert_eq!(long.len(), MAX_HISTORY_POINTS);
    }

    #[test]
    fn history_before_a_start_time_ends_the_day_before_it() {
        let g = Gateway::new("DU1".into(), true);
        let recent = g.history(265598, "60d", "1d", None).unwrap();
        let oldest = recent[0]["t"].as_i64().unwrap();
        let day = chrono::DateTime::from_timestamp_millis(oldest)
            .unwrap()
            .date_naive();

        let older = g.history(265598, "60d", "1d", Some(day)).unwrap();

        assert!(older.iter().all(|b| b["t"].as_i64().unwrap() < oldest));
        assert!(!older.is_empty());
    }
}
