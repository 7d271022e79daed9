//! The IBKR client as the money path's `Broker`: orders, their status, executions
//! (commission and the fallback for orders a gateway session forgot), positions and
//! cash, with IBKR's errors mapped to what exactly-once placement and tracking need.

use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use tradeflow_core::orders::{
    Broker, BrokerAck, BrokerError, BrokerExecution, BrokerOrder, BrokerPosition, Order,
    OrderStatus,
};

use crate::ibkr::types::{OrderRequest, OrderType, order_commission};
use crate::ibkr::{IbkrClient, IbkrError};

fn decimal(x: f64) -> Option<Decimal> {
    Decimal::from_f64(x).map(|d| d.round_dp(6).normalize())
}

fn broker_error(e: IbkrError) -> BrokerError {
    match e {
        IbkrError::DuplicateOrder { coid } => BrokerError::Duplicate(coid),
        IbkrError::OrderRejected { message } => BrokerError::Rejected(message),
        // A garbled answer to an order says nothing about whether it went out.
        e if e.is_retryable() || matches!(e, IbkrError::Malformed { .. }) => {
            BrokerError::Unavailable(e.to_string())
        }
        e => BrokerError::Failed(e.to_string()),
    }
}

fn report(id: i64, raw: &str, filled: f64, avg: Option<f64>) -> BrokerOrder {
    let filled = decimal(filled).unwrap_or_default();
    BrokerOrder {
        broker_order_id: id.to_string(),
        status: OrderStatus::from_broker(raw, filled),
        raw_status: raw.to_string(),
        filled,
        avg_price: avg.filter(|p| *p > 0.0).and_then(decimal),
        // Neither order endpoint reports commission: `Broker::commission` reads it
        // from /iserver/account/trades.
        commission: None,
    }
}

impl Broker for IbkrClient {
    async fn submit(&self, order: &Order) -> Result<BrokerAck, BrokerError> {
        let req = OrderRequest {
            conid: order.conid,
            coid: order.order_id.clone(),
            order_type: if order.order_type == "MKT" {
                OrderType::Market
            } else {
                OrderType::Limit
            },
            side: order.side,
            quantity: order.quantity,
            limit_price: order.limit_price,
            tif: order.tif.clone(),
            outside_rth: false,
        };
        let placed = self.place_order(&req).await.map_err(broker_error)?;
        Ok(BrokerAck {
            questions: placed.questions.iter().map(|q| q.summary()).collect(),
            broker_order_id: placed.order_id,
            status: OrderStatus::from_broker(&placed.status, Decimal::ZERO),
            raw_status: placed.status,
        })
    }

    async fn find_by_ref(&self, coid: &str) -> Result<Option<BrokerOrder>, BrokerError> {
        let found = self.find_order_by_ref(coid).await.map_err(broker_error)?;
        Ok(found.map(|o| report(o.order_id, &o.status, o.filled_quantity, o.avg_price)))
    }

    async fn status(&self, broker_order_id: &str) -> Result<BrokerOrder, BrokerError> {
        let s = self
            .order_status(broker_order_id)
            .await
            .map_err(|e| match e {
                // IBKR answers 503 on order status for orders of an earlier brokerage
                // session (IBKR Campus Web API v1.0, "Order Status"); the client types it.
                IbkrError::OrderNotInSession { .. } => {
                    BrokerError::NotInSession(broker_order_id.to_string())
                }
                e => broker_error(e),
            })?;
        Ok(report(
            s.order_id,
            &s.order_status,
            s.cum_fill,
            s.average_price,
        ))
    }

    async fn cancel(&self, broker_order_id: &str) -> Result<(), BrokerError> {
        self.cancel_order(broker_order_id)
            .await
            .map(|_| ())
            .map_err(broker_error)
    }

    async fn commission(
        &self,
        order: &Order,
        filled: Decimal,
    ) -> Result<Option<Decimal>, BrokerError> {
        let executions = self
            .trades(trade_days(&order.created_at, chrono::Utc::now()))
            .await
            .map_err(broker_error)?;
        Ok(order_commission(
            &executions,
            &order.order_id,
            order.broker_order_id.as_deref(),
            filled,
        ))
    }

    async fn executions(&self, days: u32) -> Result<Vec<BrokerExecution>, BrokerError> {
        let rows = self
            .trades(Some(days.clamp(1, 7)))
            .await
            .map_err(broker_error)?;
        Ok(rows
            .into_iter()
            .filter_map(|e| {
                Some(BrokerExecution {
                    execution_id: e.execution_id,
                    order_ref: e.order_ref,
                    broker_order_id: e.order_id.map(|id| id.to_string()),
                    conid: e.conid,
                    size: e.size?,
                    price: e.price?,
                    commission: e.commission,
                })
            })
            .collect())
    }

    async fn positions(&self) -> Result<Vec<BrokerPosition>, BrokerError> {
        let rows = IbkrClient::positions(self).await.map_err(broker_error)?;
        Ok(rows
            .into_iter()
            .map(|p| BrokerPosition {
                conid: p.conid,
                quantity: decimal(p.position).unwrap_or_default(),
            })
            .collect())
    }

    async fn cash(&self, currency: &str) -> Result<Decimal, BrokerError> {
        let ledger = self.ledger().await.map_err(broker_error)?;
        let entry = ledger
            .get(currency)
            .or_else(|| ledger.get("BASE"))
            .ok_or_else(|| BrokerError::Failed(format!("no {currency} or BASE ledger at IBKR")))?;
        Ok(Decimal::from_f64(entry.cashbalance)
            .unwrap_or_default()
            .round_dp(2))
    }
}

