//! Orders: the records that touch money, the broker and store ports they go through,
//! and the exactly-once placement. Amounts are exact decimals.

use std::future::Future;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::StepError;
use crate::risk::Sizing;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Side {
    Buy,
    Sell,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "BUY",
            Side::Sell => "SELL",
        }
    }

    /// +1 for a buy, -1 for a sell: the sign a fill gives a position's quantity.
    pub fn sign(self) -> Decimal {
        match self {
            Side::Buy => Decimal::ONE,
            Side::Sell => Decimal::NEGATIVE_ONE,
        }
    }
}

/// Our view of an order's life. IBKR's statuses map onto these (`from_broker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    /// The item exists; the broker call is under way or its outcome is unknown.
    Submitting,
    /// Recorded only (dry-run strategy).
    DryRun,
    PreSubmitted,
    Submitted,
    PartiallyFilled,
    Filled,
    Cancelled,
    Rejected,
}

impl OrderStatus {
    pub fn is_final(self) -> bool {
        matches!(
            self,
            OrderStatus::Filled
                | OrderStatus::Cancelled
                | OrderStatus::Rejected
                | OrderStatus::DryRun
        )
    }

    /// Maps an IBKR order status (`/iserver/account/orders`, `order/status`).
    /// IBKR says `Submitted` for a working order with partial fills, so the fill
    /// count decides `PartiallyFilled`; `Inactive` is IBKR's rejection.
    pub fn from_broker(raw: &str, filled: Decimal) -> Self {
        match raw.trim().to_ascii_lowercase().as_str() {
            "filled" => OrderStatus::Filled,
            "cancelled" | "apicancelled" | "canceled" => OrderStatus::Cancelled,
            "inactive" | "rejected" => OrderStatus::Rejected,
            _ if filled > Decimal::ZERO => OrderStatus::PartiallyFilled,
            "presubmitted" | "pendingsubmit" | "apipending" => OrderStatus::PreSubmitted,
            _ => OrderStatus::Submitted,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusChange {
    pub status: OrderStatus,
    pub at: String,
    #[serde(default)]
    pub note: Option<String>,
}

/// Why an order exists.
pub mod purpose {
    /// Opens a position on a workflow signal.
    pub const ENTRY: &str = "entry";
    /// Closes the position on a workflow SELL (or BUY for a short) signal.
    pub const SIGNAL_EXIT: &str = "signal_exit";
    /// Closes the position because the price crossed its stop (position monitor).
    pub const STOP_EXIT: &str = "stop_exit";
    /// Closes the position because the price reached its target (position monitor).
    pub const TARGET_EXIT: &str = "target_exit";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// Our client order id (IBKR `cOID`, echoed back as `order_ref`).
    pub order_id: String,
    pub strategy_id: String,
    /// The execution whose signal (or the monitor run whose trigger) made the order.
    pub execution_id: String,
    pub conid: i64,
    pub symbol: String,
    pub side: Side,
    /// `LMT` or `MKT`.
    pub order_type: String,
    pub quantity: Decimal,
    pub limit_price: Option<Decimal>,
    pub tif: String,
    pub status: OrderStatus,
    pub broker_order_id: Option<String>,
    pub filled_quantity: Decimal,
    pub avg_fill_price: Option<Decimal>,
    /// Commission the broker reported so far (0 until it does).
    pub commission: Decimal,
    /// True when the commission of every applied fill was reported by the broker.
    /// False until then: IBKR lists an execution's commission some time after the
    /// fill, and a fill is applied without waiting for it (its commission counts as
    /// 0 and a later fill of the order takes in what was reported meanwhile).
    #[serde(default)]
    pub commission_reported: bool,
    /// `COMMISSION_PENDING` while an applied fill lacks its commission, absent
    /// otherwise: the partition key of the orders table's sparse
    /// `commission_pending` index, where the position monitor finds the orders
    /// whose commission it back-fills once the broker reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commission_pending: Option<String>,
    pub stop: Option<Decimal>,
    pub target: Option<Decimal>,
    pub created_at: String,
    pub updated_at: String,
    pub history: Vec<StatusChange>,
    /// Why the order exists: see `purpose`.
    pub purpose: String,
    /// The position an exit order closes.
    #[serde(default)]
    pub position_id: Option<String>,
    /// How the quantity was sized (entries).
    #[serde(default)]
    pub sizing: Option<Sizing>,
    /// Fills already applied to positions and trades: quantity, value (Σ price ×
    /// quantity) and commission. A poll applies only what the broker reports beyond.
    #[serde(default)]
    pub applied_quantity: Decimal,
    #[serde(default)]
    pub applied_value: Decimal,
    #[serde(default)]
    pub applied_commission: Decimal,
    /// The position this order's fills closed, if any (for the PositionClosed event).
    #[serde(default)]
    pub closed_position_id: Option<String>,
    /// Domain events already published for this order.
    #[serde(default)]
    pub published_events: Vec<String>,
    /// `WORKING` while the order may still change at the broker or has fills not
    /// applied yet, absent once settled: the partition key of the orders table's
    /// sparse `working` index, where the reconciler finds every order it must
    /// track to its end (I3), whoever placed it and whatever became of that run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working: Option<String>,
    /// Optimistic-locking counter: every store write expects the previous value.
    #[serde(default)]
    pub version: u64,
}

/// The value of `Order::working` (the sparse index's one partition).
pub const WORKING: &str = "working";

/// The value of `Order::commission_pending` (the sparse index's one partition).
pub const COMMISSION_PENDING: &str = "pending";

/// Derives the client order id from the execution and the leg, so every retry of
/// the same step computes the same id and IBKR's duplicate-cOID check backs ours.
/// IBKR limits cOID length; a hash keeps it short and free of odd characters.
pub fn client_order_id(execution_id: &str, leg: &str) -> String {
    let digest = Sha256::digest(format!("{execution_id}|{leg}").as_bytes());
    format!("tf-{}", &hex::encode(digest)[..24])
}

/// Everything needed to build a new order item.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOrder {
    pub order_id: String,
    pub strategy_id: String,
    pub execution_id: String,
    pub conid: i64,
    pub symbol: String,
    pub side: Side,
    pub order_type: String,
    pub quantity: Decimal,
    pub limit_price: Option<Decimal>,
    pub tif: String,
    pub stop: Option<Decimal>,
    pub target: Option<Decimal>,
    pub purpose: String,
    pub position_id: Option<String>,
    pub sizing: Option<Sizing>,
}

impl Order {
    /// A new order item in `status` (SUBMITTING before a broker call, DRY_RUN for dry runs).
    pub fn new(n: NewOrder, status: OrderStatus, now: &str, note: Option<String>) -> Self {
        Self {
            order_id: n.order_id,
            strategy_id: n.strategy_id,
            execution_id: n.execution_id,
            conid: n.conid,
            symbol: n.symbol,
            side: n.side,
            order_type: n.order_type,
            quantity: n.quantity,
            limit_price: n.limit_price,
            tif: n.tif,
            status,
            broker_order_id: None,
            filled_quantity: Decimal::ZERO,
            avg_fill_price: None,
            commission: Decimal::ZERO,
            commission_reported: false,
            commission_pending: None,
            stop: n.stop,
            target: n.target,
            created_at: now.to_string(),
            updated_at: now.to_string(),
            history: vec![StatusChange {
                status,
                at: now.to_string(),
                note,
            }],
            purpose: n.purpose,
            position_id: n.position_id,
            sizing: n.sizing,
            applied_quantity: Decimal::ZERO,
            applied_value: Decimal::ZERO,
            applied_commission: Decimal::ZERO,
            closed_position_id: None,
            published_events: Vec::new(),
            working: (status != OrderStatus::DryRun).then(|| WORKING.to_string()),
            version: 0,
        }
    }

    /// Sets the `working` index attribute from the order's state; the store calls
    /// it before every write so the index never disagrees with the item.
    pub fn refresh_working(&mut self) {
        self.working =
            (self.status != OrderStatus::DryRun && !self.is_settled()).then(|| WORKING.to_string());
    }

    /// True for an order that opens a position (its fills are the entry claim's).
    pub fn is_entry(&self) -> bool {
        self.purpose == purpose::ENTRY
    }

    /// Moves to `status`, recording the transition with its time; a repeat of the
    /// current status is recorded only when it carries a note. Returns true when
    /// something was recorded.
    pub fn transition(&mut self, status: OrderStatus, at: &str, note: Option<String>) -> bool {
        if status == self.status && note.is_none() {
            return false;
        }
        self.status = status;
        self.updated_at = at.to_string();
        self.history.push(StatusChange {
            status,
            at: at.to_string(),
            note,
        });
        true
    }

    /// The fill the broker reports beyond what was already applied, with its price
    /// derived from the cumulative average (IBKR reports averages, not executions)
    /// and the reported cumulative commission beyond what was already applied (0
    /// while the broker has reported none: see `commission_reported`).
    pub fn unapplied_fill(&self, report: &BrokerOrder, at: &str) -> Option<Fill> {
        let delta = report.filled - self.applied_quantity;
        if delta <= Decimal::ZERO {
            return None;
        }
        let avg = report.avg_price?;
        let value = (avg * report.filled).round_dp(2) - self.applied_value;
        let commission = report.commission.map_or(Decimal::ZERO, |c| {
            (c - self.applied_commission).max(Decimal::ZERO)
        });
        Some(Fill {
            order_id: self.order_id.clone(),
            side: self.side,
            quantity: delta,
            price: (value / delta).round_dp(4),
            value,
            commission,
            commission_reported: report.commission.is_some(),
            at: at.to_string(),
        })
    }

    /// Takes in the broker's view: status transition, fill figures. Returns true when
    /// the status changed.
    pub fn observe(&mut self, report: &BrokerOrder, at: &str) -> bool {
        let prev_filled = self.filled_quantity;
        self.filled_quantity = report.filled;
        if report.avg_price.is_some() {
            self.avg_fill_price = report.avg_price;
        }
        if let Some(c) = report.commission {
            self.commission = c;
        }
        if self.broker_order_id.is_none() && !report.broker_order_id.is_empty() {
            self.broker_order_id = Some(report.broker_order_id.clone());
        }
        let changed = report.status != self.status;
        // Each new partial fill is a transition of its own, with the running count.
        let note = (report.status == OrderStatus::PartiallyFilled
            && (changed || report.filled > prev_filled))
            .then(|| format!("filled {} of {}", report.filled, self.quantity));
        self.transition(report.status, at, note);
        changed
    }

    /// Marks a fill as applied to positions and trades. Commission is reported
    /// cumulatively, so a fill that came with it completes the earlier ones too.
    pub fn mark_applied(&mut self, fill: &Fill) {
        self.applied_quantity += fill.quantity;
        self.applied_value += fill.value;
        self.applied_commission += fill.commission;
        self.commission_reported = fill.commission_reported;
        self.commission_pending =
            (!fill.commission_reported).then(|| COMMISSION_PENDING.to_string());
    }

    /// True when its fills are all applied and no more will come: the fill path
    /// never touches it again.
    pub fn is_settled(&self) -> bool {
        self.status.is_final() && self.applied_quantity >= self.filled_quantity
    }
}

/// One fill (or the unapplied part of cumulative fills) of an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fill {
    pub order_id: String,
    pub side: Side,
    pub quantity: Decimal,
    pub price: Decimal,
    /// price × quantity, exact to the cent.
    pub value: Decimal,
    pub commission: Decimal,
    /// False when the broker had not reported the commission yet (it is 0 then).
    #[serde(default)]
    pub commission_reported: bool,
    pub at: String,
}

impl Fill {
    /// A fill at one price (the value is computed) with its reported commission.
    pub fn at_price(
        order_id: &str,
        side: Side,
        quantity: Decimal,
        price: Decimal,
        commission: Decimal,
        at: &str,
    ) -> Self {
        Self {
            order_id: order_id.to_string(),
            side,
            quantity,
            price,
            value: (price * quantity).round_dp(2),
            commission,
            commission_reported: true,
            at: at.to_string(),
        }
    }
}

/// What the broker says about one of our orders.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokerOrder {
    pub broker_order_id: String,
    pub status: OrderStatus,
    /// The broker's own status text, kept for notes.
    pub raw_status: String,
    /// Cumulative filled quantity.
    pub filled: Decimal,
    /// Average price of the cumulative fills.
    pub avg_price: Option<Decimal>,
    /// Cumulative commission of the order's executions, when the broker reported it
    /// for every execution (see `with_commission`).
    pub commission: Option<Decimal>,
}

