//! The IBKR client against the fake gateway over real HTTP: every endpoint, every
//! typed error, the reply flow, duplicate cOIDs, executions and their commission,
//! pacing and retries.

mod ibkr_support;

use std::time::{Duration, Instant};

use chrono::{Datelike, Utc, Weekday};
use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::json;
use tradeflow_adapters::ibkr::session::keep_alive;
use tradeflow_adapters::ibkr::types::{OrderRequest, OrderType};
use tradeflow_adapters::ibkr::{
    ConfirmPolicy, IbkrClient, IbkrError, IbkrSettings, OrderLookup, PacingLimits,
};
use tradeflow_adapters::market::MarketSource;
use tradeflow_core::market::validate_bars;
use tradeflow_core::orders::{Broker, NewOrder, Order, OrderStatus, Side};
use tradeflow_core::{StepError, Timeframe};

use ibkr_support::{ACCOUNT, gateway};

const AAPL: i64 = 265598;

fn limit_buy(coid: &str, qty: i64, limit: Decimal) -> OrderRequest {
    OrderRequest {
        conid: AAPL,
        coid: coid.into(),
        order_type: OrderType::Limit,
        side: Side::Buy,
        quantity: Decimal::from(qty),
        limit_price: Some(limit),
        tif: "DAY".into(),
        outside_rth: false,
    }
}

fn dec(s: &str) -> Decimal {
    s.parse().expect("a decimal literal")
}

#[tokio::test]
async fn session_endpoints_report_a_healthy_paper_account() {
    let gw = gateway(true).await;
    let c = gw.client();

    let status = c.auth_status().await.unwrap();
    let tickle = c.tickle().await.unwrap();
    let accounts = c.accounts().await.unwrap();

    assert!(status.healthy());
    assert!(tickle.iserver.auth_status.unwrap().authenticated);
    assert_eq!(accounts.accounts, vec![ACCOUNT.to_string()]);
    assert_eq!(accounts.is_paper, Some(true));
}

#[tokio::test]
async fn a_logged_out_gateway_fails_every_call_as_not_authenticated() {
    let gw = gateway(false).await;
    let c = gw.client();

    let status = c.auth_status().await;
    let history = MarketSource::history(&c, AAPL, Timeframe::Daily, 50).await;
    let order = c.place_order(&limit_buy("tf-a", 1, dec("100"))).await;

    assert!(matches!(status, Err(IbkrError::NotAuthenticated)));
    assert!(matches!(order, Err(IbkrError::NotAuthenticated)));
    let step = history.unwrap_err();
    assert_eq!(step.error_type(), "Fatal");
    assert!(step.to_string().contains("IBKR session not authenticated"));
}

#[tokio::test]
async fn logging_in_makes_a_gateway_usable() {
    let gw = gateway(false).await;
    let c = gw.client();

    gw.control("login", json!({})).await;

    assert!(c.ensure_session().await.is_ok());
    assert_eq!(c.accounts().await.unwrap().accounts.len(), 1);
}

#[tokio::test]
async fn an_expired_session_is_detected_and_repaired_by_the_keep_alive() {
    let gw = gateway(true).await;
    let c = gw.client();
    gw.control("expire", json!({})).await;

    let detected = c.ensure_session().await;
    let blocked = c.accounts().await;
    let state = keep_alive(&c, Utc::now()).await;

    assert!(matches!(detected, Err(IbkrError::SessionExpired)));
    assert!(matches!(blocked, Err(IbkrError::NotAuthenticated)));
    assert!(state.reauthenticated);
    assert!(state.healthy);
    assert!(c.ensure_session().await.is_ok());
}

#[tokio::test]
async fn a_competing_session_is_reported_and_left_alone() {
    let gw = gateway(true).await;
    let c = gw.client();
    gw.control("compete", json!({})).await;

    let detected = c.ensure_session().await;
    let state = keep_alive(&c, Utc::now()).await;

    assert!(matches!(detected, Err(IbkrError::SessionCompeting)));
    assert!(!state.reauthenticated);
    assert!(!state.healthy);
    assert!(state.competing);
}

#[tokio::test]
async fn keep_alive_records_a_logged_out_gateway_without_failing() {
    let gw = gateway(false).await;

    let state = keep_alive(&gw.client(), Utc::now()).await;

    assert!(!state.healthy);
    assert!(
        state
            .error
            .unwrap()
            .contains("IBKR session not authenticated")
    );
}

