//! Late commission: what an order's commission, reported by the broker after its
//! last fill was applied, changes in the order, its trades and the position. The
//! fill path counted the unreported part as 0; the back-fill adds the difference
//! where that fill's shares went, as if it had been known at fill time.

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::orders::Order;
use crate::portfolio::{Position, Trade};

/// How long IBKR lists executions (`/iserver/account/trades?days=` at most 7): a
/// commission not reported by then never will be.
pub const REPORT_WINDOW_DAYS: i64 = 7;

/// True when the order is older than the broker's execution window, so its
/// commission can no longer be read (an unparseable time counts as too old).
pub fn past_report_window(created_at: &str, now: DateTime<Utc>) -> bool {
    DateTime::parse_from_rfc3339(created_at).map_or(true, |c| {
        now - c.to_utc() > Duration::days(REPORT_WINDOW_DAYS)
    })
}

/// What a late commission changes, to be written in one transaction (every item
/// with the version it was read at).
#[derive(Debug, Clone, PartialEq)]
pub struct Backfill {
    /// The order: reported commission, flag set, index attribute gone.
    pub order: Order,
    /// The trades that got a share of the difference.
    pub trades: Vec<Trade>,
    /// The position, when its open commission or realised P&L changed.
    pub position: Option<Position>,
    /// Reported cumulative commission − the commission applied with the fills.
    pub difference: Decimal,
    /// The part of the difference no trade or open position holds (the order's
    /// shares were not found): kept on the order only.
    pub unallocated: Decimal,
}

/// The back-filled figures, for the monitor's report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackfillSummary {
    pub order_id: String,
    pub strategy_id: String,
    pub commission: Decimal,
    pub difference: Decimal,
    pub trades: Vec<String>,
    pub position_changed: bool,
    pub unallocated: Decimal,
}

impl Backfill {
    pub fn summary(&self) -> BackfillSummary {
        BackfillSummary {
            order_id: self.order.order_id.clone(),
            strategy_id: self.order.strategy_id.clone(),
            commission: self.order.commission,
            difference: self.difference,
            trades: self.trades.iter().map(|t| t.trade_id.clone()).collect(),
            position_changed: self.position.is_some(),
            unallocated: self.unallocated,
        }
    }
}

enum Piece {
    Trade(usize),
    Open,
}

/// Applies the commission the broker reported late for `order` (cumulative over
/// its executions) to the order, to the trades its shares are in and to
/// `position` (the strategy's item in the contract).
///
/// The difference to what its fills applied is split over the order's shares in
/// proportion to quantity, rounded to the cent with the remainder on the last
/// share so the parts add up exactly: a trade the order closed (its exit
/// commission), a trade that closed shares the order opened (their entry
/// commission), and the shares it opened that are still open (the position's
/// `open_commission`). Each trade's realised P&L becomes gross − commission and the
/// position's realised P&L moves by its trades' shares. A trade counts as reported
/// when the other order of the trade is (`other_reported`, by order id).
///
/// Returns `None` when the order has no commission pending: a second application
/// changes nothing.
pub fn backfill(
    order: &Order,
    reported: Decimal,
    trades: &[Trade],
    position: Option<&Position>,
    other_reported: impl Fn(&str) -> bool,
    now: &str,
) -> Option<Backfill> {
    order.commission_pending.as_ref()?;
    let id = order.order_id.as_str();
    let mut mine: Vec<usize> = (0..trades.len())
        .filter(|&i| trades[i].exit_order_id == id || trades[i].entry_order_id == id)
        .collect();
    mine.sort_by(|&a, &b| {
        (&trades[a].closed_at, &trades[a].trade_id)
            .cmp(&(&trades[b].closed_at, &trades[b].trade_id))
    });
    let mut pieces: Vec<(Piece, Decimal)> = mine
        .into_iter()
        .map(|i| (Piece::Trade(i), trades[i].quantity))
        .collect();
    if let Some(p) = position.filter(|p| p.position_id == id && p.is_open()) {
        pieces.push((Piece::Open, p.quantity.abs()));
    }
    let difference = reported - order.applied_commission;
    let total: Decimal = pieces.iter().map(|(_, q)| *q).sum();
    let mut left = difference;
    let last = pieces.len().saturating_sub(1);
    let mut changed_trades = Vec::new();
    let mut pos = position.cloned();
    let mut pos_changed = false;
    for (n, (piece, qty)) in pieces.iter().enumerate() {
        let part = if n == last {
            left
        } else {
            (difference * qty / total).round_dp(2)
        };
        left -= part;
        match piece {
            Piece::Trade(i) => {
                let mut t = trades[*i].clone();
                t.commission += part;
                t.realized_pnl = t.gross_pnl - t.commission;
                let other = if t.exit_order_id == id {
                    &t.entry_order_id
                } else {
                    &t.exit_order_id
                };
                t.commission_reported = other_reported(other);
                if let Some(p) = pos.as_mut().filter(|p| p.position_id == t.position_id) {
                    p.realized_pnl -= part;
                    pos_changed = true;
                }
                changed_trades.push(t);
            }
            Piece::Open => {
                if let Some(p) = pos.as_mut() {
                    p.open_commission += part;
                    pos_changed = true;
                }
            }
        }
    }
    if let Some(p) = pos.as_mut().filter(|p| p.position_id == id) {
        // Its entry's commission is now all known (one entry order per position).
        pos_changed |= !p.commission_reported;
        p.commission_reported = true;
    }
    if pos_changed && let Some(p) = pos.as_mut() {
        p.updated_at = now.to_string();
    }
    let mut o = order.clone();
    o.commission = reported;
    o.applied_commission = reported;
    o.commission_reported = true;
    o.commission_pending = None;
    let status = o.status;
    o.transition(
        status,
        now,
        Some(format!(
            "commission reported late: {reported} ({difference} not applied at fill time)"
        )),
    );
    Some(Backfill {
        order: o,
        trades: changed_trades,
        position: pos.filter(|_| pos_changed),
        difference,
        unallocated: if pieces.is_empty() {
            difference
        } else {
            Decimal::ZERO
        },
    })
}

