//! The books on AWS: order, position, trade and portfolio items in DynamoDB
//! (optimistic versions; a fill is one transaction over order, position, trade and
//! the account's day), the account item and contract claims (reserved partitions of
//! the positions table), the order items' claim guard, and (in `events`) the
//! domain events on EventBridge. `ibkr` is the IBKR client as the `Broker`.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem, Update,
};
use rust_decimal::Decimal;
use serde::Serialize;
use serde_json::Value;
use thiserror::Error;
use tradeflow_core::StepError;
use tradeflow_core::account::{Account, ContractClaim};
use tradeflow_core::books::{Books, ClaimChange, FillCommit};
use tradeflow_core::commission::Backfill;
use tradeflow_core::orders::{
    COMMISSION_PENDING, Order, OrderStatus, OrderStore, OrderStoreError, WORKING,
};
use tradeflow_core::portfolio::{Drawdown, Position, Trade};

use crate::aws::Deps;
use crate::store::{Item, Store, StoreError, from_item, s, to_item};

mod events;
pub mod ibkr;

pub use ibkr::trade_days;
pub use tradeflow_core::tracking::{
    EVENT_SOURCE, ORDER_FILLED, POSITION_CLOSED, POSITION_MISMATCH,
};

/// The orders table's sparse index of orders whose commission is pending.
pub const COMMISSION_PENDING_INDEX: &str = "commission_pending";
/// The orders table's sparse index of orders not settled yet (the reconciler's list).
pub const WORKING_INDEX: &str = "working";
/// Partition of the positions table holding the account item and its days.
const ACCOUNT_PK: &str = "#account";
/// Partition of the positions table holding the contract claims (sort key: conid).
const CONTRACT_PK: &str = "#contract";

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

/// The books in DynamoDB: orders, positions, trades, portfolio snapshots, the
/// account item and contract claims (reserved partitions of the positions table),
/// plus the event bus.
#[derive(Debug, Clone)]
pub struct DynamoBooks {
    store: Store,
    events: aws_sdk_eventbridge::Client,
    bus: String,
}

