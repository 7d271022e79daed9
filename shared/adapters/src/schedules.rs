//! One EventBridge rule per strategy, named `{prefix}{strategy_id}`, targeting the
//! state machine with no constant input: the execution receives the Scheduled Event
//! (`time`, `resources: [rule ARN]`) and load_strategy derives the strategy and the
//! tick from it. (A constant `Input` also avoids a LocalStack bug where such targets
//! never start; the Scheduled Event works the same on AWS.)

use aws_sdk_eventbridge::types::{RuleState, Target};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ScheduleError {
    #[error("eventbridge {op} {rule}: {source}")]
    Events {
        op: &'static str,
        rule: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn err<E: std::error::Error + Send + Sync + 'static>(
    op: &'static str,
    rule: &str,
    e: E,
) -> ScheduleError {
    ScheduleError::Events {
        op,
        rule: rule.into(),
        source: Box::new(e),
    }
}

/// The rule name of a strategy.
pub fn rule_name(prefix: &str, strategy_id: &str) -> String {
    format!("{prefix}{strategy_id}")
}

#[derive(Debug, Clone)]
pub struct Schedules {
    pub events: aws_sdk_eventbridge::Client,
    pub prefix: String,
    pub bus: String,
    pub state_machine_arn: String,
    /// Role EventBridge assumes to call states:StartExecution.
    pub role_arn: String,
}

impl Schedules {
    /// Creates or updates the strategy's rule and its single target; returns the rule ARN.
    ///
    /// # Errors
    /// The EventBridge error (e.g. an invalid schedule expression).
    pub async fn put(
        &self,
        strategy_id: &str,
        expression: &str,
        enabled: bool,
    ) -> Result<String, ScheduleError> {
        let name = rule_name(&self.prefix, strategy_id);
        let out = self
            .events
            .put_rule()
            .name(&name)
            .event_bus_name(&self.bus)
            .schedule_expression(expression)
            .state(if enabled {
                RuleState::Enabled
            } else {
                RuleState::Disabled
            })
            .description(format!("tradeflow schedule of strategy {strategy_id}"))
            .send()
            .await
            .map_err(|e| err("PutRule", &name, e))?;
        let target = Target::builder()
            .id("workflow")
            .arn(&self.state_machine_arn)
            .role_arn(&self.role_arn)
            .build()
            .map_err(|e| err("Target", &name, e))?;
        self.events
            .put_targets()
            .rule(&name)
            .event_bus_name(&self.bus)
            .targets(target)
            .send()
            .await
            .map_err(|e| err("PutTargets", &name, e))?;
        Ok(out.rule_arn.unwrap_or_default())
    }

    /// Enables or disables the strategy's rule.
    ///
    /// # Errors
    /// The EventBridge error.
    pub async fn set_enabled(&self, strategy_id: &str, enabled: bool) -> Result<(), ScheduleError> {
        let name = rule_name(&self.prefix, strategy_id);
        if enabled {
            self.events
                .enable_rule()
                .name(&name)
                .event_bus_name(&self.bus)
                .send()
                .await
                .map_err(|e| err("EnableRule", &name, e))?;
        } else {
            self.events
                .disable_rule()
                .name(&name)
                .event_bus_name(&self.bus)
                .send()
                .await
                .map_err(|e| err("DisableRule", &name, e))?;
        }
        Ok(())
    }

    /// Removes the strategy's targets and rule; a missing rule is not an error.
    ///
    /// # Errors
    /// The EventBridge error.
    pub async fn delete(&self, strategy_id: &str) -> Result<(), ScheduleError> {
        let name = rule_name(&self.prefix, strategy_id);
        let removed = self
            .events
            .remove_targets()
            .rule(&name)
            .event_bus_name(&self.bus)
            .ids("workflow")
            .send()
            .await;
        if let Err(e) = removed {
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception())
            {
                return Ok(());
            }
            return Err(err("RemoveTargets", &name, e));
        }
        self.events
            .delete_rule()
            .name(&name)
            .event_bus_name(&self.bus)
            .send()
            .await
            .map_err(|e| err("DeleteRule", &name, e))?;
        Ok(())
    }
}
