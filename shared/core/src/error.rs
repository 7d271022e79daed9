//! The error every workflow step returns, classified for Step Functions.

use thiserror::Error;

/// What a step reports when it cannot produce its output.
///
/// The variant decides what Step Functions does next: the state machine retries
/// `Transient` with backoff and routes `Fatal` straight to the failure recorder.
/// The names are an API shared with `statemachine/trading_workflow.asl.json`.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum StepError {
    /// Worth retrying: throttling, timeouts, a 5xx from a dependency.
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help: bad input, unknown contract, rejected order.
    #[error("{0}")]
    Fatal(String),
}

impl StepError {
    /// Returns true when Step Functions should retry the state.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Transient(_))
    }

    /// The stable error name matched by `ErrorEquals` in the state machine.
    pub fn error_type(&self) -> &'static str {
        match self {
            Self::Transient(_) => "Transient",
            Self::Fatal(_) => "Fatal",
        }
    }

    pub fn fatal(msg: impl Into<String>) -> Self {
        Self::Fatal(msg.into())
    }

    pub fn transient(msg: impl Into<String>) -> Self {
        Self::Transient(msg.into())
    }
}
