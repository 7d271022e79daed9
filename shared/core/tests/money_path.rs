//! The money path's use cases (placement, tracking, exits, reconciliation) against
//! the in-memory books and broker of `tradeflow-testkit`: invariants I1–I6 under
//! overlapping runs, lost responses, crashes between steps and a gateway session
//! reset, without AWS.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use rust_decimal_macros::dec;
use serde_json::json;
use tradeflow_core::account::AccountLimits;
use tradeflow_core::exits::check_position;
use tradeflow_core::orders::{OrderStatus, OrderStore, Placement, client_order_id};
use tradeflow_core::placement::{Placed, place_signal};
use tradeflow_core::reconcile::{CLAIM_GRACE_SECONDS, reconcile};
use tradeflow_core::signal::{Action, Signal};
use tradeflow_core::strategy::Strategy;
use tradeflow_core::tracking::{POSITION_MISMATCH, SUBMIT_GRACE_SECONDS, Verdict, poll, verdict};
use tradeflow_testkit::{FakeBroker, InMemoryBooks, block_on};

fn strategy(id: &str, conid: i64) -> Strategy {
    serde_json::from_value(json!({
        "strategy_id": id, "name": id, "conid": conid, "symbol": format!("S{conid}"),
        "risk": {"capital": "100000", "risk_per_trade": "0.01", "max_position_value": "25000",
                 "max_open_positions": 1, "daily_loss_limit": "2000", "min_confidence": 0.5},
        "dry_run": false,
        "market": {"always_open": true},
    }))
    .expect("a valid strategy")
}

fn signal(action: Action) -> Signal {
    Signal {
        action,
        entry: Some(dec!(100)),
        stop: Some(dec!(95)),
        target: Some(dec!(110)),
        confidence: 0.8,
        reason: "test".into(),
        parsed_from: "structured".into(),
        template_id: None,
        template_version: None,
    }
}

fn t0() -> DateTime<Utc> {
    "2026-01-06T15:00:00Z".parse().expect("a time")
}

fn placed_order(p: Placed) -> tradeflow_core::orders::Order {
    match p {
        Placed::Order(p) => p.order().clone(),
        Placed::Nothing(why) => panic!("nothing placed: {why}"),
    }
}

fn nothing(p: Placed) -> String {
    match p {
        Placed::Nothing(why) => why,
        Placed::Order(p) => panic!("placed {:?}", p.order().order_id),
    }
}

#[test]
fn two_overlapping_runs_of_a_strategy_place_one_entry() {
    let (broker, books) = (FakeBroker::default(), InMemoryBooks::default());
    let s = strategy("a", 1);

    let first = block_on(place_signal(
        &broker,
        &books,
        &s,
        &signal(Action::Buy),
        "run-1",
        t0(),
    ))
    .unwrap();
    let second = block_on(place_signal(
        &broker,
        &books,
        &s,
        &signal(Action::Buy),
        "run-2",
        t0(),
    ))
    .unwrap();

    placed_order(first);
    assert!(nothing(second).contains("already working"));
    assert_eq!(broker.orders().len(), 1);
}

#[test]
fn two_strategies_never_trade_one_contract_against_each_other_and_the_account_caps_positions() {
    let (broker, books) = (FakeBroker::default(), InMemoryBooks::default());
    books.state().account.limits = AccountLimits {
        max_open_positions: Some(2),
        ..Default::default()
    };

    placed_order(
        block_on(place_signal(
            &broker,
            &books,
            &strategy("a", 1),
            &signal(Action::Buy),
            "r1",
            t0(),
        ))
        .unwrap(),
    );
    let mut shorts = strategy("b", 1);
    shorts.risk.allow_short = true;
    let rival = nothing(
        block_on(place_signal(
            &broker,
            &books,
            &shorts,
            &signal(Action::Sell),
            "r2",
            t0(),
        ))
        .unwrap(),
    );
    placed_order(
        block_on(place_signal(
            &broker,
            &books,
            &strategy("c", 2),
            &signal(Action::Buy),
            "r3",
            t0(),
        ))
        .unwrap(),
    );
    let over = nothing(
        block_on(place_signal(
            &broker,
            &books,
            &strategy("d", 3),
            &signal(Action::Buy),
            "r4",
            t0(),
        ))
        .unwrap(),
    );

    assert!(rival.contains("held long by strategy a"), "{rival}");
    assert!(over.contains("account max open positions"), "{over}");
    assert_eq!(broker.orders().len(), 2);
}