#[tokio::test]
async fn search_and_contract_info_parse_ibkr_shapes() {
    let gw = gateway(true).await;
    let c = gw.client();

    let hits = c.search("AAPL", "STK").await.unwrap();
    let info = c.contract_info(AAPL).await.unwrap();
    let unknown_symbol = c.search("ZZZZ", "STK").await;
    let unknown_conid = c.contract_info(42).await;

    assert_eq!(hits[0].conid, AAPL);
    assert_eq!(hits[0].description, "NASDAQ");
    assert!(hits[0].sections.iter().any(|s| s.sec_type == "STK"));
    assert_eq!(
        (
            info.symbol.as_str(),
            info.asset_type.as_str(),
            info.currency.as_str()
        ),
        ("AAPL", "STK", "USD")
    );
    assert!(matches!(unknown_symbol, Err(IbkrError::Refused { .. })));
    assert!(matches!(
        unknown_conid,
        Err(IbkrError::Http { status: 400, .. })
    ));
}

#[tokio::test]
async fn daily_and_weekly_history_come_back_valid_and_complete() {
    let gw = gateway(true).await;
    let c = gw.client();

    let daily = MarketSource::history(&c, AAPL, Timeframe::Daily, 500)
        .await
        .unwrap();
    let weekly = MarketSource::history(&c, AAPL, Timeframe::Weekly, 104)
        .await
        .unwrap();

    assert_eq!(daily.len(), 500);
    assert_eq!(weekly.len(), 104);
    assert_eq!(validate_bars(&daily), Ok(()));
    assert_eq!(validate_bars(&weekly), Ok(()));
    let mut last_weekday = Utc::now().date_naive();
    while matches!(last_weekday.weekday(), Weekday::Sat | Weekday::Sun) {
        last_weekday = last_weekday.pred_opt().unwrap();
    }
    assert_eq!(daily.last().unwrap().date(), last_weekday);
    assert!(weekly.windows(2).all(|w| w[1].t - w[0].t >= 5 * 86_400_000));
}

#[tokio::test]
async fn history_for_an_unknown_conid_is_a_fatal_step_error() {
    let gw = gateway(true).await;

    let e = MarketSource::history(&gw.client(), 42, Timeframe::Daily, 100)
        .await
        .unwrap_err();

    assert!(matches!(e, StepError::Fatal(m) if m.contains("42")));
}

#[tokio::test]
async fn snapshot_waits_out_the_preflight_and_parses_string_prices() {
    let gw = gateway(true).await;
    gw.control("price", json!({"conid": AAPL, "price": 123.45}))
        .await;

    let quotes = gw.client().snapshot(&[AAPL]).await.unwrap();

    assert_eq!(quotes[0].last, Some(123.45));
    assert_eq!(quotes[0].bid, Some(123.44));
    assert_eq!(quotes[0].ask, Some(123.46));
}

fn market_sell(coid: &str, qty: i64) -> OrderRequest {
    OrderRequest {
        conid: AAPL,
        coid: coid.into(),
        order_type: OrderType::Market,
        side: Side::Sell,
        quantity: Decimal::from(qty),
        limit_price: None,
        tif: "DAY".into(),
        outside_rth: false,
    }
}

#[tokio::test]
async fn the_default_policy_suppresses_its_questions_before_the_first_order() {
    let gw = gateway(true).await;
    gw.control("price", json!({"conid": AAPL, "price": 100.0}))
        .await;
    let c = gw.client();

    let limit = c
        .place_order(&limit_buy("tf-first", 5, dec("99.5")))
        .await
        .unwrap();
    let market = c.place_order(&market_sell("tf-second", 5)).await.unwrap();

    assert!(limit.questions.is_empty());
    assert!(market.questions.is_empty());
    assert_eq!(limit.status, "PreSubmitted");
    assert_eq!(gw.stats().await["questions_asked"], 0);
    assert_eq!(gw.orders_at_broker().await.len(), 2);
}

#[tokio::test]
async fn without_suppression_every_order_asks_and_the_policy_answers() {
    let gw = gateway(true).await;
    gw.control("price", json!({"conid": AAPL, "price": 100.0}))
        .await;
    let c = IbkrClient::new(IbkrSettings {
        suppress_questions: false,
        ..gw.settings()
    })
    .unwrap();

    let first = c
        .place_order(&limit_buy("tf-a", 5, dec("99.5")))
        .await
        .unwrap();
    let second = c
        .place_order(&limit_buy("tf-b", 5, dec("99.5")))
        .await
        .unwrap();

    assert_eq!(first.confirmed(), ["o354"]);
    assert_eq!(second.confirmed(), ["o354"]);
    assert_eq!(gw.stats().await["interleaved_replies"], 0);
}

