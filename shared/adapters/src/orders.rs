//! The money side on AWS and IBKR: order, position, trade and portfolio items in
//! DynamoDB (optimistic versions; a fill is one transaction over order, position and
//! trade), the IBKR client as the order `Broker`, domain events to EventBridge, and
//! the order tracking shared by check_order and the position monitor.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem};
use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use serde::Serialize;
use serde_json::{Value, json};
use thiserror::Error;
use tradeflow_core::StepError;
use tradeflow_core::commission::Backfill;
use tradeflow_core::orders::{
    Broker, BrokerAck, BrokerError, BrokerOrder, COMMISSION_PENDING, Order, OrderStatus,
    OrderStore, OrderStoreError, with_commission,
};
use tradeflow_core::portfolio::{Drawdown, FillOutcome, Position, Trade, apply_fill};

use crate::aws::Deps;
use crate::ibkr::types::{OrderRequest, OrderType, order_commission};
use crate::ibkr::{IbkrClient, IbkrError};
use crate::store::{Item, Store, StoreError, from_item, s, to_item};

/// Event source of tradeflow's domain events (rules match on it).
pub const EVENT_SOURCE: &str = "tradeflow";
pub const ORDER_FILLED: &str = "OrderFilled";
pub const POSITION_CLOSED: &str = "PositionClosed";
/// The orders table's sparse index of orders whose commission is pending.
pub const COMMISSION_PENDING_INDEX: &str = "commission_pending";

#[derive(Debug, Error)]
pub enum BookError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0} changed concurrently; retry")]
    Conflict(String),
    #[error("eventbridge put_events: {0}")]
    Events(String),
}

impl From<BookError> for StepError {
    fn from(e: BookError) -> Self {
        match e {
            BookError::Store(s) => s.into(),
            // Both are cured by running again: re-read the items, re-send the event.
            BookError::Conflict(_) | BookError::Events(_) => StepError::transient(e.to_string()),
        }
    }
}

impl From<BookError> for OrderStoreError {
    fn from(e: BookError) -> Self {
        match e {
            BookError::Conflict(what) => OrderStoreError::Conflict(what),
            BookError::Store(StoreError::Dynamo { .. }) | BookError::Events(_) => {
                OrderStoreError::Failed {
                    message: e.to_string(),
                    retryable: true,
                }
            }
            BookError::Store(_) => OrderStoreError::Failed {
                message: e.to_string(),
                retryable: false,
            },
        }
    }
}

