//! The IBKR Client Portal Web API: a typed client (pacing, retries, the order reply
//! flow under an explicit confirm policy, certificate verification), the
//! gateway-wide discipline its callers share, symbol resolution with a DynamoDB
//! cache, and the session keep-alive. Shapes and quirks: IBKR Campus "Web API v1.0"
//! and the published examples in `shared/adapters/tests/fixtures/ibkr/`.

mod client;
mod confirm;
pub mod discipline;
mod error;
mod pacing;
pub mod session;
pub mod symbols;
mod tls;
pub mod types;

pub use client::{Endpoint, IbkrClient, IbkrSettings, OrderLookup, RetryPolicy, history_period};
pub use confirm::{Allowed, AnsweredQuestion, ConfirmPolicy, DEFAULT_CONFIRM_IDS};
pub use discipline::GatewayDiscipline;
pub use error::IbkrError;
pub use pacing::PacingLimits;
pub use tls::GatewayTrust;

use crate::aws::Deps;

impl Deps {
    /// The process-wide IBKR client for this configuration, disciplined
    /// gateway-wide through the gateway table (pacing and the order window are
    /// shared with every other function).
    ///
    /// # Errors
    /// An invalid `IBKR_BASE_URL` or certificate setting.
    pub fn ibkr(&self) -> Result<IbkrClient, IbkrError> {
        let mut settings = IbkrSettings::from_config(&self.config)?;
        settings.discipline = Some(std::sync::Arc::new(self.gateway_discipline(&settings)));
        IbkrClient::shared(settings)
    }
}
