//! Starts the fake IBKR gateway in-process on a random port and builds clients for it.

// Each test binary that includes this module uses only some of the helpers.
#![allow(dead_code)]

use std::time::Duration;

use fake_ibkr::Options;
use serde_json::Value;
use tradeflow_adapters::ibkr::{IbkrClient, IbkrSettings, RetryPolicy};

pub const ACCOUNT: &str = "DU1234567";

pub struct Gateway {
    pub root: String,
    http: reqwest::Client,
}

pub async fn gateway(logged_in: bool) -> Gateway {
    let addr = fake_ibkr::spawn(Options {
        logged_in,
        account_id: ACCOUNT.into(),
        pacing: true,
        ..Options::default()
    })
    .await
    .expect("fake gateway starts");
    Gateway {
        root: format!("http://{addr}"),
        http: reqwest::Client::new(),
    }
}

impl Gateway {
    pub fn api(&self) -> String {
        format!("{}/v1/api", self.root)
    }

    /// Settings with fast retries, so failure tests stay quick.
    pub fn settings(&self) -> IbkrSettings {
        IbkrSettings {
            retry: RetryPolicy {
                max_attempts: 3,
                base_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(100),
            },
            snapshot_wait: Duration::from_millis(20),
            ..IbkrSettings::new(self.api(), ACCOUNT)
        }
    }

    pub fn client(&self) -> IbkrClient {
        IbkrClient::new(self.settings()).expect("client builds")
    }

    pub async fn control(&self, path: &str, body: Value) -> Value {
        self.http
            .post(format!("{}/fake/{path}", self.root))
            .json(&body)
            .send()
            .await
            .expect("control request")
            .json()
            .await
            .expect("control answer is JSON")
    }

    pub async fn stats(&self) -> Value {
        self.http
            .get(format!("{}/fake/stats", self.root))
            .send()
            .await
            .expect("stats request")
            .json()
            .await
            .expect("stats JSON")
    }

    pub async fn orders_at_broker(&self) -> Vec<Value> {
        let v: Value = self
            .http
            .get(format!("{}/fake/orders", self.root))
            .send()
            .await
            .expect("orders request")
            .json()
            .await
            .expect("orders JSON");
        v["orders"].as_array().cloned().unwrap_or_default()
    }

    /// Every execution, as `/iserver/account/trades` serves it.
    pub async fn executions_at_broker(&self) -> Vec<Value> {
        let v: Value = self
            .http
            .get(format!("{}/fake/executions", self.root))
            .send()
            .await
            .expect("executions request")
            .json()
            .await
            .expect("executions JSON");
        v["executions"].as_array().cloned().unwrap_or_default()
    }

    pub async fn raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.api()));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("raw request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}
