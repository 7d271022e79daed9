//! Typed requests and responses of the Client Portal Web API. IBKR is loose with
//! types (conids as strings or numbers, prices as strings, snake_case where camelCase
//! is documented), so the parsers here are lenient about representation and strict
//! about meaning.

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};
use tradeflow_core::orders::Side;

use super::confirm::AnsweredQuestion;

/// A number sent as a number or as a string. Snapshot prices may carry a one-letter
/// prefix: `C` (previous close) or `H` (halted) (IBKR Campus Web API v1.0,
/// "Market Data Fields"); the prefix is dropped.
pub fn lenient_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s
            .trim()
            .trim_start_matches(|c: char| c.is_ascii_alphabetic())
            .replace(',', "")
            .parse()
            .ok(),
        _ => None,
    }
}

/// An exact decimal sent as a number or as a string; an empty string (IBKR's way of
/// saying "not yet", e.g. an execution's commission) is none.
pub fn lenient_decimal(v: &Value) -> Option<Decimal> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().replace(',', ""),
        _ => return None,
    };
    text.parse()
        .ok()
        .or_else(|| Decimal::from_scientific(&text).ok())
}

fn de_dec<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    Ok(lenient_decimal(&Value::deserialize(d)?))
}

fn de_opt_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(lenient_number(&Value::deserialize(d)?)
        .filter(|n| n.fract() == 0.0)
        .map(|n| n as i64))
}

fn de_num<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Ok(lenient_number(&Value::deserialize(d)?))
}

fn de_num0<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(lenient_number(&Value::deserialize(d)?).unwrap_or(0.0))
}

fn de_id<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = Value::deserialize(d)?;
    lenient_number(&v)
        .filter(|n| n.fract() == 0.0)
        .map(|n| n as i64)
        .ok_or_else(|| serde::de::Error::custom(format!("not an id: {v}")))
}

fn de_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// `POST /iserver/auth/status`.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct AuthStatus {
    #[serde(default)]
    pub authenticated: bool,
    #[serde(default)]
    pub competing: bool,
    #[serde(default)]
    pub connected: bool,
    #[serde(default, deserialize_with = "de_string")]
    pub message: String,
    #[serde(default, deserialize_with = "de_string")]
    pub fail: String,
}

impl AuthStatus {
    /// Healthy = authenticated, connected and not competing (as ibind's session_mixin checks).
    pub fn healthy(&self) -> bool {
        self.authenticated && self.connected && !self.competing
    }
}

/// `POST /tickle`. The session token it returns is deliberately not kept.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Tickle {
    #[serde(rename = "ssoExpires", default, deserialize_with = "de_num")]
    pub sso_expires_ms: Option<f64>,
    #[serde(default)]
    pub collission: bool,
    #[serde(default)]
    pub iserver: TickleIserver,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct TickleIserver {
    #[serde(rename = "authStatus", default)]
    pub auth_status: Option<AuthStatus>,
}

/// `GET /iserver/accounts`.
#[derive(Debug, Clone, Deserialize)]
pub struct Accounts {
    pub accounts: Vec<String>,
    #[serde(rename = "selectedAccount", default)]
    pub selected_account: Option<String>,
    #[serde(rename = "isPaper", default)]
    pub is_paper: Option<bool>,
}

