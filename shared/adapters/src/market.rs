//! Where bars come from. The workflow asks a `MarketSource`; the IBKR Client Portal
//! client is the one implementation (`fetch_market_data` uses it). Locally and in
//! tests it talks to the fake gateway, which serves `tradeflow_core::synthetic` bars.

use tradeflow_core::StepError;
use tradeflow_core::market::{Bar, Timeframe};

/// Historical bars for a contract.
pub trait MarketSource: Send + Sync {
    fn history(
        &self,
        conid: i64,
        timeframe: Timeframe,
        bars: u32,
    ) -> impl Future<Output = Result<Vec<Bar>, StepError>> + Send;
}

/// Bars from the Client Portal gateway (`/iserver/marketdata/history`).
impl MarketSource for crate::ibkr::IbkrClient {
    async fn history(
        &self,
        conid: i64,
        timeframe: Timeframe,
        bars: u32,
    ) -> Result<Vec<Bar>, StepError> {
        Ok(self.bars(conid, timeframe, bars).await?)
    }
}
