//! Lineage: one record per executed step, so a user can see why a trade happened.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Outcome of one step attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StepStatus {
    Succeeded,
    Failed,
}

/// What is stored per (execution_id, step_key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LineageRecord {
    /// The Step Functions execution name (unique per state machine).
    pub execution_id: String,
    pub execution_arn: String,
    /// `step_name`, or `step_name#n` for the n-th pass of a looped step (check_order).
    pub step_key: String,
    pub step_name: String,
    pub step_number: u32,
    pub strategy_id: String,
    pub status: StepStatus,
    /// Input and output JSON. Absent when offloaded to S3 (see `payload_key`).
    pub input: Option<Value>,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub error_type: Option<String>,
    pub duration_ms: u64,
    pub recorded_at: String,
    /// How many times this step ran in this execution (Step Functions retries).
    pub attempts: u32,
    /// Errors of earlier failed attempts, oldest first.
    #[serde(default)]
    pub previous_errors: Vec<String>,
    /// S3 key of `{"input":…, "output":…}` when too large for a DynamoDB item.
    pub payload_key: Option<String>,
}

/// DynamoDB items are limited to 400 KB; leave room for the other attributes.
pub const INLINE_PAYLOAD_LIMIT: usize = 300 * 1024;

/// Makes a step_key, e.g. `check_order#3` for the third poll.
pub fn step_key(step_name: &str, pass: Option<u32>) -> String {
    match pass {
        Some(n) => format!("{step_name}#{n}"),
        None => step_name.to_string(),
    }
}
