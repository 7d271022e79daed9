//! Gateway discipline across Lambdas, in DynamoDB.
//!
//! `DynamoDiscipline` is the one path to the gateway: gateway-wide pacing and an
//! order window that no other request enters (IBKR drops an order when any request
//! reaches the session between its confirmation question and our reply: IBKR
//! Campus, Web API v1.0, "Place Order Reply Confirmation"). Every client built by
//! `Deps::ibkr` keeps it.
//!
//! `SubmissionLease`/`LeasedBroker` predate it: one submission at a time, as an item
//! in the orders table. The order window now does that for every request, so the
//! lease is redundant but harmless; it is kept so the order path's construction
//! stays the same.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use tradeflow_core::orders::{Broker, BrokerAck, BrokerError, BrokerOrder, Order};

use crate::ibkr::discipline::{BoxFuture, GatewayDiscipline, ReadTicket, WindowTicket, now_ms};
use crate::ibkr::{Endpoint, IbkrError, IbkrSettings, PacingLimits};
use crate::store::{is_conditional_failure, s};

/// The reserved `order_id` of the lease item: never a cOID (those start with `tf-`).
pub const LEASE_KEY: &str = "#lease#ibkr-order-submission";

#[derive(Debug, Clone)]
pub struct SubmissionLease {
    client: aws_sdk_dynamodb::Client,
    table: String,
    /// How long one submission may hold the session (question + reply + slack).
    hold: Duration,
    /// How long to wait for another holder before giving up (a retryable error).
    wait: Duration,
}

