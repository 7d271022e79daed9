//! IBKR's published example payloads (`fixtures/ibkr/*.json`, each naming its
//! source): the client parses every one, served over HTTP as the gateway would,
//! and the fake gateway answers the same cases with the same shapes (field names
//! and JSON types), so tests against the fake stand for tests against IBKR.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use rust_decimal::Decimal;
use serde_json::{Value, json};
use tradeflow_adapters::ibkr::types::{OrderRequest, OrderType};
use tradeflow_adapters::ibkr::{IbkrClient, IbkrError, IbkrSettings, PacingLimits, RetryPolicy};
use tradeflow_core::orders::Side;

macro_rules! fixtures {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("fixtures/ibkr/", $name, ".json")))),*]
    };
}

const FIXTURES: &[(&str, &str)] = fixtures![
    "auth_status",
    "auth_status_not_authenticated",
    "tickle",
    "accounts",
    "secdef_search",
    "contract_info",
    "history",
    "snapshot_preflight",
    "snapshot",
    "snapshot_unpriced",
    "place_order_placed",
    "place_order_question_o163",
    "place_order_question_o10151",
    "place_order_question_o10153",
    "reply_placed",
    "place_order_rejected",
    "place_order_duplicate",
    "suppress",
    "live_orders_preflight",
    "live_orders",
    "order_status",
    "order_status_earlier_session",
    "trades",
    "cancel",
    "cancel_error",
    "positions",
    "summary",
    "ledger",
];

#[derive(Debug, Clone)]
struct Fixture {
    name: &'static str,
    endpoint: String,
    source: String,
    status: u16,
    body: Value,
    body_published: bool,
    data_keys: Vec<String>,
    extra: HashMap<String, Vec<String>>,
}

fn fixture(name: &str) -> Fixture {
    let (name, text) = FIXTURES
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no fixture {name}"));
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let strings = |k: &str| -> Vec<String> {
        v[k].as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let extra = v["documented_extra_fields"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(ptr, fields)| {
                    let names = fields
                        .as_object()
                        .map(|f| f.keys().cloned().collect())
                        .unwrap_or_default();
                    (ptr.clone(), names)
                })
                .collect()
        })
        .unwrap_or_default();
    Fixture {
        name,
        endpoint: v["endpoint"].as_str().unwrap_or_default().to_string(),
        source: v["source"].as_str().unwrap_or_default().to_string(),
        status: v["status"].as_u64().unwrap_or(200) as u16,
        body: v["body"].clone(),
        body_published: v["body_published"].as_bool().unwrap_or(true),
        data_keys: strings("data_keys"),
        extra,
    }
}

/// A one-shot gateway: answers each request with the first route whose method
/// and path prefix match, and records what it was asked.
#[derive(Clone, Default)]
struct Served {
    routes: Arc<Vec<(Method, String, u16, Value)>>,
    log: Arc<Mutex<Vec<(String, String, Value)>>>,
}

async fn answer(State(s): State<Served>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().trim_start_matches("/v1/api").to_string();
    let body = axum::body::to_bytes(req.into_body(), 1 << 20)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    s.log
        .lock()
        .expect("log")
        .push((method.to_string(), path.clone(), body));
    match s
        .routes
        .iter()
        .find(|(m, p, _, _)| *m == method && path.starts_with(p.as_str()))
    {
        Some((_, _, status, body)) => (
            StatusCode::from_u16(*status).unwrap_or(StatusCode::OK),
            axum::Json(body.clone()),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, format!("no route for {path}")).into_response(),
    }
}

async fn serve(routes: Vec<(Method, &str, Value)>) -> (IbkrClient, Served) {
    serve_status(routes.into_iter().map(|(m, p, b)| (m, p, 200, b)).collect()).await
}

async fn serve_status(routes: Vec<(Method, &str, u16, Value)>) -> (IbkrClient, Served) {
    let served = Served {
        routes: Arc::new(
            routes
                .into_iter()
                .map(|(m, p, s, b)| (m, p.to_string(), s, b))
                .collect(),
        ),
        log: Arc::default(),
    };
    let app = axum::Router::new()
        .fallback(answer)
        .with_state(served.clone());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let addr: SocketAddr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = IbkrClient::new(IbkrSettings {
        retry: RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(5),
        },
        pacing: PacingLimits::unlimited(),
        suppress_questions: false,
        snapshot_attempts: 1,
        live_orders_attempts: 2,
        ..IbkrSettings::new(format!("http://{addr}/v1/api"), "U1234567")
    })
    .expect("client");
    (client, served)
}

