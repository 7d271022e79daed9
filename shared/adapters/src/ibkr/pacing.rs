//! Client-side pacing, so tradeflow never earns IBKR's 429 penalty box (10–15 min
//! for the IP). Limits from IBKR Campus Web API v1.0, "Pacing Limitations": 10
//! requests/s overall, `/iserver/account/orders`, `/iserver/account/trades` and
//! `/portfolio/accounts` once per 5 s, `/tickle` once per second, at most 5
//! concurrent history requests. The per-endpoint table ("Per-Endpoint Request Rate
//! Limits": `/iserver/trades GET 1 req/5 secs`) is on IBKR Campus, Trading Web API,
//! https://www.interactivebrokers.com/campus/ibkr-api-page/web-api-trading/
//! (section "Pacing Limitations").

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use super::client::Endpoint;

/// Spacing between requests, above IBKR's limits: the gateway counts arrivals in
/// any one-second window, and a request sent late (a busy host, a slow DynamoDB
/// round trip between its slot and its send) must not let an eleventh one in. At
/// 125 ms (8/s) three requests would each have to be 375 ms late to do that.
#[derive(Debug, Clone)]
pub struct PacingLimits {
    pub global_interval: Duration,
    pub slow_interval: Duration,
    pub tickle_interval: Duration,
    pub history_concurrency: usize,
}

impl PacingLimits {
    /// IBKR's published limits plus a safety margin.
    pub fn ibkr() -> Self {
        Self {
            global_interval: Duration::from_millis(125),
            slow_interval: Duration::from_millis(5_200),
            tickle_interval: Duration::from_millis(1_050),
            history_concurrency: 5,
        }
    }

    /// No pacing: for tests that must provoke a 429.
    pub fn unlimited() -> Self {
        Self {
            global_interval: Duration::ZERO,
            slow_interval: Duration::ZERO,
            tickle_interval: Duration::ZERO,
            history_concurrency: Semaphore::MAX_PERMITS,
        }
    }
}

impl PacingLimits {
    /// The endpoint's own limit, if it has one: a name for it and the spacing.
    pub fn endpoint_interval(&self, ep: Endpoint) -> Option<(&'static str, Duration)> {
        match ep {
            Endpoint::LiveOrders => Some(("orders", self.slow_interval)),
            Endpoint::Trades => Some(("trades", self.slow_interval)),
            Endpoint::PortfolioAccounts => Some(("portfolio_accounts", self.slow_interval)),
            Endpoint::Tickle => Some(("tickle", self.tickle_interval)),
            _ => None,
        }
        .filter(|(_, d)| !d.is_zero())
    }
}

impl Default for PacingLimits {
    fn default() -> Self {
        Self::ibkr()
    }
}

#[derive(Debug)]
pub(crate) struct Pacer {
    limits: PacingLimits,
    next_global: Mutex<Option<Instant>>,
    next_by_endpoint: Mutex<HashMap<Endpoint, Instant>>,
    history: Semaphore,
}

/// Reserves the next slot and returns when it starts.
fn reserve(next: &mut Option<Instant>, interval: Duration) -> Instant {
    let now = Instant::now();
    let at = next.map_or(now, |n| n.max(now));
    *next = Some(at + interval);
    at
}

impl Pacer {
    pub(crate) fn new(limits: PacingLimits) -> Self {
        Self {
            history: Semaphore::new(limits.history_concurrency),
            limits,
            next_global: Mutex::new(None),
            next_by_endpoint: Mutex::new(HashMap::new()),
        }
    }

    fn endpoint_interval(&self, ep: Endpoint) -> Duration {
        self.limits
            .endpoint_interval(ep)
            .map_or(Duration::ZERO, |(_, d)| d)
    }

    /// Waits until `ep` may be called; the permit (history only) must live until
    /// the response has arrived.
    pub(crate) async fn acquire(&self, ep: Endpoint) -> Option<SemaphorePermit<'_>> {
        let permit = if ep == Endpoint::History {
            self.history.acquire().await.ok()
        } else {
            None
        };
        let interval = self.endpoint_interval(ep);
        if !interval.is_zero() {
            let at = {
                let mut map = self
                    .next_by_endpoint
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                let mut next = map.get(&ep).copied();
                let at = reserve(&mut next, interval);
                if let Some(n) = next {
                    map.insert(ep, n);
                }
                at
            };
            tokio::time::sleep_until(at).await;
        }
        if !self.limits.global_interval.is_zero() {
            let at = reserve(
                &mut self
                    .next_global
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
                self.limits.global_interval,
            );
            tokio::time::sleep_until(at).await;
        }
        permit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn orders_list_calls_are_spaced_by_the_slow_interval() {
        let pacer = Pacer::new(PacingLimits::ibkr());
        let start = Instant::now();

        pacer.acquire(Endpoint::LiveOrders).await;
        pacer.acquire(Endpoint::LiveOrders).await;
        pacer.acquire(Endpoint::LiveOrders).await;

        assert!(start.elapsed() >= Duration::from_millis(10_400));
    }

    #[tokio::test(start_paused = true)]
    async fn ordinary_calls_stay_under_ten_per_second() {
        let pacer = Pacer::new(PacingLimits::ibkr());
        let start = Instant::now();

        for _ in 0..11 {
            pacer.acquire(Endpoint::Snapshot).await;
        }

        assert!(start.elapsed() >= Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn history_requests_beyond_five_wait_for_a_permit() {
        let pacer = Pacer::new(PacingLimits::ibkr());
        let mut held = Vec::new();
        for _ in 0..5 {
            held.push(pacer.acquire(Endpoint::History).await);
        }

        let sixth =
            tokio::time::timeout(Duration::from_secs(5), pacer.acquire(Endpoint::History)).await;

        assert!(sixth.is_err());
        assert!(held.iter().all(Option::is_some));
    }
}