/// One hit of `/iserver/secdef/search` (conid is a string there).
#[derive(Debug, Clone, Deserialize)]
pub struct SearchHit {
    #[serde(deserialize_with = "de_id")]
    pub conid: i64,
    #[serde(default, deserialize_with = "de_string")]
    pub symbol: String,
    #[serde(rename = "companyName", default, deserialize_with = "de_string")]
    pub company_name: String,
    /// The primary exchange, e.g. `NASDAQ`.
    #[serde(default, deserialize_with = "de_string")]
    pub description: String,
    #[serde(default)]
    pub sections: Vec<SearchSection>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SearchSection {
    #[serde(rename = "secType", default)]
    pub sec_type: String,
}

/// `/iserver/contract/{conid}/info`: documented camelCase, served snake_case
/// (IBKR Campus Web API v1.0, "Contract information by Contract ID"); both accepted.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ContractInfo {
    #[serde(alias = "con_id", alias = "conId", deserialize_with = "de_id")]
    pub conid: i64,
    #[serde(default, deserialize_with = "de_string")]
    pub symbol: String,
    #[serde(
        alias = "instrument_type",
        alias = "instrumentType",
        default,
        deserialize_with = "de_string"
    )]
    pub asset_type: String,
    #[serde(default, deserialize_with = "de_string")]
    pub currency: String,
    #[serde(default, deserialize_with = "de_string")]
    pub exchange: String,
    #[serde(
        alias = "company_name",
        alias = "companyName",
        default,
        deserialize_with = "de_string"
    )]
    pub company_name: String,
}

/// `/iserver/marketdata/history`. `volumeFactor` is "the factor the volume is
/// multiplied by" (IBKR Campus Web API v1.0, "Historical Market Data"): shares =
/// `v × volumeFactor`. IBKR's own example says 1 next to a fractional
/// `v: 472117.45`, so check the unit on a live gateway before relying on it.
#[derive(Debug, Clone, Deserialize)]
pub struct History {
    #[serde(default, deserialize_with = "de_string")]
    pub symbol: String,
    #[serde(default)]
    pub data: Vec<HistoryBar>,
    #[serde(rename = "volumeFactor", default, deserialize_with = "de_num")]
    pub volume_factor: Option<f64>,
    #[serde(default, deserialize_with = "de_num")]
    pub points: Option<f64>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
pub struct HistoryBar {
    #[serde(deserialize_with = "de_num0")]
    pub o: f64,
    #[serde(deserialize_with = "de_num0")]
    pub h: f64,
    #[serde(deserialize_with = "de_num0")]
    pub l: f64,
    #[serde(deserialize_with = "de_num0")]
    pub c: f64,
    #[serde(default, deserialize_with = "de_num0")]
    pub v: f64,
    /// Epoch milliseconds.
    #[serde(deserialize_with = "de_id")]
    pub t: i64,
}

/// A parsed snapshot row: field 31 last, 84 bid, 86 ask.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quote {
    pub conid: i64,
    pub last: Option<f64>,
    pub bid: Option<f64>,
    pub ask: Option<f64>,
    pub updated_ms: Option<i64>,
}

impl Quote {
    pub fn from_row(row: &Value) -> Option<Self> {
        let conid = lenient_number(row.get("conid")?)? as i64;
        let field = |f: &str| row.get(f).and_then(lenient_number);
        Some(Self {
            conid,
            last: field("31"),
            bid: field("84"),
            ask: field("86"),
            updated_ms: field("_updated").map(|t| t as i64),
        })
    }

    /// The price to act on: last trade, else the bid/ask midpoint.
    pub fn price(&self) -> Option<f64> {
        self.last.or(match (self.bid, self.ask) {
            (Some(b), Some(a)) => Some((b + a) / 2.0),
            _ => None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderType {
    #[serde(rename = "LMT")]
    Limit,
    #[serde(rename = "MKT")]
    Market,
}

impl OrderType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Limit => "LMT",
            Self::Market => "MKT",
        }
    }
}

/// An order for `/iserver/account/{acct}/orders`.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderRequest {
    pub conid: i64,
    /// Our client order id; IBKR echoes it as `order_ref` and rejects repeats for 24 h.
    pub coid: String,
    pub order_type: OrderType,
    pub side: Side,
    pub quantity: Decimal,
    pub limit_price: Option<Decimal>,
    pub tif: String,
    pub outside_rth: bool,
}

impl OrderRequest {
    /// The body IBKR expects: numbers, not the strings `rust_decimal` serialises to.
    pub fn to_wire(&self, account: &str) -> Value {
        let mut o = json!({
            "acctId": account,
            "conid": self.conid,
            "cOID": self.coid,
            "orderType": self.order_type.as_str(),
            "side": self.side.as_str(),
            "tif": self.tif,
            "quantity": self.quantity.to_f64(),
            "outsideRTH": self.outside_rth,
        });
        if let Some(p) = self.limit_price {
            o["price"] = json!(p.to_f64());
        }
        json!({ "orders": [o] })
    }
}