fn body(name: &str) -> Value {
    fixture(name).body
}

fn accounts_route() -> (Method, &'static str, Value) {
    (Method::GET, "/iserver/accounts", body("accounts"))
}

fn market_sell(coid: &str) -> OrderRequest {
    OrderRequest {
        conid: 265598,
        coid: coid.into(),
        order_type: OrderType::Market,
        side: Side::Sell,
        quantity: Decimal::from(5),
        limit_price: None,
        tif: "DAY".into(),
        outside_rth: false,
    }
}

#[test]
fn every_fixture_file_is_listed_cites_its_source_and_names_its_endpoint() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ibkr");
    let mut on_disk: Vec<String> = std::fs::read_dir(dir)
        .expect("fixtures dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".json").map(String::from))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = FIXTURES.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();

    assert_eq!(on_disk, listed);
    for (name, _) in FIXTURES {
        let f = fixture(name);
        assert!(
            f.source.contains("IBKR Campus")
                || f.source.contains("IBKR Web API")
                || f.source.contains("ibind"),
            "{name}: {}",
            f.source
        );
        assert!(
            ["GET ", "POST ", "DELETE "]
                .iter()
                .any(|m| f.endpoint.starts_with(m)),
            "{name}: {}",
            f.endpoint
        );
        assert_eq!(f.body_published, !f.body.is_null(), "{name}");
    }
}

#[tokio::test]
async fn session_and_account_fixtures_parse() {
    let (c, _) = serve(vec![
        (Method::POST, "/iserver/auth/status", body("auth_status")),
        (Method::POST, "/tickle", body("tickle")),
        accounts_route(),
    ])
    .await;
    let (down, _) = serve(vec![(
        Method::POST,
        "/iserver/auth/status",
        body("auth_status_not_authenticated"),
    )])
    .await;

    let status = c.ensure_session().await.unwrap();
    let tickle = c.tickle().await.unwrap();
    let accounts = c.accounts().await.unwrap();
    let not_authenticated = down.ensure_session().await;

    assert!(status.healthy());
    assert_eq!(tickle.sso_expires_ms, Some(460_311.0));
    assert!(tickle.iserver.auth_status.unwrap().authenticated);
    assert_eq!(accounts.accounts, ["U1234567"]);
    assert_eq!(accounts.is_paper, Some(false));
    assert!(matches!(
        not_authenticated,
        Err(IbkrError::NotAuthenticated)
    ));
}

#[tokio::test]
async fn contract_fixtures_parse() {
    let (c, log) = serve(vec![
        (Method::GET, "/iserver/secdef/search", body("secdef_search")),
        (Method::GET, "/iserver/contract/", body("contract_info")),
    ])
    .await;

    let hits = c.search("IBKR", "STK").await.unwrap();
    let info = c.contract_info(265598).await.unwrap();

    assert_eq!((hits[0].conid, hits[0].symbol.as_str()), (43645865, "IBKR"));
    assert_eq!(
        (
            info.conid,
            info.symbol.as_str(),
            info.asset_type.as_str(),
            info.company_name.as_str()
        ),
        (265598, "AAPL", "STK", "APPLE INC")
    );
    assert_eq!(
        log.log.lock().unwrap()[1].1,
        "/iserver/contract/265598/info"
    );
}

