//! A fake IBKR Client Portal gateway: the same paths under `/v1/api`, IBKR's JSON
//! shapes (those of IBKR Campus's published examples, checked against the client's
//! fixtures) and quirks (401 until logged in, string conids in search, snake_case
//! contract info, string snapshot values with an empty pre-flight, order questions
//! by order type with per-session suppression, HTTP 200 rejections, duplicate
//! cOIDs, gateway-wide pacing with a penalty box, a live-orders pre-flight, 503 for
//! orders of earlier sessions, executions without order ids and with commissions
//! reported late), an in-memory paper broker with a deterministic fill model, and
//! `/fake/*` endpoints that tests use to steer it and read its counters.

// IBKR's order-status object has 43 fields: more than `json!` expands by default.
#![recursion_limit = "256"]

pub mod broker;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tradeflow_core::synthetic;

use crate::broker::{
    CommissionReporting, Fault, FaultKind, Forget, Gateway, OrderAnswer, OrderTicket, Presets,
};

/// How the gateway starts.
#[derive(Debug, Clone)]
pub struct Options {
    pub logged_in: bool,
    pub account_id: String,
    /// Answer 429 when a client exceeds IBKR's pacing limits (violations are
    /// counted either way).
    pub pacing: bool,
    /// How long the IP stays in the penalty box after a violation: every request
    /// answers 429 meanwhile. IBKR Campus, Web API v1.0, "Pacing Limitations":
    /// "Violator IP addresses may be put in a penalty box for 10 minutes".
    pub penalty_box: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            logged_in: true,
            account_id: "DU1234567".into(),
            pacing: true,
            penalty_box: Duration::from_secs(600),
        }
    }
}

/// IBKR's published pacing ("Pacing Limitations", IBKR Campus Web API v1.0): 10
/// requests/s through the gateway, `/iserver/account/orders`,
/// `/iserver/account/trades` and `/portfolio/accounts` once per 5 s, `/tickle`
/// once per second, 5 concurrent history requests.
const GLOBAL_PER_SECOND: usize = 10;
const SLOW_ENDPOINT_INTERVAL: Duration = Duration::from_secs(5);
const TICKLE_INTERVAL: Duration = Duration::from_secs(1);
const HISTORY_CONCURRENCY: usize = 5;

#[derive(Debug, Default)]
struct Pacing {
    recent: VecDeque<(Instant, String)>,
    last_slow: HashMap<&'static str, Instant>,
    history_in_flight: usize,
    penalty_until: Option<Instant>,
    stats: PacingStats,
    last_violation: Option<Violation>,
}

/// What the pacing rules saw, for `/fake/stats`.
#[derive(Debug, Clone, Copy, Default, Serialize)]
struct PacingStats {
    /// Requests under `/v1/api` (control requests are not counted).
    requests: u64,
    /// Requests over a limit: each (when pacing is on) sent the IP to the box.
    pacing_violations: u64,
    /// Requests answered 429 because the IP sat in the penalty box.
    penalty_box_rejections: u64,
    /// Most history requests in flight at once.
    max_history_in_flight: usize,
}

/// Which limit the last violation broke and the requests of the second before it.
#[derive(Debug, Clone, Default, Serialize)]
struct Violation {
    rule: String,
    path: String,
    /// `+ms path` of the requests in the second up to it.
    last_second: Vec<String>,
}

#[derive(Clone)]
pub struct AppState {
    gw: Arc<Mutex<Gateway>>,
    pacing: Arc<Mutex<Pacing>>,
    enforce: bool,
    penalty_box: Duration,
}

impl AppState {
    fn gw(&self) -> MutexGuard<'_, Gateway> {
        self.gw.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn pacing(&self) -> MutexGuard<'_, Pacing> {
        self.pacing.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn ibkr_error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": message.into(), "statusCode": status.as_u16()})),
    )
        .into_response()
}

fn unauthorized() -> Response {
    // The real gateway's 401 carries no useful body either.
    (
        StatusCode::UNAUTHORIZED,
        Json(json!({"error": "not authenticated"})),
    )
        .into_response()
}