#[test]
fn other_working_entries_reserve_the_cash_an_entry_is_sized_with() {
    let (broker, books) = (FakeBroker::default(), InMemoryBooks::default());
    broker.state().cash = dec!(30000);

    let a = placed_order(
        block_on(place_signal(
            &broker,
            &books,
            &strategy("a", 1),
            &signal(Action::Buy),
            "r1",
            t0(),
        ))
        .unwrap(),
    );
    let b = placed_order(
        block_on(place_signal(
            &broker,
            &books,
            &strategy("b", 2),
            &signal(Action::Buy),
            "r2",
            t0(),
        ))
        .unwrap(),
    );

    // a: min(risk 1000/5 = 200, cash 300, value 250) = 200 shares ($20,000 reserved);
    // b: only $10,000 of the cash is left, so 100 shares.
    assert_eq!((a.quantity, b.quantity), (dec!(200), dec!(100)));
}

#[test]
fn a_retry_after_a_crash_between_claim_and_order_resumes_the_same_claim() {
    let (broker, books) = (FakeBroker::default(), InMemoryBooks::default());
    let s = strategy("a", 1);
    broker.state().fail_next_submit = true;

    let crashed = block_on(place_signal(
        &broker,
        &books,
        &s,
        &signal(Action::Buy),
        "run-1",
        t0(),
    ));
    let retried = block_on(place_signal(
        &broker,
        &books,
        &s,
        &signal(Action::Buy),
        "run-1",
        t0(),
    ))
    .unwrap();

    assert!(crashed.is_err());
    assert!(matches!(retried, Placed::Order(ref p) if matches!(**p, Placement::Placed(_))));
    assert_eq!(broker.orders().len(), 1);
}

#[test]
fn a_submitting_order_is_resolved_by_cooid_or_as_never_sent_and_its_claim_freed() {
    let (broker, books) = (FakeBroker::default(), InMemoryBooks::default());
    broker.state().lose_next_response = true;
    let lost = block_on(place_signal(
        &broker,
        &books,
        &strategy("a", 1),
        &signal(Action::Buy),
        "r1",
        t0(),
    ));
    broker.state().fail_next_submit = true;
    let never = block_on(place_signal(
        &broker,
        &books,
        &strategy("b", 2),
        &signal(Action::Buy),
        "r2",
        t0(),
    ));
    let later = t0() + Duration::seconds(SUBMIT_GRACE_SECONDS);

    let report = block_on(reconcile(&broker, &books, later));

    assert!(lost.is_err() && never.is_err());
    let a = block_on(books.get(&client_order_id("r1", "entry")))
        .unwrap()
        .unwrap();
    let b = block_on(books.get(&client_order_id("r2", "entry")))
        .unwrap()
        .unwrap();
    assert_eq!(a.status, OrderStatus::Submitted, "{:?}", a.history);
    assert_eq!(a.broker_order_id.as_deref(), Some("1000"));
    assert_eq!(b.status, OrderStatus::Cancelled, "{:?}", b.history);
    let st = books.state();
    assert!(
        !st.claims.contains_key(&(2, "b".to_string())),
        "the never-sent entry's contract is free"
    );
    assert!(st.claims.contains_key(&(1, "a".to_string())));
    assert_eq!(report.tracked.len(), 2, "{report:?}");
}

#[test]
fn a_filled_report_without_an_average_price_keeps_the_loop_polling() {
    let (broker, books) = (FakeBroker::default(), InMemoryBooks::default());
    let o = placed_order(
        block_on(place_signal(
            &broker,
            &books,
            &strategy("a", 1),
            &signal(Action::Buy),
            "r1",
            t0(),
        ))
        .unwrap(),
    );
    broker.fill(&o.order_id, o.quantity, dec!(99.5));
    broker.state().hide_avg_price = true;

    let polled = block_on(poll(&broker, &books, &o.order_id, t0())).unwrap();

    assert_eq!(polled.status, OrderStatus::Filled);
    assert!(!polled.is_settled());
    assert_eq!(verdict(&polled, 3, 10, 2), Verdict::Wait);
    assert!(polled.working.is_some(), "still in the reconciler's index");
}

#[test]
fn the_loop_keeps_polling_after_its_cancel_until_settled_then_hands_off() {
    let (broker, books) = (FakeBroker::default(), InMemoryBooks::default());
    let o = placed_order(
        block_on(place_signal(
            &broker,
            &books,
            &strategy("a", 1),
            &signal(Action::Buy),
            "r1",
            t0(),
        ))
        .unwrap(),
    );

    assert!(matches!(verdict(&o, 10, 10, 2), Verdict::Cancel(_)));
    assert_eq!(verdict(&o, 11, 10, 2), Verdict::Wait);
    assert!(matches!(verdict(&o, 15, 10, 2), Verdict::HandOff(_)));
}