#[tokio::test]
async fn a_market_exit_is_placed_under_the_default_policy_when_the_gateway_asks() {
    let gw = gateway(true).await;
    gw.control(
        "questions",
        json!({"unsuppressible": ["o354", "o10151", "o10153"]}),
    )
    .await;
    let c = gw.client();

    let placed = c.place_order(&market_sell("tf-exit", 10)).await.unwrap();

    let audit: Vec<String> = placed.questions.iter().map(|q| q.summary()).collect();
    assert_eq!(
        audit,
        [
            "o354 confirmed (deployment policy)",
            "o10151 confirmed (deployment policy)",
            "o10153 confirmed (deployment policy)"
        ]
    );
    assert_eq!(gw.orders_at_broker().await[0]["order_type"], "MKT");
}

#[tokio::test]
async fn a_policy_without_the_market_order_ids_rejects_a_market_exit() {
    let gw = gateway(true).await;
    let c = IbkrClient::new(IbkrSettings {
        confirm: ConfirmPolicy::from_lists("o354", ""),
        ..gw.settings()
    })
    .unwrap();

    let e = c.place_order(&market_sell("tf-old", 10)).await.unwrap_err();

    assert!(
        matches!(&e, IbkrError::OrderRejected { message } if message.contains("[o10151]") && message.contains("o10151 declined"))
    );
    assert!(gw.orders_at_broker().await.is_empty());
}

#[tokio::test]
async fn a_strategys_extra_id_confirms_that_strategys_orders_only() {
    let gw = gateway(true).await;
    gw.control("price", json!({"conid": AAPL, "price": 100.0}))
        .await;
    let base = gw.client();
    let strategy = base.with_strategy_confirm(&["o163".to_string()]);

    let far = strategy
        .place_order(&limit_buy("tf-far-ok", 5, dec("80")))
        .await
        .unwrap();
    let refused = base
        .place_order(&limit_buy("tf-far-no", 5, dec("80")))
        .await;

    assert_eq!(
        far.questions
            .iter()
            .map(|q| q.summary())
            .collect::<Vec<_>>(),
        ["o163 confirmed (strategy policy)"]
    );
    assert!(matches!(refused, Err(IbkrError::OrderRejected { .. })));
    assert_eq!(gw.orders_at_broker().await.len(), 1);
}

#[tokio::test]
async fn after_a_session_reset_questions_come_back_and_are_answered() {
    let gw = gateway(true).await;
    let c = gw.client();
    c.place_order(&market_sell("tf-s1", 1)).await.unwrap();

    gw.control("session_reset", json!({"forget": "finished"}))
        .await;
    let after = c.place_order(&market_sell("tf-s2", 1)).await.unwrap();

    assert_eq!(after.confirmed(), ["o354", "o10151", "o10153"]);
}

#[tokio::test]
async fn a_question_outside_the_policy_rejects_the_order_with_ibkrs_text() {
    let gw = gateway(true).await;
    gw.control("price", json!({"conid": AAPL, "price": 100.0}))
        .await;
    let c = IbkrClient::new(IbkrSettings {
        confirm: ConfirmPolicy::none(),
        ..gw.settings()
    })
    .unwrap();

    let e = c
        .place_order(&limit_buy("tf-q", 5, dec("99.5")))
        .await
        .unwrap_err();

    assert!(
        matches!(&e, IbkrError::OrderRejected { message } if message.contains("o354") && message.contains("without market data"))
    );
    assert!(gw.orders_at_broker().await.is_empty());
    assert_eq!(gw.stats().await["late_replies"], 0);
}

#[tokio::test]
async fn a_limit_far_from_the_market_is_not_confirmed_by_default() {
    let gw = gateway(true).await;
    gw.control("price", json!({"conid": AAPL, "price": 100.0}))
        .await;

    let e = gw
        .client()
        .place_order(&limit_buy("tf-far", 5, dec("80")))
        .await
        .unwrap_err();

    assert!(
        matches!(&e, IbkrError::OrderRejected { message } if message.contains("o163") && message.contains("Percentage constraint"))
    );
    assert!(gw.orders_at_broker().await.is_empty());
}