/// The whole app: IBKR paths under `/v1/api`, control paths under `/fake`.
pub fn router(opts: Options) -> Router {
    let state = AppState {
        gw: Arc::new(Mutex::new(Gateway::new(opts.account_id, opts.logged_in))),
        pacing: Arc::new(Mutex::new(Pacing::default())),
        enforce: opts.pacing,
        penalty_box: opts.penalty_box,
    };
    let api = Router::new()
        .route("/iserver/auth/status", get(auth_status).post(auth_status))
        .route("/tickle", get(tickle).post(tickle))
        .route("/iserver/auth/ssodh/init", post(reauthenticate))
        .route(
            "/iserver/reauthenticate",
            post(reauthenticate).get(reauthenticate),
        )
        .route("/logout", post(logout))
        .route("/iserver/accounts", get(accounts))
        .route("/iserver/secdef/search", get(search_get).post(search_post))
        .route("/iserver/contract/{conid}/info", get(contract_info))
        .route("/iserver/marketdata/history", get(history))
        .route("/iserver/marketdata/snapshot", get(snapshot))
        .route("/iserver/account/{acct}/orders", post(place_order))
        .route("/iserver/reply/{id}", post(reply))
        .route("/iserver/questions/suppress", post(suppress))
        .route("/iserver/questions/suppress/reset", post(suppress_reset))
        .route("/iserver/account/orders", get(live_orders))
        .route("/iserver/account/order/status/{id}", get(order_status))
        .route("/iserver/account/trades", get(trades))
        .route("/iserver/account/{acct}/order/{id}", delete(cancel_order))
        .route("/portfolio/accounts", get(portfolio_accounts))
        .route("/portfolio/{acct}/positions/{page}", get(positions))
        .route("/portfolio/{acct}/summary", get(summary))
        .route("/portfolio/{acct}/ledger", get(ledger))
        .layer(middleware::from_fn_with_state(state.clone(), gatekeeper));
    let control = Router::new()
        .route("/login", post(fake_login))
        .route("/logout", post(fake_logout))
        .route("/expire", post(fake_expire))
        .route("/compete", post(fake_compete))
        .route("/session_reset", post(fake_session_reset))
        .route("/price", post(fake_price))
        .route("/faults", post(fake_faults).delete(fake_clear_faults))
        .route("/held", get(fake_held))
        .route("/orders", get(fake_orders))
        .route("/executions", get(fake_executions))
        .route("/commissions", post(fake_commissions))
        .route("/questions", post(fake_questions))
        .route("/presets", post(fake_presets))
        .route("/market-data", post(fake_market_data))
        .route("/history", post(fake_history))
        .route("/stats", get(fake_stats));
    Router::new()
        .nest("/v1/api", api)
        .nest("/fake", control)
        .with_state(state)
}

/// Serves until the listener fails.
///
/// # Errors
/// The listener's I/O error.
pub async fn serve(listener: tokio::net::TcpListener, opts: Options) -> std::io::Result<()> {
    // The peer address is what `/fake/held` reports.
    axum::serve(
        listener,
        router(opts).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}

/// Starts the gateway on 127.0.0.1 with a random port, for tests.
///
/// # Errors
/// Binding the port.
pub async fn spawn(opts: Options) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(serve(listener, opts));
    Ok(addr)
}

/// Paths that keep working without an authenticated brokerage session.
fn session_free(path: &str) -> bool {
    matches!(
        path,
        "/tickle"
            | "/iserver/auth/status"
            | "/iserver/auth/ssodh/init"
            | "/iserver/reauthenticate"
            | "/logout"
    )
}

fn slow_endpoint(method: &axum::http::Method, path: &str) -> Option<(&'static str, Duration)> {
    match (method.as_str(), path) {
        ("GET", "/iserver/account/orders") => Some(("orders", SLOW_ENDPOINT_INTERVAL)),
        ("GET", "/iserver/account/trades") => Some(("trades", SLOW_ENDPOINT_INTERVAL)),
        ("GET", "/portfolio/accounts") => Some(("portfolio_accounts", SLOW_ENDPOINT_INTERVAL)),
        (_, "/tickle") => Some(("tickle", TICKLE_INTERVAL)),
        _ => None,
    }
}

/// Pacing, the penalty box, faults, authentication and the reply rule, in IBKR's
/// order. Limits are gateway-wide: every caller counts (IBKR Campus, "Pacing
/// Limitations").
async fn gatekeeper(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let is_history = path == "/iserver/marketdata/history";
    {
        let mut p = st.pacing();
        let now = Instant::now();
        p.stats.requests += 1;
        if st.enforce && p.penalty_until.is_some_and(|until| now < until) {
            p.stats.penalty_box_rejections += 1;
            return too_many_requests();
        }
        while p
            .recent
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) >= Duration::from_secs(1))
        {
            p.recent.pop_front();
        }
        p.recent.push_back((now, path.clone()));
        let mut rule = (p.recent.len() > GLOBAL_PER_SECOND).then(|| "10 requests/s".to_string());
        if let Some((key, interval)) = slow_endpoint(req.method(), &path) {
            if p.last_slow
                .get(key)
                .is_some_and(|t| now.duration_since(*t) < interval)
            {
                rule = Some(format!("{key} once per {interval:?}"));
            }
            p.last_slow.insert(key, now);
        }
        if is_history && p.history_in_flight >= HISTORY_CONCURRENCY {
            rule = Some("5 concurrent history requests".into());
        }
        if let Some(rule) = rule {
            p.stats.pacing_violations += 1;
            let first = p.recent.front().map_or(now, |(t, _)| *t);
            let last_second = p
                .recent
                .iter()
                .map(|(t, path)| format!("+{}ms {path}", t.duration_since(first).as_millis()))
                .collect();
            tracing::warn!(%path, %rule, "pacing violation");
            p.last_violation = Some(Violation {
                rule,
                path: path.clone(),
                last_second,
            });
            if st.enforce {
                p.penalty_until = Some(now + st.penalty_box);
                return too_many_requests();
            }
        }
        if is_history {
            p.history_in_flight += 1;
            p.stats.max_history_in_flight = p.stats.max_history_in_flight.max(p.history_in_flight);
        }
    }
    let resp = gate_inner(&st, &path, req, next).await;
    if is_history {
        st.pacing().history_in_flight -= 1;
    }
    resp
}

