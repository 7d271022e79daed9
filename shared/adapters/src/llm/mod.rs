//! LLM providers behind one port, `ChartAnalyst`: OpenAI-compatible chat completions
//! (OpenAI, Ollama, vLLM, LM Studio), Amazon Bedrock Converse, and the offline
//! `rules` analyst. Every provider answers with raw text; parse_signal decides what
//! it means, so no provider can turn an answer into an order on its own.

mod bedrock;
mod openai;
mod rules;

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use thiserror::Error;
use tradeflow_core::StepError;
use tradeflow_core::payloads::TokenUsage;
use tradeflow_core::strategy::ProviderSpec;

pub use bedrock::{BedrockClient, BedrockSettings};
pub use openai::{OpenAiClient, OpenAiSettings};
pub use rules::RulesAnalyst;

use crate::config::{Config, Secret};

/// A chart rendered by render_charts, as PNG bytes.
#[derive(Debug, Clone)]
pub struct ChartImage {
    pub timeframe: String,
    pub png: Vec<u8>,
}

/// What an analyst is asked.
#[derive(Debug, Clone, Default)]
pub struct AnalysisRequest {
    /// The rendered prompt template.
    pub prompt: String,
    pub images: Vec<ChartImage>,
    /// Latest close and indicator values (the `rules` analyst reads these, not the chart).
    pub close: f64,
    pub indicators: BTreeMap<String, f64>,
    /// The bar before: its close and indicator values (crossover rules read these).
    pub previous_close: Option<f64>,
    pub previous: BTreeMap<String, f64>,
}

/// What an analyst answered, with what lineage needs to audit it.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisResponse {
    /// The raw answer text, verbatim.
    pub answer: String,
    /// The model that answered, as the provider reports it.
    pub model: String,
    pub usage: TokenUsage,
    /// HTTP attempts made (1 without retries).
    pub attempts: u32,
}

#[derive(Debug, Error)]
pub enum LlmError {
    #[error("{provider} did not answer within the timeout ({attempts} attempt(s))")]
    Timeout {
        provider: &'static str,
        attempts: u32,
    },
    #[error("{provider} returned HTTP {status} after {attempts} attempt(s): {body}")]
    Status {
        provider: &'static str,
        status: u16,
        attempts: u32,
        /// The head of the response body (servers' error messages; never our request).
        body: String,
    },
    #[error("{provider} request failed after {attempts} attempt(s): {source}")]
    Transport {
        provider: &'static str,
        attempts: u32,
        #[source]
        source: reqwest::Error,
    },
    #[error("{provider} answer is not a chat completion: {message}")]
    Malformed {
        provider: &'static str,
        message: String,
    },
    #[error("bedrock {operation}: {message}")]
    Bedrock {
        operation: &'static str,
        retryable: bool,
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    #[error("llm api key secret: {message}")]
    Secret { retryable: bool, message: String },
    #[error("llm provider misconfigured: {0}")]
    Config(String),
}

impl LlmError {
    /// Returns true when trying again later may succeed (timeouts, throttling, 5xx).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Timeout { .. } => true,
            Self::Status { status, .. } => *status == 429 || *status >= 500,
            Self::Transport { source, .. } => source.is_connect() || source.is_timeout(),
            Self::Bedrock { retryable, .. } | Self::Secret { retryable, .. } => *retryable,
            Self::Malformed { .. } | Self::Config(_) => false,
        }
    }
}

impl From<LlmError> for StepError {
    fn from(e: LlmError) -> Self {
        if e.is_retryable() {
            StepError::transient(e.to_string())
        } else {
            StepError::fatal(e.to_string())
        }
    }
}

