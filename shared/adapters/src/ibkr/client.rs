//! The Client Portal Web API client: one method per endpoint tradeflow uses, with
//! pacing (in-process, or gateway-wide through a `GatewayDiscipline`), bounded
//! retries for idempotent calls, the order question/reply flow under the confirm
//! policy with question suppression, and IBKR's published quirks (live-orders
//! pre-flight, 503 for orders of earlier sessions, the 1000-point history cap,
//! `volumeFactor`, snapshot pre-flights per conid).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use chrono::NaiveDate;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::RwLock;
use tradeflow_core::market::{Bar, Timeframe};

use super::confirm::{AnsweredQuestion, ConfirmPolicy};
use super::discipline::{GatewayDiscipline, WindowPacer, now_ms};
use super::error::IbkrError;
use super::pacing::{Pacer, PacingLimits};
use super::tls::GatewayTrust;
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
    Suppress,
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
            Self::Suppress => "suppress questions",
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
    /// How the gateway's certificate is verified (https only).
    pub trust: GatewayTrust,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    pub confirm: ConfirmPolicy,
    /// Suppress the deployment policy's questions for the brokerage session
    /// (`POST /iserver/questions/suppress`) before the first order.
    pub suppress_questions: bool,
    pub pacing: PacingLimits,
    /// The gateway-wide discipline; none paces this client alone.
    pub discipline: Option<Arc<dyn GatewayDiscipline>>,
    /// Snapshot requests to make while the gateway answers the pre-flight.
    pub snapshot_attempts: u32,
    pub snapshot_wait: Duration,
    /// Live-orders requests to make while the gateway answers its pre-flight.
    pub live_orders_attempts: u32,
}

impl IbkrSettings {
    pub fn new(base_url: impl Into<String>, account_id: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            account_id: account_id.into(),
            trust: GatewayTrust::WebPki,
            timeout: Duration::from_secs(15),
            retry: RetryPolicy::default(),
            confirm: ConfirmPolicy::default(),
            suppress_questions: true,
            pacing: PacingLimits::ibkr(),
            discipline: None,
            snapshot_attempts: 4,
            snapshot_wait: Duration::from_millis(300),
            live_orders_attempts: 3,
        }
    }

    /// The production settings of `c` (the discipline is added by `Deps::ibkr`).
    ///
    /// # Errors
    /// An invalid certificate setting.
    pub fn from_config(c: &Config) -> Result<Self, IbkrError> {
        Ok(Self {
            trust: GatewayTrust::from_config(c)?,
            confirm: ConfirmPolicy {
                message_ids: c.ibkr_confirm_message_ids.clone(),
                ..ConfirmPolicy::default()
            },
            suppress_questions: c.ibkr_suppress_questions,
            ..Self::new(c.ibkr_base_url.clone(), c.ibkr_account_id.clone())
        })
    }
}

struct Inner {
    http: reqwest::Client,
    base: String,
    account: String,
    retry: RetryPolicy,
    pacer: Pacer,
    discipline: Option<Arc<dyn GatewayDiscipline>>,
    /// Readers: ordinary calls. Writer: an order and its replies, because a reply
    /// must follow its question immediately or the gateway drops the order
    /// (IBKR Campus Web API v1.0, "Place Order Reply Confirmation"). Across
    /// processes the discipline's order window does the same.
    flow: RwLock<()>,
    accounts_primed: AtomicBool,
    portfolio_primed: AtomicBool,
    suppress_questions: bool,
    /// The deployment's questions were suppressed in this brokerage session (as
    /// far as this process knows: a 401 or a re-authentication clears it).
    suppressed: AtomicBool,
    snapshot_attempts: u32,
    snapshot_wait: Duration,
    live_orders_attempts: u32,
}

/// A Client Portal gateway client. Cheap to clone; clones share pacing and the
/// session state. `with_strategy_confirm` gives a clone with a strategy's policy.
#[derive(Clone)]
pub struct IbkrClient {
    inner: Arc<Inner>,
    confirm: Arc<ConfirmPolicy>,
}

