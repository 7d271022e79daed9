//! Reference data routes: symbol search (through the IBKR symbol cache), the
//! indicator catalogue, and prompt templates with their versions.

use std::collections::{BTreeMap, HashMap};

use lambda_http::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tradeflow_adapters::ibkr::symbols::{SymbolCacheTtl, SymbolError, SymbolResolver};
use tradeflow_adapters::prompt_store::{NewTemplate, PromptStore};
use tradeflow_adapters::store::s;
use tradeflow_core::indicators::IndicatorSpec;
use tradeflow_core::prompts::{DEFAULT_TEMPLATE_ID, GLOBAL_SCOPE, PromptTemplate, TemplateRef};
use tradeflow_core::strategy::Strategy;

use crate::app::{App, Reply, Req};
use crate::body;
use crate::error::ApiError;
use crate::page::{Key, Page, encode, page_req};
use crate::repo::{self, n};

/// Every indicator kind of the catalogue, as written in a strategy's `indicators`.
pub const INDICATOR_KINDS: [&str; 10] = [
    "sma",
    "ema",
    "bollinger",
    "rsi",
    "macd",
    "atr",
    "supertrend",
    "stochastic",
    "obv",
    "vwap",
];

pub async fn symbols(app: &App, r: &Req<'_>) -> Result<Reply, ApiError> {
    let q = r
        .q("q")
        .ok_or_else(|| ApiError::bad("q", "is required, e.g. ?q=AAPL"))?;
    if q.len() > 24
        || !q
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_ ".contains(c))
    {
        return Err(ApiError::bad(
            "q",
            "must be a ticker symbol (letters, digits, '.', '-')",
        ));
    }
    let sec_type = r.q("sec_type").unwrap_or("STK");
    if !["STK", "FUT", "OPT", "CASH", "IND", "BOND", "FUND", "CRYPTO"].contains(&sec_type) {
        return Err(ApiError::bad(
            "sec_type",
            "must be STK, FUT, OPT, CASH, IND, BOND, FUND or CRYPTO",
        ));
    }
    let ibkr = app.deps.ibkr().map_err(|e| ApiError::upstream("ibkr", e))?;
    let resolver = SymbolResolver::new(ibkr, app.store.clone(), SymbolCacheTtl::default());
    match resolver.resolve(q, sec_type, r.now).await {
        Ok(found) => Reply::ok(&json!({"items": [found], "next": null})),
        Err(SymbolError::NotFound { .. }) => Reply::ok(&json!({"items": [], "next": null})),
        Err(SymbolError::Store(e)) => Err(e.into()),
        Err(SymbolError::Ibkr(e)) => Err(ApiError::upstream("ibkr", e)),
    }
}

/// The catalogue: each kind with its parameters' defaults, as serde fills them in.
pub fn indicator_catalogue() -> Result<Vec<Value>, ApiError> {
    let defaults = IndicatorSpec::defaults();
    INDICATOR_KINDS
        .iter()
        .map(|kind| {
            let spec: IndicatorSpec = serde_json::from_value(json!({"kind": kind}))
                .map_err(|e| ApiError::Internal(format!("indicator {kind}: {e}")))?;
            let mut params = serde_json::to_value(&spec).unwrap_or_default();
            if let Some(o) = params.as_object_mut() {
                o.remove("kind");
            }
            Ok(json!({
                "kind": kind,
                "series_prefix": spec.kind(),
                "params": params,
                "label": spec.label(),
                "bars_needed": spec.bars_needed(),
                "in_default_set": defaults.iter().any(|d| d.kind() == spec.kind()),
            }))
        })
        .collect()
}