/// Stops waiting for a commission the broker can no longer report (older than its
/// execution window): the order leaves the index, stays unreported, and says why.
/// Returns `None` when nothing is pending.
pub fn give_up(order: &Order, now: &str) -> Option<Order> {
    order.commission_pending.as_ref()?;
    let mut o = order.clone();
    o.commission_pending = None;
    let status = o.status;
    o.transition(
        status,
        now,
        Some(format!(
            "commission never reported: IBKR lists executions for {REPORT_WINDOW_DAYS} days; the unreported part counts as 0"
        )),
    );
    Some(o)
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;
    use crate::orders::tests::order;
    use crate::orders::{Fill, OrderStatus, Side, purpose};
    use crate::portfolio::{FillOutcome, apply_fill};

    fn entry(id: &str) -> Order {
        let mut o = order(id, OrderStatus::Submitted);
        o.execution_id = format!("exec-{id}");
        o
    }

    fn exit(id: &str) -> Order {
        let mut o = entry(id);
        o.side = Side::Sell;
        o.purpose = purpose::STOP_EXIT.into();
        o.stop = None;
        o.target = None;
        o
    }

    /// Applies a fill as poll_order does: position and trade, then the order's
    /// applied figures (and its pending mark when the commission was not reported).
    fn fill(
        o: &mut Order,
        p: Option<&Position>,
        qty: Decimal,
        price: Decimal,
        commission: Option<Decimal>,
        at: &str,
    ) -> FillOutcome {
        let mut f = Fill::at_price(
            &o.order_id,
            o.side,
            qty,
            price,
            commission.unwrap_or_default(),
            at,
        );
        f.commission_reported = commission.is_some();
        let out = apply_fill(p, o, &f);
        o.mark_applied(&f);
        o.status = OrderStatus::Filled;
        o.filled_quantity = o.applied_quantity;
        out
    }

    #[test]
    fn a_fill_without_its_commission_marks_the_order_pending_until_one_with_it() {
        let mut o = entry("e0");

        fill(&mut o, None, dec!(4), dec!(100), None, "t1");
        let pending = o.commission_pending.clone();
        fill(&mut o, None, dec!(6), dec!(100), Some(dec!(1.00)), "t2");

        assert_eq!(pending.as_deref(), Some("pending"));
        assert_eq!(o.commission_pending, None);
    }

    /// Buy 300 @ 50.00 (commission late), sell 100 @ 55.00 (USD 1.00 reported); the
    /// entry's USD 1.50 arrives: a third goes to the trade, the rest stays open.
    #[test]
    fn a_late_entry_commission_on_an_open_position_splits_between_trade_and_open_shares() {
        let mut e = entry("e1");
        let mut x = exit("x1");
        let opened = fill(&mut e, None, dec!(300), dec!(50.00), None, "t1");
        let sold = fill(
            &mut x,
            Some(&opened.position),
            dec!(100),
            dec!(55.00),
            Some(dec!(1.00)),
            "t2",
        );
        let t = sold.trade.clone().unwrap();
        assert_eq!(
            (t.commission, t.realized_pnl, t.commission_reported),
            (dec!(1.00), dec!(499.00), false)
        );

        let b = backfill(&e, dec!(1.50), &[t], Some(&sold.position), |_| true, "t3").unwrap();

        let t = &b.trades[0];
        assert_eq!(
            (t.commission, t.realized_pnl, t.commission_reported),
            (dec!(1.50), dec!(498.50), true)
        );
        let p = b.position.unwrap();
        assert_eq!(
            (
                p.quantity,
                p.open_commission,
                p.realized_pnl,
                p.commission_reported
            ),
            (dec!(200), dec!(1.00), dec!(498.50), true)
        );
        assert_eq!(
            (
                b.order.commission,
                b.order.applied_commission,
                b.order.commission_reported,
                b.order.commission_pending.clone()
            ),
            (dec!(1.50), dec!(1.50), true, None)
        );
        assert_eq!((b.difference, b.unallocated), (dec!(1.50), dec!(0)));
        // Closing the rest later realises exactly the remaining entry commission.
        let mut x2 = exit("x2");
        let rest = fill(
            &mut x2,
            Some(&p),
            dec!(200),
            dec!(50.00),
            Some(dec!(1.00)),
            "t4",
        );
        assert_eq!(rest.trade.unwrap().commission, dec!(2.00));
        assert_eq!(rest.position.realized_pnl, dec!(496.50));
    }

    /// Buy 10 @ 100.00 (USD 1.00 reported), sell 10 @ 103.00 with the commission late.
    #[test]
    fn a_late_exit_commission_on_a_closed_trade_comes_off_its_pnl() {
        let mut e = entry("e2");
        let mut x = exit("x2");
        let opened = fill(&mut e, None, dec!(10), dec!(100.00), Some(dec!(1.00)), "t1");
        let closed = fill(
            &mut x,
            Some(&opened.position),
            dec!(10),
            dec!(103.00),
            None,
            "t2",
        );
        let t = closed.trade.clone().unwrap();
        assert_eq!((t.commission, t.realized_pnl), (dec!(1.00), dec!(29.00)));

        let b = backfill(
            &x,
            dec!(1.00),
            &[t],
            Some(&closed.position),
            |id| id == "e2",
            "t3",
        )
        .unwrap();

        let t = &b.trades[0];
        assert_eq!(
            (t.commission, t.realized_pnl, t.commission_reported),
            (dec!(2.00), dec!(28.00), true)
        );
        let p = b.position.unwrap();
        assert!(!p.is_open());
        assert_eq!((p.realized_pnl, p.open_commission), (dec!(28.00), dec!(0)));
        assert_eq!(b.order.commission, dec!(1.00));
        assert!(
            b.order
                .history
                .last()
                .unwrap()
                .note
                .as_deref()
                .unwrap()
                .contains("1.00")
        );
    }

    /// Both commissions late: the entry's first, then the exit's, whichever order.
    #[rstest::rstest]
    #[case(true)]
    #[case(false)]
    fn both_commissions_late_add_up_to_the_cent_in_either_order(#[case] entry_first: bool) {
        let mut e = entry("e3");
        let mut x = exit("x3");
        let opened = fill(&mut e, None, dec!(333), dec!(187.23), None, "t1");
        let closed = fill(
            &mut x,
            Some(&opened.position),
            dec!(333),
            dec!(191.07),
            None,
            "t2",
        );
        let t = closed.trade.clone().unwrap();
        assert_eq!((t.commission, t.realized_pnl), (dec!(0), dec!(1278.72)));
        let reported = |o: &Order| {
            if o.order_id == "e3" {
                dec!(1.67)
            } else {
                dec!(1.66)
            }
        };
        let (first, second) = if entry_first { (&e, &x) } else { (&x, &e) };

        let a = backfill(
            first,
            reported(first),
            &[t],
            Some(&closed.position),
            |_| false,
            "t3",
        )
        .unwrap();
        let mid = a.trades[0].clone();
        let b = backfill(
            second,
            reported(second),
            std::slice::from_ref(&mid),
            a.position.as_ref(),
            |_| true,
            "t4",
        )
        .unwrap();

        assert!(!mid.commission_reported);
        let t = &b.trades[0];
        assert_eq!(
            (t.commission, t.realized_pnl, t.commission_reported),
            (dec!(3.33), dec!(1275.39), true)
        );
        assert_eq!(b.position.unwrap().realized_pnl, dec!(1275.39));
    }

    #[test]
    fn thirds_of_a_late_commission_add_up_to_it_exactly() {
        let mut e = entry("e4");
        let mut p = fill(&mut e, None, dec!(3), dec!(10.00), None, "t1").position;
        let mut trades = Vec::new();
        for (n, at) in ["t2", "t3", "t4"].into_iter().enumerate() {
            let mut x = exit(&format!("x4-{n}"));
            let out = fill(&mut x, Some(&p), dec!(1), dec!(10.00), Some(dec!(0)), at);
            trades.push(out.trade.unwrap());
            p = out.position;
        }

        let b = backfill(&e, dec!(1.00), &trades, Some(&p), |_| true, "t5").unwrap();

        let parts: Vec<Decimal> = b.trades.iter().map(|t| t.commission).collect();
        assert_eq!(parts, [dec!(0.33), dec!(0.33), dec!(0.34)]);
        assert_eq!(b.position.unwrap().realized_pnl, dec!(-1.00));
    }

    #[test]
    fn a_second_backfill_of_the_same_order_changes_nothing() {
        let mut e = entry("e5");
        let opened = fill(&mut e, None, dec!(10), dec!(100.00), None, "t1");
        let b = backfill(&e, dec!(1.00), &[], Some(&opened.position), |_| true, "t2").unwrap();

        let again = backfill(
            &b.order,
            dec!(1.00),
            &[],
            b.position.as_ref(),
            |_| true,
            "t3",
        );

        assert_eq!(b.position.unwrap().open_commission, dec!(1.00));
        assert_eq!(again, None);
    }

    #[test]
    fn commission_the_fill_path_already_applied_is_not_applied_again() {
        let mut e = entry("e6");
        let first = fill(&mut e, None, dec!(4), dec!(100.00), Some(dec!(1.00)), "t1");
        let both = fill(
            &mut e,
            Some(&first.position),
            dec!(6),
            dec!(100.00),
            None,
            "t2",
        );

        let b = backfill(&e, dec!(1.20), &[], Some(&both.position), |_| true, "t3").unwrap();

        assert_eq!(b.difference, dec!(0.20));
        assert_eq!(b.position.unwrap().open_commission, dec!(1.20));
    }

    #[rstest::rstest]
    #[case("2026-01-01T10:00:00Z", false)]
    #[case("2025-12-31T09:59:59Z", true)]
    #[case("garbled", true)]
    fn the_broker_keeps_a_week_of_executions(#[case] created_at: &str, #[case] gone: bool) {
        let now = DateTime::parse_from_rfc3339("2026-01-07T10:00:00Z")
            .unwrap()
            .to_utc();

        assert_eq!(past_report_window(created_at, now), gone);
    }

    #[test]
    fn giving_up_takes_the_order_off_the_index_and_says_why() {
        let mut e = entry("e7");
        fill(&mut e, None, dec!(10), dec!(100.00), None, "t1");

        let o = give_up(&e, "t9").unwrap();

        assert_eq!(
            (o.commission_pending.as_deref(), o.commission_reported),
            (None, false)
        );
        assert!(
            o.history
                .last()
                .unwrap()
                .note
                .as_deref()
                .unwrap()
                .contains("7 days")
        );
        assert_eq!(give_up(&o, "t10"), None);
    }
}
