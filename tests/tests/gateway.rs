//! The one disciplined path to the gateway, on the local stack: every Lambda (ten
//! workflow executions at once, the position monitor, the keep-alive) keeps IBKR's
//! gateway-wide pacing and never lands a request between an order's question and
//! its reply, as the fake gateway counts them; and a stop exit, a market order, is
//! placed and filled under the default confirm policy while the gateway asks the
//! market-order questions (suppression does not remove them here).

use anyhow::bail;
use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use serde_json::{Value, json};
use tradeflow_core::market::Timeframe;
use tradeflow_core::orders::{OrderStatus, OrderStore, client_order_id};
use tradeflow_core::portfolio::Position;
use tradeflow_core::synthetic::KNOWN_CONTRACTS;
use tradeflow_integration_tests::{FakeIbkr, Stack, buy_setups, gateway_lock, strategy, unique};

/// Invokes a function the way its EventBridge rule does, through the local stack's
/// Lambda (the function runs on the local runtime with its own configuration).
async fn invoke(function: &str) -> anyhow::Result<Value> {
    let r = tradeflow_integration_tests::invoke(
        function,
        &json!({"source": "aws.events", "detail-type": "Scheduled Event"}),
    )
    .await?;
    if r.status != 200 || r.function_error.is_some() {
        bail!(
            "{function}: {} {:?} {}",
            r.status,
            r.function_error,
            r.payload
        );
    }
    Ok(r.payload)
}

fn counter(stats: &Value, name: &str) -> u64 {
    stats[name].as_u64().unwrap_or_default()
}

#[tokio::test]
async fn ten_executions_with_the_monitor_and_the_keep_alive_break_no_gateway_rule() {
    let _gateway = gateway_lock().await;
    let stack = Stack::connect().await.unwrap();
    let fake = FakeIbkr::of(&stack);
    // Entries are limits at the market (o403) on an account without market data
    // (o354): each order goes through its questions, the span no request may enter.
    let _asking = fake
        .ask_despite_suppression(&["o354", "o403"])
        .await
        .unwrap();
    let buys = buy_setups(&stack).await.unwrap();
    assert!(!buys.is_empty(), "no contract reads as BUY today");
    let run = unique("it-gw");
    let mut ids = Vec::new();
    for i in 0..10 {
        let b = &buys[i % buys.len()];
        let id = format!("{run}-{i}");
        let mut s = strategy(&id, b.conid, b.symbol);
        s.dry_run = false;
        s.indicators = b.indicators.clone();
        s.bars = 500;
        stack.put_strategy(&s).await.unwrap();
        ids.push(id);
    }
    let before = fake.stats().await.unwrap();

    let mut executions = Vec::new();
    for id in &ids {
        let stack = Stack::connect().await.unwrap();
        let id = id.clone();
        executions.push(tokio::spawn(async move {
            stack
                .run(&format!("{id}-manual"), &json!({"strategy_id": id}))
                .await
        }));
    }
    let side_jobs = tokio::spawn(async {
        let mut failures = Vec::new();
        for _ in 0..3 {
            for f in ["position-monitor", "session-keepalive"] {
                if let Err(e) = invoke(f).await {
                    failures.push(format!("{e:#}"));
                }
            }
        }
        failures
    });
    let mut finished = Vec::new();
    for e in executions {
        finished.push(e.await.unwrap().unwrap());
    }
    let side_failures = side_jobs.await.unwrap();

    let after = fake.stats().await.unwrap();
    let delta = |name: &str| counter(&after, name) - counter(&before, name);
    assert_eq!(delta("pacing_violations"), 0, "{after}");
    assert_eq!(delta("interleaved_replies"), 0, "{after}");
    assert_eq!(delta("late_replies"), 0, "{after}");
    assert!(side_failures.is_empty(), "{side_failures:?}");
    for (id, done) in ids.iter().zip(&finished) {
        if done.status != "SUCCEEDED" {
            // The failed step's error lives in lineage (record_failure), not in the cause.
            let lineage = stack.lineage(&format!("{id}-manual")).await.unwrap();
            panic!(
                "{id}: {} ({:?}); lineage: {lineage:#?}",
                done.status, done.cause
            );
        }
    }
    let book = stack.deps.books();
    let mut placed = 0;
    for id in &ids {
        let exec = format!("{id}-manual");
        if let Some(o) = book.get(&client_order_id(&exec, "entry")).await.unwrap() {
            assert!(o.broker_order_id.is_some(), "{:?}", o.history);
            let accepted = o
                .history
                .iter()
                .filter_map(|h| h.note.as_deref())
                .find(|n| n.starts_with("accepted by the broker"));
            assert!(
                accepted.is_some_and(|n| n.contains("o354 confirmed (deployment policy)")),
                "{:?}",
                o.history
            );
            placed += 1;
        }
    }
    assert_eq!(placed, 10);
    assert!(delta("questions_asked") >= 20, "{after}");
}