/// The `days` of executions that cover an order created at `created_at`: without
/// it IBKR lists the current day only, and its day is not the UTC day, so one day
/// of slack; at most IBKR's 7.
pub fn trade_days(created_at: &str, now: chrono::DateTime<chrono::Utc>) -> Option<u32> {
    let created = chrono::DateTime::parse_from_rfc3339(created_at).ok()?;
    let age = (now.date_naive() - created.date_naive()).num_days();
    Some(u32::try_from(age + 2).unwrap_or(2).min(7))
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tradeflow_core::portfolio::apply_fill;

    use super::*;
    use crate::ibkr::types::Execution;

    #[test]
    fn order_errors_keep_their_meaning_for_exactly_once() {
        assert_eq!(
            broker_error(IbkrError::DuplicateOrder {
                coid: "tf-1".into()
            }),
            BrokerError::Duplicate("tf-1".into())
        );
        assert!(matches!(
            broker_error(IbkrError::OrderRejected {
                message: "no".into()
            }),
            BrokerError::Rejected(_)
        ));
        assert!(matches!(
            broker_error(IbkrError::Malformed {
                endpoint: "place order",
                detail: "<html>".into()
            }),
            BrokerError::Unavailable(_)
        ));
        assert!(matches!(
            broker_error(IbkrError::Http {
                endpoint: "place order",
                status: 503,
                message: String::new()
            }),
            BrokerError::Unavailable(_)
        ));
        assert!(matches!(
            broker_error(IbkrError::NotAuthenticated),
            BrokerError::Failed(_)
        ));
    }

    fn order(coid: &str, side: tradeflow_core::orders::Side) -> Order {
        Order::new(
            tradeflow_core::orders::NewOrder {
                order_id: coid.into(),
                strategy_id: "s1".into(),
                execution_id: format!("exec-{coid}"),
                conid: 265598,
                symbol: "AAPL".into(),
                side,
                order_type: "LMT".into(),
                quantity: Decimal::from(333),
                limit_price: None,
                tif: "DAY".into(),
                stop: None,
                target: None,
                purpose: "entry".into(),
                position_id: None,
                sizing: None,
            },
            OrderStatus::Submitted,
            "2026-01-05T15:00:00Z",
            None,
        )
    }

    /// What `/iserver/account/trades` lists for one execution (strings as IBKR sends them).
    fn execution(coid: &str, size: u32, price: &str, commission: &str) -> Execution {
        serde_json::from_value(json!({
            "execution_id": format!("{coid}.{size}"), "order_ref": coid, "order_id": 1,
            "conid": "265598", "side": "B", "size": size, "price": price,
            "commission": commission, "net_amount": 0, "trade_time_r": 1_767_625_200_000_i64,
        }))
        .unwrap()
    }

    /// The broker's report of a filled order, with the commission of its executions.
    fn filled(order: &Order, avg: &str, executions: &[Execution]) -> BrokerOrder {
        let mut r = report(1, "Filled", 333.0, avg.parse().ok());
        r.commission = order_commission(executions, &order.order_id, None, r.filled);
        r
    }

    #[test]
    fn a_round_trip_is_net_of_both_reported_commissions_to_the_cent() {
        use tradeflow_core::orders::Side;
        let entry = order("tf-in", Side::Buy);
        let exit = order("tf-out", Side::Sell);
        let bought = filled(
            &entry,
            "187.23",
            &[
                execution("tf-in", 200, "187.23", "1.00"),
                execution("tf-in", 133, "187.23", "0.67"),
            ],
        );
        let sold = filled(
            &exit,
            "191.07",
            &[execution("tf-out", 333, "191.07", "1.67")],
        );

        let in_fill = entry.unapplied_fill(&bought, "t1").unwrap();
        let opened = apply_fill(None, &entry, &in_fill);
        let out_fill = exit.unapplied_fill(&sold, "t2").unwrap();
        let closed = apply_fill(Some(&opened.position), &exit, &out_fill);

        let t = closed.trade.unwrap();
        // 333 × (191.07 − 187.23) = 1278.72; commission 1.67 in + 1.67 out.
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        assert_eq!(
            (t.gross_pnl, t.commission, t.realized_pnl),
            (d("1278.72"), d("3.34"), d("1275.38"))
        );
        assert!(t.commission_reported);
        assert_eq!(closed.position.realized_pnl, d("1275.38"));
    }

    #[test]
    fn executions_are_asked_for_since_the_day_before_the_order() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-01-07T15:00:00Z")
            .unwrap()
            .to_utc();

        assert_eq!(trade_days("2026-01-07T14:59:00.000Z", now), Some(2));
        assert_eq!(trade_days("2026-01-05T23:00:00Z", now), Some(4));
        assert_eq!(trade_days("2025-12-01T10:00:00Z", now), Some(7));
        assert_eq!(trade_days("garbled", now), None);
    }

    #[test]
    fn ibkr_reports_become_exact_decimals() {
        let r = report(42, "Submitted", 4.0, Some(101.2));

        assert_eq!(r.status, OrderStatus::PartiallyFilled);
        assert_eq!(r.filled, Decimal::from(4));
        assert_eq!(r.avg_price, Some(Decimal::new(1012, 1)));
        assert_eq!(report(42, "Submitted", 0.0, Some(0.0)).avg_price, None);
    }
}