fn dynamo<E>(op: &'static str, table: &str, e: E) -> BookError
where
    E: std::error::Error + Send + Sync + 'static,
{
    BookError::Store(StoreError::Dynamo {
        op,
        table: table.into(),
        throttled: false,
        source: Box::new(e),
    })
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// Orders, positions, trades and portfolio snapshots, plus the event bus.
#[derive(Debug, Clone)]
pub struct OrderBook {
    store: Store,
    events: aws_sdk_eventbridge::Client,
    bus: String,
}

impl Deps {
    pub fn order_book(&self) -> OrderBook {
        OrderBook {
            store: self.store(),
            events: self.events.clone(),
            bus: self.config.event_bus_name.clone(),
        }
    }
}

fn position_key(strategy_id: &str, conid: i64) -> Item {
    HashMap::from([
        ("strategy_id".into(), s(strategy_id)),
        ("conid".into(), s(conid.to_string())),
    ])
}

impl OrderBook {
    fn orders(&self) -> &str {
        &self.store.tables.orders
    }

    fn positions(&self) -> &str {
        &self.store.tables.positions
    }

    fn trades(&self) -> &str {
        &self.store.tables.trades
    }

    /// A put that succeeds only if the stored item still has `expected` as version
    /// (or, for version 0, does not exist yet).
    fn versioned_put<T: Serialize>(
        table: &str,
        value: &T,
        key_attr: &str,
        expected: u64,
        may_be_new: bool,
    ) -> Result<Put, BookError> {
        let item = to_item(table, value)?;
        let b = Put::builder().table_name(table).set_item(Some(item));
        let b = if may_be_new {
            b.condition_expression("attribute_not_exists(#k) OR #v = :v")
                .expression_attribute_names("#k", key_attr)
        } else {
            b.condition_expression("#v = :v")
        };
        b.expression_attribute_names("#v", "version")
            .expression_attribute_values(":v", n(expected))
            .build()
            .map_err(|e| dynamo("transact", table, e))
    }

    async fn put_versioned<T: Serialize>(
        &self,
        table: &str,
        value: &T,
        key_attr: &str,
        expected: u64,
        may_be_new: bool,
        what: &str,
    ) -> Result<(), BookError> {
        let p = Self::versioned_put(table, value, key_attr, expected, may_be_new)?;
        // A one-item transaction: same condition semantics as the fill commit.
        self.transact(
            table,
            vec![TransactWriteItem::builder().put(p).build()],
            what,
        )
        .await
    }

    /// Writes `items` all or none; a failed condition is `Conflict(what)`.
    async fn transact(
        &self,
        table: &str,
        items: Vec<TransactWriteItem>,
        what: &str,
    ) -> Result<(), BookError> {
        match self
            .store
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some("TransactionCanceledException") => {
                Err(BookError::Conflict(what.to_string()))
            }
            Err(e) => Err(dynamo("transact", table, e)),
        }
    }

    /// The strategy's position in a contract (open or the last closed one).
    ///
    /// # Errors
    /// DynamoDB errors or a malformed item.
    pub async fn position(
        &self,
        strategy_id: &str,
        conid: i64,
    ) -> Result<Option<Position>, BookError> {
        Ok(self
            .store
            .get(self.positions(), position_key(strategy_id, conid))
            .await?)
    }

    /// Every position item of a strategy.
    ///
    /// # Errors
    /// DynamoDB errors or a malformed item.
    pub async fn positions_of(&self, strategy_id: &str) -> Result<Vec<Position>, BookError> {
        Ok(self
            .store
            .query(
                self.positions(),
                None,
                "strategy_id",
                strategy_id,
                false,
                None,
            )
            .await?)
    }

    /// Every open position of every strategy (a scan: the table holds one item per
    /// strategy and contract). Items that are not positions are skipped, logged.
    ///
    /// # Errors
    /// DynamoDB errors or a malformed item.
    pub async fn open_positions(&self) -> Result<Vec<Position>, BookError> {
        let table = self.positions();
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let page = self
                .store
                .client
                .scan()
                .table_name(table)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| dynamo("scan", table, e))?;
            for item in page.items.unwrap_or_default() {
                let key = (item.get("strategy_id").cloned(), item.get("conid").cloned());
                // One item written by other code must not stop the monitoring of the rest.
                match from_item::<Position>(table, item) {
                    Ok(p) if p.is_open() => out.push(p),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, ?key, "position item skipped"),
                }
            }
            match page.last_evaluated_key {
                Some(k) => start = Some(k),
                None => break,
            }
        }
        Ok(out)
    }

    /// Writes a position if nobody changed it since it was read; bumps its version.
    ///
    /// # Errors
    /// `Conflict` when it changed, DynamoDB errors.
    pub async fn save_position(&self, p: &mut Position) -> Result<(), BookError> {
        let expected = p.version;
        let mut next = p.clone();
        next.version += 1;
        self.put_versioned(
            self.positions(),
            &next,
            "strategy_id",
            expected,
            expected == 0,
            &format!("position {}/{}", p.strategy_id, p.conid),
        )
        .await?;
        *p = next;
        Ok(())
    }

    /// Commits what a fill did, atomically: the order (applied figures), the position
    /// and the trade. A concurrent poll that applied the same fill makes this fail
    /// with `Conflict` instead of applying it twice.
    ///
    /// # Errors
    /// `Conflict`, DynamoDB errors.
    pub async fn commit_fill(
        &self,
        order: &mut Order,
        outcome: &mut FillOutcome,
        previous_position_version: Option<u64>,
    ) -> Result<(), BookError> {
        let mut next_order = order.clone();
        next_order.version += 1;
        let mut next_pos = outcome.position.clone();
        next_pos.version = previous_position_version.map_or(1, |v| v + 1);
        let mut items = vec![
            TransactWriteItem::builder()
                .put(Self::versioned_put(
                    self.orders(),
                    &next_order,
                    "order_id",
                    order.version,
                    false,
                )?)
                .build(),
            TransactWriteItem::builder()
                .put(Self::versioned_put(
                    self.positions(),
                    &next_pos,
                    "strategy_id",
                    previous_position_version.unwrap_or(0),
                    previous_position_version.is_none(),
                )?)
                .build(),
        ];
        if let Some(t) = &outcome.trade {
            let put = Put::builder()
                .table_name(self.trades())
                .set_item(Some(to_item(self.trades(), t)?))
                .condition_expression("attribute_not_exists(trade_id)")
                .build()
                .map_err(|e| dynamo("transact", self.trades(), e))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        self.transact(
            self.orders(),
            items,
            &format!("fill of order {}", order.order_id),
        )
        .await?;
        *order = next_order;
        outcome.position = next_pos;
        Ok(())
    }

    /// Orders whose applied fills lack their commission, oldest first, at most
    /// `limit`: the sparse `commission_pending` index holds only those. An index
    /// read is eventually consistent; re-read an order before acting on it.
    ///
    /// # Errors
    /// DynamoDB errors or a malformed item.
    pub async fn commission_pending(&self, limit: i32) -> Result<Vec<Order>, BookError> {
        Ok(self
            .store
            .query(
                self.orders(),
                Some(COMMISSION_PENDING_INDEX),
                "commission_pending",
                COMMISSION_PENDING,
                false,
                Some(limit),
            )
            .await?)
    }

    /// The trades an order's shares are in: those it closed and those that closed
    /// what it opened. A consistent read of the strategy's partition, so a trade
    /// committed a moment ago is not missed.
    ///
    /// # Errors
    /// DynamoDB errors or a malformed item.
    pub async fn trades_of_order(
        &self,
        strategy_id: &str,
        order_id: &str,
    ) -> Result<Vec<Trade>, BookError> {
        let table = self.trades();
        let query = self
            .store
            .client
            .query()
            .table_name(table)
            .key_condition_expression("strategy_id = :s")
            .expression_attribute_values(":s", s(strategy_id))
            .consistent_read(true);
        let trades: Vec<Trade> = self.store.all_pages(table, query, None).await?;
        Ok(trades
            .into_iter()
            .filter(|t| t.exit_order_id == order_id || t.entry_order_id == order_id)
            .collect())
    }

    /// Commits a commission back-fill, atomically: the order (which leaves the
    /// index), its changed trades and the position, each only if still at the
    /// version it was read at. A concurrent fill or a second back-fill makes this
    /// fail with `Conflict` instead of applying the difference twice.
    ///
    /// # Errors
    /// `Conflict`, DynamoDB errors.
    pub async fn commit_backfill(&self, b: &mut Backfill) -> Result<(), BookError> {
        let mut next_order = b.order.clone();
        next_order.version += 1;
        let mut items = vec![
            TransactWriteItem::builder()
                .put(Self::versioned_put(
                    self.orders(),
                    &next_order,
                    "order_id",
                    b.order.version,
                    false,
                )?)
                .build(),
        ];
        let mut next_trades = Vec::with_capacity(b.trades.len());
        for t in &b.trades {
            let mut next = t.clone();
            next.version += 1;
            // Trades written before they had a version have none: that is version 0.
            let condition = if t.version == 0 {
                "attribute_exists(trade_id) AND (attribute_not_exists(#v) OR #v = :v)"
            } else {
                "attribute_exists(trade_id) AND #v = :v"
            };
            let put = Put::builder()
                .table_name(self.trades())
                .set_item(Some(to_item(self.trades(), &next)?))
                .condition_expression(condition)
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":v", n(t.version))
                .build()
                .map_err(|e| dynamo("transact", self.trades(), e))?;
            items.push(TransactWriteItem::builder().put(put).build());
            next_trades.push(next);
        }
        let mut next_pos = b.position.clone();
        if let Some(p) = next_pos.as_mut() {
            let expected = p.version;
            p.version += 1;
            items.push(
                TransactWriteItem::builder()
                    .put(Self::versioned_put(
                        self.positions(),
                        p,
                        "strategy_id",
                        expected,
                        false,
                    )?)
                    .build(),
            );
        }
        self.transact(
            self.orders(),
            items,
            &format!("commission back-fill of order {}", b.order.order_id),
        )
        .await?;
        b.order = next_order;
        b.trades = next_trades;
        b.position = next_pos;
        Ok(())
    }

    /// A strategy's trades, oldest first.
    ///
    /// # Errors
    /// DynamoDB errors or a malformed item.
    pub async fn trades_of(&self, strategy_id: &str) -> Result<Vec<Trade>, BookError> {
        let mut t: Vec<Trade> = self
            .store
            .query(self.trades(), None, "strategy_id", strategy_id, false, None)
            .await?;
        t.sort_by(|a, b| a.closed_at.cmp(&b.closed_at));
        Ok(t)
    }

    /// A strategy's trades closed at or after `since` (RFC 3339, UTC, as `closed_at`
    /// is written), read from the `by_closed` index: the kill switch's read no longer
    /// grows with the strategy's history.
    ///
    /// # Errors
    /// DynamoDB errors or a malformed item.
    pub async fn trades_closed_since(
        &self,
        strategy_id: &str,
        since: &str,
    ) -> Result<Vec<Trade>, BookError> {
        Ok(self
            .store
            .query_from(
                self.trades(),
                "by_closed",
                ("strategy_id", strategy_id),
                ("closed_at", since),
            )
            .await?)
    }

    /// Writes a portfolio snapshot item.
    ///
    /// # Errors
    /// DynamoDB errors.
    pub async fn put_snapshot(&self, snapshot: &Value) -> Result<(), BookError> {
        Ok(self
            .store
            .put(&self.store.tables.portfolio, snapshot, None)
            .await?)
    }

    /// The snapshots of a portfolio, oldest first, or only the newest with `latest_only`.
    ///
    /// # Errors
    /// DynamoDB errors.
    pub async fn snapshots(
        &self,
        portfolio_id: &str,
        latest_only: bool,
    ) -> Result<Vec<Value>, BookError> {
        Ok(self
            .store
            .query(
                &self.store.tables.portfolio,
                None,
                "portfolio_id",
                portfolio_id,
                latest_only,
                latest_only.then_some(1),
            )
            .await?)
    }

    /// The equity drawdown so far: carried in the newest snapshot, or rebuilt from
    /// all snapshots when the newest predates the carried field.
    ///
    /// # Errors
    /// DynamoDB errors.
    pub async fn drawdown(&self, portfolio_id: &str) -> Result<Drawdown, BookError> {
        let latest = self.snapshots(portfolio_id, true).await?;
        let Some(last) = latest.first() else {
            return Ok(Drawdown::default());
        };
        if let Some(d) = last
            .get("drawdown")
            .and_then(|d| serde_json::from_value(d.clone()).ok())
        {
            return Ok(d);
        }
        let equity: Vec<Decimal> = self
            .snapshots(portfolio_id, false)
            .await?
            .iter()
            .filter_map(|snap| snap.get("equity")?.as_str()?.parse().ok())
            .collect();
        Ok(Drawdown::over(&equity))
    }

    /// Publishes one domain event on the configured bus (source `tradeflow`).
    ///
    /// # Errors
    /// `Events` when the bus refuses it.
    pub async fn publish(&self, detail_type: &str, detail: &Value) -> Result<(), BookError> {
        let entry = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .source(EVENT_SOURCE)
            .detail_type(detail_type)
            .detail(detail.to_string())
            .event_bus_name(&self.bus)
            .build();
        let out = self
            .events
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(|e| BookError::Events(format!("{e:?}")))?;
        if out.failed_entry_count() > 0 {
            let why = out
                .entries()
                .iter()
                .filter_map(|e| e.error_message())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(BookError::Events(why));
        }
        tracing::info!(detail_type, "domain event published");
        Ok(())
    }
}

