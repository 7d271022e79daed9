//! The gateway-wide discipline against LocalStack's DynamoDB (ignored in the unit
//! run; `tests/run.sh` runs it with `--ignored` once the local stack is up).
//! Separate `IbkrClient`s stand for separate Lambdas: each has its own in-process
//! pacer, so only the shared DynamoDB item keeps them within IBKR's gateway-wide
//! limits and out of each other's order questions. The fake gateway counts what
//! IBKR would punish.

mod ibkr_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use serde_json::{Value, json};
use tradeflow_adapters::Deps;
use tradeflow_adapters::ibkr::discipline::GatewayDiscipline;
use tradeflow_adapters::ibkr::types::{OrderRequest, OrderType};
use tradeflow_adapters::ibkr::{Endpoint, IbkrClient, IbkrSettings, PacingLimits, RetryPolicy};
use tradeflow_adapters::lease::DynamoDiscipline;
use tradeflow_core::Timeframe;
use tradeflow_core::orders::Side;

use ibkr_support::ACCOUNT;

const AAPL: i64 = 265598;
const MSFT: i64 = 272093;

async fn deps() -> Deps {
    Deps::from_env()
        .await
        .expect("local stack env (source localstack/env.sh)")
}

struct Gw {
    root: String,
    http: reqwest::Client,
}

impl Gw {
    async fn start(penalty_box: Duration) -> Self {
        let addr = fake_ibkr::spawn(fake_ibkr::Options {
            account_id: ACCOUNT.into(),
            penalty_box,
            ..fake_ibkr::Options::default()
        })
        .await
        .expect("fake starts");
        Self {
            root: format!("http://{addr}"),
            http: reqwest::Client::new(),
        }
    }

    fn api(&self) -> String {
        format!("{}/v1/api", self.root)
    }

    async fn control(&self, path: &str, body: Value) {
        self.http
            .post(format!("{}/fake/{path}", self.root))
            .json(&body)
            .send()
            .await
            .expect("control");
    }

    async fn stats(&self) -> Value {
        self.http
            .get(format!("{}/fake/stats", self.root))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats JSON")
    }
}

/// The discipline of one gateway (each test's fake has its own URL, so its own item).
fn discipline(deps: &Deps, gw: &Gw) -> DynamoDiscipline {
    DynamoDiscipline::new(
        deps.dynamo.clone(),
        deps.config.tables.gateway.clone(),
        gw.api(),
        PacingLimits::ibkr(),
        Duration::from_secs(15),
    )
}

/// One "Lambda": its own client and pacer, the shared discipline if any. Questions
/// are not suppressed, so every order has a question/reply exchange to protect.
fn lambda(gw: &Gw, shared: Option<Arc<dyn GatewayDiscipline>>) -> IbkrClient {
    IbkrClient::new(IbkrSettings {
        discipline: shared,
        suppress_questions: false,
        retry: RetryPolicy {
            max_attempts: 1,
            ..RetryPolicy::default()
        },
        snapshot_wait: Duration::from_millis(50),
        ..IbkrSettings::new(gw.api(), ACCOUNT)
    })
    .expect("client")
}

fn order(coid: String, i: usize) -> OrderRequest {
    let market = i.is_multiple_of(2);
    OrderRequest {
        conid: AAPL,
        coid,
        order_type: if market {
            OrderType::Market
        } else {
            OrderType::Limit
        },
        side: if market { Side::Sell } else { Side::Buy },
        quantity: Decimal::from(1 + i as i64),
        limit_price: (!market).then(|| Decimal::from(99)),
        tif: "DAY".into(),
        outside_rth: false,
    }
}

