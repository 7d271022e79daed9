//! In-memory fakes of the money path's ports, with the same conditional-write
//! semantics as the DynamoDB adapter (versions, the claim guard on order creation,
//! the account's held count) and a broker whose orders fill, get lost, and are
//! forgotten by a session reset on command. For use-case tests without AWS.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use rust_decimal::Decimal;
use serde_json::Value;
use tradeflow_core::account::{Account, ContractClaim};
use tradeflow_core::books::{Books, ClaimChange, FillCommit};
use tradeflow_core::orders::{
    Broker, BrokerAck, BrokerError, BrokerExecution, BrokerOrder, BrokerPosition, Order,
    OrderStatus, OrderStore, OrderStoreError, Side,
};
use tradeflow_core::portfolio::{Position, Trade};

/// Drives a future whose fakes never wait (no executor needed).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug, Default)]
pub struct BooksState {
    pub orders: HashMap<String, Order>,
    pub positions: HashMap<(String, i64), Position>,
    /// By (contract, holding strategy).
    pub claims: HashMap<(i64, String), ContractClaim>,
    pub account: Account,
    pub days: HashMap<String, Decimal>,
    pub trades: Vec<Trade>,
    pub events: Vec<(String, Value)>,
}

/// The books in memory.
#[derive(Debug, Default)]
pub struct InMemoryBooks(pub Mutex<BooksState>);

impl InMemoryBooks {
    pub fn state(&self) -> MutexGuard<'_, BooksState> {
        lock(&self.0)
    }
}

fn conflict(what: impl Into<String>) -> OrderStoreError {
    OrderStoreError::Conflict(what.into())
}

fn check_version(st: &BooksState, p: &Position) -> Result<(), OrderStoreError> {
    let stored = st
        .positions
        .get(&(p.strategy_id.clone(), p.conid))
        .map(|x| x.version);
    match stored {
        Some(v) if v == p.version => Ok(()),
        None if p.version == 0 => Ok(()),
        _ => Err(conflict(format!("position {}/{}", p.strategy_id, p.conid))),
    }
}

fn put_position(st: &mut BooksState, p: &mut Position) {
    p.version += 1;
    st.positions
        .insert((p.strategy_id.clone(), p.conid), p.clone());
}

impl OrderStore for InMemoryBooks {
    async fn create(&self, order: &Order) -> Result<Option<Order>, OrderStoreError> {
        let mut st = self.state();
        if let Some(o) = st.orders.get(&order.order_id) {
            return Ok(Some(o.clone()));
        }
        if order.status != OrderStatus::DryRun {
            let held = if order.is_entry() {
                st.claims
                    .get(&(order.conid, order.strategy_id.clone()))
                    .is_some_and(|c| c.entry_order_id.as_deref() == Some(order.order_id.as_str()))
            } else {
                st.positions
                    .get(&(order.strategy_id.clone(), order.conid))
                    .is_some_and(|p| p.exit_order_id.as_deref() == Some(order.order_id.as_str()))
            };
            if !held {
                return Err(OrderStoreError::ClaimLost(order.order_id.clone()));
            }
            if order.is_entry()
                && let Some(c) = st.claims.get_mut(&(order.conid, order.strategy_id.clone()))
            {
                c.reserved = (order.quantity * order.limit_price.unwrap_or_default()).round_dp(2);
            }
        }
        let mut o = order.clone();
        o.refresh_working();
        st.orders.insert(o.order_id.clone(), o);
        Ok(None)
    }

    async fn get(&self, order_id: &str) -> Result<Option<Order>, OrderStoreError> {
        Ok(self.state().orders.get(order_id).cloned())
    }

    async fn save(&self, order: &mut Order) -> Result<(), OrderStoreError> {
        let mut st = self.state();
        let stored = st.orders.get(&order.order_id).map_or(0, |o| o.version);
        if stored != order.version {
            return Err(conflict(format!("order {}", order.order_id)));
        }
        order.refresh_working();
        order.version += 1;
        st.orders.insert(order.order_id.clone(), order.clone());
        Ok(())
    }
}

