//! The gateway-wide discipline every caller of one Client Portal gateway keeps,
//! whichever process it runs in: IBKR's pacing counts all callers together (10
//! requests/s, 1 per 5 s on the orders, trades and portfolio-accounts lists, 1/s on
//! tickle, 5 concurrent history requests; IBKR Campus, Web API v1.0, "Pacing
//! Limitations"), and an order's question must be answered before any other request
//! reaches the gateway ("Place Order Reply Confirmation": "Submitting other orders or
//! other requests will cancel the order").
//!
//! It is a readers/writer discipline: every request holds a read ticket from just
//! before it is sent until its answer arrives; an order holds the *window*, which
//! waits for the requests in flight to finish and lets none start until the order
//! and its replies are done. `crate::lease::DynamoDiscipline` keeps the state in
//! DynamoDB for all Lambdas; without a discipline a client paces itself only.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::client::Endpoint;
use super::error::IbkrError;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Permission for one request, held until its answer has arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadTicket {
    pub id: String,
    pub endpoint: Endpoint,
    pub history: bool,
}

/// The open order window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowTicket {
    pub id: String,
    /// Epoch ms before which the window's first request must not go out (the last
    /// paced request's slot plus the interval).
    pub not_before_ms: i64,
}

/// One discipline shared by every client of a gateway.
pub trait GatewayDiscipline: Send + Sync + Debug {
    /// Waits until a request to `ep` may go out: no order window open, its global
    /// slot reached, its endpoint's own interval passed, a history permit free.
    ///
    /// # Errors
    /// `Discipline` when that takes longer than the discipline's wait limit or its
    /// store fails (retryable).
    fn acquire(&self, ep: Endpoint) -> BoxFuture<'_, Result<ReadTicket, IbkrError>>;

    /// Gives the ticket back once the answer has arrived (never fails: a ticket
    /// not given back expires).
    fn release(&self, ticket: ReadTicket) -> BoxFuture<'_, ()>;

    /// Opens the order window: waits for another window to close and for every
    /// request in flight to finish; no request starts until it closes.
    ///
    /// # Errors
    /// `Discipline` as for `acquire`.
    fn open_window(&self) -> BoxFuture<'_, Result<WindowTicket, IbkrError>>;

    /// Closes the window; pacing resumes after `last_request_ms` (epoch ms of the
    /// window's last request).
    fn close_window(&self, ticket: WindowTicket, last_request_ms: i64) -> BoxFuture<'_, ()>;

    /// The spacing of requests inside the window (the global pacing interval).
    fn interval(&self) -> Duration;
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Paces the requests of one open window: the first not before the ticket allows,
/// each later one an interval after the previous.
#[derive(Debug)]
pub(crate) struct WindowPacer {
    next_ms: i64,
    interval_ms: i64,
    pub(crate) last_ms: i64,
}

impl WindowPacer {
    pub(crate) fn new(ticket: &WindowTicket, interval: Duration) -> Self {
        Self {
            next_ms: ticket.not_before_ms,
            interval_ms: i64::try_from(interval.as_millis()).unwrap_or(i64::MAX),
            last_ms: 0,
        }
    }

    /// Waits for the next request's turn.
    pub(crate) async fn pace(&mut self) {
        let now = now_ms();
        if self.next_ms > now {
            tokio::time::sleep(Duration::from_millis((self.next_ms - now) as u64)).await;
        }
        self.last_ms = now_ms();
        self.next_ms = self.last_ms + self.interval_ms;
    }
}
