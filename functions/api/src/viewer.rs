//! The lineage viewer: HTML pages rendered with minijinja, auto-escaping on, so
//! whatever a payload holds (an LLM answer with `<script>`, say) is shown as text.
//! Pages link to each other relatively, so they work behind API Gateway and under
//! `cargo lambda watch`'s `/lambda-url/api/` prefix alike.

use std::time::Duration;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;
use serde_json::{Value, json};
use tradeflow_core::execution::Execution;
use tradeflow_core::lineage::{LineageRecord, StepStatus};
use tradeflow_core::payloads::ParseSignalOutput;
use tradeflow_core::strategy::Strategy;

use crate::app::{App, Reply, Req};
use crate::error::ApiError;
use crate::page::{Page, PageReq, page_req};
use crate::repo;
use crate::{lineage_api, strategies, trading};

/// A template context from `name => value` pairs (any `Serialize` value).
macro_rules! context {
    ($($k:ident => $v:expr),* $(,)?) => {{
        let mut m = serde_json::Map::new();
        $( m.insert(stringify!($k).to_string(), serde_json::to_value(&$v).unwrap_or_default()); )*
        Value::Object(m)
    }};
}

/// Presigned chart URLs live this long: enough to read a page.
const PRESIGN_TTL: Duration = Duration::from_secs(3600);

const TEMPLATES: [(&str, &str); 8] = [
    ("macros.html", include_str!("../templates/macros.html")),
    ("base.html", include_str!("../templates/base.html")),
    ("home.html", include_str!("../templates/home.html")),
    ("strategy.html", include_str!("../templates/strategy.html")),
    (
        "execution.html",
        include_str!("../templates/execution.html"),
    ),
    (
        "portfolio.html",
        include_str!("../templates/portfolio.html"),
    ),
    ("orders.html", include_str!("../templates/orders.html")),
    ("error.html", include_str!("../templates/error.html")),
];

/// Builds the template environment once per cold start.
///
/// # Errors
/// A template that does not parse.
pub fn environment() -> Result<Environment<'static>, minijinja::Error> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    // Payload shapes evolve: a missing attribute renders empty instead of failing the page.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    for (name, src) in TEMPLATES {
        env.add_template(name, src)?;
    }
    Ok(env)
}

fn render<S: Serialize>(env: &Environment<'_>, name: &str, ctx: S) -> Result<String, ApiError> {
    env.get_template(name)
        .and_then(|t| t.render(minijinja::value::Serde(&ctx)))
        .map_err(|e| ApiError::Internal(format!("template {name}: {e:#}")))
}

pub fn error_page(env: &Environment<'_>, e: &ApiError) -> String {
    render(
        env,
        "error.html",
        context! { status => e.status().as_u16(), message => e.to_string(), root => "" },
    )
    .unwrap_or_else(|_| "error".into())
}

fn pretty(v: &Option<Value>) -> String {
    v.as_ref()
        .map(|v| serde_json::to_string_pretty(v).unwrap_or_default())
        .unwrap_or_default()
}

pub async fn home(app: &App, r: &Req<'_>) -> Result<Reply, ApiError> {
    let mut strategies: Vec<Strategy> =
        repo::scan_all(&app.store, &app.store.tables.strategies, 1000).await?;
    strategies.sort_by(|a, b| a.strategy_id.cmp(&b.strategy_id));
    let views: Vec<Value> = strategies
        .iter()
        .map(|s| strategies::view(app, s, r.now))
        .collect();
    let executions = lineage_api::recent_page(
        app,
        &PageReq {
            limit: 30,
            start: None,
        },
    )
    .await?
    .items;
    Ok(Reply::Html(render(
        &app.views,
        "home.html",
        context! { root => &r.root, strategies => views, executions => executions },
    )?))
}

pub async fn strategy(app: &App, r: &Req<'_>, id: &str) -> Result<Reply, ApiError> {
    let s = app
        .store
        .strategy(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("strategy {id}")))?;
    let page: Page<Execution> = repo::by_strategy_page(
        &app.store,
        &app.store.tables.executions,
        id,
        &page_req(&r.query)?,
    )
    .await?;
    Ok(Reply::Html(render(
        &app.views,
        "strategy.html",
        context! {
            root => &r.root,
            strategy => strategies::view(app, &s, r.now),
            strategy_json => serde_json::to_string_pretty(&s).unwrap_or_default(),
            executions => page.items,
            next => page.next,
        },
    )?))
}

