//! The position monitor's run, assembled from the core use cases: stop/target exits
//! for positions whose market is open (`tradeflow_core::exits`), then the
//! reconciliation with the broker (`tradeflow_core::reconcile`), then the bounded
//! commission back-fill (`crate::backfill`). The reconciler lives here rather than
//! in a function of its own: the monitor already runs every minute with the
//! gateway, the books and the submission lease, and one caller per minute keeps the
//! gateway's paced endpoints (orders, trades: one per 5 s) within IBKR's limits.
//!
//! A run that changed or found something is recorded in lineage (execution
//! `position-monitor-<day>`, step `reconcile#<time>`); a difference with the broker
//! also goes out as a `PositionMismatch` event and an EMF metric line
//! (`tradeflow/PositionMismatches`) that an alarm can watch.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use serde_json::{Value, json};
use tradeflow_core::calendar::{Clock, MarketSession};
use tradeflow_core::exits::check_position;
use tradeflow_core::lineage::{LineageRecord, StepStatus};
use tradeflow_core::portfolio::Position;
use tradeflow_core::reconcile::{Report, reconcile};
use tradeflow_core::tracking::poll;

use crate::aws::Deps;
use crate::books::DynamoBooks;
use crate::ibkr::IbkrClient;
use crate::lease::LeasedBroker;

/// Polls of a fresh exit order within the same run (the rest happens next minute).
const FOLLOW_UP_POLLS: u32 = 3;
const FOLLOW_UP_WAIT: Duration = Duration::from_secs(1);

/// One monitor run; never fails as a whole (each part reports its own errors).
pub async fn run(deps: &Deps, ibkr: &IbkrClient, run_id: &str) -> Value {
    let books = deps.books();
    let now = Utc::now();
    let mut report = match books.watched_positions().await {
        Ok(ps) if ps.is_empty() => json!({"checked": 0, "failures": 0, "positions": []}),
        Ok(ps) => exits(deps, ibkr, &books, ps, run_id, now).await,
        Err(e) => json!({"checked": 0, "failures": 1, "error": e.to_string()}),
    };
    let reconciled = reconcile(ibkr, &books, Utc::now()).await;
    record(deps, run_id, now, &reconciled).await;
    report["reconcile"] = json!(reconciled);
    // A separate, bounded pass that never fails the run and ignores market hours.
    report["commission_backfill"] = crate::backfill::run(&books, ibkr, Utc::now()).await;
    report["at"] = json!(now.to_rfc3339_opts(SecondsFormat::Secs, true));
    report
}

async fn exits(
    deps: &Deps,
    ibkr: &IbkrClient,
    books: &DynamoBooks,
    positions: Vec<Position>,
    run_id: &str,
    now: DateTime<Utc>,
) -> Value {
    let clocks = session_clocks(deps, &positions).await;
    let is_open = |p: &Position| clocks.get(&p.strategy_id).is_some_and(|c| c.is_open(now));
    let mut conids: Vec<i64> = positions
        .iter()
        .filter(|p| is_open(p) && p.is_open())
        .map(|p| p.conid)
        .collect();
    conids.sort_unstable();
    conids.dedup();
    let prices = prices(ibkr, &conids).await;
    // Submissions hold the gateway session alone (IBKR's question/reply must not interleave).
    let broker = LeasedBroker::new(ibkr.clone(), deps.submission_lease());
    let (mut out, mut failures) = (Vec::new(), 0);
    for p in positions {
        let key = json!({"strategy_id": p.strategy_id, "conid": p.conid});
        let (open, price) = (is_open(&p), prices.get(&p.conid).copied());
        match check_position(&broker, books, p, open, price, run_id, now).await {
            Ok(r) => {
                if r["action"] == "exit" && r["placed"] == true {
                    follow_up(ibkr, books, r["order_id"].as_str().unwrap_or_default()).await;
                }
                out.push(r);
            }
            Err(e) => {
                failures += 1;
                tracing::error!(error = %e, position = %key, "position check failed");
                out.push(json!({"position": key, "action": "error", "error": e.to_string()}));
            }
        }
    }
    json!({"checked": out.len(), "failures": failures, "positions": out})
}

