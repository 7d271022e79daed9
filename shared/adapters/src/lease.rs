//! One order submission at a time per IBKR gateway session, across processes.
//!
//! IBKR drops an order when any request reaches the session between its confirmation
//! question and our reply ("Must follow immediately", /iserver/reply in the Web API
//! v1.0 docs). The client serialises that span within one process; this lease does it
//! across Lambdas (place_order, position-monitor) that share one gateway. It is an item
//! in the orders table (both functions already write there) under a reserved key, held
//! with a conditional write and an expiry so a crashed holder cannot block for long.

use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use tradeflow_core::orders::{Broker, BrokerAck, BrokerError, BrokerOrder, Order};

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