fn too_many_requests() -> Response {
    (StatusCode::TOO_MANY_REQUESTS, "Too Many Requests").into_response()
}

/// Takes a held answer off `/fake/held` when the hold ends, also when the client
/// went away and the request's future is dropped mid-hold.
struct HeldGuard<'a>(&'a AppState, u64);

impl Drop for HeldGuard<'_> {
    fn drop(&mut self) {
        self.0.gw().release_held(self.1);
    }
}

/// Holds the answer `fault.delay_ms`, listed in `/fake/held` meanwhile.
async fn hold(
    st: &AppState,
    path: &str,
    fault: &Fault,
    coid: Option<String>,
    peer: Option<String>,
) {
    let id = st.gw().hold(path, fault, coid, peer);
    let _listed = HeldGuard(st, id);
    tokio::time::sleep(Duration::from_millis(fault.delay_ms)).await;
}

async fn gate_inner(st: &AppState, path: &str, req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string());
    let fault = {
        let mut gw = st.gw();
        let found = gw.faults.iter_mut().find(|f| {
            f.count > 0 && f.kind != FaultKind::DelayAfterOrder && path.starts_with(&f.path)
        });
        found.map(|f| {
            f.count -= 1;
            f.clone()
        })
    };
    if let Some(f) = fault {
        match f.kind {
            FaultKind::Status500 => {
                return ibkr_error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error");
            }
            FaultKind::Status503 => {
                return ibkr_error(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
            }
            FaultKind::Status429 => {
                return ibkr_error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests");
            }
            FaultKind::Garbage => {
                return Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from("<html><body>Gateway error</body></html>{\"o\":"))
                    .unwrap_or_default();
            }
            FaultKind::Delay => hold(st, path, &f, None, peer.clone()).await,
            FaultKind::DelayAfterOrder => {}
        }
    }
    let orders_before = {
        let mut gw = st.gw();
        if !gw.logged_in {
            return unauthorized();
        }
        if !gw.authenticated && !session_free(path) {
            return unauthorized();
        }
        // "Must follow immediately": any other request cancels a pending order
        // question (IBKR Campus, "Place Order Reply Confirmation").
        if !path.starts_with("/iserver/reply/") {
            gw.interrupt_pending();
        }
        gw.orders.len()
    };
    let resp = next.run(req).await;
    let held_order = {
        let mut gw = st.gw();
        let placed: Vec<Option<String>> = gw.orders[orders_before..]
            .iter()
            .map(|o| o.coid.clone())
            .collect();
        let found = gw.faults.iter_mut().find(|f| {
            !placed.is_empty()
                && f.coid
                    .as_ref()
                    .is_none_or(|c| placed.contains(&Some(c.clone())))
                && f.count > 0
                && f.kind == FaultKind::DelayAfterOrder
                && path.starts_with(&f.path)
        });
        found.map(|f| {
            f.count -= 1;
            let coid = f
                .coid
                .clone()
                .or_else(|| placed.iter().flatten().next().cloned());
            (f.clone(), coid)
        })
    };
    if let Some((f, coid)) = held_order {
        hold(st, path, &f, coid, peer).await;
    }
    resp
}

async fn auth_status(State(st): State<AppState>) -> Response {
    Json(st.gw().auth_status()).into_response()
}

async fn tickle(State(st): State<AppState>) -> Response {
    let gw = st.gw();
    // IBKR Campus, Web API v1.0, "Request Session Information" (and its
    // "collission" spelling).
    Json(json!({
        "session": "fake0session0token",
        "ssoExpires": 540_000,
        "collission": false,
        "userId": 1,
        "hmds": {"error": "no bridge"},
        "iserver": {"authStatus": {
            "authenticated": gw.authenticated,
            "competing": gw.competing,
            "connected": gw.logged_in,
            "message": "",
            "MAC": "00:00:00:00:00:00",
            "serverInfo": {"serverName": "FakeGateway", "serverVersion": "Build 10.0.0, fake"},
        }},
    }))
    .into_response()
}