/// One step of an execution, prepared for its card.
#[derive(Debug, Serialize)]
struct Card {
    key: String,
    name: String,
    number: u32,
    ok: bool,
    status: String,
    duration_ms: u64,
    attempts: u32,
    recorded_at: String,
    error: Option<String>,
    error_type: Option<String>,
    previous_errors: Vec<String>,
    input: Value,
    output: Value,
    input_json: String,
    output_json: String,
    /// Step-specific extras: chart URLs, the full answer, risk:reward.
    extra: Value,
}

async fn chart_links(app: &App, keys: impl Iterator<Item = (String, Value)>) -> Vec<Value> {
    let blobs = app.deps.blobs();
    let mut out = Vec::new();
    for (key, meta) in keys {
        match blobs.presigned_get(&key, PRESIGN_TTL).await {
            Ok(url) => out.push(json!({"key": key, "url": url, "meta": meta})),
            Err(e) => tracing::warn!(error = %e, %key, "chart not presigned"),
        }
    }
    out
}

async fn extras(app: &App, rec: &LineageRecord) -> Value {
    let out = rec.output.clone().unwrap_or(Value::Null);
    match rec.step_name.as_str() {
        "render_charts" => {
            let charts = out["charts"].as_array().cloned().unwrap_or_default();
            let keys = charts
                .into_iter()
                .filter_map(|c| Some((c.get("key")?.as_str()?.to_string(), c)));
            json!({"charts": chart_links(app, keys).await})
        }
        "analyze_chart" => {
            let keys = out["charts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|k| Some((k.as_str()?.to_string(), Value::Null)));
            let charts = chart_links(app, keys).await;
            // A long answer travels as its head; the viewer shows all of it.
            let full = match out["answer_key"].as_str() {
                Some(key) => match app.deps.blobs().get(key).await {
                    Ok(bytes) => Some(String::from_utf8_lossy(&bytes).into_owned()),
                    Err(e) => {
                        tracing::warn!(error = %e, %key, "full answer not read");
                        None
                    }
                },
                None => None,
            };
            json!({"charts": charts, "answer": full.or_else(|| out["answer"].as_str().map(String::from))})
        }
        "parse_signal" => {
            let rr = serde_json::from_value::<ParseSignalOutput>(out)
                .ok()
                .and_then(|p| p.signal.risk_reward());
            json!({"risk_reward": rr.map(|d| d.to_string())})
        }
        _ => Value::Null,
    }
}

pub async fn execution(app: &App, r: &Req<'_>, id: &str) -> Result<Reply, ApiError> {
    let (execution, records) = crate::lineage_api::load_execution(app, id).await?;
    let strategy_id = execution
        .as_ref()
        .map(|e| e.strategy_id.clone())
        .or_else(|| records.first().map(|r| r.strategy_id.clone()))
        .unwrap_or_default();
    let mut cards = Vec::with_capacity(records.len());
    for rec in &records {
        cards.push(Card {
            key: rec.step_key.clone(),
            name: rec.step_name.clone(),
            number: rec.step_number,
            ok: rec.status == StepStatus::Succeeded,
            status: if rec.status == StepStatus::Succeeded {
                "SUCCEEDED"
            } else {
                "FAILED"
            }
            .into(),
            duration_ms: rec.duration_ms,
            attempts: rec.attempts,
            recorded_at: rec.recorded_at.clone(),
            error: rec.error.clone(),
            error_type: rec.error_type.clone(),
            previous_errors: rec.previous_errors.clone(),
            input: rec.input.clone().unwrap_or(Value::Null),
            output: rec.output.clone().unwrap_or(Value::Null),
            input_json: pretty(&rec.input),
            output_json: pretty(&rec.output),
            extra: extras(app, rec).await,
        });
    }
    let trades: Vec<Value> = if strategy_id.is_empty() {
        vec![]
    } else {
        app.store
            .query::<Value>(
                &app.store.tables.trades,
                None,
                "strategy_id",
                &strategy_id,
                true,
                Some(200),
            )
            .await?
            .into_iter()
            .filter(|t| {
                [
                    t.get("execution_id"),
                    t.get("entry_execution_id"),
                    t.get("exit_execution_id"),
                ]
                .into_iter()
                .flatten()
                .any(|e| e.as_str() == Some(id))
            })
            .collect()
    };
    let total_ms: u64 = records.iter().map(|r| r.duration_ms).sum();
    Ok(Reply::Html(render(
        &app.views,
        "execution.html",
        context! {
            root => &r.root,
            execution_id => id,
            strategy_id => strategy_id,
            execution => execution,
            execution_json => serde_json::to_string_pretty(&execution).unwrap_or_default(),
            cards => cards,
            trades => trades,
            total_ms => total_ms,
        },
    )?))
}

/// An SVG polyline of the equity curve, scaled into a w×h box.
pub fn equity_path(curve: &[Value], w: f64, h: f64) -> Option<String> {
    let ys: Vec<f64> = curve
        .iter()
        .filter_map(|p| trading::num(p.get("equity")))
        .collect();
    if ys.len() < 2 {
        return None;
    }
    let (lo, hi) = ys
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), y| (lo.min(*y), hi.max(*y)));
    let span = if hi > lo { hi - lo } else { 1.0 };
    let step = w / (ys.len() - 1) as f64;
    Some(
        ys.iter()
            .enumerate()
            .map(|(i, y)| format!("{:.1},{:.1}", i as f64 * step, h - (y - lo) / span * h))
            .collect::<Vec<_>>()
            .join(" "),
    )
}