pub fn indicators() -> Result<Reply, ApiError> {
    Reply::ok(&json!({"items": indicator_catalogue()?, "next": null}))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PromptBody {
    #[serde(default)]
    template_id: Option<String>,
    #[serde(default = "global")]
    scope: String,
    #[serde(default = "english")]
    language: String,
    body: String,
    #[serde(default)]
    description: Option<String>,
}

fn global() -> String {
    GLOBAL_SCOPE.into()
}
fn english() -> String {
    "en".into()
}

fn prompts(app: &App) -> PromptStore {
    PromptStore::new(app.store.clone())
}

/// POST /prompts (id in the body) or PUT /prompts/{id}: saves the next version.
pub async fn create_prompt(
    app: &App,
    r: &Req<'_>,
    path_id: Option<&str>,
) -> Result<Reply, ApiError> {
    let b: PromptBody = body::parse(r.body)?;
    let template_id = match (path_id, b.template_id) {
        (Some(p), Some(given)) if given != p => {
            return Err(ApiError::bad(
                "template_id",
                "differs from the id in the path",
            ));
        }
        (Some(p), _) => p.to_string(),
        (None, Some(given)) => given,
        (None, None) => return Err(ApiError::bad("template_id", "is required")),
    };
    let saved = prompts(app)
        .save(NewTemplate {
            template_id,
            scope: b.scope,
            language: b.language,
            body: b.body,
            description: b.description,
        })
        .await?;
    Reply::with(
        StatusCode::CREATED,
        &json!({"template": saved, "source": "store"}),
    )
}

pub async fn get_prompt(app: &App, id: &str, version: Option<&str>) -> Result<Reply, ApiError> {
    let version = version
        .map(|v| {
            v.parse::<u32>()
                .ok()
                .filter(|v| *v >= 1)
                .ok_or_else(|| ApiError::bad("version", "must be a positive integer"))
        })
        .transpose()?;
    let store = prompts(app);
    let stored = match version {
        Some(v) => store.get(id, v).await?,
        None => store.latest(id).await?,
    };
    match stored {
        Some(t) => Reply::ok(&json!({"template": t, "source": "store"})),
        None if id == DEFAULT_TEMPLATE_ID
            && version.is_none_or(|v| v == PromptTemplate::builtin().version) =>
        {
            Reply::ok(&json!({"template": PromptTemplate::builtin(), "source": "builtin"}))
        }
        None => Err(ApiError::NotFound(match version {
            Some(v) => format!("prompt template {id} version {v}"),
            None => format!("prompt template {id}"),
        })),
    }
}

async fn all_versions(app: &App, id: &str) -> Result<Vec<PromptTemplate>, ApiError> {
    Ok(app
        .store
        .query(
            &app.store.tables.prompts,
            None,
            "template_id",
            id,
            true,
            None,
        )
        .await?)
}

pub async fn prompt_versions(app: &App, id: &str) -> Result<Reply, ApiError> {
    let versions = all_versions(app, id).await?;
    if versions.is_empty() {
        return Err(ApiError::NotFound(format!("prompt template {id}")));
    }
    let items: Vec<Value> = versions
        .iter()
        .map(|t| json!({"version": t.version, "created_at": t.created_at, "scope": t.scope, "description": t.description}))
        .collect();
    Reply::ok(&json!({"template_id": id, "items": items, "next": null}))
}

/// Lists template ids with their newest version, ordered by id; `next` resumes
/// after the last id of the page.
pub async fn list_prompts(app: &App, r: &Req<'_>) -> Result<Reply, ApiError> {
    let req = page_req(&r.query)?;
    let after = match &req.start {
        Some(k) => match k.get("template_id") {
            Some(aws_sdk_dynamodb::types::AttributeValue::S(s)) => Some(s.clone()),
            _ => return Err(ApiError::bad("next", "is not a token returned by this API")),
        },
        None => None,
    };
    let all: Vec<PromptTemplate> =
        repo::scan_all(&app.store, &app.store.tables.prompts, 20_000).await?;
    let mut latest: BTreeMap<String, (PromptTemplate, usize)> = BTreeMap::new();
    for t in all {
        let e = latest
            .entry(t.template_id.clone())
            .or_insert((t.clone(), 0));
        e.1 += 1;
        if t.version > e.0.version {
            e.0 = t;
        }
    }
    let mut rest = latest
        .into_iter()
        .filter(|(id, _)| after.as_ref().is_none_or(|a| id > a))
        .peekable();
    let mut items = Vec::new();
    while items.len() < req.limit as usize {
        match rest.next() {
            Some((_, (t, versions))) => items.push(json!({
                "template_id": t.template_id, "latest_version": t.version, "versions": versions,
                "scope": t.scope, "language": t.language, "description": t.description,
                "created_at": t.created_at,
            })),
            None => break,
        }
    }
    let next = match (rest.peek(), items.last()) {
        (Some(_), Some(last)) => {
            let id = last["template_id"].as_str().unwrap_or_default();
            Some(encode(&Key::from([("template_id".to_string(), s(id))])))
        }
        _ => None,
    };
    Reply::ok(&Page { items, next })
}

/// Deletes every version, unless a strategy still names the template.
pub async fn delete_prompt(app: &App, id: &str) -> Result<Reply, ApiError> {
    let versions = all_versions(app, id).await?;
    if versions.is_empty() {
        return Err(ApiError::NotFound(format!("prompt template {id}")));
    }
    let strategies: Vec<Strategy> =
        repo::scan_all(&app.store, &app.store.tables.strategies, 100_000).await?;
    let users: Vec<&str> = strategies
        .iter()
        .filter(|s| TemplateRef::parse(&s.prompt_template).is_ok_and(|r| r.template_id == id))
        .map(|s| s.strategy_id.as_str())
        .collect();
    if !users.is_empty() {
        return Err(ApiError::Conflict(format!(
            "prompt template {id} is used by strategies {}",
            users.join(", ")
        )));
    }
    for t in &versions {
        let key = HashMap::from([
            ("template_id".to_string(), s(id)),
            ("version".to_string(), n(t.version)),
        ]);
        repo::delete(&app.store, &app.store.tables.prompts, key).await?;
    }
    Reply::ok(&json!({"deleted": id, "versions": versions.len()}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_lists_every_kind_with_its_defaults() {
        let items = indicator_catalogue().unwrap();

        assert_eq!(items.len(), INDICATOR_KINDS.len());
        let macd = items.iter().find(|i| i["kind"] == "macd").unwrap();
        assert_eq!(macd["params"], json!({"fast": 12, "slow": 26, "signal": 9}));
        assert_eq!(macd["label"], "macd_12_26_9");
        let obv = items.iter().find(|i| i["kind"] == "obv").unwrap();
        assert_eq!(obv["params"], json!({}));
        for d in IndicatorSpec::defaults() {
            assert!(
                items.iter().any(|i| i["series_prefix"] == d.kind()),
                "{} missing",
                d.kind()
            );
        }
    }
}