async fn reauthenticate(State(st): State<AppState>) -> Response {
    let mut gw = st.gw();
    gw.new_session();
    Json(json!({"authenticated": true, "connected": true, "competing": false, "message": "triggered"}))
        .into_response()
}

async fn logout(State(st): State<AppState>) -> Response {
    let mut gw = st.gw();
    gw.logged_in = false;
    gw.authenticated = false;
    Json(json!({"status": true})).into_response()
}

async fn accounts(State(st): State<AppState>) -> Response {
    let gw = st.gw();
    let a = gw.account.clone();
    // IBKR Campus, Web API v1.0, "Receive Brokerage Accounts".
    Json(json!({
        "accounts": [a],
        "acctProps": {a.clone(): {
            "hasChildAccounts": false, "supportsCashQty": true, "noFXConv": false,
            "isProp": false, "supportsFractions": false, "allowCustomerTime": false,
        }},
        "aliases": {a.clone(): a},
        "allowFeatures": {
            "showGFIS": true, "showEUCostReport": false, "allowEventContract": false,
            "allowFXConv": true, "allowFinancialLens": false, "allowMTA": true,
            "allowTypeAhead": true, "allowEventTrading": false, "snapshotRefreshTimeout": 30,
            "liteUser": false, "showWebNews": false, "research": false, "debugPnl": false,
            "showTaxOpt": false, "showImpactDashboard": false, "allowDynAccount": false,
            "allowCrypto": false, "allowedAssetTypes": "STK",
        },
        "chartPeriods": {"STK": ["*"]},
        "groups": [],
        "profiles": [],
        "selectedAccount": a,
        "serverInfo": {"serverName": "FakeGateway", "serverVersion": "Build 10.0.0, fake"},
        "sessionId": format!("fake.{:08x}", gw.session),
        "isFT": false,
        "isPaper": true,
    }))
    .into_response()
}

#[derive(Deserialize)]
struct SearchQuery {
    symbol: String,
    #[serde(default)]
    name: Option<bool>,
    #[serde(rename = "secType", default)]
    sec_type: Option<String>,
}

async fn search_get(Query(q): Query<SearchQuery>) -> Response {
    search(q)
}

async fn search_post(Json(q): Json<SearchQuery>) -> Response {
    search(q)
}

fn search(q: SearchQuery) -> Response {
    if q.sec_type.as_deref().is_some_and(|s| s != "STK") {
        return Json(json!([])).into_response();
    }
    let needle = q.symbol.to_uppercase();
    let by_name = q.name.unwrap_or(false);
    let hits: Vec<Value> = synthetic::KNOWN_CONTRACTS
        .iter()
        .filter(|c| {
            if by_name {
                c.2.contains(&needle)
            } else {
                c.1.starts_with(&needle)
            }
        })
        .map(|(conid, symbol, company, exchange)| {
            // IBKR sends the conid as a string here (and a number elsewhere).
            if by_name {
                // IBKR Campus, Web API v1.0, "Search Contract by Symbol" (its
                // example is a name search).
                json!({
                    "conid": conid.to_string(),
                    "companyHeader": format!("{symbol} {company} ({exchange}) "),
                    "companyName": format!("{company} ({exchange})"),
                    "symbol": symbol,
                    "description": null,
                    "restricted": null,
                    "sections": [],
                    "secType": "STK",
                })
            } else {
                json!({
                    "conid": conid.to_string(),
                    "companyHeader": format!("{company} - {exchange}"),
                    "companyName": company,
                    "symbol": symbol,
                    "description": exchange,
                    "restricted": null,
                    "fop": null,
                    "opt": "20261218;20270115",
                    "war": null,
                    "sections": [
                        {"secType": "STK"},
                        {"secType": "OPT", "months": "DEC26;JAN27", "exchange": "SMART;AMEX;CBOE"},
                    ],
                })
            }
        })
        .collect();
    if hits.is_empty() {
        return ibkr_error(StatusCode::OK, "No symbol found");
    }
    Json(hits).into_response()
}

async fn contract_info(Path(conid): Path<String>) -> Response {
    let parsed = conid.parse::<i64>().ok();
    let Some((id, (symbol, company, exchange))) =
        parsed.and_then(|id| synthetic::contract(id).map(|c| (id, c)))
    else {
        return ibkr_error(
            StatusCode::BAD_REQUEST,
            format!("Invalid contract id {conid}"),
        );
    };
    // Documented in camelCase, served in snake_case (IBKR Campus, Web API v1.0,
    // "Contract information by Contract ID": its example).
    Json(json!({
        "cfi_code": "ESXXXX",
        "symbol": symbol,
        "cusip": null,
        "expiry_full": null,
        "con_id": id,
        "maturity_date": null,
        "industry": "Technology",
        "instrument_type": "STK",
        "trading_class": "NMS",
        "valid_exchanges": format!("SMART,{exchange},IEX"),
        "allow_sell_long": false,
        "is_zero_commission_security": false,
        "local_symbol": symbol,
        "contract_clarification_type": null,
        "classifier": null,
        "currency": "USD",
        "text": null,
        "underlying_con_id": 0,
        "r_t_h": true,
        "multiplier": null,
        "underlying_issuer": null,
        "contract_month": null,
        "company_name": company,
        "smart_available": true,
        "exchange": exchange,
        "category": "Computers",
    }))
    .into_response()
}