/// The broker's answer to a submission.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokerAck {
    pub broker_order_id: String,
    pub status: OrderStatus,
    pub raw_status: String,
    /// The broker's questions about the order and how each was answered, one line
    /// each (`o10151 confirmed (deployment policy)`): kept in the order's history.
    #[serde(default)]
    pub questions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum BrokerError {
    /// The broker already has an order with this cOID: it was placed before.
    #[error("broker already has an order with cOID {0}")]
    Duplicate(String),
    #[error("broker rejected the order: {0}")]
    Rejected(String),
    /// Down, timed out, rate-limited: the outcome of the call is unknown.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// Retrying cannot help (no session, bad request).
    #[error("broker call failed: {0}")]
    Failed(String),
    /// The gateway's session does not know the order: IBKR answers 503 on order
    /// status for orders of an earlier brokerage session (after a reset). Only its
    /// executions (by `order_ref`) and the positions tell what became of it.
    #[error("order {0} is unknown to the broker's current session")]
    NotInSession(String),
}

/// One execution as the broker lists it (`/iserver/account/trades`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokerExecution {
    pub execution_id: String,
    /// Our cOID (IBKR `order_ref`); empty when the order carried none.
    pub order_ref: String,
    pub broker_order_id: Option<String>,
    pub conid: i64,
    pub size: Decimal,
    pub price: Decimal,
    /// None while the broker has not reported it.
    pub commission: Option<Decimal>,
}