#[test]
fn an_order_the_gateway_session_forgot_is_resolved_from_its_executions() {
    let (broker, books) = (FakeBroker::default(), InMemoryBooks::default());
    let o = placed_order(
        block_on(place_signal(
            &broker,
            &books,
            &strategy("a", 1),
            &signal(Action::Buy),
            "r1",
            t0(),
        ))
        .unwrap(),
    );
    broker.fill(&o.order_id, dec!(40), dec!(99));
    broker.reset_session();

    let report = block_on(reconcile(&broker, &books, t0() + Duration::seconds(60)));

    let after = block_on(books.get(&o.order_id)).unwrap().unwrap();
    assert_eq!(after.status, OrderStatus::Cancelled, "{:?}", after.history);
    assert_eq!(after.applied_quantity, dec!(40));
    assert!(after.is_settled());
    assert_eq!(
        broker.orders()[0].status,
        OrderStatus::Cancelled,
        "cancelled at the broker by id"
    );
    let p = block_on(tradeflow_core::books::Books::position(&books, "a", 1))
        .unwrap()
        .unwrap();
    assert_eq!((p.quantity, p.entry_order_id.clone()), (dec!(40), None));
    assert!(report.differences.is_empty(), "{report:?}");
}

#[test]
fn an_exit_claimed_by_a_run_that_died_blocks_no_longer_than_its_grace_and_never_doubles() {
    let (broker, books) = (FakeBroker::default(), InMemoryBooks::default());
    let s = strategy("a", 1);
    let o = placed_order(
        block_on(place_signal(
            &broker,
            &books,
            &s,
            &signal(Action::Buy),
            "r1",
            t0(),
        ))
        .unwrap(),
    );
    broker.fill(&o.order_id, o.quantity, dec!(100));
    block_on(poll(&broker, &books, &o.order_id, t0())).unwrap();
    // A SELL run takes the exit claim and dies before creating its order.
    let dead_exit = client_order_id("r2", "exit");
    {
        let mut st = books.state();
        let p = st.positions.get_mut(&("a".to_string(), 1)).unwrap();
        p.exit_order_id = Some(dead_exit.clone());
        p.exit_claimed_at = Some(t0().to_rfc3339());
    }
    let p = block_on(tradeflow_core::books::Books::position(&books, "a", 1))
        .unwrap()
        .unwrap();

    let soon = block_on(reconcile(&broker, &books, t0() + Duration::seconds(60)));
    let held = block_on(tradeflow_core::books::Books::position(&books, "a", 1))
        .unwrap()
        .unwrap();
    let stale = block_on(reconcile(
        &broker,
        &books,
        t0() + Duration::seconds(CLAIM_GRACE_SECONDS),
    ));
    let freed = block_on(tradeflow_core::books::Books::position(&books, "a", 1))
        .unwrap()
        .unwrap();
    let late = block_on(place_signal(
        &broker,
        &books,
        &s,
        &signal(Action::Sell),
        "r2",
        t0(),
    ));
    let now = block_on(tradeflow_core::books::Books::position(&books, "a", 1))
        .unwrap()
        .unwrap();
    let stop = block_on(check_position(
        &broker,
        &books,
        now,
        true,
        Some(dec!(90)),
        "m1",
        t0(),
    ))
    .unwrap();

    assert_eq!(p.exit_order_id, Some(dead_exit.clone()));
    assert!(soon.claims_freed.is_empty());
    assert_eq!(held.exit_order_id, Some(dead_exit));
    assert_eq!(stale.claims_freed.len(), 1, "{stale:?}");
    assert_eq!(freed.exit_order_id, None);
    // The dead run's retry claims again (its cOID) and places the one exit; the
    // monitor then finds the claim taken and tracks that order instead.
    assert!(
        matches!(&late, Ok(Placed::Order(p)) if matches!(**p, Placement::Placed(_))),
        "{late:?}"
    );
    assert_eq!(stop["action"], "tracking_exit", "{stop}");
    let sells = broker
        .orders()
        .iter()
        .filter(|o| o.side == tradeflow_core::orders::Side::Sell)
        .count();
    assert_eq!(sells, 1);
}

#[test]
fn an_order_is_not_created_once_its_claim_was_released() {
    let (broker, books) = (FakeBroker::default(), InMemoryBooks::default());
    let s = strategy("a", 1);
    let o = placed_order(
        block_on(place_signal(
            &broker,
            &books,
            &s,
            &signal(Action::Buy),
            "r1",
            t0(),
        ))
        .unwrap(),
    );
    broker.fill(&o.order_id, o.quantity, dec!(100));
    block_on(poll(&broker, &books, &o.order_id, t0())).unwrap();
    let mut order = o.clone();
    order.order_id = client_order_id("r9", "exit");
    order.purpose = "signal_exit".into();
    order.status = OrderStatus::Submitting;
    order.version = 0;

    let created = block_on(books.create(&order));

    assert!(
        matches!(
            created,
            Err(tradeflow_core::orders::OrderStoreError::ClaimLost(_))
        ),
        "{created:?}"
    );
}