impl std::fmt::Debug for IbkrClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IbkrClient")
            .field("base", &self.inner.base)
            .finish_non_exhaustive()
    }
}

/// What the gateway says about the order with a given cOID.
#[derive(Debug, Clone, PartialEq)]
pub enum OrderLookup {
    /// Listed in this session's live orders.
    Live(LiveOrder),
    /// Not listed, but executions carry the cOID: placed in an earlier session.
    ExecutedOnly(Vec<Execution>),
    /// Neither listed nor executed.
    Absent,
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
            questions: Vec::new(),
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

/// The `period` that covers `bars` bars of `tf` in one request, within IBKR's
/// limits: `{1-1000}d`, `{1-792}w`, at most 1000 points (IBKR Campus Web API v1.0,
/// "Historical Market Data"). A daily request never asks more than `1000d`
/// (≈ 690 trading days); `bars` pages further back.
pub fn history_period(tf: Timeframe, bars: u32) -> String {
    let bars = bars.clamp(1, 1000);
    match tf {
        Timeframe::Daily => {
            // 5 trading days a week, ~10 holidays a year, a week of slack.
            let days = bars * 7 / 5 + bars / 25 + 7;
            format!("{}d", days.min(1000))
        }
        Timeframe::Weekly => format!("{}w", (bars + 2).min(792)),
    }
}

/// IBKR's `startTime` format.
fn start_time(day: NaiveDate) -> String {
    format!("{}-00:00:00", day.format("%Y%m%d"))
}

/// Requests one history page may take: 1000 bars never need more than two.
const HISTORY_PAGES: usize = 4;

impl IbkrClient {
    /// Builds a client.
    ///
    /// # Errors
    /// `Config` for a base URL that is not http(s), a certificate that does not
    /// parse, or an insecure setting for a gateway that is not on this host.
    pub fn new(s: IbkrSettings) -> Result<Self, IbkrError> {
        let url = url::Url::parse(&s.base_url)
            .map_err(|e| IbkrError::Config(format!("IBKR_BASE_URL {}: {e}", s.base_url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(IbkrError::Config(format!(
                "IBKR_BASE_URL must be http or https, not {}",
                url.scheme()
            )));
        }
        let builder = reqwest::Client::builder()
            .timeout(s.timeout)
            .connect_timeout(Duration::from_secs(3))
            .user_agent("tradeflow");
        let http = s
            .trust
            .apply(builder, &url)?
            .build()
            .map_err(|e| IbkrError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base: s.base_url.trim_end_matches('/').to_string(),
                account: s.account_id,
                retry: s.retry,
                pacer: Pacer::new(s.pacing),
                discipline: s.discipline,
                flow: RwLock::new(()),
                accounts_primed: AtomicBool::new(false),
                portfolio_primed: AtomicBool::new(false),
                suppress_questions: s.suppress_questions,
                suppressed: AtomicBool::new(false),
                snapshot_attempts: s.snapshot_attempts.max(1),
                snapshot_wait: s.snapshot_wait,
                live_orders_attempts: s.live_orders_attempts.max(1),
            }),
            confirm: Arc::new(s.confirm),
        })
    }

    /// One client per base URL and account in this process, so all callers share
    /// the pacing budget and the session state.
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

