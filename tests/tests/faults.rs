//! The fault-injection run of issue 12: several live strategies on one account, many
//! executions and monitor cycles on the local stack, while the fake gateway loses
//! order responses after accepting them, answers 429 bursts and 503s, fills orders in
//! parts at random moments and resets its brokerage session, schedule ticks arrive
//! twice, manual runs overlap, prices cross stops, and a strategy is deactivated
//! mid-run. At the end the fake broker's orders, executions and positions are
//! compared with DynamoDB and invariants I1–I6 (README, "Invariants of the money
//! path") are checked. Bounded in count and time; seeded (`FAULT_SEED=<n>` replays a
//! run's choices; the timing of the stack is not replayable, so a failure names the
//! seed and what it saw). `FAULT_ROUNDS` (default 5) sets the length.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tradeflow_core::account::AccountLimits;
use tradeflow_core::orders::{Order, OrderStatus, OrderStore, client_order_id};
use tradeflow_core::strategy::Strategy;
use tradeflow_integration_tests::{
    BuySetup, FakeIbkr, Stack, buy_setups, gateway_lock, live_strategy, unique,
};

/// SplitMix64: a seeded, replayable stream of choices.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Default)]
struct Faults(Mutex<BTreeMap<&'static str, u32>>);

impl Faults {
    fn count(&self, kind: &'static str) {
        *self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(kind)
            .or_default() += 1;
    }

    fn summary(&self) -> BTreeMap<&'static str, u32> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// One position-monitor run, invoked as its schedule does, through the local
/// stack's Lambda. A function error is an error: under faults the caller may
/// tolerate it, in the calm it may not.
async fn invoke_monitor() -> anyhow::Result<Value> {
    let r = tradeflow_integration_tests::invoke(
        "position-monitor",
        &json!({"source": "aws.events", "detail-type": "Scheduled Event"}),
    )
    .await?;
    if r.status != 200 || r.function_error.is_some() {
        anyhow::bail!(
            "position-monitor: {} {:?} {}",
            r.status,
            r.function_error,
            r.payload
        );
    }
    Ok(r.payload)
}

async fn fake_orders(fake_base: &str) -> anyhow::Result<Vec<Value>> {
    let v: Value = reqwest::get(format!("{fake_base}/orders"))
        .await?
        .json()
        .await?;
    Ok(v["orders"].as_array().cloned().unwrap_or_default())
}

fn dec(v: &Value) -> Decimal {
    v.as_f64()
        .and_then(Decimal::from_f64)
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_default()
        .round_dp(6)
        .normalize()
}

/// Σ quantity of the books' open positions per contract (every strategy).
async fn books_by_conid(stack: &Stack) -> BTreeMap<i64, Decimal> {
    let mut m = BTreeMap::new();
    for p in stack
        .deps
        .books()
        .watched_positions()
        .await
        .expect("positions")
    {
        *m.entry(p.conid).or_default() += p.quantity;
    }
    m
}

async fn broker_by_conid(stack: &Stack) -> BTreeMap<i64, Decimal> {
    let ibkr = stack.deps.ibkr().expect("ibkr client");
    let mut m = BTreeMap::new();
    for p in ibkr.positions().await.expect("broker positions") {
        *m.entry(p.conid).or_default() += Decimal::from_f64(p.position).unwrap_or_default();
    }
    m
}

async fn orders_of(stack: &Stack, strategy_id: &str) -> Vec<Order> {
    stack
        .deps
        .store()
        .query(
            &stack.deps.config.tables.orders,
            Some("by_strategy"),
            "strategy_id",
            strategy_id,
            false,
            None,
        )
        .await
        .expect("orders of a strategy")
}

fn scheduled_tick(strategy_id: &str, time: &str) -> Value {
    json!({
        "version": "0", "id": format!("tick-{strategy_id}-{time}"),
        "detail-type": "Scheduled Event", "source": "aws.events",
        "account": "000000000000", "time": time, "region": "us-east-1",
        "resources": [format!("arn:aws:events:us-east-1:000000000000:rule/tradeflow-{strategy_id}")],
        "detail": {},
    })
}

struct Run {
    name: String,
    strategy_id: String,
    started: chrono::DateTime<chrono::Utc>,
}

#[tokio::test]
#[allow(clippy::too_many_lines)]
async fn the_books_agree_with_the_broker_under_injected_faults() {
    let _gateway = gateway_lock().await;
    let t0 = Instant::now();
    let seed: u64 = std::env::var("FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| chrono::Utc::now().timestamp_micros().unsigned_abs());
    let rounds: usize = std::env::var("FAULT_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    println!("fault run: seed {seed} (replay with FAULT_SEED={seed}), {rounds} rounds");
    let mut rng = Rng(seed);
    let stack = Arc::new(Stack::connect().await.unwrap());
    let fake = FakeIbkr::of(&stack);
    let fake_base = format!(
        "{}/fake",
        stack
            .deps
            .config
            .ibkr_base_url
            .trim_end_matches('/')
            .trim_end_matches("/v1/api")
    );
    let faults = Arc::new(Faults::default());
    fake.clear_faults().await.unwrap();
    let setups: Vec<BuySetup> = buy_setups(&stack)
        .await
        .unwrap()
        .into_iter()
        .take(3)
        .collect();
    assert!(!setups.is_empty(), "no contract reads as BUY today");
    let tag = unique("fi");
    // Five strategies on the setups' contracts: some share a contract.
    let strategies: Vec<Strategy> = (0..5)
        .map(|k| {
            let mut s = live_strategy(&format!("{tag}-s{k}"), &setups[k % setups.len()]);
            s.market.always_open = true;
            // Every minute is a run, so a synthetic tick passes the tick filter and
            // reaches the claim (the duplicate-tick path under test).
            s.schedule = "cron(* * ? * * *)".into();
            s
        })
        .collect();
    for s in &strategies {
        stack.put_strategy(s).await.unwrap();
    }
    let books = stack.deps.books();
    let account_before = books.account().await.unwrap();
    // At most three of this run's (strategy, contract) holds at once, account-wide.
    let account_cap = 3;
    books
        .set_account_limits(&AccountLimits {
            max_open_positions: Some(account_before.held + account_cap),
            ..account_before.limits.clone()
        })
        .await
        .unwrap();
    for s in &setups {
        fake.price(s.conid, s.close, None).await.unwrap();
    }
    let first_fake_order = fake_orders(&fake_base)
        .await
        .unwrap()
        .iter()
        .filter_map(|o| o["order_id"].as_u64())
        .max()
        .unwrap_or(0);
    let broker_before = broker_by_conid(&stack).await;
    let ids: HashSet<String> = strategies.iter().map(|s| s.strategy_id.clone()).collect();
    let foreign_before = books
        .contract_claims()
        .await
        .unwrap()
        .iter()
        .filter(|c| !ids.contains(&c.holder))
        .count();
    let books_before = books_by_conid(&stack).await;

    let mut runs: Vec<Run> = Vec::new();
    let mut finished: Vec<(String, String)> = Vec::new();
    let mut deactivated: Option<(String, chrono::DateTime<chrono::Utc>)> = None;
    let mut monitor_cycles = 0_u32;
    for round in 0..rounds {
        let mut tasks = JoinSet::new();
        // Faults for this round, chosen by the seed.
        if rng.chance(60) {
            fake.post(
                "/faults",
                json!({"path": "/iserver/account/", "kind": "delay_after_order", "count": 1, "delay_ms": 17000}),
            )
            .await
            .unwrap();
            faults.count("lost_response_after_submission");
        }
        if rng.chance(50) {
            let path = [
                "/iserver/account/orders",
                "/iserver/account/trades",
                "/portfolio/",
            ][rng.below(3) as usize];
            fake.fault(path, "status429", 2 + rng.below(3) as u32)
                .await
                .unwrap();
            faults.count("http_429_burst");
        }
        if rng.chance(40) {
            fake.fault("/iserver/account/order/status", "status503", 2)
                .await
                .unwrap();
            faults.count("http_503_order_status");
        }
        for s in &setups {
            if rng.chance(40) {
                let liquidity = Decimal::from(3 + rng.below(25));
                fake.price(s.conid, s.close, Some(liquidity)).await.unwrap();
                faults.count("partial_fills");
            }
        }
        if rng.chance(35) {
            let wait = Duration::from_millis(500 + rng.below(6000));
            let (fake, faults) = (fake.clone(), faults.clone());
            tasks.spawn(async move {
                tokio::time::sleep(wait).await;
                fake.post("/session_reset", json!({})).await.unwrap();
                faults.count("gateway_session_reset");
                None
            });
        }
        // Stops crossed: the monitor exits whatever is open there, then prices recover.
        if rng.chance(80) {
            let s = &setups[rng.below(setups.len() as u64) as usize];
            if let Some(stop) = s.signal.stop {
                fake.price(s.conid, stop - Decimal::ONE, None)
                    .await
                    .unwrap();
                faults.count("stop_crossed");
                let (fake, conid, close) = (fake.clone(), s.conid, s.close);
                tasks.spawn(async move {
                    let _ = invoke_monitor().await;
                    fake.price(conid, close, None).await.unwrap();
                    Some(("monitor".to_string(), String::new()))
                });
                monitor_cycles += 1;
            }
        }
        // Executions: overlapping manual runs (a strategy can be picked twice) and
        // duplicate schedule ticks.
        let n = 3 + rng.below(3) as usize;
        for j in 0..n {
            let s = &strategies[rng.below(strategies.len() as u64) as usize];
            let duplicate = rng.chance(25);
            let input = if duplicate {
                scheduled_tick(&s.strategy_id, &format!("2026-01-01T00:{round:02}:{j:02}Z"))
            } else {
                json!({"strategy_id": s.strategy_id})
            };
            let copies = if duplicate { 2 } else { 1 };
            if duplicate {
                faults.count("duplicate_schedule_tick");
            } else if runs
                .iter()
                .any(|r| r.strategy_id == s.strategy_id && r.name.contains(&format!("-r{round}-")))
            {
                faults.count("overlapping_manual_run");
            }
            for c in 0..copies {
                let name = format!("{tag}-r{round}-{j}-{c}");
                runs.push(Run {
                    name: name.clone(),
                    strategy_id: s.strategy_id.clone(),
                    started: chrono::Utc::now(),
                });
                let (stack, input) = (stack.clone(), input.clone());
                tasks.spawn(async move {
                    let done = stack.run(&name, &input).await;
                    Some((
                        name,
                        done.map_or_else(|e| format!("ERROR {e}"), |d| d.status),
                    ))
                });
            }
        }
        if round == rounds / 2 {
            let victim = strategies.last().unwrap().clone();
            let wait = Duration::from_millis(rng.below(3000));
            tokio::time::sleep(wait).await;
            let mut off = victim.clone();
            off.active = false;
            stack.put_strategy(&off).await.unwrap();
            deactivated = Some((victim.strategy_id.clone(), chrono::Utc::now()));
            faults.count("deactivation_mid_run");
        }
        for _ in 0..2 {
            let wait = Duration::from_millis(rng.below(8000));
            tasks.spawn(async move {
                tokio::time::sleep(wait).await;
                let _ = invoke_monitor().await;
                Some(("monitor".to_string(), String::new()))
            });
            monitor_cycles += 1;
        }
        let round_deadline = Instant::now() + Duration::from_secs(150);
        while let Some(joined) = tokio::time::timeout_at(round_deadline.into(), tasks.join_next())
            .await
            .ok()
            .flatten()
        {
            if let Ok(Some((name, status))) = joined
                && name != "monitor"
            {
                finished.push((name, status));
            }
        }
        tasks.abort_all();
        fake.clear_faults().await.unwrap();
    }

    // Calm: no faults, prices back, full liquidity; the monitor runs until nothing of
    // this run is working (bounded: past the SUBMITTING grace at most).
    for s in &setups {
        fake.price(s.conid, s.close, None).await.unwrap();
    }
    let calm = Instant::now();
    loop {
        // No faults in the calm: every monitor run must work.
        invoke_monitor()
            .await
            .expect("the position monitor, in the calm");
        monitor_cycles += 1;
        let working = books
            .working_orders(500)
            .await
            .unwrap()
            .into_iter()
            .filter(|o| ids.contains(&o.strategy_id))
            .count();
        let claimed = books
            .watched_positions()
            .await
            .unwrap()
            .iter()
            .filter(|p| {
                ids.contains(&p.strategy_id)
                    && (p.entry_order_id.is_some() || p.exit_order_id.is_some())
            })
            .count();
        if (working == 0 && claimed == 0) || calm.elapsed() > Duration::from_secs(180) {
            break;
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }

    // The checks.
    let mut violations: Vec<String> = Vec::new();
    let broker_orders: Vec<Value> = fake_orders(&fake_base)
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o["order_id"].as_u64().unwrap_or(0) > first_fake_order)
        .collect();
    let mut ours: Vec<Order> = Vec::new();
    for s in &strategies {
        ours.extend(orders_of(&stack, &s.strategy_id).await);
    }
    let by_id: HashMap<&str, &Order> = ours.iter().map(|o| (o.order_id.as_str(), o)).collect();
    // I1: one broker order per cOID, each one in the books (no silent trade).
    let mut per_ref: HashMap<String, u32> = HashMap::new();
    for o in &broker_orders {
        let r = o["coid"].as_str().unwrap_or_default().to_string();
        *per_ref.entry(r.clone()).or_default() += 1;
        // Other strategies' positions may be exited by the monitor meanwhile: any
        // order of the books counts, an order of nobody's is a silent trade.
        if !by_id.contains_key(r.as_str()) && books.get(&r).await.unwrap().is_none() {
            violations.push(format!(
                "I1: broker order {} (cOID {r:?}) is not in the books",
                o["order_id"]
            ));
        }
    }
    for (r, n) in &per_ref {
        if *n > 1 {
            violations.push(format!("I1: {n} broker orders for cOID {r}"));
        }
    }
    for run in &runs {
        for leg in ["entry", "exit"] {
            let coid = client_order_id(&run.name, leg);
            if per_ref.get(&coid).copied().unwrap_or(0) > 1 {
                violations.push(format!(
                    "I1: execution {} sent its {leg} more than once",
                    run.name
                ));
            }
        }
    }
    // I2: a strategy's entries never overlap (open until the position they opened is
    // flat); the account cap holds across this run's strategies; sizes within limits.
    let trades = {
        let mut t = Vec::new();
        for s in &strategies {
            t.extend(books.trades_of(&s.strategy_id).await.unwrap());
        }
        t
    };
    let end_of = |o: &Order| -> String {
        if o.applied_quantity > Decimal::ZERO {
            trades
                .iter()
                .filter(|t| t.position_id == o.order_id)
                .map(|t| t.closed_at.clone())
                .max()
                .unwrap_or_else(|| "9999".into())
        } else {
            o.history.last().map(|h| h.at.clone()).unwrap_or_default()
        }
    };
    let entries: Vec<(&Order, String)> = ours
        .iter()
        .filter(|o| o.is_entry() && o.broker_order_id.is_some())
        .map(|o| (o, end_of(o)))
        .collect();
    for (i, (a, a_end)) in entries.iter().enumerate() {
        let value = a.quantity * a.limit_price.unwrap_or_default();
        let s = strategies
            .iter()
            .find(|s| s.strategy_id == a.strategy_id)
            .unwrap();
        if value > s.risk.max_position_value {
            violations.push(format!(
                "I2: entry {} worth {value} over max_position_value",
                a.order_id
            ));
        }
        for (b, b_end) in &entries[i + 1..] {
            if a.strategy_id == b.strategy_id && b.created_at < *a_end && a.created_at < *b_end {
                violations.push(format!(
                    "I2: entries {} and {} of {} overlap ({}..{} / {}..{})",
                    a.order_id, b.order_id, a.strategy_id, a.created_at, a_end, b.created_at, b_end
                ));
            }
        }
    }
    // The account cap: the most holds of this run at any instant (a sweep over the
    // intervals), against the cap plus the holds other strategies gave up meanwhile
    // (the cap is on the account's count, which theirs are part of).
    let foreign_after = books
        .contract_claims()
        .await
        .unwrap()
        .iter()
        .filter(|c| !ids.contains(&c.holder))
        .count();
    let cap = account_cap as usize + foreign_before.saturating_sub(foreign_after);
    let mut edges: Vec<(&str, i32)> = entries
        .iter()
        .flat_map(|(o, end)| [(o.created_at.as_str(), 1), (end.as_str(), -1)])
        .collect();
    edges.sort_by(|a, b| a.0.cmp(b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut most) = (0_i32, 0_i32);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    if most as usize > cap {
        violations.push(format!(
            "I2: {most} holds of this run at once, account cap {cap}"
        ));
    }
    // I3: every order is settled in the books and agrees with the broker.
    for o in &ours {
        if o.status == OrderStatus::DryRun {
            continue;
        }
        if !o.is_settled() {
            violations.push(format!(
                "I3: order {} still {:?} in the books",
                o.order_id, o.status
            ));
        }
        match broker_orders
            .iter()
            .find(|b| b["coid"] == o.order_id.as_str())
        {
            Some(b) => {
                let filled = dec(&b["filled"]);
                if filled != o.filled_quantity || filled != o.applied_quantity {
                    violations.push(format!(
                        "I3: order {} filled {} at the broker, {} in the books ({} applied)",
                        o.order_id, filled, o.filled_quantity, o.applied_quantity
                    ));
                }
                if matches!(b["status"].as_str(), Some("PreSubmitted" | "Submitted")) {
                    violations.push(format!(
                        "I3: order {} still working at the broker",
                        o.order_id
                    ));
                }
            }
            None if o.filled_quantity > Decimal::ZERO => {
                violations.push(format!(
                    "I3: order {} has fills but no broker order",
                    o.order_id
                ));
            }
            None => {}
        }
    }
    // I4: per contract, what the broker's position moved equals what the books' moved.
    let broker_after = broker_by_conid(&stack).await;
    let books_after = books_by_conid(&stack).await;
    for s in &setups {
        let moved = |m: &BTreeMap<i64, Decimal>, b: &BTreeMap<i64, Decimal>| {
            m.get(&s.conid).copied().unwrap_or_default()
                - b.get(&s.conid).copied().unwrap_or_default()
        };
        let (broker, ours) = (
            moved(&broker_after, &broker_before),
            moved(&books_after, &books_before),
        );
        if broker != ours {
            violations.push(format!(
                "I4: contract {} moved {broker} at the broker and {ours} in the books",
                s.conid
            ));
        }
    }
    // I5: no claim left whose order settled or never existed.
    for p in books.watched_positions().await.unwrap() {
        if !ids.contains(&p.strategy_id) {
            continue;
        }
        for claim in [&p.entry_order_id, &p.exit_order_id].into_iter().flatten() {
            let o = books.get(claim).await.unwrap();
            if o.as_ref().is_none_or(Order::is_settled) {
                violations.push(format!(
                    "I5: {}/{} still claimed by {claim} ({:?})",
                    p.strategy_id,
                    p.conid,
                    o.map(|o| o.status)
                ));
            }
        }
    }
    // I6: no run of the deactivated strategy loaded after the deactivation traded.
    let mut skipped_inactive = 0;
    if let Some((victim, at)) = &deactivated {
        for run in runs
            .iter()
            .filter(|r| &r.strategy_id == victim && r.started > *at)
        {
            let lineage = stack.lineage(&run.name).await.unwrap();
            let load = lineage.iter().find(|r| r.step_name == "load_strategy");
            let skipped = load
                .and_then(|r| r.output.as_ref())
                .is_some_and(|o| o["skip_reason"] == "inactive");
            if skipped {
                skipped_inactive += 1;
            }
            if lineage.iter().any(|r| r.step_name == "place_order") {
                violations.push(format!(
                    "I6: {} of inactive {victim} reached place_order",
                    run.name
                ));
            }
        }
        let late: Vec<&Order> = ours
            .iter()
            .filter(|o| &o.strategy_id == victim && o.is_entry())
            .filter(|o| {
                runs.iter()
                    .any(|r| r.name == o.execution_id && r.started > *at)
            })
            .collect();
        for o in late {
            violations.push(format!("I6: entry {} of inactive {victim}", o.order_id));
        }
    }

    let mut by_status: BTreeMap<String, u32> = BTreeMap::new();
    for (_, s) in &finished {
        *by_status.entry(s.clone()).or_default() += 1;
    }
    let summary = json!({
        "seed": seed,
        "rounds": rounds,
        "executions": runs.len(),
        "executions_by_status": by_status,
        "runs_skipped_inactive": skipped_inactive,
        "monitor_cycles": monitor_cycles,
        "broker_orders": broker_orders.len(),
        "order_items": ours.len(),
        "faults": faults.summary(),
        "violations": violations.len(),
        "run_time_s": t0.elapsed().as_secs(),
    });
    println!("fault run summary: {summary:#}");
    for v in &violations {
        println!("violation: {v}");
    }

    books
        .set_account_limits(&account_before.limits)
        .await
        .unwrap();
    for s in &strategies {
        let mut off = s.clone();
        off.active = false;
        stack.put_strategy(&off).await.unwrap();
    }
    assert!(
        violations.is_empty(),
        "{} violation(s), seed {seed}: {violations:#?}",
        violations.len()
    );
    assert!(runs.len() >= rounds * 3, "{summary}");
}
