//! Starting and following workflow executions (Step Functions), for the API, the
//! local demo and the integration tests.

use std::time::{Duration, Instant};

use aws_sdk_sfn::types::ExecutionStatus;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum WorkflowError {
    #[error("step functions {op}: {source}")]
    Sfn {
        op: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("execution {0} still running after {1:?}")]
    Timeout(String, Duration),
}

#[derive(Debug, Clone)]
pub struct Finished {
    pub execution_arn: String,
    pub status: String,
    pub output: Option<String>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub duration: Duration,
}

/// Starts an execution with a given name and input.
///
/// # Errors
/// The SDK error (including `ExecutionAlreadyExists` for a reused name).
pub async fn start(
    sfn: &aws_sdk_sfn::Client,
    state_machine_arn: &str,
    name: &str,
    input: &serde_json::Value,
) -> Result<String, WorkflowError> {
    let out = sfn
        .start_execution()
        .state_machine_arn(state_machine_arn)
        .name(name)
        .input(input.to_string())
        .send()
        .await
        .map_err(|e| WorkflowError::Sfn {
            op: "StartExecution",
            source: Box::new(e),
        })?;
    Ok(out.execution_arn)
}

/// Polls an execution until it is no longer RUNNING.
///
/// # Errors
/// The SDK error or `Timeout`.
pub async fn wait(
    sfn: &aws_sdk_sfn::Client,
    execution_arn: &str,
    timeout: Duration,
) -> Result<Finished, WorkflowError> {
    let started = Instant::now();
    loop {
        let d = sfn
            .describe_execution()
            .execution_arn(execution_arn)
            .send()
            .await
            .map_err(|e| WorkflowError::Sfn {
                op: "DescribeExecution",
                source: Box::new(e),
            })?;
        if d.status != ExecutionStatus::Running && d.status != ExecutionStatus::PendingRedrive {
            return Ok(Finished {
                execution_arn: execution_arn.to_string(),
                status: d.status.as_str().to_string(),
                output: d.output,
                error: d.error,
                cause: d.cause,
                duration: started.elapsed(),
            });
        }
        if started.elapsed() > timeout {
            return Err(WorkflowError::Timeout(execution_arn.into(), timeout));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The names of the states an execution entered, in order (GetExecutionHistory).
///
/// # Errors
/// The SDK error.
pub async fn entered_states(
    sfn: &aws_sdk_sfn::Client,
    execution_arn: &str,
) -> Result<Vec<String>, WorkflowError> {
    let mut names = Vec::new();
    let mut token = None;
    loop {
        let page = sfn
            .get_execution_history()
            .execution_arn(execution_arn)
            .set_next_token(token)
            .max_results(1000)
            .send()
            .await
            .map_err(|e| WorkflowError::Sfn {
                op: "GetExecutionHistory",
                source: Box::new(e),
            })?;
        for ev in page.events {
            if let Some(d) = ev.state_entered_event_details {
                names.push(d.name);
            }
        }
        token = page.next_token;
        if token.is_none() {
            break;
        }
    }
    Ok(names)
}
