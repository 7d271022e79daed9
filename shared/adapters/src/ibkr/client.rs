//! The Client Portal Web API client: one method per endpoint tradeflow uses, with
//! pacing, bounded retries for idempotent calls and the order reply flow.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::RwLock;
use tradeflow_core::market::{Bar, Timeframe};

use super::confirm::ConfirmPolicy;
use super::error::IbkrError;
use super::pacing::{Pacer, PacingLimits};
use super::types::{
    AccountSummary, Accounts, AuthStatus, CancelAck, ContractInfo, Execution, History, LedgerEntry,
    LiveOrder, LiveOrders, OrderQuestion, OrderRequest, OrderStatusInfo, PlacedOrder, Position,
    Quote, SearchHit, Tickle, lenient_number,
};
use crate::config::Config;

/// The endpoints, for pacing, retry decisions and error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    AuthStatus,
    Tickle,
    Reauthenticate,
    Accounts,
    Search,
    ContractInfo,
    History,
    Snapshot,
    PlaceOrder,
    Reply,
    LiveOrders,
    OrderStatus,
    Cancel,
    Trades,
    PortfolioAccounts,
    Positions,
    Summary,
    Ledger,
}

impl Endpoint {
    pub fn name(self) -> &'static str {
        match self {
            Self::AuthStatus => "auth status",
            Self::Tickle => "tickle",
            Self::Reauthenticate => "reauthenticate",
            Self::Accounts => "accounts",
            Self::Search => "secdef search",
            Self::ContractInfo => "contract info",
            Self::History => "history",
            Self::Snapshot => "snapshot",
            Self::PlaceOrder => "place order",
            Self::Reply => "order reply",
            Self::LiveOrders => "live orders",
            Self::OrderStatus => "order status",
            Self::Cancel => "cancel order",
            Self::Trades => "trades",
            Self::PortfolioAccounts => "portfolio accounts",
            Self::Positions => "positions",
            Self::Summary => "account summary",
            Self::Ledger => "ledger",
        }
    }

    /// Safe to send twice. Orders, replies, cancels and re-authentication are not:
    /// a lost response does not mean the gateway did nothing.
    fn idempotent(self) -> bool {
        !matches!(
            self,
            Self::PlaceOrder | Self::Reply | Self::Cancel | Self::Reauthenticate
        )
    }
}

/// Bounded exponential backoff for idempotent requests.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    fn delay(&self, attempt: u32) -> Duration {
        self.base_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max_delay)
    }
}

/// Everything the client needs; `from_config` gives the production values.
#[derive(Debug, Clone)]
pub struct IbkrSettings {
    pub base_url: String,
    pub account_id: String,
    /// Accept the gateway's self-signed certificate (only when configured).
    pub allow_self_signed: bool,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub confirm: ConfirmPolicy,
    pub pacing: PacingLimits,
    /// Snapshot requests to make while the gateway answers the pre-flight.
    pub snapshot_attempts: u32,
    pub snapshot_wait: Duration,
}

impl IbkrSettings {
    pub fn new(base_url: impl Into<String>, account_id: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            account_id: account_id.into(),
            allow_self_signed: false,
            timeout: Duration::from_secs(15),
            retry: RetryPolicy::default(),
            confirm: ConfirmPolicy::default(),
            pacing: PacingLimits::ibkr(),
            snapshot_attempts: 4,
            snapshot_wait: Duration::from_millis(300),
        }
    }

    pub fn from_config(c: &Config) -> Self {
        Self {
            allow_self_signed: c.ibkr_allow_self_signed,
            ..Self::new(c.ibkr_base_url.clone(), c.ibkr_account_id.clone())
        }
    }
}

struct Inner {
    http: reqwest::Client,
    base: String,
    account: String,
    retry: RetryPolicy,
    confirm: ConfirmPolicy,
    pacer: Pacer,
    /// Readers: ordinary calls. Writer: an order and its replies, because a reply
    /// must follow its question immediately or the gateway drops the order
    /// (IBKR Campus Web API v1.0, "Place Order Reply Confirmation").
    flow: RwLock<()>,
    accounts_primed: AtomicBool,
    portfolio_primed: AtomicBool,
    snapshot_attempts: u32,
    snapshot_wait: Duration,
}