#[derive(Deserialize)]
struct HistoryQuery {
    conid: String,
    #[serde(default = "default_period")]
    period: String,
    #[serde(default = "default_bar")]
    bar: String,
    /// `YYYYMMDD-HH:mm:ss`: the chart goes back from here.
    #[serde(rename = "startTime", default)]
    start_time: Option<String>,
    #[serde(rename = "outsideRth", default)]
    outside_rth: Option<bool>,
}

fn default_period() -> String {
    "1w".into()
}

fn default_bar() -> String {
    "1d".into()
}

async fn history(State(st): State<AppState>, Query(q): Query<HistoryQuery>) -> Response {
    let Ok(conid) = q.conid.parse::<i64>() else {
        return ibkr_error(
            StatusCode::BAD_REQUEST,
            format!("Invalid conid {}", q.conid),
        );
    };
    let end = match q
        .start_time
        .as_deref()
        .map(|t| chrono::NaiveDate::parse_from_str(t.get(..8).unwrap_or(t), "%Y%m%d"))
    {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(_)) => {
            return ibkr_error(StatusCode::BAD_REQUEST, "Invalid startTime");
        }
    };
    let gw = st.gw();
    match gw.history(conid, &q.period, &q.bar, end) {
        Ok(data) => {
            let (symbol, company) = synthetic::contract(conid).map_or(("", ""), |c| (c.0, c.1));
            let start = data
                .first()
                .and_then(|b| b["t"].as_i64())
                .and_then(chrono::DateTime::from_timestamp_millis)
                .unwrap_or_else(Utc::now)
                .format("%Y%m%d-%H:%M:%S")
                .to_string();
            let pan = end.map_or_else(Utc::now, |d| {
                d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
            });
            // IBKR Campus, Web API v1.0, "Historical Market Data": its example.
            Json(json!({
                "serverId": "20477",
                "symbol": symbol,
                "text": company,
                "priceFactor": 100,
                "startTime": start,
                "high": "0/0/0",
                "low": "0/0/0",
                "timePeriod": q.period,
                "barLength": if q.bar == "1w" { 604_800 } else { 86_400 },
                "mdAvailability": "S",
                "mktDataDelay": 0,
                "outsideRth": q.outside_rth.unwrap_or(false),
                "tradingDayDuration": 1440,
                "volumeFactor": gw.volume_factor,
                "priceDisplayRule": 1,
                "priceDisplayValue": "2",
                "chartPanStartTime": pan.format("%Y%m%d-%H:%M:%S").to_string(),
                "direction": -1,
                "negativeCapable": false,
                "messageVersion": 2,
                "data": data,
                "points": data.len(),
                "travelTime": 12,
            }))
            .into_response()
        }
        Err(e) => ibkr_error(StatusCode::BAD_REQUEST, e),
    }
}

#[derive(Deserialize)]
struct SnapshotQuery {
    conids: String,
    #[serde(default)]
    fields: Option<String>,
}

async fn snapshot(State(st): State<AppState>, Query(q): Query<SnapshotQuery>) -> Response {
    let mut gw = st.gw();
    let fields: Vec<String> = q
        .fields
        .unwrap_or_else(|| "31".into())
        .split(',')
        .map(|f| f.trim().to_string())
        .collect();
    let mut out = Vec::new();
    for (i, raw) in q.conids.split(',').enumerate() {
        let Some((conid, price)) = raw
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|c| gw.price(c).map(|p| (c, p)))
        else {
            return ibkr_error(StatusCode::BAD_REQUEST, format!("Invalid conid {raw}"));
        };
        // The first request for a conid only subscribes: it carries only the conid
        // (IBKR Campus, Web API v1.0, "Market Data", pre-flight example). A conid
        // the account has no data for keeps answering like that; the others in
        // the same request still get their values.
        let mut row = json!({"conid": conid, "conidEx": conid.to_string()});
        if gw.snapshot_primed.insert(conid) || gw.unpriced.contains(&conid) {
            out.push(row);
            continue;
        }
        let server_id = format!("q{}", i + 1);
        // IBKR Campus, Web API v1.0, "Live Market Data Snapshot": values are
        // strings; 6509 = market data availability (R = real time).
        row["_updated"] = json!(Utc::now().timestamp_millis());
        row["server_id"] = json!(server_id);
        row["6119"] = json!(server_id);
        row["6509"] = json!("RpB");
        for f in &fields {
            let v = match f.as_str() {
                "31" => format!("{price:.2}"),
                "84" => format!("{:.2}", price - 0.01),
                "86" => format!("{:.2}", price + 0.01),
                "55" => synthetic::contract(conid).map_or("", |c| c.0).to_string(),
                _ => continue,
            };
            row[f.as_str()] = Value::String(v);
        }
        out.push(row);
    }
    Json(out).into_response()
}