#[tokio::test]
async fn the_history_fixture_parses_with_its_volume_factor() {
    let (c, log) = serve(vec![(
        Method::GET,
        "/iserver/marketdata/history",
        body("history"),
    )])
    .await;

    let h = c
        .history_data(265598, "1000d", "1d", false, None)
        .await
        .unwrap();
    let bars = c
        .bars(265598, tradeflow_core::Timeframe::Daily, 1000)
        .await
        .unwrap();

    assert_eq!(h.volume_factor, Some(1.0));
    assert_eq!(h.data[0].v, 472_117.45);
    assert_eq!(h.data[0].c, 174.7);
    assert_eq!(bars.len(), 1);
    assert_eq!(bars[0].volume, 472_117.45);
    // Never more than IBKR's 1000 points: a 1000-bar request asks 1000d, not 4y.
    let asked: Vec<String> = log
        .log
        .lock()
        .unwrap()
        .iter()
        .map(|l| l.1.clone())
        .collect();
    assert!(asked.iter().all(|p| p == "/iserver/marketdata/history"));
}

#[tokio::test]
async fn snapshot_fixtures_parse_and_an_unpriced_conid_keeps_the_others() {
    let (priced, _) = serve(vec![
        accounts_route(),
        (
            Method::GET,
            "/iserver/marketdata/snapshot",
            body("snapshot"),
        ),
    ])
    .await;
    let (mixed, _) = serve(vec![
        accounts_route(),
        (
            Method::GET,
            "/iserver/marketdata/snapshot",
            body("snapshot_unpriced"),
        ),
    ])
    .await;
    let (preflight, _) = serve(vec![
        accounts_route(),
        (
            Method::GET,
            "/iserver/marketdata/snapshot",
            body("snapshot_preflight"),
        ),
    ])
    .await;

    let q = priced.snapshot(&[265598]).await.unwrap();
    let m = mixed.snapshot(&[265598, 8314]).await.unwrap();
    let p = preflight.snapshot(&[265598, 8314]).await;

    assert_eq!(
        (q[0].last, q[0].bid, q[0].ask),
        (Some(193.18), Some(193.06), Some(193.14))
    );
    assert_eq!(
        m.iter().find(|x| x.conid == 265598).unwrap().price(),
        Some(193.18)
    );
    assert_eq!(m.iter().find(|x| x.conid == 8314).unwrap().price(), None);
    assert!(matches!(p, Err(IbkrError::Refused { .. })));
}

#[tokio::test]
async fn order_fixtures_parse_placed_rejected_and_duplicate() {
    let (placed, _) = serve(vec![
        accounts_route(),
        (
            Method::POST,
            "/iserver/account/",
            body("place_order_placed"),
        ),
    ])
    .await;
    let (rejected, _) = serve(vec![
        accounts_route(),
        (
            Method::POST,
            "/iserver/account/",
            body("place_order_rejected"),
        ),
    ])
    .await;
    let (duplicate, _) = serve(vec![
        accounts_route(),
        (
            Method::POST,
            "/iserver/account/",
            body("place_order_duplicate"),
        ),
    ])
    .await;

    let p = placed.place_order(&market_sell("c1")).await.unwrap();
    let r = rejected.place_order(&market_sell("c2")).await;
    let d = duplicate.place_order(&market_sell("c3")).await;

    assert_eq!(
        (p.order_id.as_str(), p.status.as_str()),
        ("1234567890", "Submitted")
    );
    assert!(matches!(r, Err(IbkrError::OrderRejected { message }) if message.contains("197.79")));
    assert!(matches!(d, Err(IbkrError::DuplicateOrder { coid }) if coid == "AAPL-BUY-100"));
}

#[tokio::test]
async fn the_market_order_questions_are_confirmed_and_the_price_question_declined() {
    let (market, market_log) = serve(vec![
        accounts_route(),
        (
            Method::POST,
            "/iserver/account/",
            body("place_order_question_o10151"),
        ),
        (
            Method::POST,
            "/iserver/reply/9a0b1c2d",
            body("place_order_question_o10153"),
        ),
        (
            Method::POST,
            "/iserver/reply/1b2c3d4e",
            body("reply_placed"),
        ),
    ])
    .await;
    let (far, far_log) = serve(vec![
        accounts_route(),
        (
            Method::POST,
            "/iserver/account/",
            body("place_order_question_o163"),
        ),
        (
            Method::POST,
            "/iserver/reply/",
            json!({"error": "declined"}),
        ),
    ])
    .await;

    let placed = market.place_order(&market_sell("exit-1")).await.unwrap();
    let refused = far.place_order(&market_sell("far-1")).await;

    assert_eq!(placed.confirmed(), ["o10151", "o10153"]);
    let replies: Vec<Value> = market_log
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.1.starts_with("/iserver/reply/"))
        .map(|l| l.2.clone())
        .collect();
    assert_eq!(
        replies,
        [json!({"confirmed": true}), json!({"confirmed": true})]
    );
    assert!(
        matches!(refused, Err(IbkrError::OrderRejected { message }) if message.contains("[o163]") && message.contains("Percentage constraint"))
    );
    let declined = far_log.log.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        (declined.1.as_str(), declined.2),
        (
            "/iserver/reply/07a13a5a-4a48-44a5-bb25-5ab37b79186c",
            json!({"confirmed": false})
        )
    );
}

