//! Support for the integration tests: clients for the local stack started by
//! `localstack/up.sh` (LocalStack + `cargo lambda watch` + the fake IBKR gateway).
//! The environment comes from `source localstack/env.sh`; without it the tests fail
//! with a message saying so, rather than skip.

use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use tradeflow_adapters::Deps;
use tradeflow_adapters::schedules::Schedules;
use tradeflow_adapters::workflow::{self, Finished};
use tradeflow_core::lineage::LineageRecord;
use tradeflow_core::strategy::Strategy;

pub struct Stack {
    pub deps: Deps,
    pub sfn: aws_sdk_sfn::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub state_machine_arn: String,
}

impl Stack {
    /// Connects to the local stack.
    ///
    /// # Errors
    /// When the environment of `localstack/env.sh` is missing.
    pub async fn connect() -> anyhow::Result<Self> {
        if std::env::var("AWS_ENDPOINT_URL").is_err() {
            bail!("no local stack: run `localstack/up.sh && source localstack/env.sh` first");
        }
        let deps = Deps::from_env()
            .await
            .context("config from localstack/env.sh")?;
        let sdk = aws_config::load_from_env().await;
        let state_machine_arn = deps
            .config
            .state_machine_arn
            .clone()
            .context("STATE_MACHINE_ARN")?;
        Ok(Self {
            sfn: aws_sdk_sfn::Client::new(&sdk),
            events: aws_sdk_eventbridge::Client::new(&sdk),
            deps,
            state_machine_arn,
        })
    }

    pub fn schedules(&self) -> Schedules {
        Schedules {
            events: self.events.clone(),
            prefix: self.deps.config.rule_prefix.clone(),
            bus: self.deps.config.event_bus_name.clone(),
            state_machine_arn: self.state_machine_arn.clone(),
            role_arn: "arn:aws:iam::000000000000:role/tradeflow-local-lambda".into(),
        }
    }

    /// Stores a strategy.
    ///
    /// # Errors
    /// DynamoDB errors.
    pub async fn put_strategy(&self, s: &Strategy) -> anyhow::Result<()> {
        self.deps.store().put_strategy(s).await?;
        Ok(())
    }

    /// Starts an execution and waits for its end.
    ///
    /// # Errors
    /// Step Functions errors or a timeout.
    pub async fn run(&self, name: &str, input: &Value) -> anyhow::Result<Finished> {
        let arn = workflow::start(&self.sfn, &self.state_machine_arn, name, input).await?;
        Ok(workflow::wait(&self.sfn, &arn, Duration::from_secs(600)).await?)
    }

    /// Lineage of an execution, in step order.
    ///
    /// # Errors
    /// DynamoDB/S3 errors.
    pub async fn lineage(&self, execution_id: &str) -> anyhow::Result<Vec<LineageRecord>> {
        Ok(self.deps.lineage().for_execution(execution_id).await?)
    }
}

/// A unique suffix so repeated runs against one stack don't collide.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", chrono::Utc::now().format("%H%M%S%3f"))
}

/// An example strategy with the catalogue's default indicators.
///
/// # Panics
/// Never for the built-in JSON.
pub fn strategy(strategy_id: &str, conid: i64, symbol: &str) -> Strategy {
    serde_json::from_value(serde_json::json!({
        "strategy_id": strategy_id,
        "name": format!("integration {strategy_id}"),
        "conid": conid,
        "symbol": symbol,
        "risk": {"capital": "100000", "risk_per_trade": "0.01", "max_position_value": "25000",
                 "max_open_positions": 1, "daily_loss_limit": "2000", "min_confidence": 0.5},
        "dry_run": true
    }))
    .expect("valid strategy JSON")
}