/// A question IBKR asks before accepting an order.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderQuestion {
    pub reply_id: String,
    pub message_ids: Vec<String>,
    pub messages: Vec<String>,
}

/// An order IBKR accepted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlacedOrder {
    pub order_id: String,
    pub status: String,
    /// The questions IBKR asked on the way and how each was answered.
    pub questions: Vec<AnsweredQuestion>,
}

impl PlacedOrder {
    /// The message ids that were confirmed.
    pub fn confirmed(&self) -> Vec<String> {
        self.questions
            .iter()
            .filter(|q| q.confirmed)
            .flat_map(|q| q.message_ids.iter().cloned())
            .collect()
    }
}

/// One of `/iserver/account/orders`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct LiveOrder {
    #[serde(rename = "orderId", deserialize_with = "de_id")]
    pub order_id: i64,
    #[serde(deserialize_with = "de_id")]
    pub conid: i64,
    #[serde(default, deserialize_with = "de_string")]
    pub status: String,
    #[serde(rename = "filledQuantity", default, deserialize_with = "de_num0")]
    pub filled_quantity: f64,
    #[serde(rename = "remainingQuantity", default, deserialize_with = "de_num0")]
    pub remaining_quantity: f64,
    #[serde(rename = "totalSize", default, deserialize_with = "de_num0")]
    pub total_size: f64,
    #[serde(rename = "avgPrice", default, deserialize_with = "de_num")]
    pub avg_price: Option<f64>,
    #[serde(default, deserialize_with = "de_string")]
    pub side: String,
    #[serde(rename = "orderType", default, deserialize_with = "de_string")]
    pub order_type: String,
    /// Our cOID.
    #[serde(default)]
    pub order_ref: Option<String>,
}

/// `/iserver/account/orders`: `snapshot: false` marks the session's pre-flight
/// answer (no orders yet), not an empty book.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct LiveOrders {
    #[serde(default)]
    pub orders: Vec<LiveOrder>,
    #[serde(default)]
    pub snapshot: Option<bool>,
}

/// `/iserver/account/order/status/{orderId}`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct OrderStatusInfo {
    #[serde(deserialize_with = "de_id")]
    pub order_id: i64,
    #[serde(default, deserialize_with = "de_string")]
    pub order_status: String,
    #[serde(default, deserialize_with = "de_num0")]
    pub cum_fill: f64,
    #[serde(default, deserialize_with = "de_num0")]
    pub total_size: f64,
    #[serde(default, deserialize_with = "de_num")]
    pub average_price: Option<f64>,
    /// `B` or `S`.
    #[serde(default, deserialize_with = "de_string")]
    pub side: String,
}

/// One execution of `/iserver/account/trades`. IBKR sends `conid` and `price` as
/// strings, `size` and `net_amount` as numbers, and `commission` as a string that
/// is empty (or absent) until the commission is reported; amounts stay exact.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Execution {
    #[serde(default, deserialize_with = "de_string")]
    pub execution_id: String,
    /// Our cOID, when the order carried one.
    #[serde(default, deserialize_with = "de_string")]
    pub order_ref: String,
    /// IBKR's order id.
    #[serde(default, deserialize_with = "de_opt_id")]
    pub order_id: Option<i64>,
    #[serde(deserialize_with = "de_id")]
    pub conid: i64,
    /// `B` or `S`.
    #[serde(default, deserialize_with = "de_string")]
    pub side: String,
    #[serde(default, deserialize_with = "de_dec")]
    pub size: Option<Decimal>,
    #[serde(default, deserialize_with = "de_dec")]
    pub price: Option<Decimal>,
    /// Not reported yet when none.
    #[serde(default, deserialize_with = "de_dec")]
    pub commission: Option<Decimal>,
    #[serde(default, deserialize_with = "de_dec")]
    pub net_amount: Option<Decimal>,
    /// Epoch milliseconds.
    #[serde(default, deserialize_with = "de_opt_id")]
    pub trade_time_r: Option<i64>,
}

