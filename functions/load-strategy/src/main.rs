//! load_strategy: finds the strategy (from the EventBridge rule or `strategy_id`),
//! ends the run `skipped: inactive` for an inactive strategy, ends a scheduled tick
//! that is not a run in the market's time and calendar (`not_scheduled`, `holiday`,
//! `early_close`: see `tradeflow_core::schedule`), claims the scheduled tick so a
//! re-delivered event cannot start a second run, and opens the execution item.

use std::sync::Arc;

use serde_json::Value;
use tradeflow_adapters::Deps;
use tradeflow_adapters::step::{StepCtx, now_rfc3339, serve};
use tradeflow_core::execution::{Execution, ExecutionStatus, Trigger, parse_trigger};
use tradeflow_core::payloads::LoadStrategyOutput;
use tradeflow_core::schedule::check_tick;
use tradeflow_core::{Step, StepError};

/// Tick claims expire after a week (DynamoDB TTL); duplicates arrive within minutes.
const TICK_TTL_SECONDS: i64 = 7 * 24 * 3600;

async fn handle(
    input: Value,
    ctx: StepCtx,
    deps: Arc<Deps>,
) -> Result<LoadStrategyOutput, StepError> {
    let trigger = parse_trigger(&input).map_err(StepError::fatal)?;
    let strategy_id = trigger
        .strategy_id(&deps.config.rule_prefix)
        .map_err(StepError::fatal)?;
    let (trigger_name, tick) = match &trigger {
        Trigger::Manual { .. } => ("manual", format!("manual#{}", ctx.execution_name)),
        Trigger::Schedule { time, .. } => ("schedule", time.clone()),
    };
    let store = deps.store();
    let strategy = store
        .strategy(&strategy_id)
        .await?
        .ok_or_else(|| StepError::fatal(format!("strategy {strategy_id} not found")))?;

    // I6: an inactive strategy does not run, whoever started the execution (a
    // manual run, a schedule tick delivered after the deactivation).
    if !strategy.active {
        tracing::info!(%strategy_id, "strategy inactive, skipped");
        return Ok(LoadStrategyOutput {
            strategy,
            trigger: trigger_name.into(),
            tick,
            skipped: true,
            skip_reason: Some("inactive".into()),
        });
    }
    // The rule's UTC cover fires at both DST offsets: only the tick that is a run
    // of the local-time cron, on a day the exchange trades, goes on.
    if let Trigger::Schedule { time, .. } = &trigger
        && let Err(reason) = check_tick(&strategy, time).map_err(StepError::fatal)?
    {
        tracing::info!(%strategy_id, %tick, reason = %reason, "tick off schedule, skipped");
        return Ok(LoadStrategyOutput {
            strategy,
            trigger: trigger_name.into(),
            tick,
            skipped: true,
            skip_reason: Some(reason.to_string()),
        });
    }
    let expires = chrono::Utc::now().timestamp() + TICK_TTL_SECONDS;
    let holder = store
        .claim_tick(&strategy_id, &tick, &ctx.execution_name, expires)
        .await?;
    if holder != ctx.execution_name {
        tracing::info!(%tick, holder, "duplicate tick, skipped");
        return Ok(LoadStrategyOutput {
            strategy,
            trigger: trigger_name.into(),
            tick,
            skipped: true,
            skip_reason: Some(format!("duplicate tick, skipped (already run by {holder})")),
        });
    }
    store
        .start_execution(&Execution {
            execution_id: ctx.execution_name.clone(),
            execution_arn: ctx.execution_id.clone(),
            strategy_id: strategy_id.clone(),
            status: ExecutionStatus::Running,
            trigger: trigger_name.into(),
            tick: tick.clone(),
            started_at: now_rfc3339(),
            finished_at: None,
            summary: None,
            error: None,
        })
        .await?;
    Ok(LoadStrategyOutput {
        strategy,
        trigger: trigger_name.into(),
        tick,
        skipped: false,
        skip_reason: None,
    })
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    serve(Step::LoadStrategy, handle).await
}