/// A Client Portal gateway client. Cheap to clone; clones share pacing.
#[derive(Clone)]
pub struct IbkrClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for IbkrClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IbkrClient")
            .field("base", &self.inner.base)
            .finish_non_exhaustive()
    }
}

fn snippet(text: &str) -> String {
    let t: String = text.chars().take(160).collect();
    if text.len() > t.len() {
        format!("{t}…")
    } else {
        t
    }
}

fn error_text(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(String::from))
        .unwrap_or_else(|| snippet(text))
}

fn refusal(ep: Endpoint, v: &Value) -> Option<IbkrError> {
    let msg = v.get("error").and_then(Value::as_str)?;
    Some(IbkrError::Refused {
        endpoint: ep.name(),
        message: msg.to_string(),
    })
}

fn decode<T: DeserializeOwned>(ep: Endpoint, v: Value) -> Result<T, IbkrError> {
    if let Some(e) = refusal(ep, &v) {
        return Err(e);
    }
    serde_json::from_value(v).map_err(|e| IbkrError::Malformed {
        endpoint: ep.name(),
        detail: e.to_string(),
    })
}

/// Maps an order error text to its type: IBKR's duplicate-cOID answer reads
/// "Order couldn't be submitted: Local order ID=<cOID> is already registered."
fn order_error(message: &str, coid: &str) -> IbkrError {
    if message.contains("is already registered") {
        let coid = message
            .split("Local order ID=")
            .nth(1)
            .and_then(|rest| rest.split(" is already").next())
            .unwrap_or(coid);
        IbkrError::DuplicateOrder { coid: coid.into() }
    } else {
        IbkrError::OrderRejected {
            message: message.into(),
        }
    }
}

enum OrderAnswer {
    Placed(PlacedOrder),
    Question(OrderQuestion),
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| x.as_str().map_or_else(|| x.to_string(), String::from))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// Reads an order or reply answer: success array, question array, or HTTP 200
/// `{"error": …}` rejection.
fn parse_order_answer(v: &Value, coid: &str) -> Result<OrderAnswer, IbkrError> {
    let first = match v {
        Value::Array(a) => a.first(),
        Value::Object(_) => Some(v),
        _ => None,
    };
    let malformed = || IbkrError::Malformed {
        endpoint: Endpoint::PlaceOrder.name(),
        detail: snippet(&v.to_string()),
    };
    let first = first.ok_or_else(malformed)?;
    if let Some(msg) = first.get("error").and_then(Value::as_str) {
        return Err(order_error(msg, coid));
    }
    if let Some(id) = first.get("order_id") {
        let order_id = id
            .as_str()
            .map(String::from)
            .or_else(|| lenient_number(id).map(|n| format!("{}", n as i64)))
            .ok_or_else(malformed)?;
        return Ok(OrderAnswer::Placed(PlacedOrder {
            order_id,
            status: first
                .get("order_status")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            confirmed: Vec::new(),
        }));
    }
    if let Some(id) = first.get("id").and_then(Value::as_str) {
        return Ok(OrderAnswer::Question(OrderQuestion {
            reply_id: id.to_string(),
            message_ids: strings(first.get("messageIds")),
            messages: strings(first.get("message")),
        }));
    }
    Err(malformed())
}

/// The `period` that covers `bars` bars of `tf` (IBKR: `{1-1000}d`, `{1-792}w`,
/// `{1-15}y`; at most 1000 points per request, IBKR Campus Web API v1.0,
/// "Historical Market Data").
pub fn history_period(tf: Timeframe, bars: u32) -> String {
    let bars = bars.clamp(1, 1000);
    match tf {
        Timeframe::Daily => {
            // 5 trading days a week, ~10 holidays a year, a week of slack.
            let days = bars * 7 / 5 + bars / 25 + 7;
            if days <= 1000 {
                format!("{days}d")
            } else {
                format!("{}y", days.div_ceil(365).min(15))
            }
        }
        Timeframe::Weekly => {
            let weeks = bars + 2;
            if weeks <= 792 {
                format!("{weeks}w")
            } else {
                format!("{}y", (weeks * 7).div_ceil(365).min(15))
            }
        }
    }
}