/// What the broker's executions say about one of our orders (matched by cOID =
/// IBKR `order_ref`): the only record that survives a gateway session reset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutedFills {
    /// The broker's order id, when an execution names it.
    pub broker_order_id: Option<String>,
    pub filled: Decimal,
    pub avg_price: Option<Decimal>,
    pub commission: Option<Decimal>,
}

/// The broker's position in one contract (the whole account's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrokerPosition {
    pub conid: i64,
    pub quantity: Decimal,
}

/// Submits, finds and cancels orders at the broker.
pub trait Broker: Send + Sync {
    fn submit(&self, order: &Order) -> impl Future<Output = Result<BrokerAck, BrokerError>> + Send;
    /// The broker's order whose reference is our cOID, if it has one.
    fn find_by_ref(
        &self,
        coid: &str,
    ) -> impl Future<Output = Result<Option<BrokerOrder>, BrokerError>> + Send;
    fn status(
        &self,
        broker_order_id: &str,
    ) -> impl Future<Output = Result<BrokerOrder, BrokerError>> + Send;
    fn cancel(&self, broker_order_id: &str)
    -> impl Future<Output = Result<(), BrokerError>> + Send;
    /// Cumulative commission of the order's executions, or `None` while the broker
    /// has not reported it for all `filled` shares.
    fn commission(
        &self,
        order: &Order,
        filled: Decimal,
    ) -> impl Future<Output = Result<Option<Decimal>, BrokerError>> + Send;
    /// The account's executions of the last `days` days (at most 7 at IBKR): the
    /// record that survives a gateway session reset (`tracking::executed` sums an
    /// order's).
    fn executions(
        &self,
        days: u32,
    ) -> impl Future<Output = Result<Vec<BrokerExecution>, BrokerError>> + Send;
    /// Cash the account holds in `currency` (else its base currency).
    fn cash(&self, currency: &str) -> impl Future<Output = Result<Decimal, BrokerError>> + Send;
    /// The account's positions, one per contract.
    fn positions(&self) -> impl Future<Output = Result<Vec<BrokerPosition>, BrokerError>> + Send;
}