#[derive(Deserialize)]
struct OrdersBody {
    orders: Vec<OrderTicket>,
}

fn order_answer(a: OrderAnswer) -> Response {
    match a {
        OrderAnswer::Placed(v) | OrderAnswer::Question(v) => Json(v).into_response(),
        // IBKR rejects orders with HTTP 200 and an `error` field.
        OrderAnswer::Error(e) => Json(json!({"error": e})).into_response(),
    }
}

async fn place_order(
    State(st): State<AppState>,
    Path(acct): Path<String>,
    body: Result<Json<OrdersBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(body)) = body else {
        return ibkr_error(StatusCode::BAD_REQUEST, "Bad Request: invalid order body");
    };
    let answer = st.gw().place(&acct, body.orders);
    order_answer(answer)
}

#[derive(Deserialize)]
struct ReplyBody {
    confirmed: bool,
}

async fn reply(
    State(st): State<AppState>,
    Path(id): Path<String>,
    Json(b): Json<ReplyBody>,
) -> Response {
    match st.gw().reply(&id, b.confirmed) {
        Some(a) => order_answer(a),
        // A reply that does not immediately follow its question finds nothing.
        None => ibkr_error(StatusCode::SERVICE_UNAVAILABLE, "reply id not found"),
    }
}

async fn live_orders(State(st): State<AppState>) -> Response {
    let mut gw = st.gw();
    gw.tick();
    Json(gw.live_orders()).into_response()
}

async fn order_status(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    let mut gw = st.gw();
    gw.tick();
    match id.parse::<u64>().ok().and_then(|id| gw.order_status(id)) {
        Some(v) => Json(v).into_response(),
        // IBKR answers 503 for orders it does not know in this session (IBKR
        // Campus, "Order Status"); the body is not published.
        None => ibkr_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("order {id} not found"),
        ),
    }
}

#[derive(Deserialize)]
struct SuppressBody {
    #[serde(rename = "messageIds", default)]
    message_ids: Vec<String>,
}

/// `POST /iserver/questions/suppress` (IBKR Campus, "Suppress Messages": up to 51
/// ids, answered `{"status":"submitted"}`).
async fn suppress(State(st): State<AppState>, Json(b): Json<SuppressBody>) -> Response {
    if b.message_ids.len() > 51 {
        return ibkr_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "at most 51 messageIds per request",
        );
    }
    st.gw().suppress(&b.message_ids);
    Json(json!({"status": "submitted"})).into_response()
}

/// `POST /iserver/questions/suppress/reset`.
async fn suppress_reset(State(st): State<AppState>) -> Response {
    st.gw().suppressed.clear();
    Json(json!({"status": "submitted"})).into_response()
}

#[derive(Deserialize)]
struct TradesQuery {
    #[serde(default)]
    days: Option<u32>,
}

async fn trades(State(st): State<AppState>, Query(q): Query<TradesQuery>) -> Response {
    Json(st.gw().trades(q.days)).into_response()
}

async fn cancel_order(
    State(st): State<AppState>,
    Path((acct, id)): Path<(String, String)>,
) -> Response {
    let Ok(order_id) = id.parse::<u64>() else {
        return Json(json!({"error": format!("OrderID {id} doesn't exist")})).into_response();
    };
    match st.gw().cancel(&acct, order_id) {
        Ok(v) => Json(v).into_response(),
        Err(e) => Json(json!({"error": e})).into_response(),
    }
}

async fn portfolio_accounts(State(st): State<AppState>) -> Response {
    let gw = st.gw();
    Json(json!([{
        "id": gw.account, "accountId": gw.account, "accountVan": gw.account,
        "accountTitle": "Fake Paper", "currency": "USD", "type": "DEMO", "tradingType": "PMRGN",
    }]))
    .into_response()
}

fn check_account(gw: &Gateway, acct: &str) -> Option<Response> {
    (acct != gw.account).then(|| {
        ibkr_error(
            StatusCode::BAD_REQUEST,
            format!("Account {acct} is not valid"),
        )
    })
}