#[tokio::test]
async fn http_200_rejections_become_order_rejected() {
    let gw = gateway(true).await;
    let c = gw.client();
    let mut unknown = limit_buy("tf-unknown", 1, dec("10"));
    unknown.conid = 42;

    let zero = c.place_order(&limit_buy("tf-zero", 0, dec("10"))).await;
    let bad_contract = c.place_order(&unknown).await;

    assert!(
        matches!(zero, Err(IbkrError::OrderRejected { message }) if message.contains("quantity"))
    );
    assert!(
        matches!(bad_contract, Err(IbkrError::OrderRejected { message }) if message.contains("42"))
    );
}

#[tokio::test]
async fn resubmitting_a_coid_is_a_duplicate_and_places_one_order() {
    let gw = gateway(true).await;
    gw.control("price", json!({"conid": AAPL, "price": 100.0}))
        .await;
    let c = gw.client();
    let order = limit_buy("tf-dup", 3, dec("99.8"));

    c.place_order(&order).await.unwrap();
    let again = c.place_order(&order).await;

    assert!(matches!(again, Err(IbkrError::DuplicateOrder { coid }) if coid == "tf-dup"));
    assert_eq!(gw.orders_at_broker().await.len(), 1);
}

#[tokio::test]
async fn a_limit_buy_progresses_to_filled_when_the_market_reaches_it() {
    let gw = gateway(true).await;
    gw.control("price", json!({"conid": AAPL, "price": 100.0}))
        .await;
    let c = gw.client();
    let placed = c
        .place_order(&limit_buy("tf-fill", 10, dec("99")))
        .await
        .unwrap();

    let working = c.order_status(&placed.order_id).await.unwrap();
    let still = c.order_status(&placed.order_id).await.unwrap();
    gw.control("price", json!({"conid": AAPL, "price": 98.5}))
        .await;
    let filled = c.order_status(&placed.order_id).await.unwrap();
    let live = c.find_order_by_ref("tf-fill").await.unwrap().unwrap();
    let positions = c.positions().await.unwrap();
    let ledger = c.ledger().await.unwrap();
    let summary = c.account_summary().await.unwrap();

    assert_eq!(placed.status, "PreSubmitted");
    assert_eq!(
        (working.order_status.as_str(), still.order_status.as_str()),
        ("Submitted", "Submitted")
    );
    assert_eq!(filled.order_status, "Filled");
    assert_eq!((filled.cum_fill, filled.average_price), (10.0, Some(98.5)));
    assert_eq!(live.order_id.to_string(), placed.order_id);
    assert_eq!(live.status, "Filled");
    assert_eq!(
        (
            positions[0].conid,
            positions[0].position,
            positions[0].avg_cost
        ),
        (AAPL, 10.0, 98.5)
    );
    let usd = &ledger["USD"];
    assert!((usd.cashbalance - (1_000_000.0 - 985.0 - 1.0)).abs() < 1e-6);
    assert!((summary.net_liquidation.unwrap() - (usd.cashbalance + 985.0)).abs() < 1e-6);
}

#[tokio::test]
async fn thin_liquidity_gives_a_partial_fill() {
    let gw = gateway(true).await;
    gw.control(
        "price",
        json!({"conid": AAPL, "price": 100.0, "liquidity": 4.0}),
    )
    .await;
    let c = gw.client();
    let placed = c
        .place_order(&limit_buy("tf-part", 10, dec("100.5")))
        .await
        .unwrap();

    c.order_status(&placed.order_id).await.unwrap();
    let partial = c.order_status(&placed.order_id).await.unwrap();

    assert_eq!(
        (
            partial.order_status.as_str(),
            partial.cum_fill,
            partial.total_size
        ),
        ("Submitted", 4.0, 10.0)
    );
}

/// Our order item for a placed order, as poll_order holds it.
fn order_item(coid: &str, broker_order_id: &str, qty: i64) -> Order {
    let mut o = Order::new(
        NewOrder {
            order_id: coid.into(),
            strategy_id: "s1".into(),
            execution_id: "exec-1".into(),
            conid: AAPL,
            symbol: "AAPL".into(),
            side: Side::Buy,
            order_type: "LMT".into(),
            quantity: Decimal::from(qty),
            limit_price: Some(dec("100.5")),
            tif: "DAY".into(),
            stop: None,
            target: None,
            purpose: "entry".into(),
            position_id: None,
            sizing: None,
        },
        OrderStatus::Submitted,
        &Utc::now().to_rfc3339(),
        None,
    );
    o.broker_order_id = Some(broker_order_id.into());
    o
}