pub async fn portfolio(app: &App, r: &Req<'_>) -> Result<Reply, ApiError> {
    let items = trading::portfolios(app, r.q("strategy_id"), 200).await?;
    let items: Vec<Value> = items
        .into_iter()
        .map(|mut p| {
            let curve = p["equity_curve"].as_array().cloned().unwrap_or_default();
            p["path"] = json!(equity_path(&curve, 600.0, 160.0));
            p
        })
        .collect();
    Ok(Reply::Html(render(
        &app.views,
        "portfolio.html",
        context! { root => &r.root, portfolios => items },
    )?))
}

pub async fn orders(app: &App, r: &Req<'_>) -> Result<Reply, ApiError> {
    let mut orders: Vec<Value> = match r.q("strategy_id") {
        Some(id) => {
            app.store
                .query(
                    &app.store.tables.orders,
                    Some("by_strategy"),
                    "strategy_id",
                    id,
                    true,
                    Some(500),
                )
                .await?
        }
        None => repo::scan_all(&app.store, &app.store.tables.orders, 5000).await?,
    };
    orders.sort_by(|a, b| {
        b.get("created_at")
            .and_then(Value::as_str)
            .cmp(&a.get("created_at").and_then(Value::as_str))
    });
    orders.truncate(500);
    Ok(Reply::Html(render(
        &app.views,
        "orders.html",
        context! { root => &r.root, orders => orders },
    )?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        environment().unwrap();
    }

    #[test]
    fn html_in_payloads_is_escaped() {
        let env = environment().unwrap();

        let page = error_page(
            &env,
            &ApiError::NotFound("<script>alert(1)</script>".into()),
        );

        assert!(!page.contains("<script"));
        assert!(page.contains("&lt;script&gt;alert(1)&lt;"));
    }

    fn order_json(filled: &str, reported: bool) -> Value {
        json!({"order_id": format!("tf-{filled}-{reported}"), "side": "BUY", "quantity": "10",
               "symbol": "AAPL", "status": "FILLED", "filled_quantity": filled,
               "commission": "0", "commission_reported": reported, "history": []})
    }

    #[test]
    fn an_order_or_trade_whose_commission_was_not_reported_says_so() {
        let env = environment().unwrap();
        let unreported = "commission not yet reported";

        let page = |orders: Vec<Value>| {
            render(
                &env,
                "orders.html",
                context! { root => "/", orders => orders },
            )
            .unwrap()
        };
        let late = page(vec![order_json("10", false)]);
        let known = page(vec![order_json("10", true)]);
        let unfilled = page(vec![order_json("0", false)]);
        let trades = |reported: bool| {
            let t = json!({"trade_id": "tf-x#10", "quantity": "10", "entry_price": "100",
                           "exit_price": "103", "realized_pnl": "30.00",
                           "commission_reported": reported});
            render(
                &env,
                "execution.html",
                context! { root => "/", execution_id => "e", trades => vec![t], cards => Vec::<Value>::new() },
            )
            .unwrap()
        };

        assert!(late.contains(unreported), "{late}");
        assert!(!known.contains(unreported));
        assert!(!unfilled.contains(unreported));
        assert!(trades(false).contains(unreported));
        assert!(!trades(true).contains(unreported));
    }

    #[test]
    fn the_equity_path_spans_the_box() {
        let curve = [
            json!({"equity": 100}),
            json!({"equity": "150"}),
            json!({"equity": 125}),
        ];

        assert_eq!(
            equity_path(&curve, 100.0, 50.0).unwrap(),
            "0.0,50.0 50.0,0.0 100.0,25.0"
        );
        assert_eq!(equity_path(&curve[..1], 100.0, 50.0), None);
    }
}