/// Bounded retries with exponential backoff, inside an overall deadline that keeps
/// the step below its Lambda timeout (100 s in infra).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Per-attempt timeout.
    pub timeout: Duration,
    /// Total time for all attempts and waits.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(10),
            timeout: Duration::from_secs(45),
            deadline: Duration::from_secs(85),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1`: the server's `Retry-After` when given,
    /// else `base * 2^(attempt-1)`, capped at `max_delay`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        retry_after.unwrap_or(exp).min(self.max_delay)
    }
}

/// Reads a chart and answers. Implemented once per technology.
pub trait ChartAnalyst: Send + Sync {
    /// `rules`, `openai` or `bedrock`.
    fn kind(&self) -> &'static str;
    /// Returns true when the analyst looks at the chart images (so they must be loaded).
    fn wants_images(&self) -> bool;
    /// Asks for an analysis.
    fn analyze(
        &self,
        request: &AnalysisRequest,
    ) -> impl Future<Output = Result<AnalysisResponse, LlmError>> + Send;
}

/// The provider a strategy chose.
#[derive(Debug)]
pub enum Provider {
    Rules(RulesAnalyst),
    OpenAi(OpenAiClient),
    Bedrock(BedrockClient),
}

impl Provider {
    /// Builds the provider a strategy names. The strategy's `model` and `base_url`
    /// win over the environment's defaults (`OPENAI_BASE_URL`).
    ///
    /// # Errors
    /// An unknown kind or an invalid base URL.
    pub async fn for_strategy(spec: &ProviderSpec, config: &Config) -> Result<Self, LlmError> {
        match spec.kind.as_str() {
            "rules" => Ok(Self::Rules(RulesAnalyst::new(spec.rules.clone()))),
            "openai" => {
                let base_url = spec
                    .base_url
                    .clone()
                    .or_else(|| config.openai_base_url.clone())
                    .unwrap_or_else(|| openai::DEFAULT_BASE_URL.to_string());
                let settings = OpenAiSettings {
                    model: spec
                        .model
                        .clone()
                        .unwrap_or_else(|| openai::DEFAULT_MODEL.to_string()),
                    api_key: api_key(config).await?,
                    structured_output: spec.structured_output,
                    ..OpenAiSettings::new(base_url)
                };
                Ok(Self::OpenAi(OpenAiClient::new(settings)?))
            }
            "bedrock" => {
                let sdk = aws_config::load_from_env().await;
                let settings = BedrockSettings {
                    model: spec
                        .model
                        .clone()
                        .unwrap_or_else(|| bedrock::DEFAULT_MODEL.to_string()),
                    endpoint_url: spec.base_url.clone(),
                    ..BedrockSettings::default()
                };
                Ok(Self::Bedrock(BedrockClient::new(&sdk, settings)))
            }
            other => Err(LlmError::Config(format!(
                "unknown provider kind {other:?} (rules, openai or bedrock)"
            ))),
        }
    }
}

/// The API key: `OPENAI_API_KEY` when set, else the Secrets Manager secret named by
/// `LLM_API_KEY_SECRET_ARN` (read once per process), else none (local servers).
async fn api_key(config: &Config) -> Result<Secret, LlmError> {
    static FROM_SECRETS_MANAGER: tokio::sync::OnceCell<Secret> = tokio::sync::OnceCell::const_new();
    if !config.openai_api_key.is_empty() {
        return Ok(config.openai_api_key.clone());
    }
    let Some(arn) = &config.llm_api_key_secret_arn else {
        return Ok(Secret::default());
    };
    FROM_SECRETS_MANAGER
        .get_or_try_init(|| async {
            let sdk = aws_config::load_from_env().await;
            let out = crate::aws::secretsmanager_client(&sdk)
                .get_secret_value()
                .secret_id(arn)
                .send()
                .await
                .map_err(|e| {
                    use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
                    let retryable =
                        matches!(e, SdkError::TimeoutError(_) | SdkError::DispatchFailure(_))
                            || e.code() == Some("InternalServiceError");
                    LlmError::Secret {
                        retryable,
                        message: format!(
                            "{}: {}",
                            e.code().unwrap_or("error"),
                            e.message().unwrap_or("")
                        ),
                    }
                })?;
            let text = out.secret_string().unwrap_or_default();
            Ok(Secret::new(key_in_secret(text)))
        })
        .await
        .cloned()
}

/// The key in a secret's string: the string itself, or the `api_key` /
/// `OPENAI_API_KEY` field of a JSON secret.
fn key_in_secret(text: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(o)) => ["api_key", "OPENAI_API_KEY", "apiKey"]
            .iter()
            .find_map(|k| o.get(*k).and_then(|v| v.as_str()))
            .unwrap_or_default()
            .to_string(),
        _ => text.trim().to_string(),
    }
}

impl ChartAnalyst for Provider {
    fn kind(&self) -> &'static str {
        match self {
            Self::Rules(p) => p.kind(),
            Self::OpenAi(p) => p.kind(),
            Self::Bedrock(p) => p.kind(),
        }
    }

    fn wants_images(&self) -> bool {
        match self {
            Self::Rules(p) => p.wants_images(),
            Self::OpenAi(p) => p.wants_images(),
            Self::Bedrock(p) => p.wants_images(),
        }
    }

    async fn analyze(&self, request: &AnalysisRequest) -> Result<AnalysisResponse, LlmError> {
        match self {
            Self::Rules(p) => p.analyze(request).await,
            Self::OpenAi(p) => p.analyze(request).await,
            Self::Bedrock(p) => p.analyze(request).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_honours_retry_after() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
            ..RetryPolicy::default()
        };

        assert_eq!(p.delay(1, None), Duration::from_millis(100));
        assert_eq!(p.delay(2, None), Duration::from_millis(200));
        assert_eq!(p.delay(3, None), Duration::from_millis(300));
        assert_eq!(
            p.delay(1, Some(Duration::from_millis(250))),
            Duration::from_millis(250)
        );
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(60))),
            Duration::from_millis(300)
        );
    }

    #[test]
    fn a_secret_is_the_raw_key_or_a_json_field() {
        assert_eq!(key_in_secret(" sk-abc \n"), "sk-abc");
        assert_eq!(key_in_secret(r#"{"api_key": "sk-json"}"#), "sk-json");
        assert_eq!(key_in_secret(r#"{"other": 1}"#), "");
    }

    #[test]
    fn throttling_and_server_errors_are_transient_client_errors_fatal() {
        let status = |status| LlmError::Status {
            provider: "openai",
            status,
            attempts: 3,
            body: String::new(),
        };

        assert!(StepError::from(status(429)).is_retryable());
        assert!(StepError::from(status(503)).is_retryable());
        assert!(!StepError::from(status(401)).is_retryable());
        assert!(
            !StepError::from(LlmError::Malformed {
                provider: "openai",
                message: "no choices".into()
            })
            .is_retryable()
        );
    }
}