/// Places a BUY of `qty` that fills `per_tick` shares per market tick and ticks the
/// market until it is filled.
async fn filled_in_parts(
    gw: &ibkr_support::Gateway,
    c: &IbkrClient,
    coid: &str,
    qty: i64,
    per_tick: f64,
) -> String {
    gw.control(
        "price",
        json!({"conid": AAPL, "price": 100.0, "liquidity": per_tick}),
    )
    .await;
    let placed = c
        .place_order(&limit_buy(coid, qty, dec("100.5")))
        .await
        .expect("order placed");
    for _ in 0..10 {
        let status = c.order_status(&placed.order_id).await;
        if status.expect("order status").order_status == "Filled" {
            break;
        }
    }
    placed.order_id
}

#[tokio::test]
async fn executions_of_a_partially_filled_order_carry_string_prices_and_commissions() {
    let gw = gateway(true).await;
    let c = gw.client();
    let order_id = filled_in_parts(&gw, &c, "tf-exec", 300, 150.0).await;

    let executions = c.trades(None).await.unwrap();

    let mine: Vec<_> = executions
        .iter()
        .filter(|e| e.order_ref == "tf-exec")
        .collect();
    assert_eq!(mine.len(), 2, "{executions:?}");
    assert!(mine.iter().all(|e| e.conid == AAPL
        && e.side == "B"
        && e.price == Some(dec("100"))
        && e.size == Some(dec("150"))
        // IBKR's trades rows name the order by cOID only (IBKR Campus, "Trades").
        && e.order_id.is_none()
        && e.belongs_to("tf-exec", Some(&order_id))));
    // IBKR Pro Fixed per order: 300 shares at 0.005 = 1.50, the first execution
    // paying the 1.00 minimum.
    let mut commissions: Vec<Decimal> = mine.iter().filter_map(|e| e.commission).collect();
    commissions.sort();
    assert_eq!(commissions, vec![dec("0.50"), dec("1.00")]);
    let raw = gw.executions_at_broker().await;
    assert!(
        raw.iter()
            .all(|e| e["commission"].is_string() && e["price"].is_string())
    );
}

#[tokio::test]
async fn the_brokers_commission_of_an_order_is_the_sum_of_its_executions() {
    let gw = gateway(true).await;
    let c = gw.client();
    let order_id = filled_in_parts(&gw, &c, "tf-sum", 300, 100.0).await;
    let order = order_item("tf-sum", &order_id, 300);

    let commission = Broker::commission(&c, &order, Decimal::from(300))
        .await
        .unwrap();

    let reported: Decimal = gw
        .executions_at_broker()
        .await
        .iter()
        .filter(|e| e["order_ref"] == "tf-sum")
        .map(|e| dec(e["commission"].as_str().unwrap()))
        .sum();
    assert_eq!(commission, Some(reported));
    assert_eq!(reported, dec("1.50"));
}

#[tokio::test]
async fn a_missing_commission_is_not_reported_yet() {
    let gw = gateway(true).await;
    gw.control("commissions", json!({"reported": false, "form": "absent"}))
        .await;
    let c = gw.client();
    let order_id = filled_in_parts(&gw, &c, "tf-absent", 10, 10.0).await;

    let executions = c.trades(Some(7)).await.unwrap();
    let commission = Broker::commission(
        &c,
        &order_item("tf-absent", &order_id, 10),
        Decimal::from(10),
    )
    .await
    .unwrap();

    assert_eq!(executions.len(), 1);
    assert_eq!(
        (executions[0].size, executions[0].commission),
        (Some(dec("10")), None)
    );
    assert_eq!(commission, None);
}

#[tokio::test]
async fn an_empty_commission_is_not_reported_yet_until_ibkr_reports_it() {
    let gw = gateway(true).await;
    gw.control("commissions", json!({"reported": false})).await;
    let c = gw.client();
    let order_id = filled_in_parts(&gw, &c, "tf-empty", 10, 10.0).await;
    let order = order_item("tf-empty", &order_id, 10);

    let before = Broker::commission(&c, &order, Decimal::from(10))
        .await
        .unwrap();
    gw.control("commissions", json!({"reported": true})).await;
    let after = Broker::commission(&c, &order, Decimal::from(10))
        .await
        .unwrap();

    assert_eq!(gw.executions_at_broker().await.len(), 1);
    assert_eq!((before, after), (None, Some(dec("1.00"))));
}

#[tokio::test]
async fn an_unpaced_client_hits_the_trades_pacing_limit_as_rate_limited() {
    let gw = gateway(true).await;
    let c = IbkrClient::new(IbkrSettings {
        pacing: PacingLimits::unlimited(),
        ..gw.settings()
    })
    .unwrap();

    c.trades(None).await.unwrap();
    let second = c.trades(None).await;

    assert!(matches!(second, Err(IbkrError::RateLimited { .. })));
}