impl SubmissionLease {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            hold: Duration::from_secs(45),
            wait: Duration::from_secs(30),
        }
    }

    fn now_ms() -> i64 {
        chrono::Utc::now().timestamp_millis()
    }

    /// Takes the lease for `holder`, waiting while another holder has it.
    ///
    /// # Errors
    /// `Unavailable` when it stays held for longer than the wait, or DynamoDB fails.
    pub async fn acquire(&self, holder: &str) -> Result<(), BrokerError> {
        let started = Instant::now();
        loop {
            let now = Self::now_ms();
            let until = now + self.hold.as_millis() as i64;
            let res = self
                .client
                .put_item()
                .table_name(&self.table)
                .item("order_id", s(LEASE_KEY))
                .item("holder", s(holder))
                .item("until_ms", AttributeValue::N(until.to_string()))
                .condition_expression(
                    "attribute_not_exists(order_id) OR until_ms < :now OR holder = :me",
                )
                .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
                .expression_attribute_values(":me", s(holder))
                .send()
                .await;
            match res {
                Ok(_) => return Ok(()),
                Err(e) if is_conditional_failure(&e) => {
                    if started.elapsed() > self.wait {
                        return Err(BrokerError::Unavailable(
                            "another order submission holds the IBKR session".into(),
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
                Err(e) => {
                    return Err(BrokerError::Unavailable(format!("submission lease: {e}")));
                }
            }
        }
    }

    /// Gives the lease back if `holder` still has it (an expired lease may be another's).
    pub async fn release(&self, holder: &str) {
        let res = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("order_id", s(LEASE_KEY))
            .condition_expression("holder = :me")
            .expression_attribute_values(":me", s(holder))
            .send()
            .await;
        if let Err(e) = res
            && !is_conditional_failure(&e)
        {
            // It expires on its own; a failed release only delays the next holder.
            tracing::warn!(error = %e, "could not release the submission lease");
        }
    }
}

/// A broker whose submissions hold the lease; reads and cancels pass straight through.
#[derive(Debug, Clone)]
pub struct LeasedBroker<B> {
    inner: B,
    lease: SubmissionLease,
}

impl<B> LeasedBroker<B> {
    pub fn new(inner: B, lease: SubmissionLease) -> Self {
        Self { inner, lease }
    }
}

impl<B: Broker> Broker for LeasedBroker<B> {
    async fn submit(&self, order: &Order) -> Result<BrokerAck, BrokerError> {
        // The cOID names the holder: a retry of the same submission may re-take it.
        self.lease.acquire(&order.order_id).await?;
        let result = self.inner.submit(order).await;
        self.lease.release(&order.order_id).await;
        result
    }

    async fn find_by_ref(&self, coid: &str) -> Result<Option<BrokerOrder>, BrokerError> {
        self.inner.find_by_ref(coid).await
    }

    async fn status(&self, broker_order_id: &str) -> Result<BrokerOrder, BrokerError> {
        self.inner.status(broker_order_id).await
    }

    async fn cancel(&self, broker_order_id: &str) -> Result<(), BrokerError> {
        self.inner.cancel(broker_order_id).await
    }

    async fn commission(
        &self,
        order: &Order,
        filled: rust_decimal::Decimal,
    ) -> Result<Option<rust_decimal::Decimal>, BrokerError> {
        self.inner.commission(order, filled).await
    }

    async fn executions(
        &self,
        days: u32,
    ) -> Result<Vec<tradeflow_core::orders::BrokerExecution>, BrokerError> {
        self.inner.executions(days).await
    }

    async fn positions(&self) -> Result<Vec<tradeflow_core::orders::BrokerPosition>, BrokerError> {
        self.inner.positions().await
    }

    async fn cash(&self, currency: &str) -> Result<rust_decimal::Decimal, BrokerError> {
        self.inner.cash(currency).await
    }
}

impl crate::aws::Deps {
    /// The submission lease of this deployment's orders table.
    pub fn submission_lease(&self) -> SubmissionLease {
        SubmissionLease::new(self.dynamo.clone(), self.config.tables.orders.clone())
    }
}

/// The gateway-wide discipline kept in DynamoDB, shared by every Lambda that calls
/// the gateway (see `ibkr::discipline` for the rules). One item per gateway (keyed
/// by its base URL) in the gateway table holds:
/// - `next_slot`: epoch ms of the next free global pacing slot (a request takes the
///   slot and moves it on by the global interval in one conditional update);
/// - `readers`: the requests in flight or waiting for their slot (id → expiry ms);
/// - `history`: the history requests among them (at most IBKR's 5);
/// - `<endpoint>_next/_holder/_until` for the endpoints with their own limit: one
///   holder at a time, and the next may start an interval after the previous one
///   *finished* (spacing by send time lets a late send crowd the next one);
/// - `writer`/`writer_until`: the open order window. While it is set no request
///   registers; it opens only once `readers` is empty.
///
/// Everything held expires, so a crashed Lambda blocks the gateway for a bounded
/// time: a request's ticket 5 s (the longest queue it may join) plus its timeout
/// plus 5 s after it registered, the window 60 s after it opened.
#[derive(Debug, Clone)]
pub struct DynamoDiscipline {
    client: aws_sdk_dynamodb::Client,
    table: String,
    key: String,
    limits: PacingLimits,
    /// How long one request may be in flight after its slot.
    request_hold: Duration,
    /// How far ahead a request may take its slot: beyond, it waits for the queue
    /// to shorten. Bounds how long a crashed waiter's ticket holds windows off.
    queue_max: Duration,
    window_hold: Duration,
    /// How long to wait for a slot or the window before giving up (retryable).
    wait_limit: Duration,
    created: Arc<tokio::sync::OnceCell<()>>,
    /// Whether the last slot seen was in the future: picks which of the two
    /// conditional updates to try first.
    queued: Arc<AtomicBool>,
    /// Smoothed round trip of a registration (ms): slots are taken that far ahead
    /// so the answer arrives before the slot.
    rtt_ms: Arc<AtomicI64>,
    prefix: String,
    counter: Arc<AtomicU64>,
}

const HISTORY_PERMITS: usize = 5;
/// A request whose answer from DynamoDB came later than this after its slot gives
/// the slot up: sent late, it would crowd the next requests into one second. With
/// a 125 ms interval, 1000 ms + 100 ms of lateness still hold at most 9 sends.
const LATE_MS: i64 = 100;
/// The most a slot is taken ahead of the registration.
const MAX_LEAD_MS: i64 = 300;

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn num(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn get_num(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn get_map_nums(item: &HashMap<String, AttributeValue>, name: &str) -> Vec<(String, i64)> {
    item.get(name)
        .and_then(|v| v.as_m().ok())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_n().ok()?.parse().ok()?)))
                .collect()
        })
        .unwrap_or_default()
}