/// Completes a broker report with the order's commission when the report carries a
/// fill not applied yet (the only time the figure is used; IBKR paces the call to
/// once per 5 s). Dry-run orders never reach the broker: nothing is asked.
///
/// A failed lookup leaves the commission unreported instead of failing: the fill
/// moves the position now, and the order's next fill takes in the commission the
/// broker reported meanwhile (commission is cumulative).
pub async fn with_commission<B: Broker>(
    broker: &B,
    order: &Order,
    mut report: BrokerOrder,
) -> BrokerOrder {
    if order.status == OrderStatus::DryRun || report.filled <= order.applied_quantity {
        return report;
    }
    report.commission = match broker.commission(order, report.filled).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(order_id = %order.order_id, error = %e, "commission lookup failed; fill applied without it");
            None
        }
    };
    if report.commission.is_none() {
        tracing::info!(order_id = %order.order_id, filled = %report.filled, "commission not reported by the broker yet");
    }
    report
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum OrderStoreError {
    /// Another writer changed the item since it was read.
    #[error("order {0} was changed concurrently")]
    Conflict(String),
    #[error("order store: {message}")]
    Failed { message: String, retryable: bool },
    /// The order's claim on its position (entry or exit) is no longer this
    /// order's: the reconciler released it as stale, so the order must not exist.
    #[error("the claim of order {0} on its position was released; nothing sent")]
    ClaimLost(String),
}

/// Keeps order items.
pub trait OrderStore: Send + Sync {
    /// Creates the item unless one with its id exists; returns the existing one then.
    /// An order that is sent (not a dry run) is created only while its claim holds:
    /// an entry's contract claim, an exit's position exit claim (`ClaimLost` else).
    fn create(
        &self,
        order: &Order,
    ) -> impl Future<Output = Result<Option<Order>, OrderStoreError>> + Send;
    fn get(
        &self,
        order_id: &str,
    ) -> impl Future<Output = Result<Option<Order>, OrderStoreError>> + Send;
    /// Writes the order if the stored version is still `order.version`, and bumps it.
    fn save(&self, order: &mut Order) -> impl Future<Output = Result<(), OrderStoreError>> + Send;
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum OrderError {
    #[error(transparent)]
    Broker(#[from] BrokerError),
    #[error(transparent)]
    Store(#[from] OrderStoreError),
    /// An order the caller knows was created is not in the store.
    #[error("order {0} not found")]
    Missing(String),
}

impl From<OrderError> for StepError {
    fn from(e: OrderError) -> Self {
        let retryable = match &e {
            OrderError::Broker(BrokerError::Unavailable(_)) => true,
            OrderError::Broker(_) | OrderError::Missing(_) => false,
            OrderError::Store(OrderStoreError::Conflict(_)) => true,
            OrderError::Store(OrderStoreError::Failed { retryable, .. }) => *retryable,
            OrderError::Store(OrderStoreError::ClaimLost(_)) => false,
        };
        if retryable {
            StepError::transient(e.to_string())
        } else {
            StepError::fatal(e.to_string())
        }
    }
}

/// What a signal asks for, given the strategy's current position.
#[derive(Debug, Clone, PartialEq)]
pub enum Intent {
    /// Open a position on this side (sized by `risk::size_entry`).
    Enter(Side),
    /// Close the whole open position.
    Exit { side: Side, quantity: Decimal },
    /// Nothing to do, and why.
    Nothing(String),
}

impl Intent {
    /// The cOID leg: one entry and one exit at most per execution.
    pub fn leg(&self) -> Option<&'static str> {
        match self {
            Intent::Enter(_) => Some("entry"),
            Intent::Exit { .. } => Some("exit"),
            Intent::Nothing(_) => None,
        }
    }
}

/// BUY when flat opens a long; SELL with a long open sells all of it; SELL when flat
/// opens a short only if the strategy allows shorts; BUY with a short open covers it.
/// A signal in the direction of the open position adds nothing.
pub fn decide(
    action: crate::signal::Action,
    position: Option<&crate::portfolio::Position>,
    allow_short: bool,
) -> Intent {
    use crate::signal::Action;
    let open = position.filter(|p| p.is_open());
    match (action, open) {
        (Action::Hold, _) => Intent::Nothing("HOLD".into()),
        (Action::Buy, None) => Intent::Enter(Side::Buy),
        (Action::Sell, None) if allow_short => Intent::Enter(Side::Sell),
        (Action::Sell, None) => Intent::Nothing(
            "SELL signal while flat: no naked shorts (risk.allow_short is off)".into(),
        ),
        (Action::Buy, Some(p)) if p.is_long() => Intent::Nothing(format!(
            "BUY signal while already long {} {}",
            p.quantity, p.symbol
        )),
        (Action::Sell, Some(p)) if !p.is_long() => Intent::Nothing(format!(
            "SELL signal while already short {} {}",
            p.quantity.abs(),
            p.symbol
        )),
        (_, Some(p)) => Intent::Exit {
            side: p.closing_side(),
            quantity: p.quantity.abs(),
        },
    }
}

/// How a placement ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Placement {
    /// Sent now and accepted.
    Placed(Order),
    /// An earlier attempt had placed it (found by item or at the broker).
    AlreadyPlaced(Order),
    /// The broker said no; the item records why.
    Rejected(Order),
    /// A dry-run item (recorded now or earlier).
    DryRun(Order),
}

impl Placement {
    pub fn order(&self) -> &Order {
        match self {
            Placement::Placed(o)
            | Placement::AlreadyPlaced(o)
            | Placement::Rejected(o)
            | Placement::DryRun(o) => o,
        }
    }