impl IbkrClient {
    /// Builds a client.
    ///
    /// # Errors
    /// `Config` for a base URL that is not http(s) or a TLS setup failure.
    pub fn new(s: IbkrSettings) -> Result<Self, IbkrError> {
        let url = url::Url::parse(&s.base_url)
            .map_err(|e| IbkrError::Config(format!("IBKR_BASE_URL {}: {e}", s.base_url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(IbkrError::Config(format!(
                "IBKR_BASE_URL must be http or https, not {}",
                url.scheme()
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(s.timeout)
            .connect_timeout(Duration::from_secs(3))
            // The gateway serves a self-signed certificate on localhost:5000.
            .tls_danger_accept_invalid_certs(s.allow_self_signed)
            .user_agent("tradeflow")
            .build()
            .map_err(|e| IbkrError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base: s.base_url.trim_end_matches('/').to_string(),
                account: s.account_id,
                retry: s.retry,
                confirm: s.confirm,
                pacer: Pacer::new(s.pacing),
                flow: RwLock::new(()),
                accounts_primed: AtomicBool::new(false),
                portfolio_primed: AtomicBool::new(false),
                snapshot_attempts: s.snapshot_attempts.max(1),
                snapshot_wait: s.snapshot_wait,
            }),
        })
    }

    /// One client per base URL and account in this process, so all callers share
    /// the pacing budget.
    ///
    /// # Errors
    /// As `new`.
    pub fn shared(s: IbkrSettings) -> Result<Self, IbkrError> {
        static CLIENTS: OnceLock<Mutex<HashMap<(String, String), IbkrClient>>> = OnceLock::new();
        let mut map = CLIENTS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let key = (s.base_url.clone(), s.account_id.clone());
        if let Some(c) = map.get(&key) {
            return Ok(c.clone());
        }
        let c = Self::new(s)?;
        map.insert(key, c.clone());
        Ok(c)
    }

    pub fn account_id(&self) -> &str {
        &self.inner.account
    }

    async fn send(
        &self,
        ep: Endpoint,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, IbkrError> {
        let mut attempt = 1;
        loop {
            match self.send_once(ep, method.clone(), path, query, body).await {
                // A 429 means the penalty box: retrying at once only extends it.
                Err(e)
                    if ep.idempotent()
                        && e.is_retryable()
                        && !matches!(e, IbkrError::RateLimited { .. })
                        && attempt < self.inner.retry.max_attempts =>
                {
                    let delay = self.inner.retry.delay(attempt);
                    tracing::warn!(endpoint = ep.name(), attempt, error = %e, ?delay, "ibkr request failed, retrying");
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn send_once(
        &self,
        ep: Endpoint,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, IbkrError> {
        let _permit = self.inner.pacer.acquire(ep).await;
        let url = format!("{}{path}", self.inner.base);
        let mut req = self.inner.http.request(method.clone(), &url);
        if !query.is_empty() {
            req = req.query(query);
        }
        if method == Method::POST {
            // The gateway answers 411 to a POST without Content-Length: always send a body.
            req = req.json(body.unwrap_or(&json!({})));
        }
        let unreachable = |e: reqwest::Error| IbkrError::GatewayUnreachable {
            url: self.inner.base.clone(),
            source: e,
        };
        let resp = req.send().await.map_err(unreachable)?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(unreachable)?;
        match status {
            200..=299 => {}
            401 => {
                self.inner.accounts_primed.store(false, Ordering::Relaxed);
                self.inner.portfolio_primed.store(false, Ordering::Relaxed);
                return Err(IbkrError::NotAuthenticated);
            }
            429 => {
                return Err(IbkrError::RateLimited {
                    endpoint: ep.name(),
                });
            }
            _ => {
                return Err(IbkrError::Http {
                    endpoint: ep.name(),
                    status,
                    message: error_text(&text),
                });
            }
        }
        serde_json::from_str(&text).map_err(|e| IbkrError::Malformed {
            endpoint: ep.name(),
            detail: format!("not JSON ({e}): {}", snippet(&text)),
        })
    }

    async fn get<T: DeserializeOwned>(
        &self,
        ep: Endpoint,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<T, IbkrError> {
        let _g = self.inner.flow.read().await;
        decode(ep, self.send(ep, Method::GET, path, query, None).await?)
    }

    async fn post<T: DeserializeOwned>(
        &self,
        ep: Endpoint,
        path: &str,
        body: Value,
    ) -> Result<T, IbkrError> {
        let _g = self.inner.flow.read().await;
        decode(
            ep,
            self.send(ep, Method::POST, path, &[], Some(&body)).await?,
        )
    }

    /// `POST /iserver/auth/status`.
    ///
    /// # Errors
    /// `NotAuthenticated` when the gateway has no login at all, or transport errors.
    pub async fn auth_status(&self) -> Result<AuthStatus, IbkrError> {
        self.post(Endpoint::AuthStatus, "/iserver/auth/status", json!({}))
            .await
    }

    /// `POST /tickle`: keeps the session alive (idle timeout ≈ 6 min).
    ///
    /// # Errors
    /// `NotAuthenticated` or transport errors.
    pub async fn tickle(&self) -> Result<Tickle, IbkrError> {
        self.post(Endpoint::Tickle, "/tickle", json!({})).await
    }

    /// `POST /iserver/auth/ssodh/init`: re-opens the brokerage session of a
    /// connected gateway ("Authentication FAQ": `connected` without `authenticated`).
    ///
    /// # Errors
    /// `NotAuthenticated` when there is no SSO login to build on.
    pub async fn reauthenticate(&self) -> Result<AuthStatus, IbkrError> {
        self.post(
            Endpoint::Reauthenticate,
            "/iserver/auth/ssodh/init",
            json!({"publish": true, "compete": true}),
        )
        .await
    }

    /// Checks that the session can trade.
    ///
    /// # Errors
    /// `SessionCompeting`, `SessionExpired` (connected, not authenticated) or
    /// `NotAuthenticated`.
    pub async fn ensure_session(&self) -> Result<AuthStatus, IbkrError> {
        let s = self.auth_status().await?;
        if s.competing {
            Err(IbkrError::SessionCompeting)
        } else if !s.connected {
            Err(IbkrError::NotAuthenticated)
        } else if !s.authenticated {
            Err(IbkrError::SessionExpired)
        } else {
            Ok(s)
        }
    }

    /// `GET /iserver/accounts`.
    ///
    /// # Errors
    /// Session or transport errors.
    pub async fn accounts(&self) -> Result<Accounts, IbkrError> {
        let a = self
            .get(Endpoint::Accounts, "/iserver/accounts", &[])
            .await?;
        self.inner.accounts_primed.store(true, Ordering::Relaxed);
        Ok(a)
    }

    /// IBKR wants `/iserver/accounts` once per session before orders and snapshots.
    async fn prime_accounts(&self) -> Result<(), IbkrError> {
        if !self.inner.accounts_primed.load(Ordering::Relaxed) {
            self.accounts().await?;
        }
        Ok(())
    }

    /// `GET /iserver/secdef/search?symbol=&secType=`.
    ///
    /// # Errors
    /// `Refused` when nothing matches, session or transport errors.
    pub async fn search(&self, symbol: &str, sec_type: &str) -> Result<Vec<SearchHit>, IbkrError> {
        self.get(
            Endpoint::Search,
            "/iserver/secdef/search",
            &[
                ("symbol", symbol.to_string()),
                ("secType", sec_type.to_string()),
            ],
        )
        .await
    }

    /// `GET /iserver/contract/{conid}/info`.
    ///
    /// # Errors
    /// `Http` 400 for an unknown conid, session or transport errors.
    pub async fn contract_info(&self, conid: i64) -> Result<ContractInfo, IbkrError> {
        self.get(
            Endpoint::ContractInfo,
            &format!("/iserver/contract/{conid}/info"),
            &[],
        )
        .await
    }

    /// `GET /iserver/marketdata/history`.
    ///
    /// # Errors
    /// Session, pacing or transport errors.
    pub async fn history_data(
        &self,
        conid: i64,
        period: &str,
        bar: &str,
        outside_rth: bool,
    ) -> Result<History, IbkrError> {
        self.get(
            Endpoint::History,
            "/iserver/marketdata/history",
            &[
                ("conid", conid.to_string()),
                ("period", period.to_string()),
                ("bar", bar.to_string()),
                ("outsideRth", outside_rth.to_string()),
            ],
        )
        .await
    }

    /// The last `count` bars (≤ 1000) of `tf`, oldest first, `t` in epoch ms.
    ///
    /// # Errors
    /// As `history_data`.
    pub async fn bars(&self, conid: i64, tf: Timeframe, count: u32) -> Result<Vec<Bar>, IbkrError> {
        let period = history_period(tf, count);
        let h = self
            .history_data(conid, &period, tf.ibkr_bar(), false)
            .await?;
        let mut bars: Vec<Bar> = h
            .data
            .iter()
            .map(|b| Bar {
                t: b.t,
                open: b.o,
                high: b.h,
                low: b.l,
                close: b.c,
                volume: b.v,
            })
            .collect();
        bars.sort_by_key(|b| b.t);
        bars.dedup_by_key(|b| b.t);
        let skip = bars.len().saturating_sub(count.clamp(1, 1000) as usize);
        Ok(bars.split_off(skip))
    }

    /// Current quotes. The first snapshot of a conid only subscribes and returns no
    /// values (IBKR Campus Web API v1.0, "Market Data Snapshot"), so the request is
    /// repeated until every conid has a price.
    ///
    /// # Errors
    /// `Refused` when no price arrives after the configured attempts.
    pub async fn snapshot(&self, conids: &[i64]) -> Result<Vec<Quote>, IbkrError> {
        self.prime_accounts().await?;
        let list = conids
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        for attempt in 1..=self.inner.snapshot_attempts {
            let rows: Vec<Value> = self
                .get(
                    Endpoint::Snapshot,
                    "/iserver/marketdata/snapshot",
                    &[("conids", list.clone()), ("fields", "31,84,86".into())],
                )
                .await?;
            let quotes: Vec<Quote> = rows.iter().filter_map(Quote::from_row).collect();
            let complete = conids
                .iter()
                .all(|c| quotes.iter().any(|q| q.conid == *c && q.price().is_some()));
            if complete {
                return Ok(quotes);
            }
            if attempt < self.inner.snapshot_attempts {
                tokio::time::sleep(self.inner.snapshot_wait).await;
            }
        }
        Err(IbkrError::Refused {
            endpoint: Endpoint::Snapshot.name(),
            message: format!(
                "no price for conids {list} after {} requests (market data not subscribed?)",
                self.inner.snapshot_attempts
            ),
        })
    }

    /// Places one order and answers IBKR's questions under the confirm policy.
    ///
    /// # Errors
    /// `OrderRejected` with IBKR's text (including questions the policy does not
    /// allow), `DuplicateOrder` when the cOID was used within 24 h, session errors.
    /// Never retried here: the caller checks `find_order_by_ref` first.
    pub async fn place_order(&self, req: &OrderRequest) -> Result<PlacedOrder, IbkrError> {
        self.prime_accounts().await?;
        let _flow = self.inner.flow.write().await;
        let path = format!("/iserver/account/{}/orders", self.inner.account);
        let mut answer = self
            .send(
                Endpoint::PlaceOrder,
                Method::POST,
                &path,
                &[],
                Some(&req.to_wire(&self.inner.account)),
            )
            .await?;
        let mut confirmed = Vec::new();
        // IBKR may ask several questions in a row; a handful is the most seen.
        for _ in 0..8 {
            match parse_order_answer(&answer, &req.coid)? {
                OrderAnswer::Placed(mut p) => {
                    p.confirmed = confirmed;
                    tracing::info!(order_id = %p.order_id, coid = %req.coid, status = %p.status, "ibkr order placed");
                    return Ok(p);
                }
                OrderAnswer::Question(q) => {
                    let reply = format!("/iserver/reply/{}", q.reply_id);
                    if !self.inner.confirm.allows(&q) {
                        // Say no, so the gateway does not keep the order waiting.
                        let no = json!({"confirmed": false});
                        if let Err(e) = self
                            .send(Endpoint::Reply, Method::POST, &reply, &[], Some(&no))
                            .await
                        {
                            tracing::warn!(error = %e, "declining an ibkr order question failed");
                        }
                        tracing::warn!(coid = %req.coid, message_ids = ?q.message_ids, "ibkr order question not allowed by policy");
                        return Err(IbkrError::OrderRejected {
                            message: format!(
                                "confirmation [{}] not allowed by the auto-confirm policy: {}",
                                q.message_ids.join(","),
                                q.messages.join(" ")
                            ),
                        });
                    }
                    tracing::info!(coid = %req.coid, message_ids = ?q.message_ids, "confirming ibkr order question");
                    confirmed.extend(q.message_ids.iter().cloned());
                    let yes = json!({"confirmed": true});
                    answer = self
                        .send(Endpoint::Reply, Method::POST, &reply, &[], Some(&yes))
                        .await?;
                }
            }
        }
        Err(IbkrError::Malformed {
            endpoint: Endpoint::Reply.name(),
            detail: "more than 8 questions for one order".into(),
        })
    }

    /// `GET /iserver/account/orders` (paced to one call per 5 s).
    ///
    /// # Errors
    /// Session, pacing or transport errors.
    pub async fn live_orders(&self) -> Result<Vec<LiveOrder>, IbkrError> {
        let l: LiveOrders = self
            .get(Endpoint::LiveOrders, "/iserver/account/orders", &[])
            .await?;
        Ok(l.orders)
    }

    /// The live order whose `order_ref` is our cOID: how to learn, after a crash or
    /// a lost response, whether an order went out.
    ///
    /// # Errors
    /// As `live_orders`.
    pub async fn find_order_by_ref(&self, coid: &str) -> Result<Option<LiveOrder>, IbkrError> {
        Ok(self
            .live_orders()
            .await?
            .into_iter()
            .find(|o| o.order_ref.as_deref() == Some(coid)))
    }

    /// `GET /iserver/account/order/status/{orderId}`.
    ///
    /// # Errors
    /// `Http` 503 for an order unknown to this session, session or transport errors.
    pub async fn order_status(&self, order_id: &str) -> Result<OrderStatusInfo, IbkrError> {
        self.get(
            Endpoint::OrderStatus,
            &format!("/iserver/account/order/status/{order_id}"),
            &[],
        )
        .await
    }

    /// `GET /iserver/account/trades`: the executions of the current day, or of the
    /// last `days` days (IBKR allows up to 7). Paced to one call per 5 s; read-only,
    /// so retried like the other GETs.
    ///
    /// # Errors
    /// Session, pacing or transport errors.
    pub async fn trades(&self, days: Option<u32>) -> Result<Vec<Execution>, IbkrError> {
        self.prime_accounts().await?;
        let query: Vec<(&str, String)> = days
            .map(|d| ("days", d.clamp(1, 7).to_string()))
            .into_iter()
            .collect();
        self.get(Endpoint::Trades, "/iserver/account/trades", &query)
            .await
    }

    /// `DELETE /iserver/account/{acct}/order/{orderId}`.
    ///
    /// # Errors
    /// `Refused` with IBKR's text (unknown or finished order), session errors.
    pub async fn cancel_order(&self, order_id: &str) -> Result<CancelAck, IbkrError> {
        let _g = self.inner.flow.read().await;
        let path = format!("/iserver/account/{}/order/{order_id}", self.inner.account);
        let v = self
            .send(Endpoint::Cancel, Method::DELETE, &path, &[], None)
            .await?;
        decode(Endpoint::Cancel, v)
    }

    /// IBKR wants `/portfolio/accounts` before other portfolio calls.
    async fn prime_portfolio(&self) -> Result<(), IbkrError> {
        if !self.inner.portfolio_primed.load(Ordering::Relaxed) {
            let _: Value = self
                .get(Endpoint::PortfolioAccounts, "/portfolio/accounts", &[])
                .await?;
            self.inner.portfolio_primed.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Every position, reading pages of 100 until a short one.
    ///
    /// # Errors
    /// Session or transport errors.
    pub async fn positions(&self) -> Result<Vec<Position>, IbkrError> {
        self.prime_portfolio().await?;
        let mut out = Vec::new();
        for page in 0..50 {
            let batch: Vec<Position> = self
                .get(
                    Endpoint::Positions,
                    &format!("/portfolio/{}/positions/{page}", self.inner.account),
                    &[],
                )
                .await?;
            let n = batch.len();
            out.extend(batch);
            if n < 100 {
                break;
            }
        }
        Ok(out)
    }

    /// `GET /portfolio/{acct}/summary`.
    ///
    /// # Errors
    /// Session or transport errors.
    pub async fn account_summary(&self) -> Result<AccountSummary, IbkrError> {
        self.prime_portfolio().await?;
        let v: Value = self
            .get(
                Endpoint::Summary,
                &format!("/portfolio/{}/summary", self.inner.account),
                &[],
            )
            .await?;
        Ok(AccountSummary::from_value(&v))
    }

    /// `GET /portfolio/{acct}/ledger`, by currency (`USD`, …, and `BASE`).
    ///
    /// # Errors
    /// Session or transport errors.
    pub async fn ledger(&self) -> Result<HashMap<String, LedgerEntry>, IbkrError> {
        self.prime_portfolio().await?;
        self.get(
            Endpoint::Ledger,
            &format!("/portfolio/{}/ledger", self.inner.account),
            &[],
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_period_covers_the_requested_bars_within_ibkr_limits() {
        assert_eq!(history_period(Timeframe::Daily, 500), "727d");
        assert_eq!(history_period(Timeframe::Daily, 1000), "4y");
        assert_eq!(history_period(Timeframe::Weekly, 500), "502w");
        assert_eq!(history_period(Timeframe::Weekly, 1000), "15y");
    }

    #[test]
    fn duplicate_coid_answers_become_typed_errors() {
        let v = json!({"error": "Order couldn't be submitted: Local order ID=tf-abc is already registered."});

        let e = parse_order_answer(&v, "other").err().unwrap();

        assert!(matches!(e, IbkrError::DuplicateOrder { coid } if coid == "tf-abc"));
    }

    #[test]
    fn questions_and_successes_are_told_apart() {
        let q = json!([{"id": "r1", "message": ["sure?"], "isSuppressed": false, "messageIds": ["o354"]}]);
        let ok = json!([{"order_id": "123", "order_status": "Submitted", "encrypt_message": "1"}]);

        assert!(
            matches!(parse_order_answer(&q, "c"), Ok(OrderAnswer::Question(q)) if q.message_ids == ["o354"])
        );
        assert!(
            matches!(parse_order_answer(&ok, "c"), Ok(OrderAnswer::Placed(p)) if p.order_id == "123")
        );
        assert!(matches!(
            parse_order_answer(&json!([]), "c"),
            Err(IbkrError::Malformed { .. })
        ));
    }

    #[test]
    fn retry_delay_doubles_up_to_the_cap() {
        let r = RetryPolicy::default();

        assert_eq!(r.delay(1), Duration::from_millis(250));
        assert_eq!(r.delay(2), Duration::from_millis(500));
        assert_eq!(r.delay(9), Duration::from_secs(2));
    }
}