#[tokio::test]
async fn cancelling_a_working_order_cancels_it_once() {
    let gw = gateway(true).await;
    gw.control("price", json!({"conid": AAPL, "price": 100.0}))
        .await;
    let c = gw.client();
    let placed = c
        .place_order(&limit_buy("tf-cxl", 10, dec("98")))
        .await
        .unwrap();

    let ack = c.cancel_order(&placed.order_id).await.unwrap();
    let status = c.order_status(&placed.order_id).await.unwrap();
    let again = c.cancel_order(&placed.order_id).await;
    let unknown = c.cancel_order("1").await;

    assert_eq!(ack.order_id.to_string(), placed.order_id);
    assert_eq!(status.order_status, "Cancelled");
    assert!(matches!(again, Err(IbkrError::Refused { .. })));
    assert!(
        matches!(unknown, Err(IbkrError::Refused { message, .. }) if message.contains("doesn't exist"))
    );
}

#[tokio::test]
async fn status_of_an_order_unknown_to_the_session_is_a_typed_final_error() {
    let gw = gateway(true).await;

    let e = gw.client().order_status("999").await.unwrap_err();

    assert!(matches!(&e, IbkrError::OrderNotInSession { order_id } if order_id == "999"));
    assert!(!e.is_retryable());
}

#[tokio::test]
async fn an_unpaced_client_hits_the_orders_pacing_limit_as_rate_limited() {
    let gw = gateway(true).await;
    let c = IbkrClient::new(IbkrSettings {
        pacing: PacingLimits::unlimited(),
        ..gw.settings()
    })
    .unwrap();

    // The session's first answer is the pre-flight; asking again at once is a violation.
    let e = c.live_orders().await.unwrap_err();

    assert!(matches!(e, IbkrError::RateLimited { .. }));
    assert_eq!(StepError::from(e).error_type(), "Transient");
    assert_eq!(gw.stats().await["pacing_violations"], 1);
}

#[tokio::test]
async fn after_a_violation_the_gateway_answers_429_until_the_penalty_box_opens() {
    let addr = fake_ibkr::spawn(fake_ibkr::Options {
        account_id: ACCOUNT.into(),
        penalty_box: Duration::from_millis(600),
        ..fake_ibkr::Options::default()
    })
    .await
    .unwrap();
    let api = format!("http://{addr}/v1/api");
    let unpaced = IbkrClient::new(IbkrSettings {
        pacing: PacingLimits::unlimited(),
        retry: tradeflow_adapters::ibkr::RetryPolicy {
            max_attempts: 1,
            ..Default::default()
        },
        ..IbkrSettings::new(api, ACCOUNT)
    })
    .unwrap();
    unpaced.trades(None).await.unwrap();
    let _ = unpaced.trades(None).await;

    let boxed = unpaced.auth_status().await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    let released = unpaced.auth_status().await;

    assert!(matches!(boxed, Err(IbkrError::RateLimited { .. })));
    assert!(released.is_ok());
}

#[tokio::test]
async fn the_paced_client_spaces_orders_list_calls_and_avoids_429() {
    let gw = gateway(true).await;
    let c = gw.client();
    let start = Instant::now();

    c.live_orders().await.unwrap();
    c.live_orders().await.unwrap();

    // Pre-flight, its repeat, then the second call: three requests 5 s apart.
    assert!(start.elapsed() >= Duration::from_secs(10));
    assert_eq!(gw.stats().await["pacing_violations"], 0);
}

#[tokio::test]
async fn a_transient_500_is_survived_by_retrying_the_get() {
    let gw = gateway(true).await;
    gw.control(
        "faults",
        json!({"path": "/iserver/marketdata/history", "kind": "status500", "count": 2}),
    )
    .await;

    let bars = MarketSource::history(&gw.client(), AAPL, Timeframe::Daily, 100)
        .await
        .unwrap();

    assert_eq!(bars.len(), 100);
}

#[tokio::test]
async fn a_persistent_500_becomes_a_transient_step_error() {
    let gw = gateway(true).await;
    gw.control(
        "faults",
        json!({"path": "/iserver/marketdata/history", "kind": "status500", "count": 3}),
    )
    .await;

    let e = MarketSource::history(&gw.client(), AAPL, Timeframe::Daily, 100)
        .await
        .unwrap_err();

    assert_eq!(e.error_type(), "Transient");
    assert!(e.to_string().contains("HTTP 500"));
}