impl Books for InMemoryBooks {
    async fn position(
        &self,
        strategy_id: &str,
        conid: i64,
    ) -> Result<Option<Position>, OrderStoreError> {
        Ok(self
            .state()
            .positions
            .get(&(strategy_id.to_string(), conid))
            .cloned())
    }

    async fn positions_of(&self, strategy_id: &str) -> Result<Vec<Position>, OrderStoreError> {
        Ok(self
            .state()
            .positions
            .values()
            .filter(|p| p.strategy_id == strategy_id)
            .cloned()
            .collect())
    }

    async fn watched_positions(&self) -> Result<Vec<Position>, OrderStoreError> {
        Ok(self
            .state()
            .positions
            .values()
            .filter(|p| p.is_watched())
            .cloned()
            .collect())
    }

    async fn save_position(&self, p: &mut Position) -> Result<(), OrderStoreError> {
        let mut st = self.state();
        check_version(&st, p)?;
        put_position(&mut st, p);
        Ok(())
    }

    async fn working_orders(&self, limit: usize) -> Result<Vec<Order>, OrderStoreError> {
        let mut v: Vec<Order> = self
            .state()
            .orders
            .values()
            .filter(|o| o.working.is_some())
            .cloned()
            .collect();
        v.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        v.truncate(limit);
        Ok(v)
    }

    async fn account(&self) -> Result<Account, OrderStoreError> {
        Ok(self.state().account.clone())
    }

    async fn contract_claims(&self) -> Result<Vec<ContractClaim>, OrderStoreError> {
        Ok(self.state().claims.values().cloned().collect())
    }

    async fn realized_on(&self, day: &str) -> Result<Decimal, OrderStoreError> {
        Ok(self.state().days.get(day).copied().unwrap_or_default())
    }

    async fn claim_entry(
        &self,
        p: &mut Position,
        claim: &ContractClaim,
        max_held: Option<u32>,
    ) -> Result<(), OrderStoreError> {
        let mut st = self.state();
        check_version(&st, p)?;
        let key = (claim.conid, claim.holder.clone());
        if st.claims.contains_key(&key) {
            return Err(conflict(format!("contract {}", claim.conid)));
        }
        if max_held.is_some_and(|m| st.account.held >= m) {
            return Err(conflict("account held count"));
        }
        st.claims.insert(key, claim.clone());
        st.account.held += 1;
        put_position(&mut st, p);
        Ok(())
    }

    async fn change_claim(
        &self,
        p: &mut Position,
        change: &ClaimChange,
    ) -> Result<(), OrderStoreError> {
        let mut st = self.state();
        check_version(&st, p)?;
        let c = match change {
            ClaimChange::SettleEntry(c) | ClaimChange::Release(c) => c,
        };
        let key = (c.conid, c.holder.clone());
        if !st.claims.contains_key(&key) {
            return Err(conflict(format!("contract {}", c.conid)));
        }
        match change {
            ClaimChange::SettleEntry(_) => {
                if let Some(x) = st.claims.get_mut(&key) {
                    x.entry_order_id = None;
                    x.reserved = Decimal::ZERO;
                }
            }
            ClaimChange::Release(_) => {
                st.claims.remove(&key);
                st.account.held = st.account.held.saturating_sub(1);
            }
        }
        put_position(&mut st, p);
        Ok(())
    }

    async fn commit_fill(&self, c: &mut FillCommit) -> Result<(), OrderStoreError> {
        let mut st = self.state();
        let stored = st.orders.get(&c.order.order_id).map_or(0, |o| o.version);
        if stored != c.order.version {
            return Err(conflict(format!("order {}", c.order.order_id)));
        }
        let key = (
            c.outcome.position.strategy_id.clone(),
            c.outcome.position.conid,
        );
        if st.positions.get(&key).map(|p| p.version) != c.previous_position_version {
            return Err(conflict("position"));
        }
        if let Some(t) = &c.outcome.trade {
            if st
                .trades
                .iter()
                .any(|x| x.strategy_id == t.strategy_id && x.trade_id == t.trade_id)
            {
                return Err(conflict("trade"));
            }
            st.trades.push(t.clone());
        }
        if let Some((day, r)) = &c.realized {
            *st.days.entry(day.clone()).or_default() += *r;
        }
        c.order.refresh_working();
        c.order.version += 1;
        st.orders.insert(c.order.order_id.clone(), c.order.clone());
        c.outcome.position.version = c.previous_position_version.map_or(1, |v| v + 1);
        st.positions.insert(key, c.outcome.position.clone());
        Ok(())
    }