/// What ten workflow executions, the position monitor and the keep-alive do to the
/// gateway at once: history, snapshots, an order each (with its questions), the
/// live-orders and trades lists, positions and the keep-alive's tickle.
/// Returns the number of calls that failed.
async fn workload(clients: &[IbkrClient], tag: &str) -> usize {
    let mut tasks = Vec::new();
    for (i, c) in clients.iter().enumerate() {
        let c = c.clone();
        let coid = format!("tf-{tag}-{i}");
        tasks.push(tokio::spawn(async move {
            let mut failed = 0;
            failed += usize::from(c.bars(AAPL, Timeframe::Daily, 300).await.is_err());
            failed += usize::from(c.snapshot(&[AAPL, MSFT]).await.is_err());
            failed += usize::from(c.place_order(&order(coid, i)).await.is_err());
            failed += usize::from(c.auth_status().await.is_err());
            failed
        }));
    }
    // The position monitor.
    let monitor = clients[0].clone();
    tasks.push(tokio::spawn(async move {
        let mut failed = usize::from(monitor.positions().await.is_err());
        failed += usize::from(monitor.live_orders().await.is_err());
        failed += usize::from(monitor.trades(Some(2)).await.is_err());
        failed
    }));
    // The keep-alive.
    let keep_alive = clients[1].clone();
    tasks.push(tokio::spawn(async move {
        let mut failed = 0;
        for _ in 0..3 {
            failed += usize::from(keep_alive.tickle().await.is_err());
            failed += usize::from(keep_alive.auth_status().await.is_err());
        }
        failed
    }));
    let mut failed = 0;
    for t in tasks {
        failed += t.await.expect("task");
    }
    failed
}

#[tokio::test]
#[ignore = "needs the local stack (localstack/up.sh)"]
async fn ten_lambdas_with_the_discipline_keep_ibkrs_pacing_and_never_interleave() {
    let deps = deps().await;
    let gw = Gw::start(Duration::from_secs(600)).await;
    gw.control("price", json!({"conid": AAPL, "price": 100.0}))
        .await;
    let shared: Arc<dyn GatewayDiscipline> = Arc::new(discipline(&deps, &gw));
    let clients: Vec<IbkrClient> = (0..10).map(|_| lambda(&gw, Some(shared.clone()))).collect();

    let failed = workload(&clients, "disciplined").await;

    let stats = gw.stats().await;
    assert_eq!(stats["pacing_violations"], 0, "{stats}");
    assert_eq!(stats["interleaved_replies"], 0, "{stats}");
    assert_eq!(stats["late_replies"], 0, "{stats}");
    assert_eq!(failed, 0, "{stats}");
    assert!(stats["questions_asked"].as_u64().unwrap() >= 20, "{stats}");
    assert!(
        stats["max_history_in_flight"].as_u64().unwrap() <= 5,
        "{stats}"
    );
}

#[tokio::test]
#[ignore = "needs the local stack (localstack/up.sh)"]
async fn the_same_load_without_the_discipline_breaks_ibkrs_rules() {
    let gw = Gw::start(Duration::ZERO).await;
    gw.control("price", json!({"conid": AAPL, "price": 100.0}))
        .await;
    let clients: Vec<IbkrClient> = (0..10).map(|_| lambda(&gw, None)).collect();

    let failed = workload(&clients, "undisciplined").await;

    let stats = gw.stats().await;
    assert!(stats["pacing_violations"].as_u64().unwrap() > 0, "{stats}");
    assert!(failed > 0, "{stats}");
}