#[tokio::test]
async fn orders_are_never_retried_after_a_server_error() {
    let gw = gateway(true).await;
    gw.control(
        "faults",
        json!({"path": "/iserver/account/DU", "kind": "status500", "count": 1}),
    )
    .await;
    let c = gw.client();

    let first = c.place_order(&limit_buy("tf-500", 1, dec("100"))).await;
    let remaining = gw
        .control(
            "faults",
            json!({"path": "/none", "kind": "status500", "count": 0}),
        )
        .await;

    assert!(matches!(first, Err(IbkrError::Http { status: 500, .. })));
    assert_eq!(remaining["faults"][0]["count"], 0);
    assert!(gw.orders_at_broker().await.is_empty());
}

#[tokio::test]
async fn garbage_json_is_malformed_and_not_retried() {
    let gw = gateway(true).await;
    gw.control(
        "faults",
        json!({"path": "/iserver/accounts", "kind": "garbage", "count": 1}),
    )
    .await;
    let c = gw.client();

    let e = c.accounts().await.unwrap_err();
    let next = c.accounts().await;

    assert!(matches!(e, IbkrError::Malformed { .. }));
    assert!(!e.is_retryable());
    assert!(next.is_ok());
}

#[tokio::test]
async fn a_timeout_is_retried_as_an_unreachable_gateway() {
    let gw = gateway(true).await;
    gw.control(
        "faults",
        json!({"path": "/iserver/accounts", "kind": "delay", "delay_ms": 1500, "count": 1}),
    )
    .await;
    let c = IbkrClient::new(IbkrSettings {
        timeout: Duration::from_millis(400),
        ..gw.settings()
    })
    .unwrap();

    let accounts = c.accounts().await;

    assert!(accounts.is_ok());
}

#[tokio::test]
async fn a_closed_port_is_a_retryable_unreachable_gateway() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let c = IbkrClient::new(IbkrSettings {
        retry: tradeflow_adapters::ibkr::RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(10),
        },
        ..IbkrSettings::new(format!("http://127.0.0.1:{port}/v1/api"), ACCOUNT)
    })
    .unwrap();

    let e = c.auth_status().await.unwrap_err();

    assert!(matches!(e, IbkrError::GatewayUnreachable { .. }));
    assert_eq!(StepError::from(e).error_type(), "Transient");
}

#[tokio::test]
async fn a_reply_that_does_not_follow_its_question_finds_no_order() {
    let gw = gateway(true).await;
    gw.control("price", json!({"conid": AAPL, "price": 100.0}))
        .await;
    let body = json!({"orders": [{"conid": AAPL, "cOID": "raw-1", "orderType": "LMT", "price": 99.9, "side": "BUY", "tif": "DAY", "quantity": 1}]});

    let (_, question) = gw
        .raw(
            Method::POST,
            &format!("/iserver/account/{ACCOUNT}/orders"),
            Some(body),
        )
        .await;
    gw.raw(Method::GET, "/iserver/accounts", None).await;
    let id = question[0]["id"].as_str().unwrap();
    let (status, _) = gw
        .raw(
            Method::POST,
            &format!("/iserver/reply/{id}"),
            Some(json!({"confirmed": true})),
        )
        .await;

    assert_eq!(status, 503);
    assert!(gw.orders_at_broker().await.is_empty());
}

#[test]
fn base_urls_must_be_http_or_https() {
    assert!(IbkrClient::new(IbkrSettings::new("ftp://x/v1/api", ACCOUNT)).is_err());
    assert!(IbkrClient::new(IbkrSettings::new("https://localhost:5000/v1/api", ACCOUNT)).is_ok());
}

#[tokio::test]
async fn find_order_by_ref_asks_again_after_the_sessions_preflight() {
    let gw = gateway(true).await;
    let c = gw.client();
    c.place_order(&market_sell("tf-pre", 2)).await.unwrap();

    let found = c.find_order_by_ref("tf-pre").await.unwrap();
    let missing = c.find_order_by_ref("tf-never").await.unwrap();

    assert_eq!(found.unwrap().order_ref.as_deref(), Some("tf-pre"));
    assert!(missing.is_none());
}

