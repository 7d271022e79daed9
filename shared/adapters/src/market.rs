//! Where bars come from. The workflow asks a `MarketSource`; the IBKR Client Portal
//! client is the real one (`fetch_market_data` uses it); the synthetic market serves
//! tests that need no gateway.

use chrono::Utc;
use tradeflow_core::market::{Bar, Timeframe, resample_weekly};
use tradeflow_core::{StepError, synthetic};

/// Historical bars for a contract.
pub trait MarketSource: Send + Sync {
    fn history(
        &self,
        conid: i64,
        timeframe: Timeframe,
        bars: u32,
    ) -> impl Future<Output = Result<Vec<Bar>, StepError>> + Send;
}

/// The deterministic market of `tradeflow_core::synthetic`, ending today.
#[derive(Debug, Clone, Default)]
pub struct SyntheticMarket;

impl MarketSource for SyntheticMarket {
    async fn history(
        &self,
        conid: i64,
        timeframe: Timeframe,
        bars: u32,
    ) -> Result<Vec<Bar>, StepError> {
        if synthetic::contract(conid).is_none() {
            return Err(StepError::fatal(format!(
                "unknown conid {conid}: no such contract"
            )));
        }
        let today = Utc::now().date_naive();
        Ok(match timeframe {
            Timeframe::Daily => synthetic::daily_bars(conid, today, bars as usize),
            Timeframe::Weekly => {
                let daily = synthetic::daily_bars(conid, today, bars as usize * 5 + 5);
                let weekly = resample_weekly(&daily);
                weekly[weekly.len().saturating_sub(bars as usize)..].to_vec()
            }
        })
    }
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