impl OrderStore for OrderBook {
    async fn create(&self, order: &Order) -> Result<Option<Order>, OrderStoreError> {
        match self.store.put(self.orders(), order, Some("order_id")).await {
            Ok(()) => Ok(None),
            Err(StoreError::AlreadyExists { .. }) => {
                let existing = self.get(&order.order_id).await?;
                // It existed a moment ago; absent now would be a deleted item.
                existing
                    .map(Some)
                    .ok_or_else(|| OrderStoreError::Conflict(order.order_id.clone()))
            }
            Err(e) => Err(BookError::from(e).into()),
        }
    }

    async fn get(&self, order_id: &str) -> Result<Option<Order>, OrderStoreError> {
        self.store
            .get(
                self.orders(),
                HashMap::from([("order_id".into(), s(order_id))]),
            )
            .await
            .map_err(|e| BookError::from(e).into())
    }

    async fn save(&self, order: &mut Order) -> Result<(), OrderStoreError> {
        let expected = order.version;
        let mut next = order.clone();
        next.version += 1;
        self.put_versioned(
            self.orders(),
            &next,
            "order_id",
            expected,
            false,
            &format!("order {}", order.order_id),
        )
        .await?;
        *order = next;
        Ok(())
    }
}

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
            .map_err(broker_error)?;
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
}

