//! Orders on the local stack: a live (non-dry-run) strategy places, tracks and fills
//! an order through the state machine against the fake IBKR gateway; a lost broker
//! response makes Step Functions retry place_order without a second order; the
//! position monitor exits a position whose stop the price crossed, once, and only
//! while its market session is open; commissions IBKR reports after an order's last
//! fill are back-filled by the monitor into order, trade and position, once.
//!
//! The fake gateway is shared by everything on the stack, so each test works on its
//! own strategy and, where it moves prices, on a contract the others do not use.

use std::time::Duration;

use anyhow::bail;
use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use serde_json::{Value, json};
use tradeflow_adapters::workflow::entered_states;
use tradeflow_core::market::Timeframe;
use tradeflow_core::orders::{Order, OrderStatus, OrderStore, client_order_id};
use tradeflow_core::portfolio::{Position, Trade};
use tradeflow_core::risk::{EntryRequest, size_entry};
use tradeflow_core::signal::Signal;
use tradeflow_core::strategy::Strategy;
use tradeflow_core::synthetic::KNOWN_CONTRACTS;
use tradeflow_integration_tests::{
    FakeIbkr, Stack, buy_setups, gateway_lock, live_strategy, strategy, unique,
};

/// The quantity place_order must size (the fake account's cash never binds here).
fn expected_quantity(s: &Strategy, sig: &Signal) -> Decimal {
    size_entry(
        &s.risk,
        &EntryRequest {
            side: tradeflow_core::orders::Side::Buy,
            entry: sig.entry,
            stop: sig.stop,
            confidence: sig.confidence,
            available_cash: Decimal::from(1_000_000),
            open_positions: 0,
            realized_today: Decimal::ZERO,
        },
    )
    .expect("a sizable BUY")
    .quantity
}

async fn order_item(stack: &Stack, order_id: &str) -> Order {
    stack
        .deps
        .books()
        .get(order_id)
        .await
        .expect("order store")
        .unwrap_or_else(|| panic!("no order item {order_id}"))
}

