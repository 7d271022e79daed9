//! The gateway session as the keep-alive sees it: tickle, check, repair, suppress
//! the deployment's order questions, record, and report as a metric.
//!
//! The state is stored as one item in the symbols table under the reserved query
//! key `#ibkr-session` (that table is small and already keyed by a string), so any
//! function can read when the session was last known healthy. The metrics are
//! CloudWatch Embedded Metric Format lines on stdout (no SDK call): the stack's
//! alarm fires when the gateway is not healthy, or when nobody reports at all.

use std::collections::HashMap;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use super::client::IbkrClient;
use super::error::IbkrError;
use crate::store::{Store, StoreError, s};

/// The symbols-table key of the session item; `#` cannot start a ticker.
pub const SESSION_KEY: &str = "#ibkr-session";

/// What the keep-alive found. Holds no tokens or account numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionState {
    pub query: String,
    pub checked_at: String,
    pub authenticated: bool,
    pub connected: bool,
    pub competing: bool,
    /// `ssodh/init` was sent because the session was connected but not authenticated.
    pub reauthenticated: bool,
    pub healthy: bool,
    /// The order questions suppressed for the brokerage session by this run
    /// (after a re-authentication, or the first run of a container).
    #[serde(default)]
    pub suppressed_questions: Vec<String>,
    /// IBKR's status message, or the error that stopped the check.
    pub message: String,
    pub error: Option<String>,
    /// DynamoDB TTL: a state nobody refreshed for a day is meaningless.
    pub expires_at: i64,
}

impl SessionState {
    fn new(now: DateTime<Utc>) -> Self {
        Self {
            query: SESSION_KEY.into(),
            checked_at: now.to_rfc3339_opts(SecondsFormat::Secs, true),
            authenticated: false,
            connected: false,
            competing: false,
            reauthenticated: false,
            healthy: false,
            suppressed_questions: Vec::new(),
            message: String::new(),
            error: None,
            expires_at: (now + Duration::days(1)).timestamp(),
        }
    }
}

/// Tickles, checks auth status, re-authenticates a connected but unauthenticated
/// session and suppresses the deployment's order questions when the session may
/// not have them suppressed (IBKR keeps suppression per brokerage session: IBKR
/// Campus, "Suppress Messages"). Never fails: errors end up in the state.
pub async fn keep_alive(client: &IbkrClient, now: DateTime<Utc>) -> SessionState {
    let mut state = SessionState::new(now);
    if let Err(e) = check(client, &mut state).await {
        state.error = Some(e.to_string());
    }
    state.healthy = state.authenticated && state.connected && !state.competing;
    state
}

async fn check(client: &IbkrClient, state: &mut SessionState) -> Result<(), IbkrError> {
    client.tickle().await?;
    let mut status = client.auth_status().await?;
    // Competing sessions are left alone: taking over would log out a human.
    if status.connected && !status.authenticated && !status.competing {
        client.reauthenticate().await?;
        state.reauthenticated = true;
        status = client.auth_status().await?;
    }
    state.authenticated = status.authenticated;
    state.connected = status.connected;
    state.competing = status.competing;
    let healthy = status.healthy();
    state.message = status.message;
    if healthy && client.wants_suppression() {
        state.suppressed_questions = client.suppress_questions().await?;
    }
    Ok(())
}

/// The metric namespace and the alarm's metric (see `infra/lib/gateway.ts`).
pub const METRIC_NAMESPACE: &str = "tradeflow";
pub const HEALTHY_METRIC: &str = "GatewayHealthy";

/// The state as one CloudWatch Embedded Metric Format line: `GatewayHealthy`
/// (1/0), `GatewayLoggedOut`, `GatewayCompeting`, `GatewayReauthenticated` and
/// `GatewayCheckFailed` (1 when true), dimension `Gateway=ibkr`.
pub fn metric_line(state: &SessionState, now_ms: i64) -> String {
    let flag = |b: bool| u8::from(b);
    let names = [
        HEALTHY_METRIC,
        "GatewayLoggedOut",
        "GatewayCompeting",
        "GatewayReauthenticated",
        "GatewayCheckFailed",
    ];
    serde_json::json!({
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": METRIC_NAMESPACE,
                "Dimensions": [["Gateway"]],
                "Metrics": names.iter().map(|n| serde_json::json!({"Name": n, "Unit": "Count"})).collect::<Vec<_>>(),
            }],
        },
        "Gateway": "ibkr",
        HEALTHY_METRIC: flag(state.healthy),
        "GatewayLoggedOut": flag(!state.connected || (!state.authenticated && !state.competing)),
        "GatewayCompeting": flag(state.competing),
        "GatewayReauthenticated": flag(state.reauthenticated),
        "GatewayCheckFailed": flag(state.error.is_some()),
    })
    .to_string()
}

/// Stores the state.
///
/// # Errors
/// DynamoDB errors.
pub async fn record(store: &Store, state: &SessionState) -> Result<(), StoreError> {
    store.put(&store.tables.symbols, state, None).await
}

/// Reads the last recorded state.
///
/// # Errors
/// DynamoDB errors or an item of the wrong shape.
pub async fn last(store: &Store) -> Result<Option<SessionState>, StoreError> {
    store
        .get(
            &store.tables.symbols,
            HashMap::from([("query".into(), s(SESSION_KEY))]),
        )
        .await
}