impl Execution {
    /// Whether it belongs to our order: by cOID (`order_ref`), or by IBKR's order
    /// id when IBKR left the reference out.
    pub fn belongs_to(&self, coid: &str, broker_order_id: Option<&str>) -> bool {
        if self.order_ref.is_empty() {
            broker_order_id.is_some_and(|id| self.order_id.is_some_and(|o| o.to_string() == id))
        } else {
            self.order_ref == coid
        }
    }
}

/// Cumulative commission of an order from its executions: their sum when they
/// cover `filled` shares and every one has its commission reported, else none
/// (IBKR lists an execution, and its commission, a little after the fill).
pub fn order_commission(
    executions: &[Execution],
    coid: &str,
    broker_order_id: Option<&str>,
    filled: Decimal,
) -> Option<Decimal> {
    let mut seen = std::collections::HashSet::new();
    let mut size = Decimal::ZERO;
    let mut commission = Decimal::ZERO;
    for e in executions
        .iter()
        .filter(|e| e.belongs_to(coid, broker_order_id))
    {
        // With `days`, an execution may be listed more than once.
        if !e.execution_id.is_empty() && !seen.insert(e.execution_id.as_str()) {
            continue;
        }
        size += e.size.unwrap_or_default();
        commission += e.commission?;
    }
    (size >= filled && size > Decimal::ZERO).then_some(commission)
}

/// Answer to a cancel request.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct CancelAck {
    #[serde(default, deserialize_with = "de_string")]
    pub msg: String,
    #[serde(deserialize_with = "de_id")]
    pub order_id: i64,
}

/// One of `/portfolio/{acct}/positions/{page}`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Position {
    #[serde(deserialize_with = "de_id")]
    pub conid: i64,
    #[serde(rename = "contractDesc", default, deserialize_with = "de_string")]
    pub contract_desc: String,
    #[serde(deserialize_with = "de_num0")]
    pub position: f64,
    #[serde(rename = "mktPrice", default, deserialize_with = "de_num0")]
    pub mkt_price: f64,
    #[serde(rename = "mktValue", default, deserialize_with = "de_num0")]
    pub mkt_value: f64,
    #[serde(default, deserialize_with = "de_string")]
    pub currency: String,
    #[serde(rename = "avgCost", default, deserialize_with = "de_num0")]
    pub avg_cost: f64,
    #[serde(rename = "realizedPnl", default, deserialize_with = "de_num0")]
    pub realized_pnl: f64,
    #[serde(rename = "unrealizedPnl", default, deserialize_with = "de_num0")]
    pub unrealized_pnl: f64,
}

/// The figures of `/portfolio/{acct}/summary` tradeflow uses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AccountSummary {
    pub net_liquidation: Option<f64>,
    pub total_cash: Option<f64>,
    pub available_funds: Option<f64>,
    pub buying_power: Option<f64>,
}

impl AccountSummary {
    pub fn from_value(v: &Value) -> Self {
        let amount = |k: &str| {
            v.get(k)
                .and_then(|e| e.get("amount"))
                .and_then(lenient_number)
        };
        Self {
            net_liquidation: amount("netliquidation"),
            total_cash: amount("totalcashvalue"),
            available_funds: amount("availablefunds"),
            buying_power: amount("buyingpower"),
        }
    }
}

