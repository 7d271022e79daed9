//! Lineage routes: an execution's steps, one step, a strategy's recent records,
//! step statistics over a window, and the most recent executions.

use chrono::{Duration, SecondsFormat};
use serde_json::json;
use tradeflow_adapters::store::EXECUTION_FEED;
use tradeflow_core::Step;
use tradeflow_core::execution::Execution;
use tradeflow_core::lineage::LineageRecord;

use crate::app::{App, Reply, Req};
use crate::error::ApiError;
use crate::page::{Page, PageReq, page_req};
use crate::repo::{self, PartitionQuery};
use crate::stats::step_statistics;

/// Statistics read at most this many records (a step runs a few times a day per strategy).
const STATS_CAP: usize = 50_000;

/// An execution item and its lineage, read together; 404 when neither exists.
///
/// # Errors
/// `NotFound`, or the DynamoDB/S3 error.
pub async fn load_execution(
    app: &App,
    id: &str,
) -> Result<(Option<Execution>, Vec<LineageRecord>), ApiError> {
    let (execution, steps) = tokio::try_join!(
        async { app.store.execution(id).await.map_err(ApiError::from) },
        async {
            app.deps
                .lineage()
                .for_execution(id)
                .await
                .map_err(ApiError::from)
        },
    )?;
    if execution.is_none() && steps.is_empty() {
        return Err(ApiError::NotFound(format!("execution {id}")));
    }
    Ok((execution, steps))
}

pub async fn execution(app: &App, id: &str) -> Result<Reply, ApiError> {
    let (execution, steps) = load_execution(app, id).await?;
    Reply::ok(&json!({"execution_id": id, "execution": execution, "steps": steps}))
}

/// `name` is a step key (`check_order#2`) or a step name (every pass of it).
pub async fn step(app: &App, id: &str, name: &str) -> Result<Reply, ApiError> {
    let records: Vec<LineageRecord> = match app.deps.lineage().get(id, name).await? {
        Some(r) => vec![r],
        None => app
            .deps
            .lineage()
            .for_execution(id)
            .await?
            .into_iter()
            .filter(|r| r.step_name == name)
            .collect(),
    };
    if records.is_empty() {
        return Err(ApiError::NotFound(format!("step {name} of execution {id}")));
    }
    Reply::ok(&json!({"execution_id": id, "step": name, "records": records}))
}

pub async fn strategy_recent(app: &App, r: &Req<'_>, id: &str) -> Result<Reply, ApiError> {
    let page: Page<LineageRecord> = repo::by_strategy_page(
        &app.store,
        &app.store.tables.lineage,
        id,
        &page_req(&r.query)?,
    )
    .await?;
    Reply::ok(&page)
}

pub async fn statistics(app: &App, r: &Req<'_>, name: &str) -> Result<Reply, ApiError> {
    if Step::from_name(name).is_none() {
        return Err(ApiError::bad(
            "step",
            format!(
                "unknown step {name:?}; one of {}",
                Step::ALL.map(Step::name).join(", ")
            ),
        ));
    }
    let days = match r.q("days") {
        None => 7,
        Some(d) => d
            .parse::<u32>()
            .ok()
            .filter(|d| (1..=365).contains(d))
            .ok_or_else(|| ApiError::bad("days", "must be an integer in 1..=365"))?,
    };
    let since =
        (r.now - Duration::days(i64::from(days))).to_rfc3339_opts(SecondsFormat::Millis, true);
    let records: Vec<LineageRecord> = repo::query_since(
        &app.store,
        &PartitionQuery {
            table: &app.store.tables.lineage,
            index: Some("by_step"),
            pk_name: "step_name",
            pk_value: name,
            newest_first: true,
        },
        "recorded_at",
        &since,
        STATS_CAP,
    )
    .await?;
    let mut stats = serde_json::to_value(step_statistics(name, days, &records)).unwrap_or_default();
    stats["since"] = json!(since);
    Reply::ok(&stats)
}

/// The newest executions of all strategies, a page at a time, from the executions
/// table's `recent` index (every item's `feed` partition, by `started_at`).
pub async fn recent(app: &App, r: &Req<'_>) -> Result<Reply, ApiError> {
    Reply::ok(&recent_page(app, &page_req(&r.query)?).await?)
}

/// A page of the newest executions (the API route and the viewer's home page).
///
/// # Errors
/// The DynamoDB error or a malformed item.
pub async fn recent_page(app: &App, req: &PageReq) -> Result<Page<Execution>, ApiError> {
    Ok(repo::query_page(
        &app.store,
        &PartitionQuery {
            table: &app.store.tables.executions,
            index: Some("recent"),
            pk_name: EXECUTION_FEED.0,
            pk_value: EXECUTION_FEED.1,
            newest_first: true,
        },
        req,
    )
    .await?)
}