#[tokio::test]
async fn the_suppress_fixture_parses() {
    let (c, log) = serve(vec![(
        Method::POST,
        "/iserver/questions/suppress",
        body("suppress"),
    )])
    .await;

    let ids = c.suppress_questions().await.unwrap();

    assert_eq!(ids, ["o354", "o10151", "o10153", "o403"]);
    assert_eq!(
        log.log.lock().unwrap()[0].2,
        json!({"messageIds": ["o354", "o10151", "o10153", "o403"]})
    );
}

#[tokio::test]
async fn live_order_fixtures_parse_and_the_preflight_is_not_an_empty_book() {
    let (c, _) = serve(vec![(
        Method::GET,
        "/iserver/account/orders",
        body("live_orders"),
    )])
    .await;
    let (pre, pre_log) = serve(vec![
        accounts_route(),
        (
            Method::GET,
            "/iserver/account/orders",
            body("live_orders_preflight"),
        ),
        (Method::GET, "/iserver/account/trades", json!([])),
    ])
    .await;

    let found = c.find_order_by_ref("Order123").await.unwrap().unwrap();
    let not_ready = pre.lookup_order_by_ref("Order123").await;

    assert_eq!(
        (found.order_id, found.conid, found.status.as_str()),
        (1234568790, 265598, "Filled")
    );
    assert_eq!(
        (found.filled_quantity, found.avg_price),
        (5.0, Some(192.26))
    );
    assert!(matches!(
        not_ready,
        Err(IbkrError::LiveOrdersNotReady { .. })
    ));
    let asked: Vec<String> = pre_log
        .log
        .lock()
        .unwrap()
        .iter()
        .map(|l| l.1.clone())
        .collect();
    assert_eq!(
        asked,
        [
            "/iserver/account/orders",
            "/iserver/account/orders",
            "/iserver/accounts",
            "/iserver/account/trades"
        ]
    );
}

#[tokio::test]
async fn order_status_fixtures_parse_and_503_is_an_order_of_an_earlier_session() {
    let (c, _) = serve(vec![(
        Method::GET,
        "/iserver/account/order/status/",
        body("order_status"),
    )])
    .await;
    let (gone, _) = serve_status(vec![(
        Method::GET,
        "/iserver/account/order/status/",
        fixture("order_status_earlier_session").status,
        Value::Null,
    )])
    .await;

    let s = c.order_status("1799796559").await.unwrap();
    let e = gone.order_status("1799796559").await;

    assert_eq!(
        (
            s.order_id,
            s.order_status.as_str(),
            s.cum_fill,
            s.average_price,
            s.side.as_str()
        ),
        (1799796559, "Filled", 5.0, Some(192.26), "S")
    );
    assert!(
        matches!(e, Err(IbkrError::OrderNotInSession { order_id }) if order_id == "1799796559")
    );
}

#[tokio::test]
async fn the_trades_fixture_parses_without_an_order_id() {
    let (c, _) = serve(vec![
        accounts_route(),
        (Method::GET, "/iserver/account/trades", body("trades")),
    ])
    .await;

    let e = &c.trades(Some(7)).await.unwrap()[0];

    assert_eq!(
        (e.conid, e.order_ref.as_str(), e.order_id),
        (265598, "Order123", None)
    );
    assert_eq!(e.commission, Some(Decimal::new(101, 2)));
    assert_eq!(e.price, Some(Decimal::new(19226, 2)));
    assert_eq!(e.net_amount, Some(Decimal::new(9613, 1)));
    assert!(e.belongs_to("Order123", None));
}

