//! `tradeflow parse-signal` and `tradeflow render-prompt`: try answers and prompt
//! templates locally, without AWS, through the same code the workflow runs.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use serde_json::Value;
use tradeflow_core::prompts::{PromptContext, PromptTemplate, render_typed};
use tradeflow_core::signal::{Signal, parse_answer};

#[derive(Debug, Args)]
pub struct ParseSignalArgs {
    /// Last close, for the entry-distance check (skipped when absent).
    #[arg(long)]
    pub last_close: Option<f64>,
}

#[derive(Debug, Args)]
pub struct RenderPromptArgs {
    /// The minijinja template file (e.g. shared/core/prompts/default_analysis.j2).
    #[arg(long)]
    pub template: PathBuf,
    /// The rendering context as JSON; the built-in sample context when absent.
    #[arg(long)]
    pub context: Option<PathBuf>,
    /// Also run the save-time validation (sample contexts with and without a position).
    #[arg(long)]
    pub check: bool,
}

/// Reads an answer on stdin and prints the validated signal or HOLD with the reason.
///
/// # Errors
/// Unreadable stdin.
pub fn parse_signal(args: ParseSignalArgs) -> anyhow::Result<()> {
    let mut answer = String::new();
    std::io::stdin()
        .read_to_string(&mut answer)
        .context("reading the answer from stdin")?;
    println!(
        "{}",
        serde_json::to_string_pretty(&signal_for(&answer, args.last_close))?
    );
    Ok(())
}

fn signal_for(answer: &str, last_close: Option<f64>) -> Signal {
    parse_answer(answer, last_close.unwrap_or(0.0))
}

/// Renders a template file against a context file and prints the prompt.
///
/// # Errors
/// Unreadable files, invalid JSON, or a template that does not render.
pub fn render_prompt(args: RenderPromptArgs) -> anyhow::Result<()> {
    let body = std::fs::read_to_string(&args.template)
        .with_context(|| format!("reading {}", args.template.display()))?;
    let context = match &args.context {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Some(
                serde_json::from_str(&text)
                    .with_context(|| format!("{} is not JSON", path.display()))?,
            )
        }
        None => None,
    };
    print!("{}", rendered(&body, context.as_ref(), args.check)?);
    Ok(())
}

fn rendered(body: &str, context: Option<&Value>, check: bool) -> anyhow::Result<String> {
    if check {
        PromptTemplate {
            body: body.into(),
            ..PromptTemplate::builtin()
        }
        .validate()?;
    }
    let text = match context {
        Some(ctx) => render_typed(body, ctx, "cannot render")?,
        None => render_typed(body, &PromptContext::sample(), "cannot render")?,
    };
    Ok(text)
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use tradeflow_core::prompts::DEFAULT_TEMPLATE;
    use tradeflow_core::signal::Action;

    use super::*;

    #[test]
    fn the_distance_check_applies_only_with_a_last_close() {
        let answer = "Signal: BUY\nEntry Price: 300\nStop Loss: 290\nTarget: 320";

        assert_eq!(signal_for(answer, None).action, Action::Buy);
        assert_eq!(signal_for(answer, Some(190.0)).action, Action::Hold);
    }

    #[test]
    fn a_context_file_is_rendered_and_a_missing_variable_is_an_error() {
        let ctx = json!({"symbol": "MSFT"});

        assert_eq!(
            rendered("Hi {{ symbol }}", Some(&ctx), false).unwrap(),
            "Hi MSFT"
        );
        assert!(rendered("Hi {{ symbl }}", Some(&ctx), false).is_err());
    }

    #[test]
    fn check_refuses_a_template_that_only_works_with_the_given_context() {
        let ctx = json!({"position": {"quantity": 1}});

        assert!(rendered("{{ position.quantity }}", Some(&ctx), false).is_ok());
        assert!(rendered("{{ position.quantity }}", Some(&ctx), true).is_err());
        assert!(
            rendered(DEFAULT_TEMPLATE, None, true)
                .unwrap()
                .contains("chart of AAPL")
        );
    }
}
