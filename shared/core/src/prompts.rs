//! Prompt templates (minijinja, strict undefined): a template that references a
//! missing variable fails with a clear error instead of sending a hollow prompt.
//! Templates are versioned records; the one that ships with tradeflow is used when
//! the store has none.

use std::collections::BTreeMap;

use minijinja::{Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::payloads::{ComputeIndicatorsOutput, FetchMarketDataOutput};
use crate::strategy::{RiskParams, Strategy};

/// The analysis template that ships with tradeflow.
pub const DEFAULT_TEMPLATE_ID: &str = "default-analysis";
pub const DEFAULT_TEMPLATE_VERSION: u32 = 1;
pub const DEFAULT_TEMPLATE: &str = include_str!("../prompts/default_analysis.j2");
/// The scope of a template every strategy may use.
pub const GLOBAL_SCOPE: &str = "global";

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PromptError {
    #[error("template_id {0:?} must be 1-64 characters of letters, digits, '-' or '_'")]
    InvalidId(String),
    #[error("scope {0:?} must be \"global\" or a strategy id")]
    InvalidScope(String),
    #[error("template reference {0:?} is not `id` or `id@version`")]
    InvalidRef(String),
    #[error("template body is empty")]
    EmptyBody,
    /// Syntax errors and undefined variables, with minijinja's description.
    #[error("template {context}: {message}")]
    Render {
        context: &'static str,
        message: String,
    },
    #[error("template {template_id} is scoped to strategy {scope}, not {strategy_id}")]
    OutOfScope {
        template_id: String,
        scope: String,
        strategy_id: String,
    },
    #[error("template {0} is neither in the store nor built in")]
    NotFound(String),
}

/// A stored prompt template. A (template_id, version) is written once and never
/// changed, so a signal's template id+version always names the text that produced it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptTemplate {
    pub template_id: String,
    pub version: u32,
    /// `global`, or the strategy id the template is reserved for.
    pub scope: String,
    /// Language of the prompt, e.g. `en`.
    pub language: String,
    pub body: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub created_at: String,
}

impl PromptTemplate {
    /// The template that ships with tradeflow.
    pub fn builtin() -> Self {
        Self {
            template_id: DEFAULT_TEMPLATE_ID.into(),
            version: DEFAULT_TEMPLATE_VERSION,
            scope: GLOBAL_SCOPE.into(),
            language: "en".into(),
            body: DEFAULT_TEMPLATE.into(),
            description: Some("built-in chart analysis prompt".into()),
            created_at: String::new(),
        }
    }

    /// Checks the id and scope and renders the body against sample contexts with
    /// and without an open position, so a template that references a variable the
    /// workflow does not provide is refused when saved rather than at trade time.
    ///
    /// # Errors
    /// The first problem found.
    pub fn validate(&self) -> Result<(), PromptError> {
        if !valid_name(&self.template_id, 64) {
            return Err(PromptError::InvalidId(self.template_id.clone()));
        }
        if self.scope != GLOBAL_SCOPE && !valid_name(&self.scope, 48) {
            return Err(PromptError::InvalidScope(self.scope.clone()));
        }
        if self.body.trim().is_empty() {
            return Err(PromptError::EmptyBody);
        }
        let mut ctx = PromptContext::sample();
        render_typed(&self.body, &ctx, "fails with an open position")?;
        ctx.position = None;
        render_typed(&self.body, &ctx, "fails without a position")?;
        Ok(())
    }

    /// Returns true when a strategy may use this template.
    pub fn applies_to(&self, strategy_id: &str) -> bool {
        self.scope == GLOBAL_SCOPE || self.scope == strategy_id
    }
}

fn valid_name(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Which template a strategy asks for: `id` (latest version) or `id@version` (pinned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateRef {
    pub template_id: String,
    pub version: Option<u32>,
}

impl TemplateRef {
    /// Parses a strategy's `prompt_template` field.
    ///
    /// # Errors
    /// An invalid id or version.
    pub fn parse(s: &str) -> Result<Self, PromptError> {
        let (id, version) = match s.trim().split_once('@') {
            Some((id, v)) => (
                id,
                Some(
                    v.parse::<u32>()
                        .map_err(|_| PromptError::InvalidRef(s.into()))?,
                ),
            ),
            None => (s.trim(), None),
        };
        if !valid_name(id, 64) {
            return Err(PromptError::InvalidRef(s.into()));
        }
        Ok(Self {
            template_id: id.into(),
            version,
        })
    }
}

/// Where the template used for an analysis came from (recorded in lineage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateSource {
    Builtin,
    Store,
}

/// Picks the template for a strategy from what the store returned for the reference
/// (`None` when it has no such template), falling back to the built-in one only for
/// the built-in id.
///
/// # Errors
/// `NotFound` for an unknown id, `OutOfScope` for another strategy's template.
pub fn choose_template(
    reference: &TemplateRef,
    stored: Option<PromptTemplate>,
    strategy_id: &str,
) -> Result<(PromptTemplate, TemplateSource), PromptError> {
    match stored {
        Some(t) if t.applies_to(strategy_id) => Ok((t, TemplateSource::Store)),
        Some(t) => Err(PromptError::OutOfScope {
            template_id: t.template_id,
            scope: t.scope,
            strategy_id: strategy_id.into(),
        }),
        None if reference.template_id == DEFAULT_TEMPLATE_ID
            && reference
                .version
                .is_none_or(|v| v == DEFAULT_TEMPLATE_VERSION) =>
        {
            Ok((PromptTemplate::builtin(), TemplateSource::Builtin))
        }
        None => Err(PromptError::NotFound(match reference.version {
            Some(v) => format!("{}@{v}", reference.template_id),
            None => reference.template_id.clone(),
        })),
    }
}

/// The open position a prompt may mention.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionContext {
    /// Signed: negative for a short.
    pub quantity: f64,
    pub avg_cost: f64,
}

