//! A small client for the API function as the local stack serves it: behind the
//! HTTP API front at `$TRADEFLOW_API_URL` (payload format 2.0, as API Gateway's HTTP
//! API on AWS), shared by the API and browser tests. The key is
//! `TRADEFLOW_API_KEY` from `localstack/env.sh` (the local stack's secret's value).

#![allow(dead_code)]

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub struct Api {
    pub base: String,
    pub key: String,
    pub http: reqwest::Client,
}

impl Api {
    /// # Panics
    /// Without the environment of `localstack/env.sh`.
    pub fn from_env() -> Self {
        let base = std::env::var("TRADEFLOW_API_URL")
            .expect("no local stack: run `localstack/up.sh && source localstack/env.sh` first");
        let key = std::env::var("TRADEFLOW_API_KEY")
            .expect("TRADEFLOW_API_KEY (source localstack/env.sh)");
        Self {
            base,
            key,
            // Above the HTTP API's 30 s integration timeout: the front answers first.
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("http client"),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// Sends a request with the API key; returns the status and the JSON body
    /// (`Null` when empty, `{"non_json_body": text}` when not JSON, so a failed
    /// assertion shows what came back). Nothing is retried: every answer is the API's.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method.clone(), self.url(path))
            .header("x-api-key", &self.key);
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.expect("api reachable");
        let status = res.status();
        let text = res
            .text()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: body broke off: {e}"));
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| json!({"non_json_body": text}))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, None).await
    }

    /// GETs an HTML page with the key; returns status, CSP header and body.
    pub async fn page(&self, path: &str) -> (StatusCode, String, String) {
        let res = self
            .http
            .get(self.url(path))
            .header("authorization", format!("Bearer {}", self.key))
            .send()
            .await
            .expect("api reachable");
        let csp = res
            .headers()
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        (res.status(), csp, res.text().await.unwrap_or_default())
    }
}

/// A strategy body as a user would POST it (AAPL on the fake gateway, dry run).
pub fn strategy_body(id: &str) -> Value {
    json!({
        "strategy_id": id,
        "name": format!("api test {id}"),
        "conid": 265598,
        "symbol": "AAPL",
        "indicators": [{"kind": "sma", "period": 20}, {"kind": "rsi"}],
        "schedule": "cron(30 14 ? * MON-FRI *)",
        "risk": {"capital": "100000", "risk_per_trade": "0.01", "max_position_value": "25000",
                 "max_open_positions": 1, "daily_loss_limit": "2000", "min_confidence": 0.5},
        "dry_run": true
    })
}
