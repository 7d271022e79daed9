//! session-keepalive: run by an EventBridge rate rule (every minute). Tickles the
//! IBKR gateway (idle timeout ≈ 6 min), re-authenticates a connected but
//! unauthenticated session, suppresses the deployment's order questions for a new
//! session, records the state in the symbols table under `#ibkr-session` (so a
//! failed execution can say "IBKR session not authenticated") and reports it as a
//! CloudWatch metric (Embedded Metric Format on stdout), which the stack's alarm
//! watches. Not a workflow step, so it does not use the step harness.

use chrono::Utc;
use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use tradeflow_adapters::Deps;
use tradeflow_adapters::ibkr::{IbkrClient, session};
use tradeflow_adapters::store::Store;

async fn handle(
    _event: LambdaEvent<Value>,
    ibkr: &IbkrClient,
    store: &Store,
) -> Result<session::SessionState, lambda_runtime::Error> {
    let now = Utc::now();
    let state = session::keep_alive(ibkr, now).await;
    // A raw line, not a tracing event: CloudWatch reads EMF only from the bare JSON.
    println!("{}", session::metric_line(&state, now.timestamp_millis()));
    if state.healthy {
        tracing::info!(
            reauthenticated = state.reauthenticated,
            "ibkr session healthy"
        );
    } else {
        tracing::warn!(
            authenticated = state.authenticated,
            connected = state.connected,
            competing = state.competing,
            error = state.error.as_deref().unwrap_or(""),
            "ibkr session not usable"
        );
    }
    session::record(store, &state).await?;
    Ok(state)
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tradeflow_adapters::telemetry::init();
    let deps = Deps::for_function("session-keepalive").await?;
    let ibkr = deps.ibkr()?;
    let store = deps.store();
    lambda_runtime::run(service_fn(|ev| handle(ev, &ibkr, &store))).await
}
