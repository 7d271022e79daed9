//! Reconciliation: the books made to agree with the broker, every monitor cycle.
//!
//! 1. Every order the books hold as working (the `working` index) is polled to its
//!    end, whoever placed it and whatever became of that run (I3): SUBMITTING ones
//!    are found by cOID, then by executions, and after `SUBMIT_GRACE_SECONDS` count
//!    as never sent; orders the gateway's session forgot are resolved from their
//!    executions (see `tracking`).
//! 2. Claims no order will ever free are released (I5): an entry or exit claim
//!    whose order was never created (older than `CLAIM_GRACE_SECONDS`) or whose
//!    order settled, and a contract claim whose strategy is flat with nothing working.
//! 3. The broker's position in every contract is compared with the sum of the books'
//!    (I4). A difference is re-checked once after polling that contract's working
//!    orders again (a fill may land between the two reads); one that stays is
//!    reported (event, metric, the run's lineage), never written over.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::books::Books;
use crate::orders::{Broker, OrderError};
use crate::portfolio::Position;
use crate::tracking::{POSITION_MISMATCH, age_seconds, free_claims, poll};

/// A claim without its order is stale after this long. place_order takes the claim
/// and creates the order within one invocation, which its 150 s timeout ends
/// (infra/resources.json, statemachine/trading_workflow.asl.json); the store refuses
/// to create the order once the claim is gone, so releasing a slow one early would
/// be safe, only wasteful.
pub const CLAIM_GRACE_SECONDS: i64 = 180;

/// Working orders polled per run at most (a run must fit its 60 s timeout; each
/// poll is one or two gateway calls, paced by the IBKR client).
pub const MAX_TRACKED_PER_RUN: usize = 40;

/// A contract where the books and the broker disagree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionDifference {
    pub conid: i64,
    pub broker: Decimal,
    pub books: Decimal,
    /// (strategy, quantity) of the books' positions in the contract.
    pub strategies: Vec<(String, Decimal)>,
}

/// What one reconciliation run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub tracked: Vec<Value>,
    pub claims_freed: Vec<Value>,
    pub differences: Vec<PositionDifference>,
    pub errors: Vec<String>,
    /// False when the broker's positions could not be read (nothing compared).
    pub compared: bool,
}

impl Report {
    /// True when the run changed something or found something to report.
    pub fn is_eventful(&self) -> bool {
        !self.tracked.is_empty()
            || !self.claims_freed.is_empty()
            || !self.differences.is_empty()
            || !self.errors.is_empty()
    }
}

/// Books' quantity per contract over open positions.
fn books_by_conid(positions: &[Position]) -> BTreeMap<i64, Vec<(String, Decimal)>> {
    let mut m: BTreeMap<i64, Vec<(String, Decimal)>> = BTreeMap::new();
    for p in positions.iter().filter(|p| p.is_open()) {
        m.entry(p.conid)
            .or_default()
            .push((p.strategy_id.clone(), p.quantity));
    }
    m
}

/// The contracts whose broker and books quantities differ.
pub fn compare_positions(
    books: &[Position],
    broker: &[crate::orders::BrokerPosition],
) -> Vec<PositionDifference> {
    let ours = books_by_conid(books);
    let theirs: BTreeMap<i64, Decimal> = broker
        .iter()
        .filter(|b| !b.quantity.is_zero())
        .map(|b| (b.conid, b.quantity))
        .collect();
    let conids: BTreeSet<i64> = ours.keys().chain(theirs.keys()).copied().collect();
    conids
        .into_iter()
        .filter_map(|conid| {
            let strategies = ours.get(&conid).cloned().unwrap_or_default();
            let books: Decimal = strategies.iter().map(|(_, q)| *q).sum();
            let broker = theirs.get(&conid).copied().unwrap_or_default();
            (books != broker).then_some(PositionDifference {
                conid,
                broker,
                books,
                strategies,
            })
        })
        .collect()
}

async fn track_working<B: Broker, S: Books>(
    broker: &B,
    books: &S,
    only: Option<&BTreeSet<i64>>,
    now: DateTime<Utc>,
    report: &mut Report,
) -> Result<(), OrderError> {
    for o in books.working_orders(MAX_TRACKED_PER_RUN).await? {
        if only.is_some_and(|c| !c.contains(&o.conid)) {
            continue;
        }
        match poll(broker, books, &o.order_id, now).await {
            Ok(after) => {
                if after.status != o.status || after.version != o.version {
                    report.tracked.push(json!({
                        "order_id": after.order_id, "strategy_id": after.strategy_id,
                        "from": o.status, "to": after.status, "filled": after.filled_quantity,
                        "settled": after.is_settled(),
                    }));
                }
            }
            Err(e) => report.errors.push(format!("order {}: {e}", o.order_id)),
        }
    }
    Ok(())
}

