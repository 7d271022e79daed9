//! The `rules` provider: core's deterministic analyst behind the provider port.

use tradeflow_core::analyst::rules_answer;
use tradeflow_core::payloads::TokenUsage;

use super::{AnalysisRequest, AnalysisResponse, ChartAnalyst, LlmError};

/// Name the rules analyst reports as its model (bump when its rules change).
pub const RULES_MODEL: &str = "rules-v1";

#[derive(Debug, Clone, Copy, Default)]
pub struct RulesAnalyst;

impl ChartAnalyst for RulesAnalyst {
    fn kind(&self) -> &'static str {
        "rules"
    }

    fn wants_images(&self) -> bool {
        false
    }

    async fn analyze(&self, request: &AnalysisRequest) -> Result<AnalysisResponse, LlmError> {
        Ok(AnalysisResponse {
            answer: rules_answer(request.close, &request.indicators),
            model: RULES_MODEL.into(),
            usage: TokenUsage::default(),
            attempts: 1,
        })
    }
}