#[tokio::test]
async fn a_live_order_is_placed_tracked_through_a_partial_fill_and_filled_via_the_state_machine() {
    // One gateway, one IBKR session: its pacing and its "reply must follow the question"
    // rule are global, so tests that order take turns, as Lambdas sharing a gateway would.
    let _gateway = gateway_lock().await;
    let stack = Stack::connect().await.unwrap();
    let fake = FakeIbkr::of(&stack);
    let setups = buy_setups(&stack).await.unwrap();
    let setup = setups.first().expect("no contract reads as BUY today");
    let id = unique("it-order");
    let s = live_strategy(&id, setup);
    stack.put_strategy(&s).await.unwrap();
    let qty = expected_quantity(&s, &setup.signal);
    // A sixth of the order per market tick: partial fills before the last one, even
    // when other tests' requests tick the market between this execution's polls, and
    // filled within ORDER_MAX_POLLS (10) when nothing else ticks it.
    let sixth = (qty / Decimal::from(6)).ceil();
    fake.price(setup.conid, setup.close, Some(sixth))
        .await
        .unwrap();
    let name = format!("{id}-manual");

    let done = stack.run(&name, &json!({"strategy_id": id})).await.unwrap();

    assert_eq!(done.status, "SUCCEEDED", "cause: {:?}", done.cause);
    let states = entered_states(&stack.sfn, &done.execution_arn)
        .await
        .unwrap();
    for st in [
        "place_order",
        "wait_for_fill",
        "check_order",
        "update_portfolio",
    ] {
        assert!(states.iter().any(|x| x == st), "{st} not in {states:?}");
    }
    let coid = client_order_id(&name, "entry");
    let order = order_item(&stack, &coid).await;
    assert_eq!(order.status, OrderStatus::Filled, "{:?}", order.history);
    assert_eq!(order.quantity, qty);
    assert_eq!(order.filled_quantity, qty);
    assert_eq!(order.limit_price, Some(setup.close));
    assert_eq!(order.avg_fill_price, Some(setup.close));
    assert_eq!(order.execution_id, name);
    assert!(order.broker_order_id.is_some());
    let statuses: Vec<OrderStatus> = order.history.iter().map(|h| h.status).collect();
    assert_eq!(statuses.first(), Some(&OrderStatus::Submitting));
    assert!(
        statuses.contains(&OrderStatus::PartiallyFilled),
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&OrderStatus::Filled));
    let times: Vec<&str> = order.history.iter().map(|h| h.at.as_str()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert!(order.published_events.contains(&"OrderFilled".to_string()));

    let at_broker = fake.orders_with_ref(&coid).await.unwrap();
    assert_eq!(at_broker.len(), 1, "{at_broker:?}");
    assert_eq!(at_broker[0]["status"], "Filled");
    // The partial fills' executions, each with the commission IBKR reports for it.
    let reported = fake.commission_of(&coid).await.unwrap();
    assert!(reported > Decimal::ZERO, "no commission at the broker");
    assert_eq!(
        (
            order.commission,
            order.applied_commission,
            order.commission_reported
        ),
        (reported, reported, true),
        "{:?}",
        order.history
    );

    let p: Position = stack
        .deps
        .books()
        .position(&id, setup.conid)
        .await
        .unwrap()
        .expect("position");
    assert_eq!(p.quantity, qty);
    assert_eq!(p.avg_cost, setup.close);
    assert_eq!(p.cost_basis, (qty * setup.close).round_dp(2));
    assert_eq!((p.open_commission, p.commission_reported), (reported, true));
    assert_eq!((p.stop, p.target), (setup.signal.stop, setup.signal.target));
    assert_eq!(
        (p.position_id.as_str(), p.execution_id.as_str()),
        (coid.as_str(), name.as_str())
    );

    let lineage = stack.lineage(&name).await.unwrap();
    let polls = lineage
        .iter()
        .filter(|r| r.step_name == "check_order")
        .count();
    assert!(
        polls >= 2,
        "a partial fill takes at least two polls, got {polls}"
    );
    let snap = lineage
        .iter()
        .find(|r| r.step_name == "update_portfolio")
        .and_then(|r| r.output.clone())
        .unwrap();
    assert_eq!(snap["positions"].as_array().unwrap().len(), 1, "{snap}");
    assert_eq!(
        snap["market_value"],
        json!((qty * setup.close).round_dp(2).to_string())
    );
    assert_eq!(snap["unrealized_pnl"], json!("0.00"));
    assert!(snap["cash"].is_string(), "{snap}");
    let place = lineage
        .iter()
        .find(|r| r.step_name == "place_order")
        .unwrap();
    assert_eq!(place.output.as_ref().unwrap()["placed"], true);
}

#[tokio::test]
async fn a_retry_after_the_broker_accepted_the_order_places_nothing_twice() {
    // One gateway, one IBKR session: its pacing and its "reply must follow the question"
    // rule are global, so tests that order take turns, as Lambdas sharing a gateway would.
    let _gateway = gateway_lock().await;
    let stack = Stack::connect().await.unwrap();
    let fake = FakeIbkr::of(&stack);
    let setups = buy_setups(&stack).await.unwrap();
    // Another contract than the fill test when there is one: its fill model stays put.
    let setup = setups
        .get(1)
        .or(setups.first())
        .expect("no contract reads as BUY today");
    let id = unique("it-retry");
    let s = live_strategy(&id, setup);
    stack.put_strategy(&s).await.unwrap();
    fake.price(setup.conid, setup.close, None).await.unwrap();
    let name = format!("{id}-manual");
    let coid = client_order_id(&name, "entry");
    // This order is registered, then its answer is held past the client's 15 s timeout.
    fake.post(
        "/faults",
        json!({"path": "/iserver/", "kind": "delay_after_order", "count": 1, "delay_ms": 20000,
               "coid": coid}),
    )
    .await
    .unwrap();

    let done = stack.run(&name, &json!({"strategy_id": id})).await.unwrap();

    assert_eq!(done.status, "SUCCEEDED", "cause: {:?}", done.cause);
    let at_broker = fake.orders_with_ref(&coid).await.unwrap();
    assert_eq!(at_broker.len(), 1, "{at_broker:?}");
    let items: Vec<Value> = stack
        .deps
        .store()
        .query(
            &stack.deps.config.tables.orders,
            Some("by_strategy"),
            "strategy_id",
            &id,
            false,
            None,
        )
        .await
        .unwrap();
    assert_eq!(items.len(), 1, "{items:?}");
    let lineage = stack.lineage(&name).await.unwrap();
    let place = lineage
        .iter()
        .find(|r| r.step_name == "place_order")
        .unwrap();
    assert!(place.attempts >= 2, "{:?}", place.previous_errors);
    assert!(
        place.previous_errors[0].contains("unreachable"),
        "{:?}",
        place.previous_errors
    );
    assert!(
        place.output.as_ref().unwrap()["reason"]
            .as_str()
            .unwrap()
            .starts_with("already placed")
    );
    let order = order_item(&stack, &coid).await;
    assert!(
        order
            .history
            .iter()
            .any(|h| h.note.as_deref().unwrap_or("").contains("reconciled")),
        "{:?}",
        order.history
    );
    assert_eq!(order.status, OrderStatus::Filled, "{:?}", order.history);
    assert_eq!(
        order.broker_order_id.as_deref(),
        at_broker[0]["order_id"]
            .as_u64()
            .map(|n| n.to_string())
            .as_deref()
    );
}