    async fn trades_closed_since(
        &self,
        strategy_id: &str,
        since: &str,
    ) -> Result<Vec<Trade>, OrderStoreError> {
        Ok(self
            .state()
            .trades
            .iter()
            .filter(|t| t.strategy_id == strategy_id && t.closed_at.as_str() >= since)
            .cloned()
            .collect())
    }

    async fn trades_of_position(
        &self,
        strategy_id: &str,
        position_id: &str,
    ) -> Result<Vec<Trade>, OrderStoreError> {
        Ok(self
            .state()
            .trades
            .iter()
            .filter(|t| t.strategy_id == strategy_id && t.position_id == position_id)
            .cloned()
            .collect())
    }

    async fn publish(&self, detail_type: &str, detail: &Value) -> Result<(), OrderStoreError> {
        self.state()
            .events
            .push((detail_type.to_string(), detail.clone()));
        Ok(())
    }
}

/// One order at the fake broker.
#[derive(Debug, Clone)]
pub struct FakeOrder {
    pub coid: String,
    pub id: String,
    pub conid: i64,
    pub side: Side,
    pub quantity: Decimal,
    pub status: OrderStatus,
    pub filled: Decimal,
    pub avg: Option<Decimal>,
    /// The gateway session it was placed in.
    pub session: u32,
}

#[derive(Debug, Default)]
pub struct BrokerState {
    pub orders: Vec<FakeOrder>,
    pub executions: Vec<BrokerExecution>,
    pub session: u32,
    pub cash: Decimal,
    /// The next submission registers the order, then fails as a lost response.
    pub lose_next_response: bool,
    /// The next submission fails before reaching the broker.
    pub fail_next_submit: bool,
    /// Report fills without an average price (IBKR does, briefly).
    pub hide_avg_price: bool,
}

/// A broker whose orders fill on command.
#[derive(Debug)]
pub struct FakeBroker(pub Mutex<BrokerState>);

impl Default for FakeBroker {
    fn default() -> Self {
        Self(Mutex::new(BrokerState {
            cash: Decimal::from(1_000_000),
            ..Default::default()
        }))
    }
}

impl FakeBroker {
    pub fn state(&self) -> MutexGuard<'_, BrokerState> {
        lock(&self.0)
    }

    /// Orders the broker accepted.
    pub fn orders(&self) -> Vec<FakeOrder> {
        self.state().orders.clone()
    }

    /// Fills `qty` more of the order with cOID `coid` at `price`.
    pub fn fill(&self, coid: &str, qty: Decimal, price: Decimal) {
        let mut st = self.state();
        let n = st.executions.len();
        let Some(o) = st.orders.iter_mut().find(|o| o.coid == coid) else {
            return;
        };
        let value = o.avg.unwrap_or_default() * o.filled + price * qty;
        o.filled += qty;
        o.avg = Some((value / o.filled).round_dp(6));
        o.status = if o.filled >= o.quantity {
            OrderStatus::Filled
        } else {
            OrderStatus::PartiallyFilled
        };
        let e = BrokerExecution {
            execution_id: format!("e{n}"),
            order_ref: o.coid.clone(),
            broker_order_id: Some(o.id.clone()),
            conid: o.conid,
            size: qty,
            price,
            commission: Some(Decimal::ONE),
        };
        st.executions.push(e);
    }

    /// A brokerage session reset: earlier orders are forgotten by status and live
    /// orders (their executions remain).
    pub fn reset_session(&self) {
        self.state().session += 1;
    }

    fn listed(&self, o: &FakeOrder) -> BrokerOrder {
        let hide = self.state().hide_avg_price;
        BrokerOrder {
            broker_order_id: o.id.clone(),
            status: o.status,
            raw_status: format!("{:?}", o.status),
            filled: o.filled,
            avg_price: if hide { None } else { o.avg },
            commission: None,
        }
    }
}

