//! Strategy routes: CRUD, activation, run now, executions. Every write keeps the
//! strategy's EventBridge rule in step with it (see `schedules`).

use std::collections::HashMap;

use chrono::{DateTime, SecondsFormat, Utc};
use lambda_http::http::StatusCode;
use serde_json::{Value, json};
use tradeflow_adapters::ibkr::IbkrError;
use tradeflow_adapters::schedules::rule_name;
use tradeflow_adapters::store::s as attr;
use tradeflow_adapters::workflow::{self, WorkflowError};
use tradeflow_core::execution::Execution;
use tradeflow_core::schedule::MarketSchedule;
use tradeflow_core::strategy::Strategy;

use crate::app::{App, Reply, Req};
use crate::body;
use crate::error::ApiError;
use crate::page::{Page, page_req};
use crate::repo;

/// How many next runs a strategy's view lists.
const VIEW_RUNS: usize = 5;
/// The most runs `/strategies/{id}/schedule` lists at once.
const MAX_RUNS: usize = 100;

/// A run instant in UTC and in the market's time.
fn run_view(sched: &MarketSchedule, t: DateTime<Utc>) -> Value {
    json!({
        "utc": t.to_rfc3339_opts(SecondsFormat::Secs, true),
        "local": t.with_timezone(&sched.timezone()).to_rfc3339_opts(SecondsFormat::Secs, false),
    })
}

/// The strategy as the API shows it: its fields plus its rule (name and UTC
/// expression), the market zone and calendar its schedule is read in, and its
/// next runs in UTC and market time.
pub fn view(app: &App, s: &Strategy, now: DateTime<Utc>) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    let sched = MarketSchedule::new(&s.schedule, &s.market).ok();
    let runs: Vec<DateTime<Utc>> = sched
        .as_ref()
        .filter(|_| s.active)
        .map(|m| m.next_runs(now, VIEW_RUNS))
        .unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "rule_name".into(),
            json!(rule_name(&app.schedules.prefix, &s.strategy_id)),
        );
        o.insert("schedule_timezone".into(), json!(s.market.timezone));
        o.insert(
            "schedule_calendar".into(),
            json!(
                sched
                    .as_ref()
                    .and_then(|m| m.calendar())
                    .map(|c| c.as_str())
            ),
        );
        o.insert(
            "rule_expression".into(),
            json!(sched.as_ref().map(|m| m.rule_expression(now))),
        );
        o.insert(
            "next_run".into(),
            json!(
                runs.first()
                    .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
            ),
        );
        if let Some(m) = &sched {
            o.insert(
                "next_runs".into(),
                Value::Array(runs.iter().map(|t| run_view(m, *t)).collect()),
            );
        }
    }
    v
}

/// `GET /strategies/{id}/schedule?after=RFC3339&count=N`: the next `count` runs
/// (default 10, at most 100) after `after` (default now), in UTC and market time,
/// as the deployed rule and tick filter produce them.
pub async fn schedule(app: &App, r: &Req<'_>, id: &str) -> Result<Reply, ApiError> {
    let s = load(app, id).await?;
    let after = match r.q("after") {
        Some(a) => DateTime::parse_from_rfc3339(a)
            .map_err(|e| ApiError::bad("after", format!("must be an RFC 3339 time: {e}")))?
            .to_utc(),
        None => r.now,
    };
    let count = match r.q("count") {
        Some(c) => c
            .parse::<usize>()
            .ok()
            .filter(|c| (1..=MAX_RUNS).contains(c))
            .ok_or_else(|| ApiError::bad("count", format!("must be 1 to {MAX_RUNS}")))?,
        None => 10,
    };
    let sched = market_schedule(&s)?;
    let runs: Vec<Value> = sched
        .next_runs(after, count)
        .into_iter()
        .map(|t| run_view(&sched, t))
        .collect();
    Reply::ok(&json!({
        "strategy_id": s.strategy_id,
        "schedule": s.schedule,
        "timezone": s.market.timezone,
        "calendar": sched.calendar().map(|c| c.as_str()),
        "rule_expression": sched.rule_expression(r.now),
        "active": s.active,
        "after": after.to_rfc3339_opts(SecondsFormat::Secs, true),
        "runs": runs,
    }))
}

/// The strategy's schedule bound to its market, or a 400 naming the field.
fn market_schedule(s: &Strategy) -> Result<MarketSchedule, ApiError> {
    MarketSchedule::new(&s.schedule, &s.market).map_err(|e| ApiError::bad(e.field, e.message))
}

async fn load(app: &App, id: &str) -> Result<Strategy, ApiError> {
    app.store
        .strategy(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("strategy {id}")))
}

/// Validates everything the store and EventBridge would otherwise refuse later.
async fn check(app: &App, s: &Strategy, previous: Option<&Strategy>) -> Result<(), ApiError> {
    s.validate()?;
    market_schedule(s)?;
    if previous.is_none_or(|p| p.conid != s.conid) {
        check_conid(app, s.conid).await?;
    }
    Ok(())
}