#[test]
fn a_difference_with_the_brokers_positions_is_reported_and_not_written_over() {
    let (broker, books) = (FakeBroker::default(), InMemoryBooks::default());
    let o = placed_order(
        block_on(place_signal(
            &broker,
            &books,
            &strategy("a", 1),
            &signal(Action::Buy),
            "r1",
            t0(),
        ))
        .unwrap(),
    );
    broker.fill(&o.order_id, o.quantity, dec!(100));
    block_on(poll(&broker, &books, &o.order_id, t0())).unwrap();
    // Someone trades the contract by hand at the broker.
    broker.state().orders[0].filled += dec!(7);

    let report = block_on(reconcile(&broker, &books, t0()));

    assert_eq!(report.differences.len(), 1, "{report:?}");
    let d = &report.differences[0];
    assert_eq!(
        (d.conid, d.books, d.broker),
        (1, o.quantity, o.quantity + dec!(7))
    );
    let events = books.state().events.clone();
    assert!(events.iter().any(|(k, _)| k == POSITION_MISMATCH));
    let p = block_on(tradeflow_core::books::Books::position(&books, "a", 1))
        .unwrap()
        .unwrap();
    assert_eq!(p.quantity, o.quantity, "the books are not overwritten");
}

#[test]
fn a_closing_fill_counts_in_the_accounts_day_and_its_loss_limit_stops_entries() {
    let (broker, books) = (FakeBroker::default(), InMemoryBooks::default());
    books.state().account.limits.daily_loss_limit = Some(dec!(500));
    let s = strategy("a", 1);
    let entry = placed_order(
        block_on(place_signal(
            &broker,
            &books,
            &s,
            &signal(Action::Buy),
            "r1",
            t0(),
        ))
        .unwrap(),
    );
    broker.fill(&entry.order_id, entry.quantity, dec!(100));
    block_on(poll(&broker, &books, &entry.order_id, t0())).unwrap();
    let exit = placed_order(
        block_on(place_signal(
            &broker,
            &books,
            &s,
            &signal(Action::Sell),
            "r2",
            t0(),
        ))
        .unwrap(),
    );
    broker.fill(&exit.order_id, exit.quantity, dec!(96));
    block_on(poll(&broker, &books, &exit.order_id, t0())).unwrap();

    let other = block_on(place_signal(
        &broker,
        &books,
        &strategy("b", 2),
        &signal(Action::Buy),
        "r3",
        t0(),
    ))
    .unwrap();

    let day: Decimal = books.state().days.values().copied().sum();
    // 200 shares × −4 = −800 gross, less 1 + 1 commission.
    assert_eq!(day, dec!(-802));
    assert!(nothing(other).contains("account daily loss limit"));
    let st = books.state();
    assert!(
        st.claims.is_empty(),
        "flat and nothing working: the contract is free"
    );
    assert_eq!(st.account.held, 0);
}

#[test]
fn a_contract_claim_left_by_an_unfinished_release_does_not_block_the_next_entry() {
    let (broker, books) = (FakeBroker::default(), InMemoryBooks::default());
    let s = strategy("a", 1);
    let o = placed_order(
        block_on(place_signal(
            &broker,
            &books,
            &s,
            &signal(Action::Buy),
            "r1",
            t0(),
        ))
        .unwrap(),
    );
    block_on(tradeflow_core::tracking::cancel(
        &broker,
        &books,
        &o.order_id,
        "test",
        t0(),
    ))
    .unwrap();
    // As if the release had died half-way: the position is free, the claim is not.
    let claim = tradeflow_core::account::ContractClaim {
        conid: 1,
        holder: "a".into(),
        side: tradeflow_core::orders::Side::Buy,
        entry_order_id: None,
        reserved: Decimal::ZERO,
        claimed_at: t0().to_rfc3339(),
    };
    {
        let mut st = books.state();
        st.claims.insert((1, "a".into()), claim);
        st.account.held += 1;
    }

    let next = block_on(place_signal(
        &broker,
        &books,
        &s,
        &signal(Action::Buy),
        "r2",
        t0(),
    ))
    .unwrap();

    placed_order(next);
    assert_eq!(books.state().account.held, 1);
}