#[tokio::test]
async fn a_stop_exit_is_placed_and_filled_under_the_default_policy_while_the_gateway_asks() {
    let _gateway = gateway_lock().await;
    let stack = Stack::connect().await.unwrap();
    let fake = FakeIbkr::of(&stack);
    let _asking = fake
        .ask_despite_suppression(&["o354", "o10151", "o10153"])
        .await
        .unwrap();
    // A contract the concurrent-executions test buys least: the last that is not BUY.
    let buys: Vec<i64> = buy_setups(&stack)
        .await
        .unwrap()
        .iter()
        .map(|b| b.conid)
        .collect();
    let (conid, symbol, _, _) = *KNOWN_CONTRACTS
        .iter()
        .find(|c| !buys.contains(&c.0))
        .unwrap_or(&KNOWN_CONTRACTS[0]);
    let id = unique("it-gw-stop");
    let book = stack.deps.books();
    let mut s = strategy(&id, conid, symbol);
    s.market.always_open = true;
    stack.put_strategy(&s).await.unwrap();
    let now = chrono::Utc::now().to_rfc3339();
    let mut p = Position {
        strategy_id: id.clone(),
        conid,
        symbol: symbol.into(),
        position_id: format!("{id}-entry"),
        quantity: Decimal::from(7),
        cost_basis: Decimal::from(700),
        avg_cost: Decimal::from(100),
        open_commission: Decimal::ONE,
        commission_reported: true,
        realized_pnl: Decimal::ZERO,
        stop: Some(Decimal::from(95)),
        target: Some(Decimal::from(120)),
        execution_id: format!("{id}-manual"),
        opened_at: now.clone(),
        updated_at: now,
        closed_at: None,
        exit_order_id: None,
        exit_attempts: 0,
        exit_claimed_at: None,
        entry_order_id: None,
        entry_claimed_at: None,
        version: 0,
    };
    book.save_position(&mut p).await.unwrap();
    fake.price(conid, Decimal::new(9300, 2), None)
        .await
        .unwrap();
    let before = fake.stats().await.unwrap();

    for _ in 0..4 {
        invoke("position-monitor").await.unwrap();
        if !book.position(&id, conid).await.unwrap().unwrap().is_open() {
            break;
        }
    }

    let after = fake.stats().await.unwrap();
    let coid = client_order_id(&p.position_id, "exit-stop-1");
    let exit = book.get(&coid).await.unwrap().expect("exit order item");
    assert_eq!(exit.status, OrderStatus::Filled, "{:?}", exit.history);
    assert_eq!(exit.order_type, "MKT");
    let accepted = exit
        .history
        .iter()
        .filter_map(|h| h.note.as_deref())
        .find(|n| n.starts_with("accepted by the broker"))
        .unwrap_or_default();
    assert!(
        accepted.contains("o10151 confirmed (deployment policy)")
            && accepted.contains("o10153 confirmed (deployment policy)"),
        "{accepted}"
    );
    let closed = book.position(&id, conid).await.unwrap().unwrap();
    assert!(!closed.is_open(), "{closed:?}");
    assert_eq!(fake.orders_with_ref(&coid).await.unwrap().len(), 1);
    assert!(counter(&after, "questions_asked") - counter(&before, "questions_asked") >= 3);
    assert_eq!(
        counter(&after, "interleaved_replies"),
        counter(&before, "interleaved_replies")
    );
    let last = stack
        .deps
        .ibkr()
        .unwrap()
        .bars(conid, Timeframe::Daily, 1)
        .await
        .unwrap()[0]
        .close;
    fake.price(conid, Decimal::from_f64(last).unwrap().round_dp(2), None)
        .await
        .unwrap();
}