    /// True when the order is (or was) at the broker.
    pub fn is_live(&self) -> bool {
        matches!(self, Placement::Placed(_) | Placement::AlreadyPlaced(_))
    }
}

fn adopt(order: &mut Order, found: &BrokerOrder, at: &str, note: &str) {
    order.broker_order_id = Some(found.broker_order_id.clone());
    order.observe(found, at);
    if order.status == OrderStatus::Submitting {
        order.transition(OrderStatus::Submitted, at, Some(note.to_string()));
    } else {
        order.history.push(StatusChange {
            status: order.status,
            at: at.to_string(),
            note: Some(note.to_string()),
        });
    }
}

/// Places `order` exactly once across retries and concurrent attempts.
///
/// The item is created (conditionally) before the broker call. A retry finds it: an
/// item with a broker id is already placed; one still SUBMITTING without a broker
/// id means an earlier attempt died mid-call, so the broker's orders are searched by
/// cOID before anything is sent; the broker's duplicate-cOID answer also means
/// "already placed". A dry-run order (status DRY_RUN) is recorded, never sent.
///
/// # Errors
/// `Unavailable` when the broker's answer is unknown (the item stays SUBMITTING and
/// the next attempt reconciles), store errors, fatal broker errors.
#[tracing::instrument(skip_all, fields(order_id = %order.order_id, side = order.side.as_str(), qty = %order.quantity))]
pub async fn place_once<B: Broker, S: OrderStore>(
    broker: &B,
    store: &S,
    order: Order,
    now: &str,
) -> Result<Placement, OrderError> {
    let mut order = match store.create(&order).await? {
        None if order.status == OrderStatus::DryRun => return Ok(Placement::DryRun(order)),
        None => order,
        Some(existing) => match existing.status {
            OrderStatus::DryRun => return Ok(Placement::DryRun(existing)),
            OrderStatus::Rejected => return Ok(Placement::Rejected(existing)),
            _ if existing.broker_order_id.is_some() => {
                return Ok(Placement::AlreadyPlaced(existing));
            }
            OrderStatus::Submitting => {
                let mut existing = existing;
                // An earlier attempt may have reached the broker before dying.
                if let Some(found) = broker.find_by_ref(&existing.order_id).await? {
                    tracing::info!(broker_order_id = %found.broker_order_id, "order found at the broker by cOID, not sending again");
                    adopt(
                        &mut existing,
                        &found,
                        now,
                        "reconciled: found at the broker by cOID",
                    );
                    store.save(&mut existing).await?;
                    return Ok(Placement::AlreadyPlaced(existing));
                }
                // Touched before sending again: the reconciler's grace restarts, and
                // if it resolved the item meanwhile this write conflicts instead.
                existing.transition(
                    OrderStatus::Submitting,
                    now,
                    Some("not found at the broker by cOID: sending again".into()),
                );
                store.save(&mut existing).await?;
                existing
            }
            // Final or working without a broker id (duplicate answer earlier).
            _ => return Ok(Placement::AlreadyPlaced(existing)),
        },
    };
    match broker.submit(&order).await {
        Ok(ack) => {
            order.broker_order_id = Some(ack.broker_order_id.clone());
            let status = if ack.status == OrderStatus::Submitting {
                OrderStatus::Submitted
            } else {
                ack.status
            };
            let questions = if ack.questions.is_empty() {
                String::new()
            } else {
                format!("; questions: {}", ack.questions.join(", "))
            };
            order.transition(
                status,
                now,
                Some(format!(
                    "accepted by the broker ({}){questions}",
                    ack.raw_status
                )),
            );
            store.save(&mut order).await?;
            tracing::info!(broker_order_id = %ack.broker_order_id, "order placed");
            Ok(Placement::Placed(order))
        }
        Err(BrokerError::Duplicate(coid)) => {
            tracing::warn!(%coid, "broker says the cOID is already registered: already placed");
            let found = broker.find_by_ref(&order.order_id).await.ok().flatten();
            match found {
                Some(f) => adopt(
                    &mut order,
                    &f,
                    now,
                    "broker: cOID already registered; found by cOID",
                ),
                None => {
                    order.transition(
                        OrderStatus::Submitted,
                        now,
                        Some("broker: cOID already registered (not listed yet)".into()),
                    );
                }
            }
            store.save(&mut order).await?;
            Ok(Placement::AlreadyPlaced(order))
        }
        Err(BrokerError::Rejected(why)) => {
            order.transition(OrderStatus::Rejected, now, Some(why));
            store.save(&mut order).await?;
            Ok(Placement::Rejected(order))
        }
        // Unknown outcome: keep SUBMITTING so the retry reconciles.
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use rust_decimal_macros::dec;

    use super::*;

    /// Drives a future whose fakes never wait (no executor in core).
    pub fn block_on<F: Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    #[derive(Default)]
    pub struct FakeBroker {
        /// cOID -> (broker id, filled).
        pub orders: Mutex<Vec<(String, String)>>,
        /// Register the order, then fail as a lost response would.
        pub lose_next_response: Mutex<bool>,
        pub reject_with: Mutex<Option<String>>,
        /// The cumulative commission it reports (none: not reported yet).
        pub reported_commission: Mutex<Option<Decimal>>,
        pub commission_unavailable: Mutex<bool>,
        pub commission_calls: Mutex<u32>,
        pub executions: Mutex<Vec<BrokerExecution>>,
        pub positions: Mutex<Vec<BrokerPosition>>,
    }

    impl FakeBroker {
        pub fn submitted(&self) -> usize {
            self.orders.lock().unwrap().len()
        }
    }

    impl Broker for FakeBroker {
        async fn submit(&self, order: &Order) -> Result<BrokerAck, BrokerError> {
            if let Some(why) = self.reject_with.lock().unwrap().clone() {
                return Err(BrokerError::Rejected(why));
            }
            let mut orders = self.orders.lock().unwrap();
            if orders.iter().any(|(c, _)| *c == order.order_id) {
                return Err(BrokerError::Duplicate(order.order_id.clone()));
            }
            let id = format!("{}", 1000 + orders.len());
            orders.push((order.order_id.clone(), id.clone()));
            if std::mem::take(&mut *self.lose_next_response.lock().unwrap()) {
                return Err(BrokerError::Unavailable("timed out".into()));
            }
            Ok(BrokerAck {
                broker_order_id: id,
                status: OrderStatus::PreSubmitted,
                raw_status: "PreSubmitted".into(),
                questions: Vec::new(),
            })
        }

        async fn find_by_ref(&self, coid: &str) -> Result<Option<BrokerOrder>, BrokerError> {
            Ok(self
                .orders
                .lock()
                .unwrap()
                .iter()
                .find(|(c, _)| c == coid)
                .map(|(_, id)| BrokerOrder {
                    broker_order_id: id.clone(),
                    status: OrderStatus::Submitted,
                    raw_status: "Submitted".into(),
                    filled: Decimal::ZERO,
                    avg_price: None,
                    commission: None,
                }))
        }

        async fn status(&self, id: &str) -> Result<BrokerOrder, BrokerError> {
            Err(BrokerError::Failed(format!("not used: {id}")))
        }

        async fn cancel(&self, _id: &str) -> Result<(), BrokerError> {
            Ok(())
        }

        async fn commission(
            &self,
            _order: &Order,
            _filled: Decimal,
        ) -> Result<Option<Decimal>, BrokerError> {
            *self.commission_calls.lock().unwrap() += 1;
            if *self.commission_unavailable.lock().unwrap() {
                return Err(BrokerError::Unavailable("HTTP 429".into()));
            }
            Ok(*self.reported_commission.lock().unwrap())
        }

        async fn executions(&self, _days: u32) -> Result<Vec<BrokerExecution>, BrokerError> {
            Ok(self.executions.lock().unwrap().clone())
        }

        async fn cash(&self, _currency: &str) -> Result<Decimal, BrokerError> {
            Ok(dec!(1000000))
        }

        async fn positions(&self) -> Result<Vec<BrokerPosition>, BrokerError> {
            Ok(self.positions.lock().unwrap().clone())
        }
    }

    #[derive(Default)]
    pub struct InMemoryOrders(pub Mutex<HashMap<String, Order>>);

    impl OrderStore for InMemoryOrders {
        async fn create(&self, order: &Order) -> Result<Option<Order>, OrderStoreError> {
            let mut m = self.0.lock().unwrap();
            if let Some(o) = m.get(&order.order_id) {
                return Ok(Some(o.clone()));
            }
            m.insert(order.order_id.clone(), order.clone());
            Ok(None)
        }

        async fn get(&self, id: &str) -> Result<Option<Order>, OrderStoreError> {
            Ok(self.0.lock().unwrap().get(id).cloned())
        }

        async fn save(&self, order: &mut Order) -> Result<(), OrderStoreError> {
            let mut m = self.0.lock().unwrap();
            let stored = m.get(&order.order_id).map_or(0, |o| o.version);
            if stored != order.version {
                return Err(OrderStoreError::Conflict(order.order_id.clone()));
            }
            order.version += 1;
            m.insert(order.order_id.clone(), order.clone());
            Ok(())
        }
    }

    pub fn order(coid: &str, status: OrderStatus) -> Order {
        Order::new(
            NewOrder {
                order_id: coid.into(),
                strategy_id: "s1".into(),
                execution_id: "exec-1".into(),
                conid: 265598,
                symbol: "AAPL".into(),
                side: Side::Buy,
                order_type: "LMT".into(),
                quantity: dec!(10),
                limit_price: Some(dec!(100)),
                tif: "DAY".into(),
                stop: Some(dec!(95)),
                target: Some(dec!(110)),
                purpose: purpose::ENTRY.into(),
                position_id: None,
                sizing: None,
            },
            status,
            "2026-01-05T15:00:00.000Z",
            None,
        )
    }

    #[test]
    fn client_order_id_is_stable_per_execution_and_leg() {
        let a = client_order_id("exec-1", "entry");

        assert_eq!(a, client_order_id("exec-1", "entry"));
        assert_ne!(a, client_order_id("exec-1", "exit"));
        assert_ne!(a, client_order_id("exec-2", "entry"));
        assert!(a.len() <= 30 && a.starts_with("tf-"));
    }

    #[test]
    fn resubmitting_the_same_order_places_it_once() {
        let (broker, store) = (FakeBroker::default(), InMemoryOrders::default());

        let first = block_on(place_once(
            &broker,
            &store,
            order("tf-a", OrderStatus::Submitting),
            "t1",
        ))
        .unwrap();
        let second = block_on(place_once(
            &broker,
            &store,
            order("tf-a", OrderStatus::Submitting),
            "t2",
        ))
        .unwrap();

        assert_eq!(broker.submitted(), 1);
        assert!(matches!(first, Placement::Placed(_)));
        assert!(
            matches!(second, Placement::AlreadyPlaced(ref o) if o.broker_order_id.as_deref() == Some("1000"))
        );
    }

    #[test]
    fn a_retry_after_a_lost_response_reconciles_by_coid_instead_of_sending_again() {
        let (broker, store) = (FakeBroker::default(), InMemoryOrders::default());
        *broker.lose_next_response.lock().unwrap() = true;

        let lost = block_on(place_once(
            &broker,
            &store,
            order("tf-b", OrderStatus::Submitting),
            "t1",
        ));
        let stored = block_on(store.get("tf-b")).unwrap().unwrap();
        let retry = block_on(place_once(
            &broker,
            &store,
            order("tf-b", OrderStatus::Submitting),
            "t2",
        ))
        .unwrap();

        assert!(matches!(
            lost,
            Err(OrderError::Broker(BrokerError::Unavailable(_)))
        ));
        assert_eq!(
            (stored.status, stored.broker_order_id),
            (OrderStatus::Submitting, None)
        );
        assert_eq!(broker.submitted(), 1);
        let o = retry.order();
        assert!(matches!(retry, Placement::AlreadyPlaced(_)));
        assert_eq!(o.broker_order_id.as_deref(), Some("1000"));
        assert_eq!(o.status, OrderStatus::Submitted);
        assert!(
            o.history
                .iter()
                .any(|h| h.note.as_deref().unwrap_or("").contains("reconciled"))
        );
    }

    #[test]
    fn the_brokers_duplicate_answer_means_already_placed() {
        let (broker, store) = (FakeBroker::default(), InMemoryOrders::default());
        broker
            .orders
            .lock()
            .unwrap()
            .push(("tf-c".into(), "77".into()));

        let p = block_on(place_once(
            &broker,
            &store,
            order("tf-c", OrderStatus::Submitting),
            "t1",
        ))
        .unwrap();

        assert!(matches!(p, Placement::AlreadyPlaced(_)));
        assert_eq!(p.order().broker_order_id.as_deref(), Some("77"));
        assert_eq!(broker.submitted(), 1);
    }

    #[test]
    fn a_rejection_is_recorded_with_the_brokers_words_and_not_retried() {
        let (broker, store) = (FakeBroker::default(), InMemoryOrders::default());
        *broker.reject_with.lock().unwrap() = Some("insufficient funds".into());

        let p = block_on(place_once(
            &broker,
            &store,
            order("tf-d", OrderStatus::Submitting),
            "t1",
        ))
        .unwrap();
        *broker.reject_with.lock().unwrap() = None;
        let again = block_on(place_once(
            &broker,
            &store,
            order("tf-d", OrderStatus::Submitting),
            "t2",
        ))
        .unwrap();

        assert!(matches!(p, Placement::Rejected(_)));
        assert_eq!(
            p.order().history.last().unwrap().note.as_deref(),
            Some("insufficient funds")
        );
        assert!(matches!(again, Placement::Rejected(_)));
        assert_eq!(broker.submitted(), 0);
    }

    #[test]
    fn a_dry_run_is_recorded_and_never_sent() {
        let (broker, store) = (FakeBroker::default(), InMemoryOrders::default());

        let p = block_on(place_once(
            &broker,
            &store,
            order("tf-e", OrderStatus::DryRun),
            "t1",
        ))
        .unwrap();

        assert!(matches!(p, Placement::DryRun(_)));
        assert_eq!(broker.submitted(), 0);
        assert_eq!(
            block_on(store.get("tf-e")).unwrap().unwrap().status,
            OrderStatus::DryRun
        );
    }

    #[rstest::rstest]
    #[case("PreSubmitted", dec!(0), OrderStatus::PreSubmitted)]
    #[case("Submitted", dec!(0), OrderStatus::Submitted)]
    #[case("Submitted", dec!(4), OrderStatus::PartiallyFilled)]
    #[case("Filled", dec!(10), OrderStatus::Filled)]
    #[case("Cancelled", dec!(4), OrderStatus::Cancelled)]
    #[case("ApiCancelled", dec!(0), OrderStatus::Cancelled)]
    #[case("Inactive", dec!(0), OrderStatus::Rejected)]
    #[case("PendingSubmit", dec!(0), OrderStatus::PreSubmitted)]
    fn ibkr_statuses_map_to_ours(
        #[case] raw: &str,
        #[case] filled: Decimal,
        #[case] ours: OrderStatus,
    ) {
        assert_eq!(OrderStatus::from_broker(raw, filled), ours);
    }

    fn report(filled: Decimal, avg: Decimal, commission: Option<Decimal>) -> BrokerOrder {
        BrokerOrder {
            broker_order_id: "9".into(),
            status: OrderStatus::from_broker("Submitted", filled),
            raw_status: "Submitted".into(),
            filled,
            avg_price: Some(avg),
            commission,
        }
    }

    #[test]
    fn partial_fills_are_applied_once_each_at_their_derived_price() {
        let mut o = order("tf-f", OrderStatus::Submitted);

        let first = o
            .unapplied_fill(&report(dec!(4), dec!(100), Some(dec!(1))), "t1")
            .unwrap();
        o.mark_applied(&first);
        let again = o.unapplied_fill(&report(dec!(4), dec!(100), Some(dec!(1))), "t2");
        // 4 @ 100 then 6 more: cumulative average 101.20 -> 1012.00 - 400.00 = 612.00 / 6 = 102.
        let second = o
            .unapplied_fill(&report(dec!(10), dec!(101.2), Some(dec!(2))), "t3")
            .unwrap();

        assert_eq!(
            (first.quantity, first.price, first.commission),
            (dec!(4), dec!(100), dec!(1))
        );
        assert_eq!(again, None);
        assert_eq!(
            (
                second.quantity,
                second.price,
                second.value,
                second.commission
            ),
            (dec!(6), dec!(102), dec!(612.00), dec!(1))
        );
    }

    #[test]
    fn a_fill_before_the_commission_is_reported_counts_it_later() {
        let mut o = order("tf-h", OrderStatus::Submitted);

        let early = o
            .unapplied_fill(&report(dec!(4), dec!(100), None), "t1")
            .unwrap();
        o.mark_applied(&early);
        let flag_after_early = o.commission_reported;
        let rest = o
            .unapplied_fill(&report(dec!(10), dec!(100), Some(dec!(1.05))), "t2")
            .unwrap();
        o.mark_applied(&rest);

        assert_eq!(
            (
                early.commission,
                early.commission_reported,
                flag_after_early
            ),
            (dec!(0), false, false)
        );
        assert_eq!(
            (rest.commission, rest.commission_reported),
            (dec!(1.05), true)
        );
        assert_eq!(
            (o.applied_commission, o.commission_reported),
            (dec!(1.05), true)
        );
    }

    #[test]
    fn a_new_fill_asks_the_broker_for_its_commission_once_per_poll() {
        let broker = FakeBroker::default();
        *broker.reported_commission.lock().unwrap() = Some(dec!(1.00));
        let o = order("tf-i", OrderStatus::Submitted);

        let filled = block_on(with_commission(
            &broker,
            &o,
            report(dec!(4), dec!(100), None),
        ));
        let nothing_new = block_on(with_commission(&broker, &o, report(dec!(0), dec!(0), None)));

        assert_eq!(filled.commission, Some(dec!(1.00)));
        assert_eq!(nothing_new.commission, None);
        assert_eq!(*broker.commission_calls.lock().unwrap(), 1);
    }

    #[test]
    fn a_dry_run_order_never_asks_the_broker_for_commission() {
        let broker = FakeBroker::default();
        *broker.reported_commission.lock().unwrap() = Some(dec!(1.00));
        let o = order("tf-j", OrderStatus::DryRun);

        let r = block_on(with_commission(
            &broker,
            &o,
            report(dec!(4), dec!(100), None),
        ));

        assert_eq!(r.commission, None);
        assert_eq!(*broker.commission_calls.lock().unwrap(), 0);
    }

    #[test]
    fn a_failed_commission_lookup_does_not_block_the_fill() {
        let broker = FakeBroker::default();
        *broker.commission_unavailable.lock().unwrap() = true;
        let o = order("tf-k", OrderStatus::Submitted);

        let r = block_on(with_commission(
            &broker,
            &o,
            report(dec!(4), dec!(100), None),
        ));
        let fill = o.unapplied_fill(&r, "t1").unwrap();

        assert_eq!(
            (fill.quantity, fill.commission, fill.commission_reported),
            (dec!(4), dec!(0), false)
        );
    }

    #[test]
    fn every_status_transition_is_kept_with_its_time() {
        let mut o = order("tf-g", OrderStatus::Submitting);

        o.observe(&report(dec!(0), dec!(0), None), "t1");
        o.observe(&report(dec!(0), dec!(0), None), "t2");
        o.observe(&report(dec!(4), dec!(100), None), "t3");
        o.observe(&report(dec!(7), dec!(100), None), "t4");

        let seen: Vec<(OrderStatus, &str)> = o
            .history
            .iter()
            .map(|h| (h.status, h.at.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                (OrderStatus::Submitting, "2026-01-05T15:00:00.000Z"),
                (OrderStatus::Submitted, "t1"),
                (OrderStatus::PartiallyFilled, "t3"),
                (OrderStatus::PartiallyFilled, "t4"),
            ]
        );
        assert_eq!(o.history[3].note.as_deref(), Some("filled 7 of 10"));
    }

    #[rstest::rstest]
    #[case(crate::signal::Action::Buy, dec!(0), false, Intent::Enter(Side::Buy))]
    #[case(crate::signal::Action::Sell, dec!(0), true, Intent::Enter(Side::Sell))]
    #[case(crate::signal::Action::Sell, dec!(15), false, Intent::Exit { side: Side::Sell, quantity: dec!(15) })]
    #[case(crate::signal::Action::Buy, dec!(-7), true, Intent::Exit { side: Side::Buy, quantity: dec!(7) })]
    fn signals_open_when_flat_and_close_the_whole_position_otherwise(
        #[case] action: crate::signal::Action,
        #[case] held: Decimal,
        #[case] allow_short: bool,
        #[case] intent: Intent,
    ) {
        let entry = order("tf-p", OrderStatus::Filled);
        let fill = Fill::at_price("tf-p", Side::Buy, dec!(1), dec!(100), dec!(0), "t");
        let mut p = crate::portfolio::apply_fill(None, &entry, &fill).position;
        p.quantity = held;

        assert_eq!(decide(action, Some(&p), allow_short), intent);
    }

    #[rstest::rstest]
    #[case(crate::signal::Action::Sell, None, false, "no naked shorts")]
    #[case(crate::signal::Action::Buy, Some(dec!(5)), false, "already long")]
    #[case(crate::signal::Action::Sell, Some(dec!(-5)), true, "already short")]
    #[case(crate::signal::Action::Hold, None, true, "HOLD")]
    fn signals_that_add_nothing_say_why(
        #[case] action: crate::signal::Action,
        #[case] held: Option<Decimal>,
        #[case] allow_short: bool,
        #[case] reason: &str,
    ) {
        let entry = order("tf-q", OrderStatus::Filled);
        let fill = Fill::at_price("tf-q", Side::Buy, dec!(1), dec!(100), dec!(0), "t");
        let p = held.map(|q| {
            let mut p = crate::portfolio::apply_fill(None, &entry, &fill).position;
            p.quantity = q;
            p
        });

        let i = decide(action, p.as_ref(), allow_short);

        assert!(
            matches!(&i, Intent::Nothing(why) if why.contains(reason)),
            "{i:?}"
        );
    }
}
