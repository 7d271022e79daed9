//! The step harness: what every workflow Lambda does around its own logic.
//!
//! Step Functions invokes each task with `{"ctx": {...}, "state": <workflow state>}`
//! (see the `Parameters` of each Task in `statemachine/trading_workflow.asl.json`).
//! The harness parses the state into the step's typed input, runs the step, writes the
//! lineage record and maps errors to the `Transient`/`Fatal` names the state machine
//! retries or catches. A step that already succeeded in this execution (Step
//! Functions retried after a lost response) returns its recorded output instead of
//! running again.

use std::future::Future;
use std::time::Instant;

use chrono::{SecondsFormat, Utc};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::Instrument;
use tradeflow_core::execution::{Execution, ExecutionStatus};
use tradeflow_core::lineage::{LineageRecord, StepStatus, step_key};
use tradeflow_core::{Step, StepError};

use crate::aws::Deps;
use crate::blobs::Blobs;
use crate::lineage::{LineageError, LineageRecorder};
use crate::store::Store;

/// The execution context Step Functions passes to every task.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepCtx {
    /// The execution ARN.
    pub execution_id: String,
    /// The execution name: our `execution_id` in lineage and S3 keys.
    pub execution_name: String,
    pub execution_start_time: String,
    pub state_name: String,
    pub state_entered_time: String,
}

#[derive(Debug, Deserialize)]
struct Envelope {
    ctx: StepCtx,
    state: Value,
}

/// A step error on its way to Step Functions.
#[derive(Debug)]
pub struct StepFailure(pub StepError);

impl From<StepFailure> for Diagnostic {
    fn from(f: StepFailure) -> Self {
        Diagnostic {
            error_type: f.0.error_type().to_string(),
            error_message: f.0.to_string(),
        }
    }
}

impl From<StepError> for StepFailure {
    fn from(e: StepError) -> Self {
        Self(e)
    }
}

impl std::fmt::Display for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.0.error_type(), self.0)
    }
}

/// Which pass of a looped step this is: `check_order` runs once per poll.
fn pass_of(step: Step, state: &Value) -> Option<u32> {
    (step == Step::CheckOrder).then(|| {
        state
            .pointer("/check_order/poll")
            .and_then(Value::as_u64)
            .map_or(1, |p| p as u32 + 1)
    })
}

/// The strategy an execution runs, for the lineage index by strategy.
fn strategy_id_of(state: &Value, output: Option<&Value>) -> String {
    [
        state.pointer("/load_strategy/strategy/strategy_id"),
        output.and_then(|o| o.pointer("/strategy/strategy_id")),
        state.get("strategy_id"),
    ]
    .into_iter()
    .flatten()
    .find_map(Value::as_str)
    .unwrap_or("unknown")
    .to_string()
}

/// The execution item a finishing step writes: its status and time, and what the
/// context knows (ARN, start time) for an item load_strategy never opened.
#[must_use]
pub fn finished(ctx: &StepCtx, status: ExecutionStatus, at: &str) -> Execution {
    Execution {
        execution_id: ctx.execution_name.clone(),
        execution_arn: ctx.execution_id.clone(),
        strategy_id: String::new(),
        status,
        trigger: String::new(),
        tick: String::new(),
        started_at: ctx.execution_start_time.clone(),
        finished_at: Some(at.to_string()),
        summary: None,
        error: None,
    }
}

pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Deps {
    pub fn store(&self) -> Store {
        Store::new(self.dynamo.clone(), self.config.tables.clone())
    }

    pub fn blobs(&self) -> Blobs {
        Blobs::new(self.s3.clone(), self.config.charts_bucket.clone())
    }

    pub fn lineage(&self) -> LineageRecorder {
        LineageRecorder::new(self.store(), self.blobs())
    }
}

fn lineage_failure(e: LineageError) -> StepError {
    StepError::transient(format!("lineage: {e}"))
}

/// Runs one step with lineage and error mapping. `f` gets the typed input and the context.
///
/// # Errors
/// The step's error, or a `Fatal` one for an invalid envelope or input.
pub async fn run_step<I, O, F, Fut>(
    step: Step,
    deps: &Deps,
    event: LambdaEvent<Value>,
    f: F,
) -> Result<Value, StepFailure>
where
    I: DeserializeOwned,
    O: Serialize,
    F: FnOnce(I, StepCtx) -> Fut,
    Fut: Future<Output = Result<O, StepError>>,
{
    let Envelope { ctx, state } = serde_json::from_value(event.payload).map_err(|e| {
        StepError::fatal(format!(
            "{}: invocation is not {{ctx, state}} as the state machine sends: {e}",
            step.name()
        ))
    })?;
    if ctx.state_name != step.name() {
        return Err(StepError::fatal(format!(
            "function {} was invoked for state {}; state and function names must match",
            step.function_name(),
            ctx.state_name
        ))
        .into());
    }
    let span = tracing::info_span!("step", step = step.name(), execution = %ctx.execution_name);
    run_inner(step, deps, ctx, state, f).instrument(span).await
}