async fn sleep_ms(d: i64) {
    tokio::time::sleep(Duration::from_millis(d.clamp(1, 60_000) as u64)).await;
}

fn store_error(what: &str, e: impl std::fmt::Display) -> IbkrError {
    IbkrError::Discipline(format!("{what}: {e}"))
}

impl DynamoDiscipline {
    /// The discipline for the gateway at `gateway_url`, kept in `table`.
    pub fn new(
        client: aws_sdk_dynamodb::Client,
        table: impl Into<String>,
        gateway_url: impl Into<String>,
        limits: PacingLimits,
        request_timeout: Duration,
    ) -> Self {
        let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        Self {
            client,
            table: table.into(),
            key: gateway_url.into(),
            limits,
            request_hold: request_timeout + Duration::from_secs(5),
            queue_max: Duration::from_secs(5),
            window_hold: Duration::from_secs(60),
            wait_limit: Duration::from_secs(60),
            created: Arc::new(tokio::sync::OnceCell::new()),
            queued: Arc::new(AtomicBool::new(false)),
            rtt_ms: Arc::new(AtomicI64::new(20)),
            prefix: format!("{:x}{:x}", nanos, std::process::id()),
            counter: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Gives up waiting after `limit` (tests shorten it).
    #[must_use]
    pub fn with_wait_limit(mut self, limit: Duration) -> Self {
        self.wait_limit = limit;
        self
    }

    /// How long a request's ticket and the order window stay valid when their
    /// holder never gives them back (tests shorten them to see crashes cleared).
    #[must_use]
    pub fn with_holds(mut self, request: Duration, window: Duration) -> Self {
        self.request_hold = request;
        self.queue_max = request;
        self.window_hold = window;
        self
    }

    fn next_id(&self) -> String {
        format!(
            "{}-{}",
            self.prefix,
            self.counter.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn key(&self) -> AttributeValue {
        s(&self.key)
    }

    /// Creates the gateway's item once per process (a no-op when it exists).
    async fn ensure_item(&self) -> Result<(), IbkrError> {
        self.created
            .get_or_try_init(|| async {
                let res = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .item("gateway", self.key())
                    .item("readers", AttributeValue::M(HashMap::new()))
                    .item("history", AttributeValue::M(HashMap::new()))
                    .item("next_slot", num(0))
                    .condition_expression("attribute_not_exists(gateway)")
                    .send()
                    .await;
                match res {
                    Ok(_) => Ok(()),
                    Err(e) if is_conditional_failure(&e) => Ok(()),
                    Err(e) => Err(store_error("creating the gateway item", e)),
                }
            })
            .await
            .map(|_| ())
    }

    async fn read_item(&self) -> Result<HashMap<String, AttributeValue>, IbkrError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("gateway", self.key())
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| store_error("reading the gateway item", e))?;
        Ok(out.item.unwrap_or_default())
    }

    /// The item as a failed conditional update found it (DynamoDB returns it with
    /// `ReturnValuesOnConditionCheckFailure`; otherwise it is read).
    async fn item_after_failure(
        &self,
        e: &SdkError<UpdateItemError, HttpResponse>,
    ) -> Result<HashMap<String, AttributeValue>, IbkrError> {
        if let SdkError::ServiceError(se) = e
            && let UpdateItemError::ConditionalCheckFailedException(c) = se.err()
            && let Some(item) = c.item()
        {
            return Ok(item.clone());
        }
        self.read_item().await
    }

    fn past(&self, deadline: Instant, what: &str) -> Result<(), IbkrError> {
        if Instant::now() > deadline {
            Err(IbkrError::Discipline(format!(
                "gave up waiting {:?} for {what}",
                self.wait_limit
            )))
        } else {
            Ok(())
        }
    }

    /// Waits to become the only holder of an endpoint with its own limit, an
    /// interval after its previous holder finished.
    async fn take_endpoint(
        &self,
        name: &str,
        id: &str,
        deadline: Instant,
    ) -> Result<(), IbkrError> {
        loop {
            let now = now_ms();
            let res = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("gateway", self.key())
                .update_expression("SET #eh = :me, #eu = :until")
                .condition_expression(
                    "(attribute_not_exists(#en) OR #en <= :now) AND (attribute_not_exists(#eu) OR #eu < :now)",
                )
                .expression_attribute_names("#en", format!("{name}_next"))
                .expression_attribute_names("#eh", format!("{name}_holder"))
                .expression_attribute_names("#eu", format!("{name}_until"))
                .expression_attribute_values(":me", s(id))
                .expression_attribute_values(":now", num(now))
                .expression_attribute_values(":until", num(now + ms(self.request_hold)))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            match res {
                Ok(_) => return Ok(()),
                Err(e) if is_conditional_failure(&e) => {
                    let item = self.item_after_failure(&e).await?;
                    let next = get_num(&item, &format!("{name}_next")).unwrap_or(0);
                    let held_until = get_num(&item, &format!("{name}_until")).unwrap_or(0);
                    let wait = if held_until >= now {
                        (held_until - now).min(100)
                    } else {
                        next - now
                    };
                    self.past(deadline, name)?;
                    sleep_ms(wait.max(10)).await;
                }
                Err(e) => return Err(store_error("taking an endpoint", e)),
            }
        }
    }

    /// Renews `id`'s hold of an endpoint from now; false when it is not the holder
    /// any more.
    async fn keep_endpoint(&self, name: &str, id: &str) -> Result<bool, IbkrError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("gateway", self.key())
            .update_expression("SET #eu = :until")
            .condition_expression("#eh = :me")
            .expression_attribute_names("#eh", format!("{name}_holder"))
            .expression_attribute_names("#eu", format!("{name}_until"))
            .expression_attribute_values(":me", s(id))
            .expression_attribute_values(":until", num(now_ms() + ms(self.request_hold)))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if is_conditional_failure(&e) => Ok(false),
            Err(e) => Err(store_error("keeping an endpoint", e)),
        }
    }