async fn free_stale<S: Books>(
    books: &S,
    now: DateTime<Utc>,
    report: &mut Report,
) -> Result<(), OrderError> {
    let stale = |since: &Option<String>| {
        since
            .as_deref()
            .is_none_or(|t| age_seconds(t, now) >= CLAIM_GRACE_SECONDS)
    };
    for p in books.watched_positions().await? {
        let mut entry = None;
        let mut exit = None;
        if let Some(id) = &p.entry_order_id {
            match books.get(id).await? {
                Some(o) if o.is_settled() => entry = Some(id.clone()),
                None if stale(&p.entry_claimed_at) => entry = Some(id.clone()),
                _ => {}
            }
        }
        if let Some(id) = &p.exit_order_id {
            match books.get(id).await? {
                Some(o) if o.is_settled() => exit = Some(id.clone()),
                None if stale(&p.exit_claimed_at) => exit = Some(id.clone()),
                _ => {}
            }
        }
        if entry.is_some() || exit.is_some() {
            let freed = free_claims(
                books,
                &p.strategy_id,
                p.conid,
                entry.as_deref(),
                exit.as_deref(),
                now,
            )
            .await?;
            if !freed.is_empty() {
                report
                    .claims_freed
                    .push(json!({"strategy_id": p.strategy_id, "conid": p.conid, "freed": freed}));
            }
        }
    }
    for c in books.contract_claims().await? {
        if age_seconds(&c.claimed_at, now) < CLAIM_GRACE_SECONDS {
            continue;
        }
        let p = books.position(&c.holder, c.conid).await?;
        let idle = p.as_ref().is_none_or(|p| {
            !p.is_open() && p.entry_order_id.is_none() && p.exit_order_id.is_none()
        });
        if idle {
            let freed = free_claims(books, &c.holder, c.conid, None, None, now).await?;
            if freed.is_empty() && p.is_none() {
                // No position item at all: nothing to write it with; leave it reported.
                report.errors.push(format!(
                    "contract claim {} of {} has no position item",
                    c.conid, c.holder
                ));
            } else if !freed.is_empty() {
                report
                    .claims_freed
                    .push(json!({"strategy_id": c.holder, "conid": c.conid, "freed": freed}));
            }
        }
    }
    Ok(())
}

/// One reconciliation run (see the module doc). Errors of single orders are in the
/// report; a run never stops half-way for one of them.
pub async fn reconcile<B: Broker, S: Books>(broker: &B, books: &S, now: DateTime<Utc>) -> Report {
    let mut report = Report::default();
    if let Err(e) = track_working(broker, books, None, now, &mut report).await {
        report.errors.push(format!("working orders: {e}"));
    }
    if let Err(e) = free_stale(books, now, &mut report).await {
        report.errors.push(format!("claims: {e}"));
    }
    match differences(broker, books).await {
        Ok(first) if first.is_empty() => report.compared = true,
        Ok(first) => {
            // A fill between our poll and the positions read looks like a difference.
            let conids: BTreeSet<i64> = first.iter().map(|d| d.conid).collect();
            if let Err(e) = track_working(broker, books, Some(&conids), now, &mut report).await {
                report.errors.push(format!("working orders: {e}"));
            }
            match differences(broker, books).await {
                Ok(second) => {
                    report.compared = true;
                    report.differences = second
                        .into_iter()
                        .filter(|d| conids.contains(&d.conid))
                        .collect();
                }
                Err(e) => report.errors.push(format!("positions: {e}")),
            }
        }
        Err(e) => report.errors.push(format!("positions: {e}")),
    }
    for d in &report.differences {
        tracing::error!(conid = d.conid, broker = %d.broker, books = %d.books, "books disagree with the broker");
        if let Err(e) = books.publish(POSITION_MISMATCH, &json!(d)).await {
            report.errors.push(format!("event for {}: {e}", d.conid));
        }
    }
    report
}

async fn differences<B: Broker, S: Books>(
    broker: &B,
    books: &S,
) -> Result<Vec<PositionDifference>, OrderError> {
    let theirs = broker.positions().await?;
    let ours = books.watched_positions().await?;
    Ok(compare_positions(&ours, &theirs))
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;
    use crate::orders::BrokerPosition;

    fn pos(strategy: &str, conid: i64, qty: Decimal) -> Position {
        let mut p = Position::flat(strategy, conid, "X", "2026-01-05T15:00:00Z");
        p.quantity = qty;
        p
    }

    #[test]
    fn positions_agree_per_contract_summed_over_strategies() {
        let books = [
            pos("a", 1, dec!(10)),
            pos("b", 1, dec!(-4)),
            pos("a", 2, dec!(0)),
        ];
        let broker = [BrokerPosition {
            conid: 1,
            quantity: dec!(6),
        }];

        assert!(compare_positions(&books, &broker).is_empty());
    }

    #[test]
    fn a_position_only_one_side_knows_is_a_difference_on_both_sides() {
        let books = [pos("a", 1, dec!(10))];
        let broker = [
            BrokerPosition {
                conid: 1,
                quantity: dec!(7),
            },
            BrokerPosition {
                conid: 3,
                quantity: dec!(5),
            },
        ];

        let d = compare_positions(&books, &broker);

        assert_eq!(
            d.iter()
                .map(|d| (d.conid, d.books, d.broker))
                .collect::<Vec<_>>(),
            vec![(1, dec!(10), dec!(7)), (3, dec!(0), dec!(5))]
        );
        assert_eq!(d[0].strategies, vec![("a".to_string(), dec!(10))]);
    }
}