/// Asks IBKR whether the conid names a contract: a strategy on an unknown contract
/// would only fail at its first scheduled run.
async fn check_conid(app: &App, conid: i64) -> Result<(), ApiError> {
    let ibkr = app.deps.ibkr().map_err(|e| ApiError::upstream("ibkr", e))?;
    match ibkr.contract_info(conid).await {
        Ok(_) => Ok(()),
        Err(
            IbkrError::Http {
                status: 400..=499, ..
            }
            | IbkrError::Refused { .. },
        ) => Err(ApiError::bad(
            "conid",
            format!("IBKR knows no contract with conid {conid}"),
        )),
        Err(e) => Err(ApiError::upstream("ibkr", e)),
    }
}

pub async fn list(app: &App, r: &Req<'_>) -> Result<Reply, ApiError> {
    let page: Page<Strategy> = repo::scan_page(
        &app.store,
        &app.store.tables.strategies,
        &page_req(&r.query)?,
    )
    .await?;
    Reply::ok(&page.map(|s| view(app, &s, r.now)))
}

pub async fn get(app: &App, r: &Req<'_>, id: &str) -> Result<Reply, ApiError> {
    let s = load(app, id).await?;
    Reply::ok(&view(app, &s, r.now))
}

pub async fn create(app: &App, r: &Req<'_>) -> Result<Reply, ApiError> {
    let s: Strategy = body::parse(r.body)?;
    check(app, &s, None).await?;
    let rule = market_schedule(&s)?.rule_expression(r.now);
    app.store
        .put(&app.store.tables.strategies, &s, Some("strategy_id"))
        .await
        .map_err(|e| match ApiError::from(e) {
            ApiError::Conflict(_) => {
                ApiError::Conflict(format!("strategy {} already exists", s.strategy_id))
            }
            e => e,
        })?;
    if let Err(e) = app.schedules.put(&s.strategy_id, &rule, s.active).await {
        // Without its rule the strategy would never run: undo the create.
        let key = HashMap::from([("strategy_id".to_string(), attr(&s.strategy_id))]);
        if let Err(undo) = repo::delete(&app.store, &app.store.tables.strategies, key).await {
            tracing::error!(error = %undo, "strategy left without a rule");
        }
        return Err(e.into());
    }
    tracing::info!(strategy_id = %s.strategy_id, schedule = %s.schedule, "strategy created");
    Reply::with(StatusCode::CREATED, &view(app, &s, r.now))
}

pub async fn update(app: &App, r: &Req<'_>, id: &str) -> Result<Reply, ApiError> {
    let mut v: Value = body::parse(r.body)?;
    match v.get("strategy_id") {
        Some(Value::String(given)) if given != id => {
            return Err(ApiError::bad(
                "strategy_id",
                "differs from the id in the path",
            ));
        }
        _ => v["strategy_id"] = json!(id),
    }
    let s: Strategy = body::from_value(v)?;
    let previous = load(app, id).await?;
    check(app, &s, Some(&previous)).await?;
    app.store.put_strategy(&s).await?;
    app.schedules
        .put(
            &s.strategy_id,
            &market_schedule(&s)?.rule_expression(r.now),
            s.active,
        )
        .await?;
    tracing::info!(strategy_id = %s.strategy_id, schedule = %s.schedule, "strategy updated");
    Reply::ok(&view(app, &s, r.now))
}

pub async fn delete(app: &App, _r: &Req<'_>, id: &str) -> Result<Reply, ApiError> {
    load(app, id).await?;
    app.schedules.delete(id).await?;
    let key = HashMap::from([("strategy_id".to_string(), attr(id))]);
    repo::delete(&app.store, &app.store.tables.strategies, key).await?;
    tracing::info!(strategy_id = %id, "strategy deleted");
    Reply::ok(&json!({"deleted": id, "rule_name": rule_name(&app.schedules.prefix, id)}))
}

pub async fn set_active(app: &App, r: &Req<'_>, id: &str, active: bool) -> Result<Reply, ApiError> {
    let mut s = load(app, id).await?;
    s.active = active;
    app.store.put_strategy(&s).await?;
    // put (not only enable/disable) also recreates a rule that was never made,
    // e.g. for a strategy seeded straight into the table.
    app.schedules
        .put(id, &market_schedule(&s)?.rule_expression(r.now), active)
        .await?;
    tracing::info!(strategy_id = %id, active, "strategy activation changed");
    Reply::ok(&view(app, &s, r.now))
}

/// The execution name of a manual run: strategy and start second, so a double
/// submit within the same second cannot start two runs.
pub fn manual_execution_name(strategy_id: &str, at: DateTime<Utc>) -> String {
    format!("{strategy_id}-manual-{}", at.format("%Y%m%dT%H%M%SZ"))
}

/// The ARN Step Functions gives execution `name` of `state_machine_arn`.
fn execution_arn(state_machine_arn: &str, name: &str) -> String {
    let base = state_machine_arn.replacen(":stateMachine:", ":execution:", 1);
    format!("{base}:{name}")
}

