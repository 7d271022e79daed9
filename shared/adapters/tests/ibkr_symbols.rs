//! Symbol resolution: the fake gateway for IBKR, the local stack's DynamoDB for the
//! cache. Run with `source localstack/env.sh && cargo test -p tradeflow-adapters
//! --test ibkr_symbols -- --ignored` while `localstack/up.sh` is running.

mod ibkr_support;

use std::collections::HashMap;

use chrono::{Duration, Utc};
use serde_json::json;
use tradeflow_adapters::Deps;
use tradeflow_adapters::ibkr::IbkrError;
use tradeflow_adapters::ibkr::session::{self, keep_alive};
use tradeflow_adapters::ibkr::symbols::{SymbolCacheTtl, SymbolError, SymbolResolver, cache_key};
use tradeflow_adapters::store::{Store, s};

use ibkr_support::{Gateway, gateway};

async fn store() -> Store {
    Deps::from_env()
        .await
        .expect("local stack env (source localstack/env.sh)")
        .store()
}

async fn resolver(gw: &Gateway, symbol: &str) -> (SymbolResolver, Store) {
    let store = store().await;
    store
        .client
        .delete_item()
        .table_name(&store.tables.symbols)
        .set_key(Some(HashMap::from([(
            "query".to_string(),
            s(cache_key(symbol, "STK")),
        )])))
        .send()
        .await
        .expect("symbols table reachable");
    (
        SymbolResolver::new(gw.client(), store.clone(), SymbolCacheTtl::default()),
        store,
    )
}

#[tokio::test]
#[ignore = "needs the local stack (localstack/up.sh)"]
async fn a_fresh_entry_is_served_from_the_cache_without_asking_ibkr() {
    let gw = gateway(true).await;
    let (r, _) = resolver(&gw, "MSFT").await;
    let now = Utc::now();

    let first = r.resolve("msft", "STK", now).await.unwrap();
    gw.control("logout", json!({})).await;
    let second = r
        .resolve("MSFT", "STK", now + Duration::days(6))
        .await
        .unwrap();

    assert!(!first.from_cache);
    assert_eq!(
        (
            first.record.conid,
            first.record.exchange.as_str(),
            first.record.currency.as_str()
        ),
        (272093, "NASDAQ", "USD")
    );
    assert_eq!(first.record.asset_type, "STK");
    assert!(second.from_cache && !second.stale);
    assert_eq!(second.record, first.record);
}

#[tokio::test]
#[ignore = "needs the local stack (localstack/up.sh)"]
async fn a_stale_entry_is_refreshed_from_ibkr() {
    let gw = gateway(true).await;
    let (r, _) = resolver(&gw, "IBM").await;
    let now = Utc::now();
    let first = r.resolve("IBM", "STK", now).await.unwrap();

    let later = r
        .resolve("IBM", "STK", now + Duration::days(8))
        .await
        .unwrap();

    assert!(!later.from_cache && !later.stale);
    assert!(later.record.refresh_after > first.record.refresh_after);
    assert_eq!(
        later.record.expires_at - later.record.refresh_after,
        Duration::days(30).num_seconds()
    );
}

#[tokio::test]
#[ignore = "needs the local stack (localstack/up.sh)"]
async fn a_stale_entry_is_used_and_flagged_when_ibkr_is_down() {
    let gw = gateway(true).await;
    let (r, _) = resolver(&gw, "SPY").await;
    let now = Utc::now();
    r.resolve("SPY", "STK", now).await.unwrap();
    gw.control("logout", json!({})).await;

    let stale = r
        .resolve("SPY", "STK", now + Duration::days(8))
        .await
        .unwrap();

    assert!(stale.stale && stale.from_cache);
    assert_eq!(stale.record.conid, 756733);
    assert!(
        stale
            .stale_reason
            .unwrap()
            .contains("IBKR session not authenticated")
    );
}

#[tokio::test]
#[ignore = "needs the local stack (localstack/up.sh)"]
async fn without_a_cache_entry_an_ibkr_outage_is_an_error() {
    let gw = gateway(false).await;
    let (r, _) = resolver(&gw, "TSLA").await;

    let e = r.resolve("TSLA", "STK", Utc::now()).await.unwrap_err();

    assert!(matches!(e, SymbolError::Ibkr(IbkrError::NotAuthenticated)));
}

#[tokio::test]
#[ignore = "needs the local stack (localstack/up.sh)"]
async fn an_unknown_symbol_is_not_found() {
    let gw = gateway(true).await;
    let (r, _) = resolver(&gw, "NOPE").await;

    let e = r.resolve("NOPE", "STK", Utc::now()).await.unwrap_err();

    assert!(matches!(e, SymbolError::NotFound { .. }));
}

#[tokio::test]
#[ignore = "needs the local stack (localstack/up.sh)"]
async fn the_keep_alive_state_is_recorded_and_read_back() {
    let gw = gateway(true).await;
    let store = store().await;
    let state = keep_alive(&gw.client(), Utc::now()).await;

    session::record(&store, &state).await.unwrap();
    let last = session::last(&store).await.unwrap().unwrap();

    assert!(last.healthy);
    assert_eq!(last.checked_at, state.checked_at);
}