async fn invoke_monitor() -> anyhow::Result<Value> {
    let r = tradeflow_integration_tests::invoke(
        "position-monitor",
        &json!({"source": "aws.events", "detail-type": "Scheduled Event"}),
    )
    .await?;
    if r.function_error.is_some() {
        bail!("position-monitor: {r:?}");
    }
    Ok(r.payload)
}

#[tokio::test]
async fn the_monitor_exits_a_position_once_when_the_price_crosses_its_stop() {
    // One gateway, one IBKR session: its pacing and its "reply must follow the question"
    // rule are global, so tests that order take turns, as Lambdas sharing a gateway would.
    let _gateway = gateway_lock().await;
    let stack = Stack::connect().await.unwrap();
    let fake = FakeIbkr::of(&stack);
    // A contract the other tests do not trade: their positions are not moved.
    let buys: Vec<i64> = buy_setups(&stack)
        .await
        .unwrap()
        .iter()
        .map(|b| b.conid)
        .take(2)
        .collect();
    let (conid, symbol, _, _) = *KNOWN_CONTRACTS
        .iter()
        .rev()
        .find(|c| !buys.contains(&c.0))
        .unwrap();
    let id = unique("it-stop");
    let book = stack.deps.books();
    // Watched at any hour: the test must not depend on New York being open.
    let mut s = strategy(&id, conid, symbol);
    s.market.always_open = true;
    stack.deps.store().put_strategy(&s).await.unwrap();
    let now = chrono::Utc::now().to_rfc3339();
    let entry = Decimal::from(100);
    let mut p = Position {
        strategy_id: id.clone(),
        conid,
        symbol: symbol.into(),
        position_id: format!("{id}-entry"),
        quantity: Decimal::from(10),
        cost_basis: Decimal::from(1000),
        avg_cost: entry,
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
    fake.price(conid, Decimal::new(9450, 2), None)
        .await
        .unwrap();

    let first = invoke_monitor().await.unwrap();
    let mut last = first.clone();
    for _ in 0..3 {
        let p = book.position(&id, conid).await.unwrap().unwrap();
        if !p.is_open() {
            break;
        }
        last = invoke_monitor().await.unwrap();
    }
    let again = invoke_monitor().await.unwrap();

    let coid = client_order_id(&p.position_id, "exit-stop-1");
    let mine = |v: &Value| {
        v["positions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["position"]["strategy_id"] == id.as_str())
            .cloned()
    };
    let report = mine(&first).expect("monitor saw the position");
    assert_eq!(report["action"], "exit", "{report}");
    assert_eq!(report["trigger"], "stop");
    assert_eq!(report["order_id"], coid.as_str());
    assert!(
        mine(&again).is_none(),
        "closed position checked again: {again}"
    );
    let at_broker = fake.orders_with_ref(&coid).await.unwrap();
    assert_eq!(at_broker.len(), 1, "{at_broker:?}");
    assert_eq!(at_broker[0]["side"], "SELL");
    assert_eq!(at_broker[0]["order_type"], "MKT");
    for attempt in 2..5 {
        let other = client_order_id(&p.position_id, &format!("exit-stop-{attempt}"));
        assert!(
            fake.orders_with_ref(&other).await.unwrap().is_empty(),
            "second exit {other}: {last}"
        );
    }
    let closed = book.position(&id, conid).await.unwrap().unwrap();
    assert!(!closed.is_open(), "{closed:?}");
    assert!(closed.closed_at.is_some());
    let exit = order_item(&stack, &coid).await;
    assert_eq!(exit.status, OrderStatus::Filled);
    assert_eq!(exit.purpose, "stop_exit");
    assert!(
        exit.published_events
            .contains(&"PositionClosed".to_string()),
        "{:?}",
        exit.published_events
    );
    let trades = book.trades_of(&id).await.unwrap();
    assert_eq!(trades.len(), 1, "{trades:?}");
    let t = &trades[0];
    // 10 sold at the fake's 94.50 against a 100.00 cost; commission: the position's
    // 1.00 entry commission and the exit's, as the gateway reports it.
    let exit_commission = fake.commission_of(&coid).await.unwrap();
    assert!(exit_commission > Decimal::ZERO, "no exit commission");
    assert_eq!(
        (t.quantity, t.exit_price),
        (Decimal::from(10), Decimal::new(9450, 2))
    );
    assert_eq!(t.gross_pnl, Decimal::new(-5500, 2));
    assert_eq!(t.commission, Decimal::ONE + exit_commission);
    assert_eq!(
        t.realized_pnl,
        Decimal::new(-5500, 2) - Decimal::ONE - exit_commission
    );
    assert!(t.commission_reported);
    assert_eq!(
        (exit.commission, exit.commission_reported),
        (exit_commission, true)
    );
    assert_eq!(
        (t.exit_purpose.as_str(), t.entry_order_id.as_str()),
        ("stop_exit", p.position_id.as_str())
    );
    assert_eq!(closed.realized_pnl, t.realized_pnl);
    let ibkr = stack.deps.ibkr().unwrap();
    let last = ibkr.bars(conid, Timeframe::Daily, 1).await.unwrap()[0].close;
    fake.price(conid, Decimal::from_f64(last).unwrap().round_dp(2), None)
        .await
        .unwrap();
}

/// The entries of the monitor's back-fill report (`outcome: backfilled`) for a strategy.
fn backfilled(run: &Value, strategy_id: &str) -> Vec<Value> {
    run["commission_backfill"]["backfilled"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|b| b["strategy_id"] == strategy_id)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn commissions_reported_after_the_last_fill_are_back_filled_by_the_monitor_once() {
    // One gateway, one IBKR session: its pacing and its "reply must follow the question"
    // rule are global, so tests that order take turns, as Lambdas sharing a gateway would.
    let _gateway = gateway_lock().await;
    let stack = Stack::connect().await.unwrap();
    let fake = FakeIbkr::of(&stack);
    let book = stack.deps.books();
    let setups = buy_setups(&stack).await.unwrap();
    // Another contract than the other ordering tests when there is one: its price moves.
    let setup = setups
        .get(2)
        .or(setups.last())
        .expect("no contract reads as BUY today");
    let id = unique("it-late");
    let mut s = live_strategy(&id, setup);
    // Watched at any hour: the exit must not depend on New York being open.
    s.market.always_open = true;
    stack.put_strategy(&s).await.unwrap();
    fake.price(setup.conid, setup.close, None).await.unwrap();
    let held = fake.hold_commissions().await.unwrap();
    let name = format!("{id}-manual");

    let done = stack.run(&name, &json!({"strategy_id": id})).await.unwrap();
    assert_eq!(done.status, "SUCCEEDED", "cause: {:?}", done.cause);
    let entry_id = client_order_id(&name, "entry");
    let entry = order_item(&stack, &entry_id).await;
    assert_eq!(entry.status, OrderStatus::Filled, "{:?}", entry.history);
    assert_eq!(
        (
            entry.commission,
            entry.commission_reported,
            entry.commission_pending.as_deref()
        ),
        (Decimal::ZERO, false, Some("pending"))
    );
    let opened = book.position(&id, setup.conid).await.unwrap().unwrap();
    assert_eq!(
        (opened.open_commission, opened.commission_reported),
        (Decimal::ZERO, false)
    );
    // The stop is crossed while commissions are still held back: the exit fills
    // without its commission too, and the position closes.
    let stop = opened.stop.expect("a BUY signal has a stop");
    fake.price(setup.conid, stop - Decimal::ONE, None)
        .await
        .unwrap();
    for _ in 0..4 {
        invoke_monitor().await.unwrap();
        if !book
            .position(&id, setup.conid)
            .await
            .unwrap()
            .unwrap()
            .is_open()
        {
            break;
        }
    }
    let exit_id = client_order_id(&opened.position_id, "exit-stop-1");
    let exit = order_item(&stack, &exit_id).await;
    assert_eq!(exit.status, OrderStatus::Filled, "{:?}", exit.history);
    assert_eq!(
        (exit.commission_reported, exit.commission_pending.as_deref()),
        (false, Some("pending"))
    );
    let trades = book.trades_of(&id).await.unwrap();
    assert_eq!(trades.len(), 1, "{trades:?}");
    assert_eq!(
        (trades[0].commission, trades[0].commission_reported),
        (Decimal::ZERO, false)
    );

    fake.report_commissions().await.unwrap();
    let entry_commission = fake.commission_of(&entry_id).await.unwrap();
    let exit_commission = fake.commission_of(&exit_id).await.unwrap();
    // IBKR paces its executions endpoint per session (1 per 5 s): a run that met
    // another caller's request reports the error and the next run does the work.
    let mut reports = Vec::new();
    for _ in 0..4 {
        let run = invoke_monitor().await.unwrap();
        reports.extend(backfilled(&run, &id));
        if reports.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_secs(6)).await;
    }

    let ids: Vec<&str> = reports
        .iter()
        .filter_map(|r| r["order_id"].as_str())
        .collect();
    assert!(
        ids.contains(&entry_id.as_str()) && ids.contains(&exit_id.as_str()),
        "{reports:?}"
    );
    let entry = order_item(&stack, &entry_id).await;
    let exit = order_item(&stack, &exit_id).await;
    for (o, reported) in [(&entry, entry_commission), (&exit, exit_commission)] {
        assert!(reported > Decimal::ZERO, "no commission at the broker");
        assert_eq!(
            (
                o.commission,
                o.applied_commission,
                o.commission_reported,
                o.commission_pending.as_deref()
            ),
            (reported, reported, true, None),
            "{:?}",
            o.history
        );
    }
    let t = book.trades_of(&id).await.unwrap().remove(0);
    assert_eq!(t.commission, entry_commission + exit_commission);
    assert_eq!(
        t.realized_pnl,
        t.gross_pnl - entry_commission - exit_commission
    );
    assert!(t.commission_reported);
    let closed = book.position(&id, setup.conid).await.unwrap().unwrap();
    assert!(!closed.is_open(), "{closed:?}");
    assert_eq!(
        (
            closed.realized_pnl,
            closed.open_commission,
            closed.commission_reported
        ),
        (t.realized_pnl, Decimal::ZERO, true)
    );

    let again = invoke_monitor().await.unwrap();

    assert!(backfilled(&again, &id).is_empty(), "{again}");
    assert_eq!(order_item(&stack, &entry_id).await, entry);
    assert_eq!(order_item(&stack, &exit_id).await, exit);
    assert_eq!(book.trades_of(&id).await.unwrap(), vec![t]);
    assert_eq!(
        book.position(&id, setup.conid).await.unwrap().unwrap(),
        closed
    );
    drop(held);
    let ibkr = stack.deps.ibkr().unwrap();
    let last = ibkr.bars(setup.conid, Timeframe::Daily, 1).await.unwrap()[0].close;
    fake.price(
        setup.conid,
        Decimal::from_f64(last).unwrap().round_dp(2),
        None,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn the_monitor_leaves_a_crossed_stop_alone_while_the_market_is_closed() {
    let _gateway = gateway_lock().await;
    let stack = Stack::connect().await.unwrap();
    let fake = FakeIbkr::of(&stack);
    let (conid, symbol, _, _) = KNOWN_CONTRACTS[0];
    let id = unique("it-closed");
    // A UTC session an hour long that does not contain the present moment.
    let now = chrono::Utc::now();
    let (open, close) = if chrono::Timelike::hour(&now) < 12 {
        ("20:00", "21:00")
    } else {
        ("02:00", "03:00")
    };
    let mut s = strategy(&id, conid, symbol);
    s.market.timezone = "UTC".into();
    s.market.open = open.into();
    s.market.close = close.into();
    assert!(!s.market.clock().unwrap().is_open(now));
    stack.deps.store().put_strategy(&s).await.unwrap();
    let book = stack.deps.books();
    let ibkr = stack.deps.ibkr().unwrap();
    let last = ibkr.bars(conid, Timeframe::Daily, 1).await.unwrap()[0].close;
    let last = Decimal::from_f64(last).unwrap().round_dp(2);
    let stamp = now.to_rfc3339();
    // The stop sits above the market: the price has crossed it already.
    let mut p = Position {
        strategy_id: id.clone(),
        conid,
        symbol: symbol.into(),
        position_id: format!("{id}-entry"),
        quantity: Decimal::from(5),
        cost_basis: last * Decimal::from(5),
        avg_cost: last,
        open_commission: Decimal::ZERO,
        commission_reported: true,
        realized_pnl: Decimal::ZERO,
        stop: Some(last + Decimal::from(10)),
        target: None,
        execution_id: format!("{id}-manual"),
        opened_at: stamp.clone(),
        updated_at: stamp,
        closed_at: None,
        exit_order_id: None,
        exit_attempts: 0,
        exit_claimed_at: None,
        entry_order_id: None,
        entry_claimed_at: None,
        version: 0,
    };
    book.save_position(&mut p).await.unwrap();

    let run = invoke_monitor().await.unwrap();

    let report = run["positions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["position"]["strategy_id"] == id.as_str())
        .cloned()
        .expect("monitor saw the position");
    assert_eq!(report["action"], "market_closed", "{report}");
    let held = book.position(&id, conid).await.unwrap().unwrap();
    assert!(held.is_open() && held.exit_order_id.is_none(), "{held:?}");
    let coid = client_order_id(&p.position_id, "exit-stop-1");
    assert!(fake.orders_with_ref(&coid).await.unwrap().is_empty());

    // Closed by hand so later monitor runs on a kept stack leave it be.
    let mut done = held;
    done.quantity = Decimal::ZERO;
    done.closed_at = Some(chrono::Utc::now().to_rfc3339());
    book.save_position(&mut done).await.unwrap();
}

/// A trade closed at `closed_at` with `pnl` realised, as the fill transaction writes it.
fn closed_trade(strategy_id: &str, n: u32, closed_at: &str, pnl: Decimal) -> Trade {
    Trade {
        strategy_id: strategy_id.into(),
        trade_id: format!("{strategy_id}-exit-{n}#1"),
        conid: 1,
        symbol: "X".into(),
        position_id: format!("{strategy_id}-entry-{n}"),
        direction: "LONG".into(),
        quantity: Decimal::ONE,
        entry_price: Decimal::from(100),
        exit_price: Decimal::from(100) + pnl,
        gross_pnl: pnl,
        commission: Decimal::ZERO,
        commission_reported: true,
        realized_pnl: pnl,
        opened_at: closed_at.into(),
        closed_at: closed_at.into(),
        entry_order_id: format!("{strategy_id}-entry-{n}"),
        entry_execution_id: format!("{strategy_id}-manual"),
        exit_order_id: format!("{strategy_id}-exit-{n}"),
        exit_execution_id: format!("{strategy_id}-manual"),
        exit_purpose: "stop_exit".into(),
        version: 0,
    }
}

#[tokio::test]
async fn the_kill_switch_counts_this_trading_days_losses_and_not_yesterdays() {
    let stack = Stack::connect().await.unwrap();
    let setups = buy_setups(&stack).await.unwrap();
    let setup = setups.first().expect("no contract reads as BUY today");
    let id = unique("it-kill");
    // Dry run: sizing and the kill switch run as for a live order, nothing is sent.
    let mut s = strategy(&id, setup.conid, setup.symbol);
    s.indicators = setup.indicators.clone();
    s.bars = 500;
    // A UTC calendar-day session, so the test knows the day's edge at any hour.
    s.market.timezone = "UTC".into();
    s.market.always_open = true;
    stack.put_strategy(&s).await.unwrap();
    let today = chrono::Utc::now().date_naive();
    let midnight = format!("{today}T00:00:00.000Z");
    let just_before = format!("{}T23:59:59.999Z", today.pred_opt().unwrap());
    let trades = stack.deps.config.tables.trades.clone();
    let store = stack.deps.store();
    // The limit is 2000. A millisecond before today: not counted. Today: 1500, under it.
    for t in [
        closed_trade(&id, 1, &just_before, Decimal::from(-5000)),
        closed_trade(&id, 2, &midnight, Decimal::from(-1500)),
    ] {
        store.put(&trades, &t, None).await.unwrap();
    }
    let input = json!({"strategy_id": id});
    let place_order = async |name: String| {
        let done = stack.run(&name, &input).await.unwrap();
        assert_eq!(done.status, "SUCCEEDED", "cause: {:?}", done.cause);
        stack
            .lineage(&name)
            .await
            .unwrap()
            .into_iter()
            .find(|r| r.step_name == "place_order")
            .and_then(|r| r.output)
            .expect("place_order ran")
    };

    let under = place_order(format!("{id}-manual-1")).await;
    store
        .put(
            &trades,
            &closed_trade(&id, 3, &midnight, Decimal::from(-500)),
            None,
        )
        .await
        .unwrap();
    let over = place_order(format!("{id}-manual-2")).await;

    let reason = |v: &Value| v["reason"].as_str().unwrap_or_default().to_string();
    assert!(reason(&under).starts_with("dry run"), "{under}");
    assert!(
        reason(&over).starts_with("daily loss limit reached: realised -2000"),
        "{over}"
    );
    assert_eq!(over["order"], Value::Null);
}

/// The BUY orders the fake gateway accepted for `coids`.
async fn entries_at_broker(fake: &FakeIbkr, coids: &[String]) -> Vec<Value> {
    let mut out = Vec::new();
    for c in coids {
        out.extend(fake.orders_with_ref(c).await.expect("fake orders"));
    }
    out
}

#[tokio::test]
async fn overlapping_runs_of_a_strategy_place_one_entry_at_the_broker() {
    let _gateway = gateway_lock().await;
    let stack = Stack::connect().await.unwrap();
    let fake = FakeIbkr::of(&stack);
    let setups = buy_setups(&stack).await.unwrap();
    let setup = setups.first().expect("no contract reads as BUY today");
    let id = unique("it-overlap");
    stack
        .put_strategy(&live_strategy(&id, setup))
        .await
        .unwrap();
    fake.price(setup.conid, setup.close, None).await.unwrap();
    let names: Vec<String> = (0..3).map(|n| format!("{id}-run{n}")).collect();

    let input = json!({"strategy_id": id});
    let (a, b, c) = tokio::join!(
        stack.run(&names[0], &input),
        stack.run(&names[1], &input),
        stack.run(&names[2], &input),
    );

    for done in [a.unwrap(), b.unwrap(), c.unwrap()] {
        assert_eq!(done.status, "SUCCEEDED", "{:?}", done.cause);
    }
    let coids: Vec<String> = names.iter().map(|n| client_order_id(n, "entry")).collect();
    let at_broker = entries_at_broker(&fake, &coids).await;
    assert_eq!(
        at_broker.len(),
        1,
        "one entry for max_open_positions 1: {at_broker:?}"
    );
    let mut reasons = Vec::new();
    for n in &names {
        let lineage = stack.lineage(n).await.unwrap();
        let place = lineage
            .iter()
            .find(|r| r.step_name == "place_order")
            .unwrap();
        reasons.push(place.output.as_ref().unwrap()["reason"].clone());
    }
    let refused = reasons
        .iter()
        .filter(|r| {
            let r = r.as_str().unwrap_or_default();
            r.contains("already working") || r.contains("already long")
        })
        .count();
    assert_eq!(refused, 2, "{reasons:?}");
}

#[tokio::test]
async fn an_inactive_strategy_does_not_run() {
    let stack = Stack::connect().await.unwrap();
    let id = unique("it-inactive");
    let mut s = strategy(&id, 265598, "AAPL");
    s.active = false;
    stack.put_strategy(&s).await.unwrap();
    let name = format!("{id}-manual");

    let done = stack.run(&name, &json!({"strategy_id": id})).await.unwrap();

    assert_eq!(done.status, "SUCCEEDED", "{:?}", done.cause);
    let states = entered_states(&stack.sfn, &done.execution_arn)
        .await
        .unwrap();
    assert_eq!(
        states,
        vec![
            "load_strategy",
            "is_duplicate_tick",
            "strategy_inactive_skipped"
        ],
        "{states:?}"
    );
    let lineage = stack.lineage(&name).await.unwrap();
    assert_eq!(lineage.len(), 1);
    let out = lineage[0].output.clone().unwrap();
    assert_eq!(
        (out["skipped"].clone(), out["skip_reason"].clone()),
        (json!(true), json!("inactive"))
    );
}

#[tokio::test]
async fn the_monitor_resolves_an_order_left_submitting_and_one_the_gateway_session_forgot() {
    let _gateway = gateway_lock().await;
    let stack = Stack::connect().await.unwrap();
    let fake = FakeIbkr::of(&stack);
    let setups = buy_setups(&stack).await.unwrap();
    let setup = setups.last().expect("no contract reads as BUY today");
    let id = unique("it-resolve");
    let s = live_strategy(&id, setup);
    stack.put_strategy(&s).await.unwrap();
    // Fills 3 shares per market tick: the order is partly filled when the session resets.
    fake.price(setup.conid, setup.close, Some(Decimal::from(3)))
        .await
        .unwrap();
    let name = format!("{id}-manual");
    let coid = client_order_id(&name, "entry");
    // The order goes out; its answer is held past the client's timeout twice (both
    // attempts' retries say "unavailable"), so the run fails with the item SUBMITTING.
    fake.post(
        "/faults",
        json!({"path": "/iserver/", "kind": "delay_after_order", "count": 1, "delay_ms": 20000, "coid": coid}),
    )
    .await
    .unwrap();
    fake.fault("/iserver/account/orders", "status503", 12)
        .await
        .unwrap();

    let done = stack.run(&name, &json!({"strategy_id": id})).await.unwrap();
    fake.clear_faults().await.unwrap();
    let stuck = order_item(&stack, &coid).await;
    // One cycle finds it by cOID (and ticks the market: a partial fill)...
    let found = invoke_monitor().await.unwrap();
    let listed = order_item(&stack, &coid).await;
    // ...then the gateway's session resets: it forgets the order.
    fake.post("/session_reset", json!({})).await.unwrap();
    let mut runs = vec![found];
    for _ in 0..6 {
        runs.push(invoke_monitor().await.unwrap());
        let o = order_item(&stack, &coid).await;
        if o.is_settled() {
            break;
        }
    }

    assert_eq!(done.status, "FAILED", "{:?}", done.cause);
    assert_eq!(stuck.status, OrderStatus::Submitting, "{:?}", stuck.history);
    assert!(listed.broker_order_id.is_some(), "{:?}", listed.history);
    let resolved = order_item(&stack, &coid).await;
    assert!(resolved.is_settled(), "{:?}\n{runs:?}", resolved.history);
    assert!(resolved.broker_order_id.is_some());
    let at_broker = fake.orders_with_ref(&coid).await.unwrap();
    assert_eq!(at_broker.len(), 1);
    let broker_filled = Decimal::from_f64(at_broker[0]["filled"].as_f64().unwrap()).unwrap();
    assert_eq!(
        resolved.filled_quantity, broker_filled,
        "{:?}",
        resolved.history
    );
    assert_ne!(
        at_broker[0]["status"], "Submitted",
        "left working at the broker"
    );
    let p = stack
        .deps
        .books()
        .position(&id, setup.conid)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p.quantity, broker_filled);
    assert_eq!(p.entry_order_id, None, "entry claim freed");
    fake.price(setup.conid, setup.close, None).await.unwrap();
}