/// The `days` of executions that cover an order created at `created_at`: without
/// it IBKR lists the current day only, and its day is not the UTC day, so one day
/// of slack; at most IBKR's 7.
pub(crate) fn trade_days(created_at: &str, now: chrono::DateTime<chrono::Utc>) -> Option<u32> {
    let created = chrono::DateTime::parse_from_rfc3339(created_at).ok()?;
    let age = (now.date_naive() - created.date_naive()).num_days();
    Some(u32::try_from(age + 2).unwrap_or(2).min(7))
}

/// Converts a broker error met while tracking into a step error.
pub fn tracking_error(e: BrokerError) -> StepError {
    match e {
        BrokerError::Unavailable(_) => StepError::transient(e.to_string()),
        _ => StepError::fatal(e.to_string()),
    }
}

fn store_error(e: OrderStoreError) -> StepError {
    tradeflow_core::orders::OrderError::from(e).into()
}

/// The event payload: ids to route and link on, the figures to notify with.
fn order_event(o: &Order) -> Value {
    json!({
        "event_id": format!("{}#{}", ORDER_FILLED, o.order_id),
        "order_id": o.order_id, "broker_order_id": o.broker_order_id,
        "strategy_id": o.strategy_id, "execution_id": o.execution_id,
        "symbol": o.symbol, "conid": o.conid, "side": o.side, "purpose": o.purpose,
        "quantity": o.filled_quantity, "avg_fill_price": o.avg_fill_price,
    })
}