impl Broker for FakeBroker {
    async fn submit(&self, order: &Order) -> Result<BrokerAck, BrokerError> {
        let mut st = self.state();
        if std::mem::take(&mut st.fail_next_submit) {
            return Err(BrokerError::Unavailable("connection refused".into()));
        }
        if st.orders.iter().any(|o| o.coid == order.order_id) {
            return Err(BrokerError::Duplicate(order.order_id.clone()));
        }
        let id = format!("{}", 1000 + st.orders.len());
        let session = st.session;
        st.orders.push(FakeOrder {
            coid: order.order_id.clone(),
            id: id.clone(),
            conid: order.conid,
            side: order.side,
            quantity: order.quantity,
            status: OrderStatus::Submitted,
            filled: Decimal::ZERO,
            avg: None,
            session,
        });
        if std::mem::take(&mut st.lose_next_response) {
            return Err(BrokerError::Unavailable("timed out".into()));
        }
        Ok(BrokerAck {
            broker_order_id: id,
            status: OrderStatus::Submitted,
            raw_status: "Submitted".into(),
            questions: Vec::new(),
        })
    }

    async fn find_by_ref(&self, coid: &str) -> Result<Option<BrokerOrder>, BrokerError> {
        let found = {
            let st = self.state();
            st.orders
                .iter()
                .find(|o| o.coid == coid && o.session == st.session)
                .cloned()
        };
        Ok(found.map(|o| self.listed(&o)))
    }

    async fn status(&self, id: &str) -> Result<BrokerOrder, BrokerError> {
        let found = {
            let st = self.state();
            st.orders
                .iter()
                .find(|o| o.id == id && o.session == st.session)
                .cloned()
        };
        found
            .map(|o| self.listed(&o))
            .ok_or_else(|| BrokerError::NotInSession(id.to_string()))
    }

    async fn cancel(&self, id: &str) -> Result<(), BrokerError> {
        let mut st = self.state();
        match st.orders.iter_mut().find(|o| o.id == id) {
            Some(o) if !o.status.is_final() => {
                o.status = OrderStatus::Cancelled;
                Ok(())
            }
            Some(_) => Err(BrokerError::Failed("order already final".into())),
            None => Err(BrokerError::Failed(format!("OrderID {id} doesn't exist"))),
        }
    }

    async fn commission(
        &self,
        order: &Order,
        filled: Decimal,
    ) -> Result<Option<Decimal>, BrokerError> {
        let st = self.state();
        let mine = st
            .executions
            .iter()
            .filter(|e| e.order_ref == order.order_id);
        let (size, commission) = mine.fold((Decimal::ZERO, Decimal::ZERO), |(s, c), e| {
            (s + e.size, c + e.commission.unwrap_or_default())
        });
        Ok((size >= filled && size > Decimal::ZERO).then_some(commission))
    }

    async fn executions(&self, _days: u32) -> Result<Vec<BrokerExecution>, BrokerError> {
        Ok(self.state().executions.clone())
    }

    async fn positions(&self) -> Result<Vec<BrokerPosition>, BrokerError> {
        let st = self.state();
        let mut by: HashMap<i64, Decimal> = HashMap::new();
        for o in &st.orders {
            *by.entry(o.conid).or_default() += o.filled * o.side.sign();
        }
        Ok(by
            .into_iter()
            .map(|(conid, quantity)| BrokerPosition { conid, quantity })
            .collect())
    }

    async fn cash(&self, _currency: &str) -> Result<Decimal, BrokerError> {
        Ok(self.state().cash)
    }
}
