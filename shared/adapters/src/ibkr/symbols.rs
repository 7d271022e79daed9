//! Symbol → contract resolution with a DynamoDB cache (`SYMBOLS_TABLE`, pk `query`).
//!
//! An entry is fresh for `fresh_for` (7 days); after that it is refreshed from IBKR.
//! DynamoDB's TTL attribute `expires_at` is set `keep_for` later, so a stale entry
//! is still there to serve (flagged `stale`) while the gateway is down.

use std::collections::HashMap;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tradeflow_core::StepError;

use super::client::IbkrClient;
use super::error::IbkrError;
use crate::store::{Store, StoreError, s};

/// A cached contract, as stored in the symbols table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SymbolRecord {
    /// `SYMBOL:SECTYPE`, e.g. `AAPL:STK`.
    pub query: String,
    pub conid: i64,
    pub symbol: String,
    pub exchange: String,
    pub currency: String,
    pub asset_type: String,
    pub company_name: String,
    pub fetched_at: String,
    /// Epoch seconds after which the entry should be refreshed.
    pub refresh_after: i64,
    /// DynamoDB TTL (epoch seconds).
    pub expires_at: i64,
}

/// A resolved contract and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResolvedSymbol {
    pub record: SymbolRecord,
    pub from_cache: bool,
    /// True when IBKR could not be asked and an expired entry was used.
    pub stale: bool,
    pub stale_reason: Option<String>,
}

#[derive(Debug, Error)]
pub enum SymbolError {
    #[error("IBKR knows no {sec_type} contract for symbol {symbol}")]
    NotFound { symbol: String, sec_type: String },
    #[error(transparent)]
    Ibkr(#[from] IbkrError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<SymbolError> for StepError {
    fn from(e: SymbolError) -> Self {
        match e {
            SymbolError::Ibkr(e) => e.into(),
            SymbolError::Store(e) => e.into(),
            e @ SymbolError::NotFound { .. } => StepError::fatal(e.to_string()),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct SymbolCacheTtl {
    pub fresh_for: Duration,
    pub keep_for: Duration,
}

impl Default for SymbolCacheTtl {
    fn default() -> Self {
        Self {
            fresh_for: Duration::days(7),
            keep_for: Duration::days(30),
        }
    }
}

pub fn cache_key(symbol: &str, sec_type: &str) -> String {
    format!(
        "{}:{}",
        symbol.trim().to_uppercase(),
        sec_type.trim().to_uppercase()
    )
}

/// Resolves symbols through the cache and the gateway.
#[derive(Debug, Clone)]
pub struct SymbolResolver {
    client: IbkrClient,
    store: Store,
    ttl: SymbolCacheTtl,
}

impl SymbolResolver {
    pub fn new(client: IbkrClient, store: Store, ttl: SymbolCacheTtl) -> Self {
        Self { client, store, ttl }
    }

    async fn cached(&self, key: &str) -> Option<SymbolRecord> {
        let table = &self.store.tables.symbols;
        match self
            .store
            .get(table, HashMap::from([("query".into(), s(key))]))
            .await
        {
            Ok(r) => r,
            Err(e) => {
                // The cache is an optimisation: without it, ask IBKR.
                tracing::warn!(error = %e, "symbol cache read failed");
                None
            }
        }
    }

    /// Resolves `symbol` (e.g. `AAPL`, `STK`) to its contract at time `now`.
    ///
    /// # Errors
    /// `NotFound` when IBKR has no exact match; `Ibkr` when the gateway fails and
    /// nothing is cached; `Store` when the fresh entry cannot be written.
    pub async fn resolve(
        &self,
        symbol: &str,
        sec_type: &str,
        now: DateTime<Utc>,
    ) -> Result<ResolvedSymbol, SymbolError> {
        let key = cache_key(symbol, sec_type);
        let cached = self.cached(&key).await;
        if let Some(rec) = &cached
            && rec.refresh_after > now.timestamp()
        {
            return Ok(ResolvedSymbol {
                record: rec.clone(),
                from_cache: true,
                stale: false,
                stale_reason: None,
            });
        }
        match (self.lookup(&key, symbol, sec_type, now).await, cached) {
            (Ok(rec), _) => {
                self.store
                    .put(&self.store.tables.symbols, &rec, None)
                    .await?;
                Ok(ResolvedSymbol {
                    record: rec,
                    from_cache: false,
                    stale: false,
                    stale_reason: None,
                })
            }
            (Err(SymbolError::Ibkr(e)), Some(rec)) if e.is_unavailable() => {
                tracing::warn!(query = %key, error = %e, "ibkr unavailable, serving stale symbol");
                Ok(ResolvedSymbol {
                    record: rec,
                    from_cache: true,
                    stale: true,
                    stale_reason: Some(e.to_string()),
                })
            }
            (Err(e), _) => Err(e),
        }
    }

    async fn lookup(
        &self,
        key: &str,
        symbol: &str,
        sec_type: &str,
        now: DateTime<Utc>,
    ) -> Result<SymbolRecord, SymbolError> {
        let wanted = symbol.trim().to_uppercase();
        let not_found = || SymbolError::NotFound {
            symbol: wanted.clone(),
            sec_type: sec_type.to_string(),
        };
        let hits = match self.client.search(&wanted, sec_type).await {
            Ok(h) => h,
            Err(IbkrError::Refused { .. }) => return Err(not_found()),
            Err(e) => return Err(e.into()),
        };
        let hit = hits
            .into_iter()
            .find(|h| {
                h.symbol.eq_ignore_ascii_case(&wanted)
                    && (h.sections.is_empty() || h.sections.iter().any(|s| s.sec_type == sec_type))
            })
            .ok_or_else(not_found)?;
        let info = self.client.contract_info(hit.conid).await?;
        Ok(SymbolRecord {
            query: key.to_string(),
            conid: hit.conid,
            symbol: hit.symbol,
            exchange: if info.exchange.is_empty() {
                hit.description
            } else {
                info.exchange
            },
            currency: info.currency,
            asset_type: if info.asset_type.is_empty() {
                sec_type.to_string()
            } else {
                info.asset_type
            },
            company_name: if hit.company_name.is_empty() {
                info.company_name
            } else {
                hit.company_name
            },
            fetched_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            refresh_after: (now + self.ttl.fresh_for).timestamp(),
            expires_at: (now + self.ttl.fresh_for + self.ttl.keep_for).timestamp(),
        })
    }
}