async fn run_inner<I, O, F, Fut>(
    step: Step,
    deps: &Deps,
    ctx: StepCtx,
    state: Value,
    f: F,
) -> Result<Value, StepFailure>
where
    I: DeserializeOwned,
    O: Serialize,
    F: FnOnce(I, StepCtx) -> Fut,
    Fut: Future<Output = Result<O, StepError>>,
{
    let recorder = deps.lineage();
    let key = step_key(step.name(), pass_of(step, &state));
    let execution_id = ctx.execution_name.clone();
    let prior = recorder
        .get(&execution_id, &key)
        .await
        .map_err(lineage_failure)?;
    if let Some(rec) = &prior
        && rec.status == StepStatus::Succeeded
    {
        tracing::info!("step already succeeded in this execution, replaying its output");
        return Ok(rec.output.clone().unwrap_or(Value::Null));
    }
    let (attempts, mut previous_errors) = prior
        .map(|p| {
            let mut errs = p.previous_errors;
            errs.extend(p.error);
            (p.attempts + 1, errs)
        })
        .unwrap_or((1, Vec::new()));

    let started = Instant::now();
    let execution_arn = ctx.execution_id.clone();
    let result = match serde_json::from_value::<I>(state.clone()) {
        Ok(input) => f(input, ctx).await.and_then(|o| {
            serde_json::to_value(o)
                .map_err(|e| StepError::fatal(format!("output is not JSON: {e}")))
        }),
        Err(e) => Err(StepError::fatal(format!(
            "{}: invalid input: {e}",
            step.name()
        ))),
    };
    let duration_ms = started.elapsed().as_millis() as u64;

    let (status, output, error, error_type) = match &result {
        Ok(v) => (StepStatus::Succeeded, Some(v.clone()), None, None),
        Err(e) => (
            StepStatus::Failed,
            None,
            Some(e.to_string()),
            Some(e.error_type().to_string()),
        ),
    };
    match &result {
        Ok(_) => tracing::info!(duration_ms, "step succeeded"),
        Err(e) => tracing::warn!(duration_ms, error = %e, kind = e.error_type(), "step failed"),
    }
    if status == StepStatus::Failed {
        previous_errors.truncate(20);
    }
    let rec = LineageRecord {
        strategy_id: strategy_id_of(&state, output.as_ref()),
        execution_id: execution_id.clone(),
        execution_arn,
        step_key: key.clone(),
        step_name: step.name().to_string(),
        step_number: step.number(),
        status,
        input: Some(state),
        output,
        error,
        error_type,
        duration_ms,
        recorded_at: now_rfc3339(),
        attempts,
        previous_errors,
        payload_key: None,
    };
    match recorder.record(rec).await {
        Ok(()) => {}
        // A concurrent attempt of this step succeeded first: its output is the truth.
        Err(LineageError::AlreadySucceeded) => {
            if let Ok(Some(existing)) = recorder.get(&execution_id, &key).await {
                return Ok(existing.output.unwrap_or(Value::Null));
            }
        }
        Err(e) => return Err(lineage_failure(e).into()),
    }
    result.map_err(StepFailure)
}

/// The Lambda function that runs `step` (`place_order` runs in `place-order`).
#[must_use]
pub fn function_name(step: Step) -> String {
    step.name().replace('_', "-")
}

/// Runs a step function's Lambda loop: telemetry, dependencies once per cold start,
/// then `run_step` per invocation.
///
/// # Errors
/// Configuration errors at init, or the runtime's own errors.
pub async fn serve<I, O, F, Fut>(step: Step, f: F) -> Result<(), lambda_runtime::Error>
where
    I: DeserializeOwned,
    O: Serialize,
    F: Fn(I, StepCtx, std::sync::Arc<Deps>) -> Fut + Clone,
    Fut: Future<Output = Result<O, StepError>>,
{
    crate::telemetry::init();
    let deps = std::sync::Arc::new(Deps::for_function(&function_name(step)).await?);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<Value>| {
            let deps = deps.clone();
            let f = f.clone();
            async move {
                let d = deps.clone();
                run_step(step, &deps, event, move |input, ctx| f(input, ctx, d)).await
            }
        },
    ))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_step_runs_in_a_function_with_a_configuration_contract() {
        for step in Step::ALL {
            let name = function_name(step);
            assert!(
                crate::config::function_env(&name).is_some(),
                "{name} is not in config::FUNCTIONS"
            );
        }
    }

    #[test]
    fn check_order_passes_are_numbered_from_the_previous_poll() {
        assert_eq!(pass_of(Step::CheckOrder, &json!({})), Some(1));
        assert_eq!(
            pass_of(Step::CheckOrder, &json!({"check_order": {"poll": 3}})),
            Some(4)
        );
        assert_eq!(
            pass_of(Step::PlaceOrder, &json!({"check_order": {"poll": 3}})),
            None
        );
    }

    #[test]
    fn strategy_id_comes_from_the_loaded_strategy_or_the_manual_input() {
        let state =
            json!({"load_strategy": {"strategy": {"strategy_id": "a"}}, "strategy_id": "b"});
        assert_eq!(strategy_id_of(&state, None), "a");
        assert_eq!(strategy_id_of(&json!({"strategy_id": "b"}), None), "b");
        let out = json!({"strategy": {"strategy_id": "c"}});
        assert_eq!(strategy_id_of(&json!({}), Some(&out)), "c");
    }

    #[test]
    fn step_errors_keep_their_names_for_the_state_machine() {
        let d: Diagnostic = StepFailure(StepError::transient("throttled")).into();
        assert_eq!(d.error_type, "Transient");
        let d: Diagnostic = StepFailure(StepError::fatal("unknown conid")).into();
        assert_eq!(d.error_type, "Fatal");
        assert_eq!(d.error_message, "unknown conid");
    }
}
