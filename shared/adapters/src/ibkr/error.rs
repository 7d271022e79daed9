//! What can go wrong talking to the Client Portal gateway, and what each failure
//! means for retries and for Step Functions.

use thiserror::Error;
use tradeflow_core::StepError;

#[derive(Debug, Error)]
pub enum IbkrError {
    /// HTTP 401: no brokerage session; someone must log in to the gateway.
    #[error("IBKR session not authenticated (log in to the Client Portal gateway)")]
    NotAuthenticated,
    /// Another login holds the brokerage session (`competing: true`).
    #[error("IBKR session is held by a competing login")]
    SessionCompeting,
    /// Connected but not authenticated: `ssodh/init` (the keep-alive) repairs it.
    #[error("IBKR session expired: gateway connected but not authenticated")]
    SessionExpired,
    #[error("IBKR rate limit exceeded on {endpoint} (HTTP 429)")]
    RateLimited { endpoint: &'static str },
    #[error("IBKR rejected the order: {message}")]
    OrderRejected { message: String },
    /// IBKR keeps cOIDs for 24 h; this order was already submitted.
    #[error("IBKR already has an order with cOID {coid}")]
    DuplicateOrder { coid: String },
    #[error("IBKR gateway unreachable at {url}: {source}")]
    GatewayUnreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("IBKR sent a malformed response to {endpoint}: {detail}")]
    Malformed {
        endpoint: &'static str,
        detail: String,
    },
    #[error("IBKR {endpoint} answered HTTP {status}: {message}")]
    Http {
        endpoint: &'static str,
        status: u16,
        message: String,
    },
    /// HTTP 200 with `{"error": …}` outside order placement (unknown symbol, order id…).
    #[error("IBKR refused {endpoint}: {message}")]
    Refused {
        endpoint: &'static str,
        message: String,
    },
    /// `/iserver/account/orders` kept answering its pre-flight (`snapshot: false`):
    /// the list is not there yet, which says nothing about whether an order exists.
    #[error("IBKR's live orders list is not ready (snapshot: false after {attempts} requests)")]
    LiveOrdersNotReady { attempts: u32 },
    /// Order status answered 503: IBKR does not know the order in this brokerage
    /// session (finished before it began; IBKR Campus, "Order Status").
    #[error(
        "IBKR order {order_id} is not known to this brokerage session (finished in an earlier one)"
    )]
    OrderNotInSession { order_id: String },
    /// The order exists (executions carry its cOID) but this session's live orders
    /// do not list it, so its IBKR order id is unknown: it must not be sent again.
    #[error(
        "IBKR has executions for cOID {coid} ({filled} filled) but no live order: placed in an earlier session"
    )]
    OrderKnownOnlyByExecutions {
        coid: String,
        filled: rust_decimal::Decimal,
    },
    /// The gateway-wide discipline (pacing and the order window) could not be had.
    #[error("IBKR gateway discipline: {0}")]
    Discipline(String),
    #[error("invalid IBKR client configuration: {0}")]
    Config(String),
}

impl IbkrError {
    /// Returns true when the same request may succeed later: the gateway was
    /// unreachable, overloaded or failed on its side. Everything else needs a
    /// change (a login, an input) before a retry can help.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::GatewayUnreachable { .. }
            | Self::RateLimited { .. }
            | Self::LiveOrdersNotReady { .. }
            | Self::Discipline(_) => true,
            Self::Http { status, .. } => *status >= 500 || *status == 408,
            _ => false,
        }
    }

    /// True when the gateway itself is down or unusable (as opposed to the request
    /// being wrong): callers with a cache may fall back to it.
    pub fn is_unavailable(&self) -> bool {
        self.is_retryable()
            || matches!(
                self,
                Self::NotAuthenticated
                    | Self::SessionCompeting
                    | Self::SessionExpired
                    | Self::Malformed { .. }
            )
    }
}

impl From<IbkrError> for StepError {
    fn from(e: IbkrError) -> Self {
        if e.is_retryable() {
            StepError::transient(e.to_string())
        } else {
            StepError::fatal(e.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_problems_fail_the_step_and_name_the_cause() {
        let e: StepError = IbkrError::NotAuthenticated.into();

        assert_eq!(e.error_type(), "Fatal");
        assert!(e.to_string().contains("IBKR session not authenticated"));
    }

    #[test]
    fn server_side_failures_are_transient_and_client_errors_are_not() {
        let http = |status| IbkrError::Http {
            endpoint: "history",
            status,
            message: String::new(),
        };

        assert!(http(500).is_retryable());
        assert!(http(503).is_retryable());
        assert!(!http(400).is_retryable());
        assert!(IbkrError::RateLimited { endpoint: "orders" }.is_retryable());
        assert!(
            !IbkrError::OrderRejected {
                message: "no".into()
            }
            .is_retryable()
        );
        assert!(!IbkrError::DuplicateOrder { coid: "x".into() }.is_retryable());
        assert!(IbkrError::LiveOrdersNotReady { attempts: 3 }.is_retryable());
        assert!(
            !IbkrError::OrderNotInSession {
                order_id: "1".into()
            }
            .is_retryable()
        );
        assert_eq!(StepError::from(http(502)).error_type(), "Transient");
    }
}
