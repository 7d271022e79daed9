//! record_failure: the Catch target of every task. Finds the failed step in lineage,
//! writes the `execution_error` (step, error type, message) on the execution item and
//! in its own lineage record, so a failed execution still ends with a complete lineage.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};
use tradeflow_adapters::Deps;
use tradeflow_adapters::step::{StepCtx, finished, now_rfc3339, serve};
use tradeflow_core::execution::{Execution, ExecutionStatus, parse_trigger};
use tradeflow_core::lineage::StepStatus;
use tradeflow_core::{Step, StepError};

#[derive(Deserialize)]
struct Input {
    /// What Catch put at `$.error`: `{"Error": …, "Cause": …}`.
    error: CaughtError,
    /// The rest of the state, the execution input among it: names the strategy when
    /// load_strategy failed before writing the execution item.
    #[serde(flatten)]
    state: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
struct CaughtError {
    #[serde(rename = "Error")]
    error: String,
    #[serde(rename = "Cause", default)]
    cause: Option<String>,
}

async fn handle(input: Input, ctx: StepCtx, deps: Arc<Deps>) -> Result<Value, StepError> {
    // Lambda errors arrive as a JSON Cause {errorType, errorMessage}; others as text.
    let cause = input.error.cause.unwrap_or_default();
    let message = serde_json::from_str::<Value>(&cause)
        .ok()
        .and_then(|v| {
            v.get("errorMessage")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .unwrap_or(cause);
    let failed = deps
        .lineage()
        .for_execution(&ctx.execution_name)
        .await
        .map_err(|e| StepError::transient(e.to_string()))?
        .into_iter()
        .rev()
        .find(|r| r.status == StepStatus::Failed && r.step_name != Step::RecordFailure.name());
    let execution_error = json!({
        "failed_step": failed.as_ref().map(|r| r.step_name.clone()),
        "error_type": input.error.error,
        "message": message,
        "attempts": failed.as_ref().map(|r| r.attempts),
    });
    let strategy_id = parse_trigger(&Value::Object(input.state))
        .and_then(|t| t.strategy_id(&deps.config.rule_prefix))
        .unwrap_or_default();
    deps.store()
        .finish_execution(&Execution {
            strategy_id,
            error: Some(execution_error.clone()),
            ..finished(&ctx, ExecutionStatus::Failed, &now_rfc3339())
        })
        .await?;
    Ok(json!({"status": "FAILED", "execution_error": execution_error}))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(Step::RecordFailure, handle).await
}