/// Publishes the events an order's state calls for and that were not published yet
/// (a crash between commit and publish is repaired by the next poll).
async fn publish_due(book: &OrderBook, order: &mut Order) -> Result<(), StepError> {
    let mut due = Vec::new();
    if order.status == OrderStatus::Filled {
        due.push((ORDER_FILLED.to_string(), order_event(order)));
    }
    if let Some(pid) = &order.closed_position_id {
        let trades = book
            .trades_of(&order.strategy_id)
            .await
            .map_err(StepError::from)?;
        let mine: Vec<&Trade> = trades.iter().filter(|t| &t.position_id == pid).collect();
        let realized: Decimal = mine.iter().map(|t| t.realized_pnl).sum();
        due.push((
            POSITION_CLOSED.to_string(),
            json!({
                "event_id": format!("{POSITION_CLOSED}#{pid}"),
                "position_id": pid, "strategy_id": order.strategy_id,
                "symbol": order.symbol, "conid": order.conid,
                "closing_order_id": order.order_id, "purpose": order.purpose,
                "realized_pnl": realized, "trades": mine.iter().map(|t| &t.trade_id).collect::<Vec<_>>(),
            }),
        ));
    }
    let mut published = false;
    for (kind, detail) in due {
        if order.published_events.contains(&kind) {
            continue;
        }
        book.publish(&kind, &detail).await?;
        order.published_events.push(kind);
        published = true;
    }
    if published {
        book.save(order).await.map_err(store_error)?;
    }
    Ok(())
}

/// An order the caller knows was created; a missing item is a fatal error.
async fn existing_order(book: &OrderBook, order_id: &str) -> Result<Order, StepError> {
    book.get(order_id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| StepError::fatal(format!("order {order_id} not found")))
}