#[tokio::test]
async fn cancel_and_portfolio_fixtures_parse() {
    let (c, _) = serve(vec![
        (
            Method::DELETE,
            "/iserver/account/U1234567/order/123456789",
            body("cancel"),
        ),
        (
            Method::DELETE,
            "/iserver/account/U1234567/order/1",
            body("cancel_error"),
        ),
        (Method::GET, "/portfolio/accounts", json!([])),
        (
            Method::GET,
            "/portfolio/U1234567/positions/",
            body("positions"),
        ),
        (Method::GET, "/portfolio/U1234567/summary", body("summary")),
        (Method::GET, "/portfolio/U1234567/ledger", body("ledger")),
    ])
    .await;

    let ack = c.cancel_order("123456789").await.unwrap();
    let unknown = c.cancel_order("1").await;
    let positions = c.positions().await.unwrap();
    let summary = c.account_summary().await.unwrap();
    let ledger = c.ledger().await.unwrap();

    assert_eq!(ack.order_id, 123456789);
    assert!(
        matches!(unknown, Err(IbkrError::Refused { message, .. }) if message.contains("doesn't exist"))
    );
    assert_eq!(positions.len(), 3);
    assert_eq!(
        (
            positions[1].conid,
            positions[1].position,
            positions[1].avg_cost
        ),
        (76792991, 7.0, 221.67142855)
    );
    assert_eq!(summary.net_liquidation, Some(215_721_776.0));
    assert_eq!(summary.buying_power, Some(856_000_000.0));
    assert_eq!(ledger["USD"].cashbalance, 214_716_688.0);
    assert_eq!(ledger["BASE"].netliquidationvalue, 215_721_776.0);
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Differences between the fixture's shape and the fake's: missing or invented
/// fields and different JSON types (a `null` on either side matches anything).
fn shape_diff(fx: &Fixture, want: &Value, got: &Value, ptr: &str, out: &mut Vec<String>) {
    if want.is_null() || got.is_null() {
        return;
    }
    if kind(want) != kind(got) {
        out.push(format!(
            "{}{ptr}: IBKR sends {}, the fake {} ({got})",
            fx.name,
            kind(want),
            kind(got)
        ));
        return;
    }
    match (want, got) {
        (Value::Array(w), Value::Array(g)) => {
            if let Some(first) = w.first() {
                for (i, item) in g.iter().enumerate() {
                    let p = format!("{ptr}/{i}");
                    // Compare like with like: the fixture's first element stands for all.
                    let wanted = w.get(i).unwrap_or(first);
                    shape_diff(fx, wanted, item, &p, out);
                }
            }
        }
        (Value::Object(w), Value::Object(g)) => {
            if fx.data_keys.iter().any(|k| k == ptr) {
                if let Some(first) = w.values().next() {
                    for (k, v) in g {
                        shape_diff(fx, first, v, &format!("{ptr}/{k}"), out);
                    }
                }
                return;
            }
            let generic = generic_ptr(ptr);
            let allowed = fx.extra.get(&generic).cloned().unwrap_or_default();
            for k in w.keys() {
                if !g.contains_key(k) {
                    out.push(format!("{}{ptr}: the fake lacks `{k}`", fx.name));
                }
            }
            for (k, v) in g {
                match w.get(k) {
                    Some(wv) => shape_diff(fx, wv, v, &format!("{ptr}/{k}"), out),
                    None if allowed.contains(k) => {}
                    None => out.push(format!("{}{ptr}: the fake invents `{k}`", fx.name)),
                }
            }
        }
        _ => {}
    }
}

/// `/orders/3` → `/orders/0`: documented extras are listed for the first element.
fn generic_ptr(ptr: &str) -> String {
    ptr.split('/')
        .map(|seg| {
            if !seg.is_empty() && seg.chars().all(|c| c.is_ascii_digit()) {
                "0"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

struct Fake {
    root: String,
    http: reqwest::Client,
}

impl Fake {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let url = if path.starts_with("/fake/") {
            format!("{}{path}", self.root)
        } else {
            format!("{}/v1/api{path}", self.root)
        };
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("fake answers");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// Drives the fake through every fixture's case and returns its answers.
async fn fake_answers() -> BTreeMap<&'static str, (u16, Value)> {
    use reqwest::Method as M;
    let addr = fake_ibkr::spawn(fake_ibkr::Options {
        pacing: false,
        ..fake_ibkr::Options::default()
    })
    .await
    .expect("fake starts");
    let f = Fake {
        root: format!("http://{addr}"),
        http: reqwest::Client::new(),
    };
    let acct = "DU1234567";
    let orders = format!("/iserver/account/{acct}/orders");
    let order = |coid: &str, ty: &str, side: &str, qty: f64, price: Option<f64>| {
        let mut o = json!({"conid": 265598, "cOID": coid, "orderType": ty, "side": side, "tif": "DAY", "quantity": qty});
        if let Some(p) = price {
            o["price"] = json!(p);
        }
        json!({ "orders": [o] })
    };
    let mut a = BTreeMap::new();
    f.call(
        M::POST,
        "/fake/price",
        Some(json!({"conid": 265598, "price": 100.0})),
    )
    .await;
    a.insert(
        "auth_status",
        f.call(M::POST, "/iserver/auth/status", Some(json!({})))
            .await,
    );
    a.insert("tickle", f.call(M::POST, "/tickle", Some(json!({}))).await);
    a.insert("accounts", f.call(M::GET, "/iserver/accounts", None).await);
    a.insert(
        "secdef_search",
        f.call(
            M::GET,
            "/iserver/secdef/search?symbol=APPLE&name=true",
            None,
        )
        .await,
    );
    a.insert(
        "contract_info",
        f.call(M::GET, "/iserver/contract/265598/info", None).await,
    );
    a.insert(
        "history",
        f.call(
            M::GET,
            "/iserver/marketdata/history?conid=265598&period=10d&bar=1d",
            None,
        )
        .await,
    );
    let snap = "/iserver/marketdata/snapshot?conids=265598,8314&fields=31,84,86";
    a.insert("snapshot_preflight", f.call(M::GET, snap, None).await);
    f.call(
        M::POST,
        "/fake/market-data",
        Some(json!({"conid": 8314, "available": false})),
    )
    .await;
    a.insert(
        "snapshot",
        f.call(
            M::GET,
            "/iserver/marketdata/snapshot?conids=265598&fields=31,84,86",
            None,
        )
        .await,
    );
    a.insert("snapshot_unpriced", f.call(M::GET, snap, None).await);
    a.insert(
        "suppress",
        f.call(
            M::POST,
            "/iserver/questions/suppress",
            Some(json!({"messageIds": ["o354"]})),
        )
        .await,
    );
    a.insert(
        "place_order_placed",
        f.call(
            M::POST,
            &orders,
            Some(order("fx-1", "LMT", "BUY", 5.0, Some(99.0))),
        )
        .await,
    );
    let far = f
        .call(
            M::POST,
            &orders,
            Some(order("fx-2", "LMT", "BUY", 5.0, Some(80.0))),
        )
        .await;
    let far_id = far.1[0]["id"].as_str().unwrap_or_default().to_string();
    a.insert("place_order_question_o163", far);
    f.call(
        M::POST,
        &format!("/iserver/reply/{far_id}"),
        Some(json!({"confirmed": false})),
    )
    .await;
    let q1 = f
        .call(
            M::POST,
            &orders,
            Some(order("fx-3", "MKT", "SELL", 5.0, None)),
        )
        .await;
    let q1_id = q1.1[0]["id"].as_str().unwrap_or_default().to_string();
    a.insert("place_order_question_o10151", q1);
    let q2 = f
        .call(
            M::POST,
            &format!("/iserver/reply/{q1_id}"),
            Some(json!({"confirmed": true})),
        )
        .await;
    let q2_id = q2.1[0]["id"].as_str().unwrap_or_default().to_string();
    a.insert("place_order_question_o10153", q2);
    let placed = f
        .call(
            M::POST,
            &format!("/iserver/reply/{q2_id}"),
            Some(json!({"confirmed": true})),
        )
        .await;
    let market_id = placed.1[0]["order_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    a.insert("reply_placed", placed);
    a.insert(
        "place_order_rejected",
        f.call(
            M::POST,
            &orders,
            Some(order("fx-4", "MKT", "SELL", 0.0, None)),
        )
        .await,
    );
    a.insert(
        "place_order_duplicate",
        f.call(
            M::POST,
            &orders,
            Some(order("fx-3", "MKT", "SELL", 5.0, None)),
        )
        .await,
    );
    a.insert(
        "live_orders_preflight",
        f.call(M::GET, "/iserver/account/orders", None).await,
    );
    let (status, mut live) = f.call(M::GET, "/iserver/account/orders", None).await;
    // The published example is a filled market order: compare that case.
    if let Some(list) = live["orders"].as_array_mut() {
        list.retain(|o| o["status"] == "Filled");
    }
    a.insert("live_orders", (status, live));
    a.insert(
        "order_status",
        f.call(
            M::GET,
            &format!("/iserver/account/order/status/{market_id}"),
            None,
        )
        .await,
    );
    a.insert(
        "trades",
        f.call(M::GET, "/iserver/account/trades", None).await,
    );
    let (_, working) = f.call(M::GET, "/fake/orders", None).await;
    let working_id = working["orders"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["coid"] == "fx-1"))
        .and_then(|o| o["order_id"].as_u64())
        .unwrap_or_default();
    a.insert(
        "cancel",
        f.call(
            M::DELETE,
            &format!("/iserver/account/{acct}/order/{working_id}"),
            None,
        )
        .await,
    );
    a.insert(
        "cancel_error",
        f.call(M::DELETE, &format!("/iserver/account/{acct}/order/1"), None)
            .await,
    );
    f.call(M::GET, "/portfolio/accounts", None).await;
    a.insert(
        "positions",
        f.call(M::GET, &format!("/portfolio/{acct}/positions/0"), None)
            .await,
    );
    a.insert(
        "summary",
        f.call(M::GET, &format!("/portfolio/{acct}/summary"), None)
            .await,
    );
    a.insert(
        "ledger",
        f.call(M::GET, &format!("/portfolio/{acct}/ledger"), None)
            .await,
    );
    f.call(M::POST, "/fake/session_reset", Some(json!({})))
        .await;
    a.insert(
        "order_status_earlier_session",
        f.call(
            M::GET,
            &format!("/iserver/account/order/status/{market_id}"),
            None,
        )
        .await,
    );
    f.call(M::POST, "/fake/expire", Some(json!({}))).await;
    a.insert(
        "auth_status_not_authenticated",
        f.call(M::POST, "/iserver/auth/status", Some(json!({})))
            .await,
    );
    a
}

#[tokio::test]
async fn the_fake_answers_every_fixtures_case_with_the_fixtures_shape() {
    let answers = fake_answers().await;
    let mut diffs = Vec::new();

    for (name, _) in FIXTURES {
        let fx = fixture(name);
        let Some((status, got)) = answers.get(name) else {
            diffs.push(format!("{name}: the fake was not asked"));
            continue;
        };
        if *status != fx.status {
            diffs.push(format!(
                "{name}: IBKR answers {}, the fake {status} ({got})",
                fx.status
            ));
        }
        if fx.body_published {
            if got.is_null() {
                diffs.push(format!("{name}: the fake sent no JSON"));
            }
            shape_diff(&fx, &fx.body, got, "", &mut diffs);
        }
    }

    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

#[tokio::test]
async fn the_shape_check_catches_a_fake_that_adds_an_order_id_to_trades_rows() {
    let fx = fixture("trades");
    let mut wrong = fx.body.clone();
    wrong[0]["order_id"] = json!(1);
    wrong[0]["conid"] = json!("265598");
    let mut diffs = Vec::new();

    shape_diff(&fx, &fx.body, &wrong, "", &mut diffs);

    assert_eq!(diffs.len(), 2, "{diffs:?}");
    assert!(diffs.iter().any(|d| d.contains("invents `order_id`")));
    assert!(
        diffs
            .iter()
            .any(|d| d.contains("/0/conid: IBKR sends number, the fake string"))
    );
}