    async fn release_endpoint(&self, name: &str, id: &str, interval: Duration) {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("gateway", self.key())
            .update_expression("SET #en = :next REMOVE #eh, #eu")
            .condition_expression("#eh = :me")
            .expression_attribute_names("#en", format!("{name}_next"))
            .expression_attribute_names("#eh", format!("{name}_holder"))
            .expression_attribute_names("#eu", format!("{name}_until"))
            .expression_attribute_values(":me", s(id))
            .expression_attribute_values(":next", num(now_ms() + ms(interval)))
            .send()
            .await;
        if let Err(e) = res
            && !is_conditional_failure(&e)
        {
            tracing::warn!(error = %e, endpoint = name, "could not release a gateway endpoint; it expires");
        }
    }

    /// Registers the request and takes its global slot (and a history permit) in
    /// one conditional update; returns the slot's epoch ms. When round trips are
    /// slow the slot is taken ahead, so the answer usually arrives before it (a
    /// slot missed by more than `LATE_MS` is given up). The ticket is valid until
    /// the latest slot it can get plus the request's hold.
    async fn register(&self, id: &str, history: bool, deadline: Instant) -> Result<i64, IbkrError> {
        let interval = ms(self.limits.global_interval);
        loop {
            let now = now_ms();
            // Late by up to LATE_MS is fine (see there): lead only what a round trip
            // may exceed that by, so an idle gateway costs no wait at all.
            let lead = (2 * self.rtt_ms.load(Ordering::Relaxed) - LATE_MS).clamp(0, MAX_LEAD_MS);
            let earliest = now + lead;
            let latest_slot = now + ms(self.queue_max);
            let until = latest_slot + ms(self.request_hold);
            let queued = self.queued.load(Ordering::Relaxed);
            let mut set = format!(
                "SET #r.#me = :until, #ns = {}",
                if queued { "#ns + :i" } else { ":next" }
            );
            let mut cond = format!(
                "(attribute_not_exists(#wu) OR #wu < :now) AND {}",
                if queued {
                    "#ns > :earliest AND #ns <= :latest"
                } else {
                    "(attribute_not_exists(#ns) OR #ns <= :earliest)"
                }
            );
            if history {
                set.push_str(", #h.#me = :until");
                cond.push_str(" AND size(#h) < :hmax");
            }
            let mut req = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("gateway", self.key())
                .update_expression(set)
                .condition_expression(cond)
                .expression_attribute_names("#r", "readers")
                .expression_attribute_names("#me", id)
                .expression_attribute_names("#ns", "next_slot")
                .expression_attribute_names("#wu", "writer_until")
                .expression_attribute_values(":until", num(until))
                .expression_attribute_values(":now", num(now))
                .expression_attribute_values(":earliest", num(earliest))
                .return_values(ReturnValue::UpdatedNew)
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                );
            req = if queued {
                req.expression_attribute_values(":i", num(interval))
                    .expression_attribute_values(":latest", num(latest_slot))
            } else {
                req.expression_attribute_values(":next", num(earliest + interval))
            };
            if history {
                req = req
                    .expression_attribute_names("#h", "history")
                    .expression_attribute_values(":hmax", num(HISTORY_PERMITS as i64));
            }
            let sent = now_ms();
            let res = req.send().await;
            let rtt = now_ms() - sent;
            let smoothed = self.rtt_ms.load(Ordering::Relaxed);
            self.rtt_ms
                .store((3 * smoothed + rtt) / 4, Ordering::Relaxed);
            match res {
                Ok(out) => {
                    let next = out
                        .attributes
                        .as_ref()
                        .and_then(|a| get_num(a, "next_slot"))
                        .unwrap_or(earliest + interval);
                    let slot = if queued { next - interval } else { earliest };
                    self.queued
                        .store(next > now_ms() + interval, Ordering::Relaxed);
                    return Ok(slot);
                }
                Err(e) if is_conditional_failure(&e) => {
                    let item = self.item_after_failure(&e).await?;
                    let writer_until = get_num(&item, "writer_until").unwrap_or(0);
                    let next_slot = get_num(&item, "next_slot").unwrap_or(0);
                    let now = now_ms();
                    if writer_until >= now {
                        self.past(deadline, "an order window to close")?;
                        sleep_ms((writer_until - now).min(50)).await;
                    } else if history && get_map_nums(&item, "history").len() >= HISTORY_PERMITS {
                        if self.prune("history", &item, now).await == 0 {
                            self.past(deadline, "a history permit")?;
                            sleep_ms(100).await;
                        }
                    } else if next_slot > now + ms(self.queue_max) {
                        // The queue is longer than a ticket may wait: let it shorten.
                        self.past(deadline, "a pacing slot")?;
                        sleep_ms(next_slot - now - ms(self.queue_max)).await;
                    } else {
                        // The guess about the slot was wrong: the item says which.
                        self.queued.store(next_slot > now + lead, Ordering::Relaxed);
                    }
                }
                Err(e) => return Err(store_error("registering a request", e)),
            }
        }
    }

    async fn unregister(&self, id: &str, history: bool) {
        let expr = if history {
            "REMOVE #r.#me, #h.#me"
        } else {
            "REMOVE #r.#me"
        };
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("gateway", self.key())
            .update_expression(expr)
            .expression_attribute_names("#r", "readers")
            .expression_attribute_names("#me", id);
        if history {
            req = req.expression_attribute_names("#h", "history");
        }
        if let Err(e) = req.send().await {
            tracing::warn!(error = %e, "could not release a gateway request ticket; it expires");
        }
    }

    /// Removes the expired entries of map `name`; returns how many.
    async fn prune(&self, name: &str, item: &HashMap<String, AttributeValue>, now: i64) -> usize {
        let mut pruned = 0;
        for (id, until) in get_map_nums(item, name) {
            if until >= now {
                continue;
            }
            let res = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("gateway", self.key())
                .update_expression("REMOVE #m.#id")
                .condition_expression("#m.#id = :until")
                .expression_attribute_names("#m", name)
                .expression_attribute_names("#id", &id)
                .expression_attribute_values(":until", num(until))
                .send()
                .await;
            match res {
                Ok(_) => {
                    tracing::warn!(map = name, %id, "expired gateway ticket removed (its holder never released it)");
                    pruned += 1;
                }
                Err(e) if is_conditional_failure(&e) => {}
                Err(e) => tracing::warn!(error = %e, "could not prune the gateway item"),
            }
        }
        pruned
    }

    async fn acquire_ticket(&self, ep: Endpoint) -> Result<ReadTicket, IbkrError> {
        self.ensure_item().await?;
        let deadline = Instant::now() + self.wait_limit;
        let id = self.next_id();
        let own = self.limits.endpoint_interval(ep);
        if let Some((name, _)) = own {
            self.take_endpoint(name, &id, deadline).await?;
        }
        let history = ep == Endpoint::History;
        loop {
            let slot = match self.register(&id, history, deadline).await {
                Ok(slot) => slot,
                Err(e) => {
                    if let Some((name, interval)) = own {
                        self.release_endpoint(name, &id, interval).await;
                    }
                    return Err(e);
                }
            };
            // The endpoint was taken before the wait for a slot (or for an order
            // window to close: up to the window's 60 s when a placement crashed in
            // it); its hold may have lapsed meanwhile and another taken it. Then
            // both would call it at once (IBKR's penalty box): take it again.
            if let Some((name, _)) = own
                && !self.keep_endpoint(name, &id).await?
            {
                tracing::info!(
                    endpoint = name,
                    "endpoint hold lapsed while waiting, taking it again"
                );
                self.unregister(&id, history).await;
                self.take_endpoint(name, &id, deadline).await?;
                continue;
            }
            let now = now_ms();
            if now > slot + LATE_MS {
                tracing::info!(late_ms = now - slot, "gateway slot missed, taking another");
                self.unregister(&id, history).await;
                continue;
            }
            if slot > now {
                sleep_ms(slot - now).await;
            }
            return Ok(ReadTicket {
                id,
                endpoint: ep,
                history,
            });
        }
    }

    async fn release_ticket(&self, t: ReadTicket) {
        self.unregister(&t.id, t.history).await;
        if let Some((name, interval)) = self.limits.endpoint_interval(t.endpoint) {
            self.release_endpoint(name, &t.id, interval).await;
        }
    }

    async fn open(&self) -> Result<WindowTicket, IbkrError> {
        self.ensure_item().await?;
        let deadline = Instant::now() + self.wait_limit;
        let id = self.next_id();
        loop {
            self.take_window(&id, deadline).await?;
            // No request registers any more; wait for those registered to finish.
            let not_before = match self.drain(&id, deadline).await {
                Ok(t) => t,
                Err(e) => {
                    self.close(&id, now_ms()).await;
                    return Err(e);
                }
            };
            // The window's time runs from now; it must not have lapsed while
            // draining, or a request may have slipped in: then start over.
            let now = now_ms();
            let res = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("gateway", self.key())
                .update_expression("SET #wu = :until")
                .condition_expression("#w = :me AND #wu >= :now")
                .expression_attribute_names("#w", "writer")
                .expression_attribute_names("#wu", "writer_until")
                .expression_attribute_values(":me", s(&id))
                .expression_attribute_values(":now", num(now))
                .expression_attribute_values(":until", num(now + ms(self.window_hold)))
                .send()
                .await;
            match res {
                Ok(_) => {
                    return Ok(WindowTicket {
                        id,
                        not_before_ms: not_before.max(now),
                    });
                }
                Err(e) if is_conditional_failure(&e) => {
                    tracing::warn!(
                        "the order window lapsed while requests drained; opening it again"
                    );
                    self.past(deadline, "the order window")?;
                }
                Err(e) => {
                    self.close(&id, now).await;
                    return Err(store_error("confirming the order window", e));
                }
            }
        }
    }

    /// Becomes the window's holder once no other holds it.
    async fn take_window(&self, id: &str, deadline: Instant) -> Result<(), IbkrError> {
        loop {
            let now = now_ms();
            let res = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("gateway", self.key())
                .update_expression("SET #w = :me, #wu = :until")
                .condition_expression("attribute_not_exists(#wu) OR #wu < :now OR #w = :me")
                .expression_attribute_names("#w", "writer")
                .expression_attribute_names("#wu", "writer_until")
                .expression_attribute_values(":me", s(id))
                .expression_attribute_values(":now", num(now))
                .expression_attribute_values(":until", num(now + ms(self.window_hold)))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match res {
                Ok(_) => return Ok(()),
                Err(e) if is_conditional_failure(&e) => {
                    let item = self.item_after_failure(&e).await?;
                    let until = get_num(&item, "writer_until").unwrap_or(0);
                    self.past(deadline, "another order window")?;
                    sleep_ms((until - now).min(100)).await;
                }
                Err(e) => return Err(store_error("opening the order window", e)),
            }
        }
    }

    /// Waits until no registered request is live (pruning expired ones); returns
    /// the next pacing slot.
    async fn drain(&self, id: &str, deadline: Instant) -> Result<i64, IbkrError> {
        loop {
            let item = self.read_item().await?;
            let now = now_ms();
            if item.get("writer").and_then(|w| w.as_s().ok()) != Some(&id.to_string()) {
                return Err(IbkrError::Discipline(
                    "lost the order window while waiting for requests in flight".into(),
                ));
            }
            let live = get_map_nums(&item, "readers")
                .iter()
                .filter(|(_, until)| *until >= now)
                .count();
            if live == 0 {
                self.prune("readers", &item, now).await;
                return Ok(get_num(&item, "next_slot").unwrap_or(0));
            }
            self.past(deadline, "the requests in flight")?;
            sleep_ms(20).await;
        }
    }

    async fn close(&self, id: &str, last_request_ms: i64) {
        let next = last_request_ms + ms(self.limits.global_interval);
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("gateway", self.key())
            .update_expression("SET #ns = :next REMOVE #w, #wu")
            .condition_expression("#w = :me")
            .expression_attribute_names("#ns", "next_slot")
            .expression_attribute_names("#w", "writer")
            .expression_attribute_names("#wu", "writer_until")
            .expression_attribute_values(":me", s(id))
            .expression_attribute_values(":next", num(next))
            .send()
            .await;
        if let Err(e) = res
            && !is_conditional_failure(&e)
        {
            tracing::warn!(error = %e, "could not close the order window; it expires");
        }
    }
}

impl GatewayDiscipline for DynamoDiscipline {
    fn acquire(&self, ep: Endpoint) -> BoxFuture<'_, Result<ReadTicket, IbkrError>> {
        Box::pin(self.acquire_ticket(ep))
    }

    fn release(&self, ticket: ReadTicket) -> BoxFuture<'_, ()> {
        Box::pin(self.release_ticket(ticket))
    }

    fn open_window(&self) -> BoxFuture<'_, Result<WindowTicket, IbkrError>> {
        Box::pin(self.open())
    }

    fn close_window(&self, ticket: WindowTicket, last_request_ms: i64) -> BoxFuture<'_, ()> {
        Box::pin(async move { self.close(&ticket.id, last_request_ms).await })
    }

    fn interval(&self) -> Duration {
        self.limits.global_interval
    }
}

impl crate::aws::Deps {
    /// The gateway-wide discipline of this deployment's gateway table.
    pub fn gateway_discipline(&self, settings: &IbkrSettings) -> DynamoDiscipline {
        DynamoDiscipline::new(
            self.dynamo.clone(),
            self.config.tables.gateway.clone(),
            settings.base_url.clone(),
            settings.pacing.clone(),
            settings.timeout,
        )
    }
}