async fn positions(
    State(st): State<AppState>,
    Path((acct, page)): Path<(String, u32)>,
) -> Response {
    let mut gw = st.gw();
    if let Some(r) = check_account(&gw, &acct) {
        return r;
    }
    gw.tick();
    let all = gw.positions();
    let page: Vec<Value> = all
        .into_iter()
        .skip(page as usize * 100)
        .take(100)
        .collect();
    Json(page).into_response()
}

/// One value of `/portfolio/{acct}/summary` (IBKR Campus, Web API v1.0,
/// "Portfolio Summary": amount, currency, isNull, timestamp, value, severity).
fn summary_value(amount: f64, value: Option<&str>) -> Value {
    json!({"amount": amount, "currency": "USD", "isNull": false,
           "timestamp": Utc::now().timestamp_millis(), "value": value, "severity": 0})
}

async fn summary(State(st): State<AppState>, Path(acct): Path<String>) -> Response {
    let mut gw = st.gw();
    if let Some(r) = check_account(&gw, &acct) {
        return r;
    }
    gw.tick();
    let (cash, mv, _, _) = gw.totals();
    Json(json!({
        "accountcode": summary_value(0.0, Some(&gw.account)),
        "netliquidation": summary_value(cash + mv, None),
        "totalcashvalue": summary_value(cash, None),
        "settledcash": summary_value(cash, None),
        "grosspositionvalue": summary_value(mv.abs(), None),
        "availablefunds": summary_value(cash, None),
        "buyingpower": summary_value(cash * 4.0, None),
    }))
    .into_response()
}

/// `/portfolio/{acct}/ledger` in the shape of IBKR Campus, Web API v1.0,
/// "Portfolio Ledger" (one object per currency plus `BASE`).
async fn ledger(State(st): State<AppState>, Path(acct): Path<String>) -> Response {
    let mut gw = st.gw();
    if let Some(r) = check_account(&gw, &acct) {
        return r;
    }
    gw.tick();
    let (cash, mv, unreal, real) = gw.totals();
    let account = gw.account.clone();
    let entry = |currency: &str| {
        json!({
            "commoditymarketvalue": 0.0, "futuremarketvalue": 0.0, "settledcash": cash,
            "exchangerate": 1, "sessionid": 1, "cashbalance": cash,
            "corporatebondsmarketvalue": 0.0, "warrantsmarketvalue": 0.0,
            "netliquidationvalue": cash + mv, "interest": 0.0, "unrealizedpnl": unreal,
            "stockmarketvalue": mv, "moneyfunds": 0.0, "currency": currency,
            "realizedpnl": real, "funds": 0.0, "acctcode": account,
            "issueroptionsmarketvalue": 0.0, "key": "LedgerList",
            "timestamp": Utc::now().timestamp(), "severity": 0,
            "stockoptionmarketvalue": 0.0, "futuresonlypnl": 0.0, "tbondsmarketvalue": 0.0,
            "futureoptionmarketvalue": 0.0, "cashbalancefxsegment": 0.0,
            "secondkey": currency, "tbillsmarketvalue": 0.0, "dividends": 0.0,
        })
    };
    let mut usd = entry("USD");
    // IBKR's example marks the last currency of the bundle.
    usd["endofbundle"] = json!(1);
    Json(json!({"USD": usd, "BASE": entry("BASE")})).into_response()
}

async fn fake_login(State(st): State<AppState>) -> Response {
    let mut gw = st.gw();
    gw.logged_in = true;
    gw.new_session();
    Json(gw.auth_status()).into_response()
}

async fn fake_logout(State(st): State<AppState>) -> Response {
    let mut gw = st.gw();
    gw.logged_in = false;
    gw.authenticated = false;
    Json(gw.auth_status()).into_response()
}

/// Connected but no longer authenticated: what `ssodh/init` repairs.
async fn fake_expire(State(st): State<AppState>) -> Response {
    let mut gw = st.gw();
    gw.authenticated = false;
    Json(gw.auth_status()).into_response()
}

/// Another login took the brokerage session.
async fn fake_compete(State(st): State<AppState>) -> Response {
    let mut gw = st.gw();
    gw.authenticated = false;
    gw.competing = true;
    Json(gw.auth_status()).into_response()
}

#[derive(Deserialize)]
struct PriceBody {
    conid: i64,
    price: f64,
    /// Shares that can fill per market tick; absent means unlimited.
    #[serde(default)]
    liquidity: Option<f64>,
}

async fn fake_price(State(st): State<AppState>, Json(b): Json<PriceBody>) -> Response {
    let mut gw = st.gw();
    if synthetic::contract(b.conid).is_none() {
        return ibkr_error(
            StatusCode::BAD_REQUEST,
            format!("unknown conid {}", b.conid),
        );
    }
    gw.prices.insert(b.conid, b.price);
    match b.liquidity {
        Some(l) => gw.liquidity.insert(b.conid, l),
        None => gw.liquidity.remove(&b.conid),
    };
    Json(json!({"conid": b.conid, "price": b.price})).into_response()
}