/// How long a manual run's claim is kept: a day, far longer than any retry of the
/// request, then DynamoDB's TTL removes it.
const MANUAL_CLAIM_TTL_SECS: i64 = 86_400;

/// Starts a run now. 202 with the new execution; 200 with the existing one when a
/// run of the same second was already started (Step Functions would silently hand
/// back that execution for the same name); 409 for an inactive strategy (I6).
pub async fn run_now(app: &App, r: &Req<'_>, id: &str) -> Result<Reply, ApiError> {
    let s = load(app, id).await?;
    if !s.active {
        return Err(ApiError::Conflict(format!(
            "strategy {id} is inactive: activate it to run it"
        )));
    }
    let name = manual_execution_name(&s.strategy_id, r.now);
    let arn = execution_arn(&app.settings.state_machine_arn, &name);
    let links = |arn: &str| {
        json!({
            "execution_id": name,
            "execution_arn": arn,
            "lineage": format!("lineage/execution/{name}"),
            "viewer": format!("viewer/execution/{name}"),
        })
    };
    // One conditional put per (strategy, second) in the ticks table, where the
    // scheduled ticks are claimed too: the first request starts the run, the others
    // learn that it exists. (A "last run" attribute on the strategy item let a late
    // request of an earlier second claim again once a later second had written it.)
    let tick = format!("manual#{name}");
    let claimed = app
        .store
        .client
        .put_item()
        .table_name(&app.store.tables.ticks)
        .item("strategy_id", attr(&s.strategy_id))
        .item("tick", attr(&tick))
        .item("execution_id", attr(&name))
        .item(
            "expires_at",
            aws_sdk_dynamodb::types::AttributeValue::N(
                (r.now.timestamp() + MANUAL_CLAIM_TTL_SECS).to_string(),
            ),
        )
        .condition_expression("attribute_not_exists(tick)")
        .send()
        .await;
    match claimed {
        Ok(_) => {}
        Err(e)
            if e.as_service_error()
                .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
        {
            tracing::info!(strategy_id = %id, execution = %name, "run of this second already started");
            let mut body = links(&arn);
            body["already_started"] = json!(true);
            return Reply::ok(&body);
        }
        Err(e) => {
            return Err(ApiError::from(
                tradeflow_adapters::store::StoreError::Dynamo {
                    op: "put",
                    table: app.store.tables.ticks.clone(),
                    throttled: false,
                    source: Box::new(e),
                },
            ));
        }
    }
    let started = workflow::start(
        &app.sfn,
        &app.settings.state_machine_arn,
        &name,
        &json!({"strategy_id": s.strategy_id}),
    )
    .await;
    let arn = match started {
        Ok(arn) => arn,
        Err(WorkflowError::Sfn { source, .. })
            if format!("{source:?}").contains("ExecutionAlreadyExists") =>
        {
            let mut body = links(&arn);
            body["already_started"] = json!(true);
            return Reply::ok(&body);
        }
        Err(e) => {
            // Nothing started: a retry of this second must be able to start it.
            let undo = app
                .store
                .client
                .delete_item()
                .table_name(&app.store.tables.ticks)
                .key("strategy_id", attr(&s.strategy_id))
                .key("tick", attr(&tick))
                .send()
                .await;
            if let Err(u) = undo {
                tracing::warn!(error = %u, "run claim not removed after a failed start");
            }
            return Err(e.into());
        }
    };
    tracing::info!(strategy_id = %id, execution = %name, "manual run started");
    Reply::with(StatusCode::ACCEPTED, &links(&arn))
}

pub async fn executions(app: &App, r: &Req<'_>, id: &str) -> Result<Reply, ApiError> {
    let page: Page<Execution> = repo::by_strategy_page(
        &app.store,
        &app.store.tables.executions,
        id,
        &page_req(&r.query)?,
    )
    .await?;
    Reply::ok(&page)
}

pub async fn execution(app: &App, id: &str) -> Result<Reply, ApiError> {
    let e = app
        .store
        .execution(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("execution {id}")))?;
    Reply::ok(&e)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn manual_runs_are_named_after_strategy_and_second() {
        let at = Utc.with_ymd_and_hms(2026, 11, 20, 14, 30, 5).unwrap();

        let name = manual_execution_name("aapl-swing", at);

        assert_eq!(name, "aapl-swing-manual-20261120T143005Z");
        assert_eq!(
            name,
            manual_execution_name("aapl-swing", at + chrono::Duration::milliseconds(900))
        );
        assert!(
            manual_execution_name(&"x".repeat(48), at).len() <= 80,
            "Step Functions caps names at 80"
        );
    }

    #[test]
    fn an_execution_arn_is_the_state_machines_with_the_name() {
        let sm = "arn:aws:states:us-east-1:000000000000:stateMachine:tradeflow-workflow";

        assert_eq!(
            execution_arn(sm, "x-manual-1"),
            "arn:aws:states:us-east-1:000000000000:execution:tradeflow-workflow:x-manual-1"
        );
    }
}