#[tokio::test]
#[ignore = "needs the local stack (localstack/up.sh)"]
async fn the_order_window_waits_for_requests_in_flight_and_holds_new_ones_back() {
    let deps = deps().await;
    let gw = Gw::start(Duration::from_secs(600)).await;
    let d = Arc::new(discipline(&deps, &gw));
    let reading = d.acquire(Endpoint::History).await.unwrap();

    let opener = {
        let d = d.clone();
        tokio::spawn(async move { d.open_window().await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let opened_while_reading = opener.is_finished();
    d.release(reading).await;
    let window = opener.await.unwrap().unwrap();
    let late = {
        let d = d.clone();
        tokio::spawn(async move { d.acquire(Endpoint::Snapshot).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let read_while_open = late.is_finished();
    d.close_window(window, chrono::Utc::now().timestamp_millis())
        .await;
    let after = late.await.unwrap().unwrap();
    d.release(after).await;

    assert!(!opened_while_reading);
    assert!(!read_while_open);
}

#[tokio::test]
#[ignore = "needs the local stack (localstack/up.sh)"]
async fn a_crashed_holder_blocks_the_gateway_only_until_its_ticket_expires() {
    let deps = deps().await;
    let gw = Gw::start(Duration::from_secs(600)).await;
    let d = discipline(&deps, &gw)
        .with_holds(Duration::from_millis(300), Duration::from_millis(300))
        .with_wait_limit(Duration::from_secs(5));
    let crashed = d.acquire(Endpoint::History).await.unwrap();
    std::mem::forget(crashed);

    let start = Instant::now();
    let window = d.open_window().await.unwrap();
    let waited = start.elapsed();
    std::mem::forget(window);
    let again = Instant::now();
    let next_window = d.open_window().await.unwrap();

    // The reader's ticket lives queue limit + hold (600 ms); the window 300 ms.
    assert!(waited >= Duration::from_millis(550), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    assert!(again.elapsed() >= Duration::from_millis(250));
    d.close_window(next_window, chrono::Utc::now().timestamp_millis())
        .await;
}

#[tokio::test]
#[ignore = "needs the local stack (localstack/up.sh)"]
async fn at_most_five_history_requests_are_in_flight_gateway_wide() {
    let deps = deps().await;
    let gw = Gw::start(Duration::from_secs(600)).await;
    let d = Arc::new(discipline(&deps, &gw));
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(d.acquire(Endpoint::History).await.unwrap());
    }

    let sixth = {
        let d = d.clone();
        tokio::spawn(async move { d.acquire(Endpoint::History).await })
    };
    tokio::time::sleep(Duration::from_millis(600)).await;
    let waited = !sixth.is_finished();
    d.release(held.remove(0)).await;
    let got = sixth.await.unwrap().unwrap();

    assert!(waited);
    d.release(got).await;
    for t in held {
        d.release(t).await;
    }
}

#[tokio::test]
#[ignore = "needs the local stack (localstack/up.sh)"]
async fn a_paced_endpoint_stays_one_at_a_time_when_its_hold_lapses_behind_a_crashed_window() {
    // A placement killed inside its order window leaves it shut until it expires
    // (60 s deployed); requests that took a paced endpoint (live orders: one per
    // 5 s) and then wait for the window outlive their hold of it (20 s deployed).
    // When the window lapses they must still call it one at a time: two calls in
    // a second put the gateway in IBKR's penalty box.
    let deps = deps().await;
    let gw = Gw::start(Duration::from_secs(600)).await;
    let d = Arc::new(
        discipline(&deps, &gw)
            .with_holds(Duration::from_secs(3), Duration::from_secs(6))
            .with_wait_limit(Duration::from_secs(20)),
    );
    let crashed = d.open_window().await.unwrap();
    std::mem::forget(crashed);
    let first = {
        let d = d.clone();
        tokio::spawn(async move { d.acquire(Endpoint::LiveOrders).await })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    let second = {
        let d = d.clone();
        tokio::spawn(async move { d.acquire(Endpoint::LiveOrders).await })
    };
    // The first's hold lapses at 3 s and the second takes the endpoint; the window
    // lapses at 6 s: give both time to get through if they could.
    tokio::time::sleep(Duration::from_millis(6500)).await;
    let through = usize::from(first.is_finished()) + usize::from(second.is_finished());
    let (done, waiting) = if first.is_finished() {
        (first, second)
    } else {
        (second, first)
    };
    let ticket = done.await.unwrap().unwrap();
    let released = Instant::now();
    d.release(ticket).await;
    let next = waiting.await.unwrap().unwrap();
    let gap = released.elapsed();
    d.release(next).await;

    assert_eq!(
        through, 1,
        "both callers of live orders got through at once"
    );
    // IBKR: /iserver/account/orders once per 5 s.
    assert!(gap >= Duration::from_millis(4500), "{gap:?}");
}