/// Everything a template may reference. Adding a field here makes it available to
/// templates; removing one breaks stored templates (they are validated against it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromptContext {
    pub strategy_id: String,
    pub symbol: String,
    pub currency: String,
    pub timeframe: String,
    /// Time of the latest bar.
    pub as_of: String,
    pub close: f64,
    pub volume: f64,
    /// Latest value of every indicator series, by series name (`sma_20`, `rsi_14`).
    pub indicators: BTreeMap<String, f64>,
    pub risk: RiskParams,
    pub position: Option<PositionContext>,
}

impl PositionContext {
    /// Reads a position item as stored in the positions table, accepting numbers or
    /// decimal strings. A flat position (quantity 0) is no position.
    pub fn from_item(item: &serde_json::Value) -> Option<Self> {
        let number = |names: &[&str]| {
            names.iter().find_map(|n| match item.get(*n)? {
                serde_json::Value::Number(x) => x.as_f64(),
                serde_json::Value::String(s) => s.trim().parse().ok(),
                _ => None,
            })
        };
        let quantity = number(&["quantity", "qty", "position"])?;
        let avg_cost = number(&["avg_cost", "avg_price", "average_cost", "avg_entry_price"])?;
        (quantity != 0.0).then_some(Self { quantity, avg_cost })
    }
}

impl PromptContext {
    /// The context of one workflow run, from the earlier steps' outputs.
    pub fn for_run(
        strategy: &Strategy,
        market: &FetchMarketDataOutput,
        indicators: &ComputeIndicatorsOutput,
        position: Option<PositionContext>,
    ) -> Self {
        Self {
            strategy_id: strategy.strategy_id.clone(),
            symbol: strategy.symbol.clone(),
            currency: strategy.currency.clone(),
            timeframe: market.timeframe.clone(),
            as_of: market.last.clone(),
            close: market.latest_close,
            volume: market.latest_volume,
            indicators: indicators
                .series
                .iter()
                .filter_map(|(k, v)| v.latest.map(|x| (k.clone(), x)))
                .collect(),
            risk: strategy.risk.clone(),
            position,
        }
    }