/// One poll of an order: reads the broker's view, records the status transition,
/// applies fills not applied yet (position + trade in one transaction), releases a
/// position's exit claim when its exit order ended without closing it, and
/// publishes due domain events. Returns the order as stored.
///
/// # Errors
/// Broker errors (transient when the broker is unavailable), store conflicts
/// (transient), event bus errors (transient).
pub async fn poll_order<B: Broker>(
    book: &OrderBook,
    broker: &B,
    order_id: &str,
    now: &str,
) -> Result<Order, StepError> {
    let mut order = existing_order(book, order_id).await?;
    if order.status == OrderStatus::DryRun {
        return Ok(order);
    }
    let settled = order.status.is_final() && order.applied_quantity >= order.filled_quantity;
    if !settled {
        let report = match &order.broker_order_id {
            Some(id) => Some(broker.status(id).await.map_err(tracking_error)?),
            None => broker
                .find_by_ref(&order.order_id)
                .await
                .map_err(tracking_error)?,
        };
        let Some(report) = report else {
            tracing::info!(order_id, "order not listed at the broker yet");
            return Ok(order);
        };
        let report = with_commission(broker, &order, report).await;
        let before = order.clone();
        order.observe(&report, now);
        match order.unapplied_fill(&report, now) {
            Some(fill) => {
                let current = book
                    .position(&order.strategy_id, order.conid)
                    .await
                    .map_err(StepError::from)?;
                let mut outcome = apply_fill(current.as_ref(), &order, &fill);
                order.mark_applied(&fill);
                if let Some(closed) = &outcome.closed {
                    order.closed_position_id = Some(closed.clone());
                }
                tracing::info!(order_id, qty = %fill.quantity, price = %fill.price, position_qty = %outcome.position.quantity, "fill applied");
                book.commit_fill(&mut order, &mut outcome, current.map(|p| p.version))
                    .await
                    .map_err(StepError::from)?;
            }
            None if order != before => {
                book.save(&mut order).await.map_err(store_error)?;
            }
            None => {}
        }
    }
    if order.status.is_final() {
        release_exit_claim(book, &order).await?;
    }
    publish_due(book, &mut order).await?;
    Ok(order)
}

/// A position whose exit order ended (cancelled, rejected, or filled without
/// closing it) is free for the next exit.
///
/// # Errors
/// DynamoDB errors or a concurrent change (transient).
pub async fn release_exit_claim(book: &OrderBook, order: &Order) -> Result<(), StepError> {
    let Some(mut p) = book
        .position(&order.strategy_id, order.conid)
        .await
        .map_err(StepError::from)?
    else {
        return Ok(());
    };
    if p.exit_order_id.as_deref() == Some(order.order_id.as_str()) && p.is_open() {
        p.exit_order_id = None;
        book.save_position(&mut p).await.map_err(StepError::from)?;
        tracing::info!(order_id = %order.order_id, "exit claim released");
    }
    Ok(())
}

/// Cancels a working order at the broker and records why, then polls it once more
/// so fills that happened before the cancel are applied.
///
/// # Errors
/// As `poll_order`.
pub async fn cancel_order<B: Broker>(
    book: &OrderBook,
    broker: &B,
    order_id: &str,
    reason: &str,
    now: &str,
) -> Result<Order, StepError> {
    let mut order = existing_order(book, order_id).await?;
    if order.status.is_final() {
        return Ok(order);
    }
    let note = match &order.broker_order_id {
        Some(id) => match broker.cancel(id).await {
            Ok(()) => format!("cancel requested: {reason}"),
            // Finished in the meantime (e.g. filled): the poll below records it.
            Err(BrokerError::Unavailable(m)) => {
                return Err(StepError::transient(format!("cancel: {m}")));
            }
            Err(e) => format!("cancel refused ({e}); wanted because {reason}"),
        },
        None => format!("no broker order id to cancel: {reason}"),
    };
    tracing::warn!(order_id, %note, "cancelling order");
    let status = order.status;
    order.history.push(tradeflow_core::orders::StatusChange {
        status,
        at: now.to_string(),
        note: Some(note),
    });
    book.save(&mut order).await.map_err(store_error)?;
    poll_order(book, broker, order_id, now).await
}

#[cfg(test)]
mod tests {
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