    /// The same client (same pacing, session and discipline) whose orders may
    /// also confirm a strategy's extra message ids.
    #[must_use]
    pub fn with_strategy_confirm(&self, message_ids: &[String]) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            confirm: Arc::new(self.confirm.with_strategy(message_ids)),
        }
    }

    pub fn account_id(&self) -> &str {
        &self.inner.account
    }

    pub fn confirm_policy(&self) -> &ConfirmPolicy {
        &self.confirm
    }

    /// Sends one request, retried (idempotent endpoints only) with backoff.
    /// Inside an order window `window` paces it; otherwise the discipline (or the
    /// in-process pacer) does.
    async fn send(
        &self,
        ep: Endpoint,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        mut window: Option<&mut WindowPacer>,
    ) -> Result<Value, IbkrError> {
        let mut attempt = 1;
        loop {
            match self
                .send_once(ep, method.clone(), path, query, body, window.as_deref_mut())
                .await
            {
                // A 429 means the penalty box: retrying at once only extends it.
                Err(e)
                    if ep.idempotent()
                        && e.is_retryable()
                        && !matches!(
                            e,
                            IbkrError::RateLimited { .. } | IbkrError::Discipline(_)
                        )
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
        window: Option<&mut WindowPacer>,
    ) -> Result<Value, IbkrError> {
        match (window, &self.inner.discipline) {
            (Some(w), _) => {
                w.pace().await;
                self.exchange(ep, method, path, query, body).await
            }
            (None, Some(d)) => {
                let ticket = d.acquire(ep).await?;
                let result = self.exchange(ep, method, path, query, body).await;
                d.release(ticket).await;
                result
            }
            (None, None) => {
                let _permit = self.inner.pacer.acquire(ep).await;
                self.exchange(ep, method, path, query, body).await
            }
        }
    }

    /// One HTTP exchange, its status mapped to the error types.
    async fn exchange(
        &self,
        ep: Endpoint,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Value, IbkrError> {
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
                self.inner.suppressed.store(false, Ordering::Relaxed);
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
        decode(
            ep,
            self.send(ep, Method::GET, path, query, None, None).await?,
        )
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
            self.send(ep, Method::POST, path, &[], Some(&body), None)
                .await?,
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
    /// A new session has no suppressed questions.
    ///
    /// # Errors
    /// `NotAuthenticated` when there is no SSO login to build on.
    pub async fn reauthenticate(&self) -> Result<AuthStatus, IbkrError> {
        self.inner.suppressed.store(false, Ordering::Relaxed);
        self.post(
            Endpoint::Reauthenticate,
            "/iserver/auth/ssodh/init",
            json!({"publish": true, "compete": true}),
        )
        .await
    }

    /// Suppresses the deployment policy's questions for this brokerage session
    /// (IBKR Campus, "Suppress Messages"; ibind `suppress_messages`): they are then
    /// accepted without a question, which removes the reply race for them. A
    /// strategy's extra ids are never suppressed (they must not apply to other
    /// strategies). Returns the suppressed ids.
    ///
    /// # Errors
    /// Session or transport errors.
    pub async fn suppress_questions(&self) -> Result<Vec<String>, IbkrError> {
        let ids = self.confirm.session_ids().to_vec();
        if ids.is_empty() {
            return Ok(ids);
        }
        let _: Value = self
            .post(
                Endpoint::Suppress,
                "/iserver/questions/suppress",
                json!({ "messageIds": ids }),
            )
            .await?;
        self.inner.suppressed.store(true, Ordering::Relaxed);
        tracing::info!(message_ids = ?ids, "ibkr order questions suppressed for the session");
        Ok(ids)
    }

    /// Whether this process should suppress the deployment's questions: it is
    /// configured to and has not done so in the brokerage session it knows.
    pub fn wants_suppression(&self) -> bool {
        self.inner.suppress_questions
            && !self.confirm.session_ids().is_empty()
            && !self.inner.suppressed.load(Ordering::Relaxed)
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

    /// `GET /iserver/marketdata/history`; `start_time` (`YYYYMMDD-HH:mm:ss`) is where
    /// the chart starts going back from (now when none).
    ///
    /// # Errors
    /// Session, pacing or transport errors.
    pub async fn history_data(
        &self,
        conid: i64,
        period: &str,
        bar: &str,
        outside_rth: bool,
        start_time: Option<&str>,
    ) -> Result<History, IbkrError> {
        let mut query = vec![
            ("conid", conid.to_string()),
            ("period", period.to_string()),
            ("bar", bar.to_string()),
            ("outsideRth", outside_rth.to_string()),
        ];
        if let Some(t) = start_time {
            query.push(("startTime", t.to_string()));
        }
        self.get(Endpoint::History, "/iserver/marketdata/history", &query)
            .await
    }

    /// The last `count` bars (≤ 1000) of `tf`, oldest first, `t` in epoch ms,
    /// volumes in shares (`v × volumeFactor`). One request returns at most 1000
    /// points and is never asked for more than `1000d`/`792w`, so a long history is
    /// read in pages, each going back from the oldest bar so far.
    ///
    /// # Errors
    /// As `history_data`.
    pub async fn bars(&self, conid: i64, tf: Timeframe, count: u32) -> Result<Vec<Bar>, IbkrError> {
        let want = count.clamp(1, 1000) as usize;
        let mut bars: Vec<Bar> = Vec::new();
        let mut before: Option<String> = None;
        for _ in 0..HISTORY_PAGES {
            let missing = u32::try_from(want.saturating_sub(bars.len())).unwrap_or(1000);
            let period = history_period(tf, missing);
            let h = self
                .history_data(conid, &period, tf.ibkr_bar(), false, before.as_deref())
                .await?;
            let factor = h.volume_factor.filter(|f| *f > 0.0).unwrap_or(1.0);
            let page: Vec<Bar> = h
                .data
                .iter()
                .map(|b| Bar {
                    t: b.t,
                    open: b.o,
                    high: b.h,
                    low: b.l,
                    close: b.c,
                    volume: b.v * factor,
                })
                .collect();
            let Some(oldest) = page.iter().map(|b| b.t).min() else {
                break;
            };
            let known = bars.len();
            bars.extend(page);
            bars.sort_by_key(|b| b.t);
            bars.dedup_by_key(|b| b.t);
            if bars.len() >= want || bars.len() == known {
                break;
            }
            before =
                chrono::DateTime::from_timestamp_millis(oldest).map(|t| start_time(t.date_naive()));
        }
        let skip = bars.len().saturating_sub(want);
        Ok(bars.split_off(skip))
    }

    /// Current quotes. The first snapshot of a conid only subscribes and returns no
    /// values (IBKR Campus Web API v1.0, "Market Data Snapshot"), so the request is
    /// repeated while a conid lacks a price. A conid that never gets one (no market
    /// data for it) comes back without prices: it does not blank the others.
    ///
    /// # Errors
    /// `Refused` when no conid gets a price after the configured attempts.
    pub async fn snapshot(&self, conids: &[i64]) -> Result<Vec<Quote>, IbkrError> {
        self.prime_accounts().await?;
        let list = conids
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut quotes: Vec<Quote> = Vec::new();
        for attempt in 1..=self.inner.snapshot_attempts {
            let rows: Vec<Value> = self
                .get(
                    Endpoint::Snapshot,
                    "/iserver/marketdata/snapshot",
                    &[("conids", list.clone()), ("fields", "31,84,86".into())],
                )
                .await?;
            quotes = rows.iter().filter_map(Quote::from_row).collect();
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
        let unpriced: Vec<i64> = conids
            .iter()
            .copied()
            .filter(|c| !quotes.iter().any(|q| q.conid == *c && q.price().is_some()))
            .collect();
        if unpriced.len() < conids.len() {
            tracing::warn!(?unpriced, "ibkr snapshot without a price for some conids");
            return Ok(quotes);
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
    /// The order and its replies hold the gateway alone (the discipline's order
    /// window across processes, the flow lock within this one): any other request
    /// between a question and its reply would cancel the order. The deployment's
    /// questions are suppressed first, once per brokerage session.
    ///
    /// # Errors
    /// `OrderRejected` with IBKR's text (including questions the policy does not
    /// allow), `DuplicateOrder` when the cOID was used within 24 h, session errors,
    /// `Discipline` when the window cannot be had. Never retried here: the caller
    /// checks `find_order_by_ref` first.
    pub async fn place_order(&self, req: &OrderRequest) -> Result<PlacedOrder, IbkrError> {
        self.prime_accounts().await?;
        let _flow = self.inner.flow.write().await;
        let Some(d) = self.inner.discipline.clone() else {
            return self.order_exchange(req, None).await;
        };
        let ticket = d.open_window().await?;
        let mut pacer = WindowPacer::new(&ticket, d.interval());
        let result = self.order_exchange(req, Some(&mut pacer)).await;
        let last = if pacer.last_ms > 0 {
            pacer.last_ms
        } else {
            now_ms()
        };
        d.close_window(ticket, last).await;
        result
    }

    async fn order_exchange(
        &self,
        req: &OrderRequest,
        mut window: Option<&mut WindowPacer>,
    ) -> Result<PlacedOrder, IbkrError> {
        if self.wants_suppression() {
            let ids = self.confirm.session_ids().to_vec();
            let body = json!({ "messageIds": ids });
            match self
                .send(
                    Endpoint::Suppress,
                    Method::POST,
                    "/iserver/questions/suppress",
                    &[],
                    Some(&body),
                    window.as_deref_mut(),
                )
                .await
            {
                Ok(_) => self.inner.suppressed.store(true, Ordering::Relaxed),
                // The questions are then asked and answered under the same policy.
                Err(e) => tracing::warn!(error = %e, "suppressing ibkr order questions failed"),
            }
        }
        let path = format!("/iserver/account/{}/orders", self.inner.account);
        let mut answer = self
            .send(
                Endpoint::PlaceOrder,
                Method::POST,
                &path,
                &[],
                Some(&req.to_wire(&self.inner.account)),
                window.as_deref_mut(),
            )
            .await?;
        let mut questions: Vec<AnsweredQuestion> = Vec::new();
        let audit = |qs: &[AnsweredQuestion]| {
            qs.iter()
                .map(AnsweredQuestion::summary)
                .collect::<Vec<_>>()
                .join(", ")
        };
        // IBKR may ask several questions in a row; a handful is the most seen.
        for _ in 0..10 {
            let parsed = parse_order_answer(&answer, &req.coid).map_err(|e| match e {
                IbkrError::OrderRejected { message } if !questions.is_empty() => {
                    IbkrError::OrderRejected {
                        message: format!("{message} (after questions: {})", audit(&questions)),
                    }
                }
                e => e,
            })?;
            match parsed {
                OrderAnswer::Placed(mut p) => {
                    p.questions = questions;
                    tracing::info!(order_id = %p.order_id, coid = %req.coid, status = %p.status, questions = %audit(&p.questions), "ibkr order placed");
                    return Ok(p);
                }
                OrderAnswer::Question(q) => {
                    let reply = format!("/iserver/reply/{}", q.reply_id);
                    let answered = self.confirm.answer(&q);
                    let confirmed = answered.confirmed;
                    tracing::info!(coid = %req.coid, message_ids = ?q.message_ids, confirmed, allowed_by = ?answered.allowed_by, "ibkr order question");
                    questions.push(answered);
                    if !confirmed {
                        // Say no, so the gateway does not keep the order waiting.
                        let no = json!({"confirmed": false});
                        if let Err(e) = self
                            .send(
                                Endpoint::Reply,
                                Method::POST,
                                &reply,
                                &[],
                                Some(&no),
                                window.as_deref_mut(),
                            )
                            .await
                        {
                            tracing::warn!(error = %e, "declining an ibkr order question failed");
                        }
                        return Err(IbkrError::OrderRejected {
                            message: format!(
                                "confirmation [{}] not allowed by the auto-confirm policy: {} (questions: {})",
                                q.message_ids.join(","),
                                q.messages.join(" "),
                                audit(&questions)
                            ),
                        });
                    }
                    let yes = json!({"confirmed": true});
                    answer = self
                        .send(
                            Endpoint::Reply,
                            Method::POST,
                            &reply,
                            &[],
                            Some(&yes),
                            window.as_deref_mut(),
                        )
                        .await?;
                }
            }
        }
        Err(IbkrError::Malformed {
            endpoint: Endpoint::Reply.name(),
            detail: "more than 10 questions for one order".into(),
        })
    }

    /// `GET /iserver/account/orders` (paced to one call per 5 s): this session's
    /// orders. The session's first answer is a pre-flight (`snapshot: false`, no
    /// orders), so the request is repeated while it says so.
    ///
    /// # Errors
    /// `LiveOrdersNotReady` (retryable) when every attempt was a pre-flight,
    /// session, pacing or transport errors.
    pub async fn live_orders(&self) -> Result<Vec<LiveOrder>, IbkrError> {
        let attempts = self.inner.live_orders_attempts;
        for attempt in 1..=attempts {
            let l: LiveOrders = self
                .get(Endpoint::LiveOrders, "/iserver/account/orders", &[])
                .await?;
            if l.snapshot != Some(false) {
                return Ok(l.orders);
            }
            tracing::info!(
                attempt,
                "ibkr live orders answered its pre-flight, asking again"
            );
        }
        Err(IbkrError::LiveOrdersNotReady { attempts })
    }

    /// What the gateway knows of the order with cOID `coid`: this session's live
    /// orders first; when they do not list it (or never get past their
    /// pre-flight), the executions of the last 7 days by `order_ref`, which also
    /// cover orders of earlier sessions.
    ///
    /// # Errors
    /// `LiveOrdersNotReady` when the live list never came and no execution names
    /// the cOID (the order may still be working: it is not absent), session,
    /// pacing or transport errors.
    pub async fn lookup_order_by_ref(&self, coid: &str) -> Result<OrderLookup, IbkrError> {
        let listed = match self.live_orders().await {
            Ok(orders) => {
                if let Some(o) = orders
                    .into_iter()
                    .find(|o| o.order_ref.as_deref() == Some(coid))
                {
                    return Ok(OrderLookup::Live(o));
                }
                true
            }
            Err(e @ IbkrError::LiveOrdersNotReady { .. }) => {
                tracing::warn!(error = %e, "looking for the order in the executions instead");
                false
            }
            Err(e) => return Err(e),
        };
        let executions: Vec<Execution> = self
            .trades(Some(7))
            .await?
            .into_iter()
            .filter(|e| e.order_ref == coid)
            .collect();
        if !executions.is_empty() {
            return Ok(OrderLookup::ExecutedOnly(executions));
        }
        if listed {
            Ok(OrderLookup::Absent)
        } else {
            Err(IbkrError::LiveOrdersNotReady {
                attempts: self.inner.live_orders_attempts,
            })
        }
    }

    /// The live order whose `order_ref` is our cOID: how to learn, after a crash or
    /// a lost response, whether an order went out in this brokerage session. The
    /// session's pre-flight answer is asked again, never taken for "no orders".
    /// Orders of an earlier session are not listed: `lookup_order_by_ref` (or the
    /// caller's own look at `trades`) finds those by their executions.
    ///
    /// # Errors
    /// `LiveOrdersNotReady` when the list never got past its pre-flight (the order
    /// may exist: retry), session, pacing or transport errors.
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
    /// `OrderNotInSession` when the gateway keeps answering 503 (an order finished
    /// before this brokerage session: IBKR Campus, "Order Status"), session or
    /// transport errors.
    pub async fn order_status(&self, order_id: &str) -> Result<OrderStatusInfo, IbkrError> {
        self.get(
            Endpoint::OrderStatus,
            &format!("/iserver/account/order/status/{order_id}"),
            &[],
        )
        .await
        .map_err(|e| match e {
            IbkrError::Http { status: 503, .. } => IbkrError::OrderNotInSession {
                order_id: order_id.to_string(),
            },
            e => e,
        })
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
            .send(Endpoint::Cancel, Method::DELETE, &path, &[], None, None)
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
    fn history_period_never_asks_more_than_ibkrs_1000_points() {
        assert_eq!(history_period(Timeframe::Daily, 500), "727d");
        assert_eq!(history_period(Timeframe::Daily, 1000), "1000d");
        assert_eq!(history_period(Timeframe::Weekly, 500), "502w");
        assert_eq!(history_period(Timeframe::Weekly, 1000), "792w");
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
