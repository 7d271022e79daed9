//! `tradeflow demo`: the main job on the local stack. Seeds an example strategy,
//! starts one execution through Step Functions, waits, and prints the lineage.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};
use tradeflow_adapters::Deps;
use tradeflow_adapters::workflow;
use tradeflow_core::strategy::Strategy;

#[derive(Args)]
pub struct DemoArgs {
    /// Strategy id of the example strategy to seed and run.
    #[arg(long, default_value = "demo-aapl")]
    strategy_id: String,
    /// Seconds to wait for the execution.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

/// The example strategy: AAPL daily with the catalogue's default indicators, a
/// weekly chart too, the offline `rules` analyst, and live orders against the local
/// stack's paper broker (the fake IBKR gateway), so a BUY signal is really placed.
pub fn example_strategy(strategy_id: &str) -> anyhow::Result<Strategy> {
    let s: Strategy = serde_json::from_value(json!({
        "strategy_id": strategy_id,
        "name": "AAPL daily swing (example)",
        "conid": 265598,
        "symbol": "AAPL",
        "timeframe": "daily",
        "bars": 500,
        "weekly_chart": true,
        "prompt_template": "default-analysis",
        "provider": {"kind": "rules"},
        "schedule": "cron(30 9 ? * MON-FRI *)",
        "risk": {"capital": "100000", "risk_per_trade": "0.01", "max_position_value": "25000",
                 "max_open_positions": 1, "daily_loss_limit": "2000", "min_confidence": 0.5},
        "dry_run": false
    }))?;
    s.validate()?;
    Ok(s)
}

fn short(v: &Option<Value>, width: usize) -> String {
    let text = v.as_ref().map(Value::to_string).unwrap_or_default();
    if text.chars().count() > width {
        format!("{}…", text.chars().take(width - 1).collect::<String>())
    } else {
        text
    }
}

/// The lineage viewer page of an execution on the local stack: the API at
/// `TRADEFLOW_API_URL` (set by `localstack/env.sh`).
fn viewer_url(execution: &str) -> String {
    let base =
        std::env::var("TRADEFLOW_API_URL").unwrap_or_else(|_| "http://127.0.0.1:9000".into());
    format!(
        "{}/viewer/execution/{execution}",
        base.trim_end_matches('/')
    )
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let deps = Deps::from_env()
        .await
        .context("load config (source localstack/env.sh)")?;
    let sdk = aws_config::load_from_env().await;
    let sfn = aws_sdk_sfn::Client::new(&sdk);
    let sm_arn = deps
        .config
        .state_machine_arn
        .clone()
        .context("STATE_MACHINE_ARN is not set (source localstack/env.sh)")?;

    let strategy = example_strategy(&args.strategy_id)?;
    deps.store().put_strategy(&strategy).await?;
    println!(
        "strategy {} ({} conid {}) seeded",
        strategy.strategy_id, strategy.symbol, strategy.conid
    );

    let name = format!(
        "{}-manual-{}",
        strategy.strategy_id,
        chrono::Utc::now().format("%Y%m%dT%H%M%S%3f")
    );
    let arn = workflow::start(
        &sfn,
        &sm_arn,
        &name,
        &json!({"strategy_id": strategy.strategy_id}),
    )
    .await?;
    println!("execution {name} started; waiting…");
    let done = workflow::wait(&sfn, &arn, Duration::from_secs(args.timeout)).await?;
    println!(
        "execution {} in {:.1}s\n",
        done.status,
        done.duration.as_secs_f64()
    );

    let records = deps.lineage().for_execution(&name).await?;
    println!(
        "{:<3} {:<20} {:<10} {:>8}  output",
        "#", "step", "status", "ms"
    );
    for r in &records {
        let status = serde_json::to_value(r.status)?;
        println!(
            "{:<3} {:<20} {:<10} {:>8}  {}",
            r.step_number,
            r.step_key,
            status.as_str().unwrap_or_default(),
            r.duration_ms,
            r.error.clone().unwrap_or_else(|| short(&r.output, 90))
        );
    }
    if let Some(charts) = records
        .iter()
        .find(|r| r.step_name == "render_charts")
        .and_then(|r| r.output.as_ref())
        .and_then(|o| o.get("charts"))
        .and_then(Value::as_array)
    {
        for c in charts {
            println!(
                "\nchart: s3://{}/{}",
                deps.config.charts_bucket,
                c.get("key").and_then(Value::as_str).unwrap_or_default()
            );
        }
    }
    println!("\nviewer: {}", viewer_url(&name));
    println!(
        "        (first visit: append ?key=$TRADEFLOW_API_KEY from localstack/env.sh; a session cookie keeps you in)"
    );
    if done.status != "SUCCEEDED" {
        bail!(
            "execution ended {}: {}",
            done.status,
            done.cause.unwrap_or_default()
        );
    }
    Ok(())
}
