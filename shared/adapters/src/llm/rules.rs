//! The `rules` provider: core's deterministic analyst behind the provider port.

use tradeflow_core::analyst::{RuleBar, RuleSet, rules_analyst_answer};
use tradeflow_core::payloads::TokenUsage;

use super::{AnalysisRequest, AnalysisResponse, ChartAnalyst, LlmError};

/// Name the rules analyst reports as its model (bump when its rules change).
pub const RULES_MODEL: &str = "rules-v1";

/// The strategy's declarative rules, or none for the built-in reading. The
/// backtest answers through the same core function.
#[derive(Debug, Clone, Default)]
pub struct RulesAnalyst {
    rules: Option<RuleSet>,
}

impl RulesAnalyst {
    pub fn new(rules: Option<RuleSet>) -> Self {
        Self { rules }
    }
}

impl ChartAnalyst for RulesAnalyst {
    fn kind(&self) -> &'static str {
        "rules"
    }

    fn wants_images(&self) -> bool {
        false
    }

    async fn analyze(&self, request: &AnalysisRequest) -> Result<AnalysisResponse, LlmError> {
        Ok(AnalysisResponse {
            answer: rules_analyst_answer(
                self.rules.as_ref(),
                &RuleBar {
                    close: request.close,
                    latest: &request.indicators,
                    previous_close: request.previous_close,
                    previous: &request.previous,
                },
            ),
            model: RULES_MODEL.into(),
            usage: TokenUsage::default(),
            attempts: 1,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_strategys_declarative_rules_answer_with_the_previous_bar() {
        let rules: RuleSet = serde_json::from_value(serde_json::json!({
            "buy": ["sma_10 crosses above sma_20"], "sell": ["sma_10 crosses below sma_20"]
        }))
        .unwrap();
        let values = |a: f64, b: f64| [("sma_10".to_string(), a), ("sma_20".to_string(), b)].into();
        let request = AnalysisRequest {
            close: 100.0,
            indicators: values(101.0, 100.0),
            previous_close: Some(99.0),
            previous: values(99.0, 100.0),
            ..AnalysisRequest::default()
        };

        let crossing = RulesAnalyst::new(Some(rules.clone()))
            .analyze(&request)
            .await
            .unwrap();
        let built_in = RulesAnalyst::default().analyze(&request).await.unwrap();

        assert!(crossing.answer.contains("\"BUY\""), "{}", crossing.answer);
        assert!(
            crossing.answer.contains("crosses above"),
            "{}",
            crossing.answer
        );
        assert!(built_in.answer.contains("below SMA"), "{}", built_in.answer);
    }
}