#[tokio::test]
async fn an_order_finished_before_a_session_reset_is_known_only_by_its_executions() {
    let gw = gateway(true).await;
    gw.control("price", json!({"conid": AAPL, "price": 100.0}))
        .await;
    let c = gw.client();
    let filled = c.place_order(&market_sell("tf-old-1", 3)).await.unwrap();
    let working = c
        .place_order(&limit_buy("tf-old-2", 3, dec("99")))
        .await
        .unwrap();
    c.order_status(&filled.order_id).await.unwrap();
    let done = c.order_status(&filled.order_id).await.unwrap();

    gw.control("session_reset", json!({"forget": "finished"}))
        .await;
    let status = c.order_status(&filled.order_id).await;
    let still = c.order_status(&working.order_id).await.unwrap();
    let forgotten = c.find_order_by_ref("tf-old-1").await.unwrap();
    let lookup = c.lookup_order_by_ref("tf-old-1").await.unwrap();
    let listed = c.find_order_by_ref("tf-old-2").await.unwrap();

    assert_eq!(done.order_status, "Filled");
    assert!(matches!(status, Err(IbkrError::OrderNotInSession { .. })));
    assert_eq!(still.order_status, "Submitted");
    assert!(forgotten.is_none());
    let OrderLookup::ExecutedOnly(executions) = lookup else {
        panic!("found by its executions: {lookup:?}")
    };
    let filled: Decimal = executions.iter().filter_map(|e| e.size).sum();
    assert_eq!(filled, Decimal::from(3));
    assert_eq!(listed.unwrap().order_id.to_string(), working.order_id);
}

#[tokio::test]
async fn executions_carry_no_order_id_and_match_their_order_by_cooid() {
    let gw = gateway(true).await;
    gw.control("price", json!({"conid": AAPL, "price": 100.0}))
        .await;
    let c = gw.client();
    let placed = c.place_order(&market_sell("tf-exec", 4)).await.unwrap();
    c.order_status(&placed.order_id).await.unwrap();
    c.order_status(&placed.order_id).await.unwrap();

    let executions = c.trades(None).await.unwrap();

    assert_eq!(executions.len(), 1);
    assert_eq!(executions[0].order_id, None);
    assert_eq!(executions[0].conid, AAPL);
    assert!(executions[0].belongs_to("tf-exec", Some(&placed.order_id)));
}

#[tokio::test]
async fn a_1000_bar_daily_history_is_read_in_pages_of_at_most_1000_days() {
    let gw = gateway(true).await;
    let c = gw.client();

    let bars = MarketSource::history(&c, AAPL, Timeframe::Daily, 1000)
        .await
        .unwrap();

    assert_eq!(bars.len(), 1000);
    assert_eq!(validate_bars(&bars), Ok(()));
    assert_eq!(gw.stats().await["pacing_violations"], 0);
}

#[tokio::test]
async fn volumes_served_with_a_volume_factor_come_back_in_shares() {
    let gw = gateway(true).await;
    let c = gw.client();
    let plain = c.bars(AAPL, Timeframe::Daily, 50).await.unwrap();

    gw.control("history", json!({"volume_factor": 100.0})).await;
    let scaled = c.bars(AAPL, Timeframe::Daily, 50).await.unwrap();

    assert_eq!(plain.len(), scaled.len());
    assert!(
        plain
            .iter()
            .zip(&scaled)
            .all(|(a, b)| (a.volume - b.volume).abs() < 1e-6 * a.volume.max(1.0))
    );
}

#[tokio::test]
async fn a_conid_without_market_data_does_not_blank_the_others() {
    let gw = gateway(true).await;
    let msft = 272093;
    gw.control("price", json!({"conid": AAPL, "price": 123.45}))
        .await;
    gw.control("market-data", json!({"conid": msft, "available": false}))
        .await;

    let quotes = gw.client().snapshot(&[AAPL, msft]).await.unwrap();
    let none = gw.client().snapshot(&[msft]).await;

    let price = |c: i64| quotes.iter().find(|q| q.conid == c).and_then(|q| q.price());
    assert_eq!(price(AAPL), Some(123.45));
    assert_eq!(price(msft), None);
    assert!(matches!(none, Err(IbkrError::Refused { .. })));
}

#[tokio::test]
async fn the_keep_alive_suppresses_the_deployments_questions_after_reauthenticating() {
    let gw = gateway(true).await;
    let c = gw.client();
    gw.control("expire", json!({})).await;

    let state = keep_alive(&c, Utc::now()).await;
    let after = c.place_order(&market_sell("tf-ka", 1)).await.unwrap();

    assert!(state.reauthenticated);
    assert_eq!(
        state.suppressed_questions,
        ["o354", "o10151", "o10153", "o403"]
    );
    assert!(after.questions.is_empty());
}