    /// A realistic context for validating templates at save time.
    pub fn sample() -> Self {
        Self {
            strategy_id: "sample-strategy".into(),
            symbol: "AAPL".into(),
            currency: "USD".into(),
            timeframe: "daily".into(),
            as_of: "2025-01-02T21:00:00Z".into(),
            close: 190.5,
            volume: 51_234_000.0,
            indicators: [
                ("sma_20", 187.2),
                ("ema_50", 183.9),
                ("rsi_14", 58.3),
                ("macd_12_26_9", 1.2),
                ("atr_14", 3.1),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
            risk: RiskParams::default(),
            position: Some(PositionContext {
                quantity: 50.0,
                avg_cost: 181.25,
            }),
        }
    }
}

/// Renders a template body against a context.
///
/// # Errors
/// Syntax errors and undefined variables, with minijinja's description.
pub fn render<C: Serialize>(body: &str, context: &C) -> Result<String, String> {
    render_typed(body, context, "cannot render").map_err(|e| e.to_string())
}

/// Renders a template body, with a typed error.
///
/// # Errors
/// `PromptError::Render` for syntax errors and undefined variables.
pub fn render_typed<C: Serialize>(
    body: &str,
    context: &C,
    what: &'static str,
) -> Result<String, PromptError> {
    let err = |e: minijinja::Error| PromptError::Render {
        context: what,
        message: format!("{e:#}"),
    };
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_template("prompt", body).map_err(err)?;
    let tmpl = env.get_template("prompt").map_err(err)?;
    tmpl.render(minijinja::Value::from(minijinja::value::Serde(context)))
        .map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_default_template_renders_with_a_full_context() {
        let ctx = json!({"symbol": "AAPL", "timeframe": "daily", "close": 190.5, "volume": 1000,
            "currency": "USD", "as_of": "2025-01-02",
            "indicators": {"rsi_14": 55.1}, "risk": {"risk_per_trade": "0.01", "max_position_value": "25000", "min_confidence": 0.5},
            "position": null});

        let text = render(DEFAULT_TEMPLATE, &ctx).unwrap();

        assert!(text.contains("daily chart of AAPL"));
        assert!(text.contains("- rsi_14: 55.1"));
        assert!(text.contains("No open position."));
    }

    #[test]
    fn the_default_prompt_matches_its_snapshot() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/prompts/default_analysis.sample.txt"
        );
        let text = render(DEFAULT_TEMPLATE, &PromptContext::sample()).unwrap();
        // UPDATE_SNAPSHOTS=1 rewrites the snapshot after a deliberate template change.
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            std::fs::write(path, &text).unwrap();
        }

        assert_eq!(text, std::fs::read_to_string(path).unwrap());
    }

    #[test]
    fn a_missing_variable_is_an_error_naming_it() {
        let err = render("Close {{ closee }}", &json!({"close": 1})).unwrap_err();

        assert!(err.contains("undefined"), "{err}");
        assert!(err.contains("closee"), "{err}");
    }

    #[test]
    fn the_builtin_template_validates() {
        assert_eq!(PromptTemplate::builtin().validate(), Ok(()));
    }

    #[test]
    fn a_template_that_assumes_a_position_is_refused_at_save_time() {
        let t = PromptTemplate {
            body: "Holding {{ position.quantity }} of {{ symbol }}".into(),
            ..PromptTemplate::builtin()
        };

        let err = t.validate().unwrap_err();

        assert!(
            matches!(
                err,
                PromptError::Render {
                    context: "fails without a position",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_template_with_an_unknown_variable_or_bad_syntax_is_refused() {
        let unknown = PromptTemplate {
            body: "{{ sentiment_score }}".into(),
            ..PromptTemplate::builtin()
        };
        let syntax = PromptTemplate {
            body: "{% if close %}unclosed".into(),
            ..PromptTemplate::builtin()
        };

        assert!(
            unknown
                .validate()
                .unwrap_err()
                .to_string()
                .contains("sentiment_score")
        );
        assert!(matches!(syntax.validate(), Err(PromptError::Render { .. })));
    }

    #[test]
    fn ids_and_scopes_are_checked() {
        let bad_id = PromptTemplate {
            template_id: "has space".into(),
            ..PromptTemplate::builtin()
        };
        let bad_scope = PromptTemplate {
            scope: "".into(),
            ..PromptTemplate::builtin()
        };

        assert!(matches!(bad_id.validate(), Err(PromptError::InvalidId(_))));
        assert!(matches!(
            bad_scope.validate(),
            Err(PromptError::InvalidScope(_))
        ));
    }

    #[test]
    fn positions_are_read_from_stored_items_and_flat_is_none() {
        let held = json!({"strategy_id": "s", "conid": "1", "quantity": "50", "avg_cost": 181.25});
        let flat = json!({"quantity": 0, "avg_cost": 0});

        assert_eq!(
            PositionContext::from_item(&held),
            Some(PositionContext {
                quantity: 50.0,
                avg_cost: 181.25
            })
        );
        assert_eq!(PositionContext::from_item(&flat), None);
        assert_eq!(PositionContext::from_item(&json!({"conid": "1"})), None);
    }

    #[test]
    fn template_refs_pin_a_version_with_an_at_sign() {
        assert_eq!(
            TemplateRef::parse("swing@3").unwrap(),
            TemplateRef {
                template_id: "swing".into(),
                version: Some(3)
            }
        );
        assert_eq!(TemplateRef::parse("swing").unwrap().version, None);
        assert!(TemplateRef::parse("swing@latest").is_err());
        assert!(TemplateRef::parse("").is_err());
    }

    #[test]
    fn the_store_wins_over_the_builtin_and_scopes_are_enforced() {
        let default_ref = TemplateRef::parse(DEFAULT_TEMPLATE_ID).unwrap();
        let stored = PromptTemplate {
            version: 4,
            ..PromptTemplate::builtin()
        };
        let private = PromptTemplate {
            scope: "other".into(),
            ..stored.clone()
        };

        let (t, source) = choose_template(&default_ref, Some(stored), "mine").unwrap();
        let (b, builtin) = choose_template(&default_ref, None, "mine").unwrap();
        let scoped = choose_template(&default_ref, Some(private), "mine");
        let missing = choose_template(&TemplateRef::parse("custom").unwrap(), None, "mine");

        assert_eq!((t.version, source), (4, TemplateSource::Store));
        assert_eq!(
            (b.version, builtin),
            (DEFAULT_TEMPLATE_VERSION, TemplateSource::Builtin)
        );
        assert!(matches!(scoped, Err(PromptError::OutOfScope { .. })));
        assert_eq!(missing, Err(PromptError::NotFound("custom".into())));
    }
}