async fn fake_faults(State(st): State<AppState>, Json(f): Json<Fault>) -> Response {
    let mut gw = st.gw();
    gw.faults.push(f);
    Json(json!({"faults": gw.faults})).into_response()
}

async fn fake_clear_faults(State(st): State<AppState>) -> Response {
    st.gw().faults.clear();
    Json(json!({"faults": []})).into_response()
}

/// The answers faults are holding right now (see `Held`).
async fn fake_held(State(st): State<AppState>) -> Response {
    let held: Vec<_> = st.gw().held.values().cloned().collect();
    Json(json!({"held": held})).into_response()
}

async fn fake_orders(State(st): State<AppState>) -> Response {
    Json(json!({"orders": st.gw().orders})).into_response()
}

/// Every execution as `/iserver/account/trades` serves it, without pacing or the
/// day window.
async fn fake_executions(State(st): State<AppState>) -> Response {
    let gw = st.gw();
    let form = gw.commission_reporting.form;
    let all: Vec<Value> = gw.executions.iter().map(|e| e.trade_json(form)).collect();
    Json(json!({"executions": all})).into_response()
}

async fn fake_commissions(
    State(st): State<AppState>,
    Json(r): Json<CommissionReporting>,
) -> Response {
    let mut gw = st.gw();
    gw.set_commission_reporting(r);
    Json(json!(gw.commission_reporting)).into_response()
}

#[derive(Debug, Default, Deserialize)]
struct ResetBody {
    #[serde(default)]
    forget: Forget,
}

/// A brokerage session reset, as IBKR's daily one: see `Gateway::reset_session`
/// (`{"forget": "all"}`, the default, or `"finished"`).
async fn fake_session_reset(State(st): State<AppState>, body: Option<Json<ResetBody>>) -> Response {
    let forget = body.map(|Json(b)| b.forget).unwrap_or_default();
    let mut gw = st.gw();
    gw.reset_session(forget);
    Json(json!({"session": gw.session, "forget": forget})).into_response()
}

#[derive(Deserialize)]
struct QuestionsBody {
    /// Ids asked even when suppressed.
    #[serde(default)]
    unsuppressible: Vec<String>,
}

async fn fake_questions(State(st): State<AppState>, Json(b): Json<QuestionsBody>) -> Response {
    let mut gw = st.gw();
    gw.unsuppressible = b.unsuppressible.into_iter().collect();
    Json(json!({"unsuppressible": gw.unsuppressible, "suppressed": gw.suppressed})).into_response()
}

async fn fake_presets(State(st): State<AppState>, Json(p): Json<Presets>) -> Response {
    st.gw().presets = p;
    Json(json!(p)).into_response()
}

#[derive(Deserialize)]
struct MarketDataBody {
    conid: i64,
    /// False: the account has no market data for this conid.
    available: bool,
}

async fn fake_market_data(State(st): State<AppState>, Json(b): Json<MarketDataBody>) -> Response {
    let mut gw = st.gw();
    if b.available {
        gw.unpriced.remove(&b.conid);
    } else {
        gw.unpriced.insert(b.conid);
    }
    Json(json!({"unpriced": gw.unpriced})).into_response()
}

#[derive(Deserialize)]
struct HistoryBody {
    volume_factor: f64,
}

async fn fake_history(State(st): State<AppState>, Json(b): Json<HistoryBody>) -> Response {
    if !(b.volume_factor > 0.0 && b.volume_factor.is_finite()) {
        return ibkr_error(StatusCode::BAD_REQUEST, "volume_factor must be positive");
    }
    st.gw().volume_factor = b.volume_factor;
    Json(json!({"volume_factor": b.volume_factor})).into_response()
}

/// Counters for tests: pacing violations and interleaved replies must stay 0 for
/// a disciplined client.
async fn fake_stats(State(st): State<AppState>) -> Response {
    let (pacing, in_box, violation) = {
        let p = st.pacing();
        (
            p.stats,
            p.penalty_until.is_some_and(|u| Instant::now() < u),
            p.last_violation.clone(),
        )
    };
    let gw = st.gw();
    Json(json!({
        "requests": pacing.requests,
        "pacing_violations": pacing.pacing_violations,
        "last_violation": violation,
        "penalty_box_rejections": pacing.penalty_box_rejections,
        "max_history_in_flight": pacing.max_history_in_flight,
        "in_penalty_box": in_box,
        "questions_asked": gw.questions.questions_asked,
        "replies": gw.questions.replies,
        "late_replies": gw.questions.late_replies,
        "interleaved_replies": gw.questions.interleaved_replies,
        "session": gw.session,
    }))
    .into_response()
}