async fn follow_up(ibkr: &IbkrClient, books: &DynamoBooks, order_id: &str) {
    for _ in 0..FOLLOW_UP_POLLS {
        tokio::time::sleep(FOLLOW_UP_WAIT).await;
        match poll(ibkr, books, order_id, Utc::now()).await {
            Ok(o) if o.is_settled() => break,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, order_id, "follow-up poll failed; the reconciler tracks it");
                break;
            }
        }
    }
}

async fn prices(ibkr: &IbkrClient, conids: &[i64]) -> HashMap<i64, Decimal> {
    if conids.is_empty() {
        return HashMap::new();
    }
    match ibkr.snapshot(conids).await {
        Ok(quotes) => quotes
            .iter()
            .filter_map(|q| Some((q.conid, Decimal::from_f64(q.price()?)?.round_dp(4))))
            .collect(),
        Err(e) => {
            // Exit orders still get tracked; triggers wait for the next run.
            tracing::warn!(error = %e, "no prices from ibkr");
            HashMap::new()
        }
    }
}

/// Lineage of an eventful reconciliation, and the mismatch metric (EMF on stdout,
/// which CloudWatch turns into a metric without an API call).
async fn record(deps: &Deps, run_id: &str, at: DateTime<Utc>, report: &Report) {
    println!(
        "{}",
        json!({
            "_aws": {"Timestamp": at.timestamp_millis(), "CloudWatchMetrics": [{
                "Namespace": "tradeflow", "Dimensions": [[]],
                "Metrics": [{"Name": "PositionMismatches", "Unit": "Count"}, {"Name": "ReconcileErrors", "Unit": "Count"}]}]},
            "PositionMismatches": report.differences.len(),
            "ReconcileErrors": report.errors.len(),
        })
    );
    if !report.is_eventful() {
        return;
    }
    let stamp = at.to_rfc3339_opts(SecondsFormat::Millis, true);
    let rec = LineageRecord {
        execution_id: format!("position-monitor-{}", at.format("%Y-%m-%d")),
        execution_arn: String::new(),
        step_key: format!("reconcile#{stamp}#{run_id}"),
        step_name: "reconcile".into(),
        step_number: 0,
        strategy_id: "#account".into(),
        status: if report.differences.is_empty() {
            StepStatus::Succeeded
        } else {
            StepStatus::Failed
        },
        input: None,
        output: Some(json!(report)),
        error: (!report.differences.is_empty()).then(|| {
            format!(
                "{} contract(s) differ from the broker",
                report.differences.len()
            )
        }),
        error_type: (!report.differences.is_empty()).then(|| "PositionMismatch".to_string()),
        duration_ms: u64::try_from((Utc::now() - at).num_milliseconds()).unwrap_or_default(),
        recorded_at: stamp,
        attempts: 1,
        previous_errors: Vec::new(),
        payload_key: None,
    };
    if let Err(e) = deps.lineage().record(rec).await {
        tracing::warn!(error = %e, "reconcile lineage not recorded");
    }
}

/// The market clock of each position's strategy. A strategy that is gone or whose
/// session does not parse falls back to the default (New York regular hours), so
/// its positions are still watched.
async fn session_clocks(deps: &Deps, positions: &[Position]) -> HashMap<String, Clock> {
    let fallback = MarketSession::default()
        .clock()
        .expect("the default session parses");
    let mut ids: Vec<&str> = positions.iter().map(|p| p.strategy_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    // One read per strategy, all at once: this runs every minute.
    let mut reads = tokio::task::JoinSet::new();
    for id in ids {
        let (store, id) = (deps.store(), id.to_string());
        reads.spawn(async move {
            let read = store.strategy(&id).await;
            (id, read)
        });
    }
    let mut clocks = HashMap::new();
    while let Some(joined) = reads.join_next().await {
        let Ok((id, read)) = joined else {
            continue; // a panicked read: its positions get the fallback below
        };
        let clock = match read {
            Ok(Some(s)) => s.market.clock().unwrap_or_else(|e| {
                tracing::warn!(strategy_id = %id, error = %e, "bad market session; New York hours used");
                fallback
            }),
            Ok(None) => fallback,
            Err(e) => {
                tracing::warn!(strategy_id = %id, error = %e, "strategy unreadable; New York hours used");
                fallback
            }
        };
        clocks.insert(id, clock);
    }
    for p in positions {
        clocks.entry(p.strategy_id.clone()).or_insert(fallback);
    }
    clocks
}
