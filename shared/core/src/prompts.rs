//! Prompt templates (minijinja, strict undefined): a template that references a
//! missing variable fails with a clear error instead of sending a hollow prompt.

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

/// The analysis template that ships with tradeflow.
pub const DEFAULT_TEMPLATE_ID: &str = "default-analysis";
pub const DEFAULT_TEMPLATE_VERSION: u32 = 1;
pub const DEFAULT_TEMPLATE: &str = include_str!("../prompts/default_analysis.j2");

/// Renders a template body against a context.
///
/// # Errors
/// Syntax errors and undefined variables, with minijinja's description.
pub fn render<C: Serialize>(body: &str, context: &C) -> Result<String, String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_template("prompt", body)
        .map_err(|e| format!("template error: {e:#}"))?;
    let tmpl = env
        .get_template("prompt")
        .map_err(|e| format!("template error: {e:#}"))?;
    tmpl.render(minijinja::Value::from(minijinja::value::Serde(context)))
        .map_err(|e| format!("template render error: {e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_default_template_renders_with_a_full_context() {
        let ctx = json!({"symbol": "AAPL", "timeframe": "daily", "close": 190.5, "volume": 1000,
            "indicators": {"rsi_14": 55.1}, "risk": {"risk_per_trade": "0.01", "max_position_value": "25000"},
            "position": null});

        let text = render(DEFAULT_TEMPLATE, &ctx).unwrap();

        assert!(text.contains("daily chart of AAPL"));
        assert!(text.contains("- rsi_14: 55.1"));
        assert!(text.contains("No open position."));
    }

    #[test]
    fn a_missing_variable_is_an_error_naming_it() {
        let err = render("Close {{ closee }}", &json!({"close": 1})).unwrap_err();

        assert!(err.contains("undefined"), "{err}");
    }
}