/// One currency of `/portfolio/{acct}/ledger`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct LedgerEntry {
    #[serde(default, deserialize_with = "de_num0")]
    pub cashbalance: f64,
    #[serde(default, deserialize_with = "de_num0")]
    pub netliquidationvalue: f64,
    #[serde(default, deserialize_with = "de_num0")]
    pub settledcash: f64,
    #[serde(default, deserialize_with = "de_num0")]
    pub unrealizedpnl: f64,
    #[serde(default, deserialize_with = "de_num0")]
    pub realizedpnl: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_values_parse_from_strings_with_status_prefixes() {
        let row = json!({"conid": 265598, "_updated": 1_700_000_000_000_i64, "31": "C193.18", "84": "193.06", "86": "193.14"});

        let q = Quote::from_row(&row).unwrap();

        assert_eq!(q.last, Some(193.18));
        assert_eq!(q.bid, Some(193.06));
        assert_eq!(q.price(), Some(193.18));
    }

    fn execution(order_ref: &str, order_id: i64, size: i64, commission: Value) -> Execution {
        let mut v = json!({"execution_id": format!("{order_id}.{size}"), "order_ref": order_ref,
            "order_id": order_id, "conid": "265598", "side": "B", "size": size,
            "price": "187.23", "net_amount": 1872.3, "trade_time_r": 1_700_000_000_000_i64});
        if !commission.is_null() {
            v["commission"] = commission;
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn executions_parse_string_prices_and_commissions_exactly() {
        let e = execution("tf-1", 7, 10, json!("1.05"));
        let number = execution("tf-1", 7, 10, json!(1.05));

        assert_eq!(e.conid, 265598);
        assert_eq!(e.price, Some(Decimal::new(18723, 2)));
        assert_eq!(e.commission, Some(Decimal::new(105, 2)));
        assert_eq!(number.commission, e.commission);
        assert_eq!(e.net_amount, Some(Decimal::new(18723, 1)));
        assert_eq!(execution("tf-1", 7, 10, json!("")).commission, None);
        assert_eq!(execution("tf-1", 7, 10, Value::Null).commission, None);
    }

    #[test]
    fn order_commission_sums_the_orders_executions_once_they_are_all_reported() {
        let all = [
            execution("tf-1", 7, 4, json!("1.00")),
            execution("tf-1", 7, 6, json!("0.05")),
            execution("tf-2", 8, 6, json!("9.99")),
            execution("", 7, 5, json!("0.30")),
        ];
        let pending = [
            execution("tf-1", 7, 4, json!("1.00")),
            execution("tf-1", 7, 6, json!("")),
        ];

        assert_eq!(
            order_commission(&all[..2], "tf-1", Some("7"), Decimal::from(10)),
            Some(Decimal::new(105, 2))
        );
        // The execution without a cOID is matched by IBKR's order id.
        assert_eq!(
            order_commission(&all, "tf-1", Some("7"), Decimal::from(15)),
            Some(Decimal::new(135, 2))
        );
        assert_eq!(
            order_commission(&all[..1], "tf-1", Some("7"), Decimal::from(10)),
            None
        );
        assert_eq!(
            order_commission(&pending, "tf-1", Some("7"), Decimal::from(10)),
            None
        );
        assert_eq!(order_commission(&[], "tf-1", None, Decimal::ZERO), None);
    }

    #[test]
    fn contract_info_accepts_snake_and_camel_case() {
        let snake: ContractInfo = serde_json::from_value(json!({"con_id": 8314, "symbol": "IBM", "instrument_type": "STK", "currency": "USD", "exchange": "NYSE", "company_name": "IBM"})).unwrap();
        let camel: ContractInfo = serde_json::from_value(json!({"conid": "8314", "symbol": "IBM", "instrumentType": "STK", "currency": "USD", "exchange": "NYSE", "companyName": "IBM"})).unwrap();

        assert_eq!(snake, camel);
    }

    #[test]
    fn order_body_sends_numbers_and_the_coid() {
        let req = OrderRequest {
            conid: 265598,
            coid: "tf-1".into(),
            order_type: OrderType::Limit,
            side: Side::Buy,
            quantity: Decimal::new(10, 0),
            limit_price: Some(Decimal::new(18550, 2)),
            tif: "DAY".into(),
            outside_rth: false,
        };

        let body = req.to_wire("DU1");

        assert_eq!(body["orders"][0]["price"], json!(185.5));
        assert_eq!(body["orders"][0]["quantity"], json!(10.0));
        assert_eq!(body["orders"][0]["cOID"], "tf-1");
        assert_eq!(body["orders"][0]["orderType"], "LMT");
    }
}