impl Deps {
    pub fn books(&self) -> DynamoBooks {
        DynamoBooks {
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

impl DynamoBooks {
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

    /// Every position item that is open or carries a claim, of every strategy (a
    /// scan: the table holds one item per strategy and contract). The account's
    /// reserved partitions and items that are not positions are skipped.
    ///
    /// # Errors
    /// DynamoDB errors or a malformed item.
    pub async fn watched_positions(&self) -> Result<Vec<Position>, BookError> {
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
                if matches!(&key.0, Some(AttributeValue::S(pk)) if pk.starts_with('#')) {
                    continue;
                }
                // One item written by other code must not stop the monitoring of the rest.
                match from_item::<Position>(table, item) {
                    Ok(p) if p.is_watched() => out.push(p),
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

    /// Commits what a fill did, atomically: the order (applied figures), the
    /// position, the trade and the account day's realised P&L. A concurrent poll
    /// that applied the same fill makes this fail with `Conflict` instead of
    /// applying it twice.
    ///
    /// # Errors
    /// `Conflict`, DynamoDB errors.
    pub async fn commit_fill(&self, c: &mut FillCommit) -> Result<(), BookError> {
        let mut next_order = c.order.clone();
        next_order.refresh_working();
        next_order.version += 1;
        let mut next_pos = c.outcome.position.clone();
        next_pos.version = c.previous_position_version.map_or(1, |v| v + 1);
        let mut items = vec![
            TransactWriteItem::builder()
                .put(Self::versioned_put(
                    self.orders(),
                    &next_order,
                    "order_id",
                    c.order.version,
                    false,
                )?)
                .build(),
            TransactWriteItem::builder()
                .put(Self::versioned_put(
                    self.positions(),
                    &next_pos,
                    "strategy_id",
                    c.previous_position_version.unwrap_or(0),
                    c.previous_position_version.is_none(),
                )?)
                .build(),
        ];
        if let Some(t) = &c.outcome.trade {
            let put = Put::builder()
                .table_name(self.trades())
                .set_item(Some(to_item(self.trades(), t)?))
                .condition_expression("attribute_not_exists(trade_id)")
                .build()
                .map_err(|e| dynamo("transact", self.trades(), e))?;
            items.push(TransactWriteItem::builder().put(put).build());
        }
        if let Some((day, realized)) = &c.realized {
            // ADD, not a versioned put: fills of different strategies never conflict here.
            let up = Update::builder()
                .table_name(self.positions())
                .set_key(Some(account_key(&format!("day#{day}"))))
                .update_expression("ADD realized :r")
                .expression_attribute_values(":r", AttributeValue::N(realized.to_string()))
                .build()
                .map_err(|e| dynamo("transact", self.positions(), e))?;
            items.push(TransactWriteItem::builder().update(up).build());
        }
        self.transact(
            self.orders(),
            items,
            &format!("fill of order {}", c.order.order_id),
        )
        .await?;
        c.order = next_order;
        c.outcome.position = next_pos;
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
        next_order.refresh_working();
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
}

fn account_key(sort: &str) -> Item {
    HashMap::from([
        ("strategy_id".into(), s(ACCOUNT_PK)),
        ("conid".into(), s(sort)),
    ])
}

/// A contract claim's key: one per (contract, holding strategy).
fn contract_key(conid: i64, holder: &str) -> Item {
    HashMap::from([
        ("strategy_id".into(), s(CONTRACT_PK)),
        ("conid".into(), s(format!("{conid}#{holder}"))),
    ])
}

impl DynamoBooks {
    fn claim_put(&self, claim: &ContractClaim) -> Result<Put, BookError> {
        let table = self.positions();
        let mut item = to_item(table, claim)?;
        item.extend(contract_key(claim.conid, &claim.holder));
        Put::builder()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(strategy_id)")
            .build()
            .map_err(|e| dynamo("transact", table, e))
    }

    fn held_update(&self, delta: i64, max: Option<u32>) -> Result<Update, BookError> {
        let table = self.positions();
        let b = Update::builder()
            .table_name(table)
            .set_key(Some(account_key("account")))
            .update_expression("ADD held :d")
            .expression_attribute_values(":d", AttributeValue::N(delta.to_string()));
        let b = match max {
            Some(max) => b
                .condition_expression("attribute_not_exists(held) OR held < :max")
                .expression_attribute_values(":max", AttributeValue::N(max.to_string())),
            None => b,
        };
        b.build().map_err(|e| dynamo("transact", table, e))
    }

    fn position_put(&self, p: &Position) -> Result<(Put, Position), BookError> {
        let mut next = p.clone();
        next.version += 1;
        let put = Self::versioned_put(
            self.positions(),
            &next,
            "strategy_id",
            p.version,
            p.version == 0,
        )?;
        Ok((put, next))
    }

    /// Creates an order item guarded by its claim (see `OrderStore::create`).
    async fn create_claimed(&self, order: &Order) -> Result<(), BookError> {
        let orders = self.orders();
        let table = self.positions();
        let put = Put::builder()
            .table_name(orders)
            .set_item(Some(to_item(orders, order)?))
            .condition_expression("attribute_not_exists(order_id)")
            .build()
            .map_err(|e| dynamo("transact", orders, e))?;
        let guard = if order.is_entry() {
            // The working entry reserves its cash in the same write.
            let reserved = (order.quantity * order.limit_price.unwrap_or_default()).round_dp(2);
            let up = Update::builder()
                .table_name(table)
                .set_key(Some(contract_key(order.conid, &order.strategy_id)))
                .update_expression("SET reserved = :r")
                .condition_expression("entry_order_id = :id AND holder = :h")
                .expression_attribute_values(":r", AttributeValue::N(reserved.to_string()))
                .expression_attribute_values(":id", s(&order.order_id))
                .expression_attribute_values(":h", s(&order.strategy_id))
                .build()
                .map_err(|e| dynamo("transact", table, e))?;
            TransactWriteItem::builder().update(up).build()
        } else {
            let check = ConditionCheck::builder()
                .table_name(table)
                .set_key(Some(position_key(&order.strategy_id, order.conid)))
                .condition_expression("exit_order_id = :id")
                .expression_attribute_values(":id", s(&order.order_id))
                .build()
                .map_err(|e| dynamo("transact", table, e))?;
            TransactWriteItem::builder().condition_check(check).build()
        };
        self.transact(
            orders,
            vec![TransactWriteItem::builder().put(put).build(), guard],
            &format!("order {} or its claim", order.order_id),
        )
        .await
    }

    /// Orders not settled yet, oldest first, at most `limit` (an index read:
    /// re-read an order before acting on it).
    ///
    /// # Errors
    /// DynamoDB errors or a malformed item.
    pub async fn working_orders(&self, limit: usize) -> Result<Vec<Order>, BookError> {
        Ok(self
            .store
            .query(
                self.orders(),
                Some(WORKING_INDEX),
                "working",
                WORKING,
                false,
                Some(i32::try_from(limit).unwrap_or(i32::MAX)),
            )
            .await?)
    }

    /// The account item (limits and contracts held); defaults when never written.
    ///
    /// # Errors
    /// DynamoDB errors or a malformed item.
    pub async fn account(&self) -> Result<Account, BookError> {
        let a: Option<Account> = self
            .store
            .get(self.positions(), account_key("account"))
            .await?;
        Ok(a.unwrap_or_default())
    }

    /// Writes the account's limits (creating the item if needed), keeping its count.
    ///
    /// # Errors
    /// DynamoDB errors.
    pub async fn set_account_limits(
        &self,
        limits: &tradeflow_core::account::AccountLimits,
    ) -> Result<(), BookError> {
        let table = self.positions();
        let av: AttributeValue = serde_dynamo::to_attribute_value(limits).map_err(|e| {
            BookError::Store(StoreError::Shape {
                table: table.to_string(),
                source: e,
            })
        })?;
        self.store
            .client
            .update_item()
            .table_name(table)
            .set_key(Some(account_key("account")))
            .update_expression("SET limits = :l")
            .expression_attribute_values(":l", av)
            .send()
            .await
            .map_err(|e| dynamo("update", table, e))?;
        Ok(())
    }

    /// Every contract claim (a consistent read of its partition).
    ///
    /// # Errors
    /// DynamoDB errors or a malformed item.
    pub async fn contract_claims(&self) -> Result<Vec<ContractClaim>, BookError> {
        let table = self.positions();
        let query = self
            .store
            .client
            .query()
            .table_name(table)
            .key_condition_expression("strategy_id = :s")
            .expression_attribute_values(":s", s(CONTRACT_PK))
            .consistent_read(true);
        Ok(self.store.all_pages(table, query, None).await?)
    }

    /// The account's realised P&L of `day`.
    ///
    /// # Errors
    /// DynamoDB errors.
    pub async fn realized_on(&self, day: &str) -> Result<Decimal, BookError> {
        let table = self.positions();
        let out = self
            .store
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(account_key(&format!("day#{day}"))))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| dynamo("get", table, e))?;
        Ok(out
            .item
            .and_then(|i| match i.get("realized") {
                Some(AttributeValue::N(n)) => n.parse().ok(),
                _ => None,
            })
            .unwrap_or_default())
    }

    /// See `Books::claim_entry`.
    ///
    /// # Errors
    /// `Conflict` when the position, the contract or the account's count refused it.
    pub async fn claim_entry(
        &self,
        p: &mut Position,
        claim: &ContractClaim,
        max_held: Option<u32>,
    ) -> Result<(), BookError> {
        let (put, next) = self.position_put(p)?;
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            TransactWriteItem::builder()
                .put(self.claim_put(claim)?)
                .build(),
            TransactWriteItem::builder()
                .update(self.held_update(1, max_held)?)
                .build(),
        ];
        self.transact(
            self.positions(),
            items,
            &format!("entry claim on {}", claim.conid),
        )
        .await?;
        *p = next;
        Ok(())
    }

    /// See `Books::change_claim`.
    ///
    /// # Errors
    /// `Conflict` when the position or the claim changed.
    pub async fn change_claim(
        &self,
        p: &mut Position,
        change: &ClaimChange,
    ) -> Result<(), BookError> {
        let table = self.positions();
        let (put, next) = self.position_put(p)?;
        let mut items = vec![TransactWriteItem::builder().put(put).build()];
        match change {
            ClaimChange::SettleEntry(c) => {
                let up = Update::builder()
                    .table_name(table)
                    .set_key(Some(contract_key(c.conid, &c.holder)))
                    .update_expression("REMOVE entry_order_id SET reserved = :z")
                    .condition_expression("holder = :h")
                    .expression_attribute_values(":z", AttributeValue::N("0".into()))
                    .expression_attribute_values(":h", s(&c.holder))
                    .build()
                    .map_err(|e| dynamo("transact", table, e))?;
                items.push(TransactWriteItem::builder().update(up).build());
            }
            ClaimChange::Release(c) => {
                let del = Delete::builder()
                    .table_name(table)
                    .set_key(Some(contract_key(c.conid, &c.holder)))
                    .condition_expression("holder = :h")
                    .expression_attribute_values(":h", s(&c.holder))
                    .build()
                    .map_err(|e| dynamo("transact", table, e))?;
                items.push(TransactWriteItem::builder().delete(del).build());
                items.push(
                    TransactWriteItem::builder()
                        .update(self.held_update(-1, None)?)
                        .build(),
                );
            }
        }
        self.transact(table, items, &format!("claim on {}", p.conid))
            .await?;
        *p = next;
        Ok(())
    }

    /// The trades of one position.
    ///
    /// # Errors
    /// DynamoDB errors or a malformed item.
    pub async fn trades_of_position(
        &self,
        strategy_id: &str,
        position_id: &str,
    ) -> Result<Vec<Trade>, BookError> {
        Ok(self
            .trades_of(strategy_id)
            .await?
            .into_iter()
            .filter(|t| t.position_id == position_id)
            .collect())
    }
}

impl OrderStore for DynamoBooks {
    async fn create(&self, order: &Order) -> Result<Option<Order>, OrderStoreError> {
        let mut order = order.clone();
        order.refresh_working();
        let created = if order.status == OrderStatus::DryRun {
            match self
                .store
                .put(self.orders(), &order, Some("order_id"))
                .await
            {
                Ok(()) => Ok(()),
                Err(StoreError::AlreadyExists { .. }) => {
                    Err(BookError::Conflict(order.order_id.clone()))
                }
                Err(e) => Err(e.into()),
            }
        } else {
            self.create_claimed(&order).await
        };
        match created {
            Ok(()) => Ok(None),
            Err(BookError::Conflict(_)) => match self.get(&order.order_id).await? {
                Some(existing) => Ok(Some(existing)),
                // Not there, so the claim's condition failed.
                None => Err(OrderStoreError::ClaimLost(order.order_id.clone())),
            },
            Err(e) => Err(e.into()),
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
        order.refresh_working();
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

fn port<T>(r: Result<T, BookError>) -> Result<T, OrderStoreError> {
    r.map_err(OrderStoreError::from)
}

impl Books for DynamoBooks {
    async fn position(
        &self,
        strategy_id: &str,
        conid: i64,
    ) -> Result<Option<Position>, OrderStoreError> {
        port(DynamoBooks::position(self, strategy_id, conid).await)
    }

    async fn positions_of(&self, strategy_id: &str) -> Result<Vec<Position>, OrderStoreError> {
        port(DynamoBooks::positions_of(self, strategy_id).await)
    }

    async fn watched_positions(&self) -> Result<Vec<Position>, OrderStoreError> {
        port(DynamoBooks::watched_positions(self).await)
    }

    async fn save_position(&self, p: &mut Position) -> Result<(), OrderStoreError> {
        port(DynamoBooks::save_position(self, p).await)
    }

    async fn working_orders(&self, limit: usize) -> Result<Vec<Order>, OrderStoreError> {
        port(DynamoBooks::working_orders(self, limit).await)
    }

    async fn account(&self) -> Result<Account, OrderStoreError> {
        port(DynamoBooks::account(self).await)
    }

    async fn contract_claims(&self) -> Result<Vec<ContractClaim>, OrderStoreError> {
        port(DynamoBooks::contract_claims(self).await)
    }

    async fn realized_on(&self, day: &str) -> Result<Decimal, OrderStoreError> {
        port(DynamoBooks::realized_on(self, day).await)
    }

    async fn claim_entry(
        &self,
        p: &mut Position,
        claim: &ContractClaim,
        max_held: Option<u32>,
    ) -> Result<(), OrderStoreError> {
        port(DynamoBooks::claim_entry(self, p, claim, max_held).await)
    }

    async fn change_claim(
        &self,
        p: &mut Position,
        change: &ClaimChange,
    ) -> Result<(), OrderStoreError> {
        port(DynamoBooks::change_claim(self, p, change).await)
    }

    async fn commit_fill(&self, commit: &mut FillCommit) -> Result<(), OrderStoreError> {
        port(DynamoBooks::commit_fill(self, commit).await)
    }

    async fn trades_closed_since(
        &self,
        strategy_id: &str,
        since: &str,
    ) -> Result<Vec<Trade>, OrderStoreError> {
        port(DynamoBooks::trades_closed_since(self, strategy_id, since).await)
    }

    async fn trades_of_position(
        &self,
        strategy_id: &str,
        position_id: &str,
    ) -> Result<Vec<Trade>, OrderStoreError> {
        port(DynamoBooks::trades_of_position(self, strategy_id, position_id).await)
    }

    async fn publish(&self, detail_type: &str, detail: &Value) -> Result<(), OrderStoreError> {
        port(DynamoBooks::publish(self, detail_type, detail).await)
    }
}
