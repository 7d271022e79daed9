//! The IBKR Client Portal Web API: a typed client (pacing, retries, the order reply
//! flow under an explicit confirm policy), symbol resolution with a DynamoDB cache,
//! and the session keep-alive. Shapes and quirks: /work/shared/IBKR-FACTS.md and
//! IBKR Campus "Web API v1.0".

mod client;
mod confirm;
mod error;
mod pacing;
pub mod session;
pub mod symbols;
pub mod types;

pub use client::{Endpoint, IbkrClient, IbkrSettings, RetryPolicy, history_period};
pub use confirm::ConfirmPolicy;
pub use error::IbkrError;
pub use pacing::PacingLimits;

use crate::aws::Deps;

impl Deps {
    /// The process-wide IBKR client for this configuration (shared pacing).
    ///
    /// # Errors
    /// An invalid `IBKR_BASE_URL`.
    pub fn ibkr(&self) -> Result<IbkrClient, IbkrError> {
        IbkrClient::shared(IbkrSettings::from_config(&self.config))
    }
}
