//! A workflow execution as the user sees it: one per Step Functions execution.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    Running,
    Succeeded,
    Failed,
}

/// The fields load_strategy writes default to empty when read: an execution that
/// failed before load_strategy opened it has only what record_failure knew.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Execution {
    pub execution_id: String,
    #[serde(default)]
    pub execution_arn: String,
    #[serde(default)]
    pub strategy_id: String,
    pub status: ExecutionStatus,
    /// `schedule` (EventBridge) or `manual`.
    #[serde(default)]
    pub trigger: String,
    /// The scheduled time claimed, or `manual#<execution>`.
    #[serde(default)]
    pub tick: String,
    #[serde(default)]
    pub started_at: String,
    pub finished_at: Option<String>,
    /// Signal, order and P&L summary written by record_execution.
    pub summary: Option<Value>,
    /// Set by record_failure: which step failed and why.
    pub error: Option<Value>,
}

/// How an execution was started, as derived from its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// An EventBridge Scheduled Event: the rule name and the scheduled time.
    Schedule { rule_name: String, time: String },
    /// Started by hand or by the API with `{"strategy_id": …}`.
    Manual { strategy_id: String },
}

impl Trigger {
    /// The strategy the trigger runs: named, or the rule's name less `rule_prefix`.
    ///
    /// # Errors
    /// A rule whose name does not start with the prefix.
    pub fn strategy_id(&self, rule_prefix: &str) -> Result<String, String> {
        match self {
            Self::Manual { strategy_id } => Ok(strategy_id.clone()),
            Self::Schedule { rule_name, .. } => rule_name
                .strip_prefix(rule_prefix)
                .map(String::from)
                .ok_or_else(|| format!("rule {rule_name} does not start with {rule_prefix}")),
        }
    }
}

/// Reads the trigger from an execution input.
///
/// # Errors
/// A message saying what is missing.
pub fn parse_trigger(input: &Value) -> Result<Trigger, String> {
    if let Some(id) = input.get("strategy_id").and_then(Value::as_str) {
        return Ok(Trigger::Manual {
            strategy_id: id.to_string(),
        });
    }
    let is_scheduled = input.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event");
    if is_scheduled {
        let rule_arn = input
            .get("resources")
            .and_then(|r| r.get(0))
            .and_then(Value::as_str)
            .ok_or("scheduled event without resources[0] (the rule ARN)")?;
        let rule_name = rule_arn
            .rsplit_once(":rule/")
            .map(|(_, name)| name.rsplit('/').next().unwrap_or(name))
            .ok_or_else(|| format!("not a rule ARN: {rule_arn}"))?;
        let time = input
            .get("time")
            .and_then(Value::as_str)
            .ok_or("scheduled event without time")?;
        return Ok(Trigger::Schedule {
            rule_name: rule_name.to_string(),
            time: time.to_string(),
        });
    }
    Err("input has neither strategy_id nor a Scheduled Event".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_scheduled_event_names_its_rule_and_time() {
        let ev = json!({
            "version": "0", "id": "89d1a02d", "detail-type": "Scheduled Event", "source": "aws.events",
            "time": "2026-11-22T14:30:00Z", "region": "us-east-1",
            "resources": ["arn:aws:events:us-east-1:000000000000:rule/tradeflow-aapl-swing"], "detail": {}
        });

        assert_eq!(
            parse_trigger(&ev),
            Ok(Trigger::Schedule {
                rule_name: "tradeflow-aapl-swing".into(),
                time: "2026-11-22T14:30:00Z".into()
            })
        );
    }

    #[test]
    fn the_strategy_of_a_rule_is_its_name_less_the_prefix() {
        let rule = |name: &str| Trigger::Schedule {
            rule_name: name.into(),
            time: "t".into(),
        };
        assert_eq!(
            rule("tradeflow-aapl-swing").strategy_id("tradeflow-"),
            Ok("aapl-swing".into())
        );
        assert!(rule("other-aapl").strategy_id("tradeflow-").is_err());
        let manual = Trigger::Manual {
            strategy_id: "x".into(),
        };
        assert_eq!(manual.strategy_id("tradeflow-"), Ok("x".into()));
    }

    #[test]
    fn an_execution_item_written_only_by_record_failure_reads() {
        let e: Execution = serde_json::from_value(json!({
            "execution_id": "e-1", "status": "FAILED", "finished_at": "2026-11-22T00:00:00.000Z",
            "summary": null, "error": {"failed_step": "load_strategy"}
        }))
        .unwrap();
        assert_eq!(
            (e.status, e.started_at.as_str()),
            (ExecutionStatus::Failed, "")
        );
    }

    #[test]
    fn a_rule_on_a_custom_bus_keeps_only_the_rule_name() {
        let ev = json!({"detail-type": "Scheduled Event", "time": "t",
            "resources": ["arn:aws:events:us-east-1:1:rule/my-bus/tradeflow-x"]});

        assert!(
            matches!(parse_trigger(&ev), Ok(Trigger::Schedule { rule_name, .. }) if rule_name == "tradeflow-x")
        );
    }

    #[test]
    fn manual_input_and_garbage() {
        assert_eq!(
            parse_trigger(&json!({"strategy_id": "s1"})),
            Ok(Trigger::Manual {
                strategy_id: "s1".into()
            })
        );
        assert!(parse_trigger(&json!({"foo": 1})).is_err());
    }
}
