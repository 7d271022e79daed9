//! Amazon Bedrock Converse: the prompt and the charts as image blocks. Structured
//! output is asked for by forcing a `record_signal` tool whose input schema is the
//! `StructuredAnswer` schema; models that answer in text still go through the
//! tolerant parser.

use std::time::{Duration, Instant};

use aws_sdk_bedrockruntime::config::retry::RetryConfig;
use aws_sdk_bedrockruntime::config::timeout::TimeoutConfig;
use aws_sdk_bedrockruntime::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::operation::converse::ConverseOutput;
use aws_sdk_bedrockruntime::operation::converse::builders::ConverseFluentBuilder;
use aws_sdk_bedrockruntime::primitives::Blob;
use aws_sdk_bedrockruntime::types::{
    ContentBlock, ConversationRole, ImageBlock, ImageFormat, ImageSource, InferenceConfiguration,
    Message, SpecificToolChoice, Tool, ToolChoice, ToolConfiguration, ToolInputSchema,
    ToolSpecification,
};
use aws_smithy_types::{Document, Number};
use serde_json::Value;
use tradeflow_core::payloads::TokenUsage;
use tradeflow_core::signal::structured_answer_schema;

use super::{AnalysisRequest, AnalysisResponse, ChartAnalyst, LlmError};
use crate::aws_calls::RecordCalls;

pub const DEFAULT_MODEL: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const TOOL: &str = "record_signal";

#[derive(Debug, Clone)]
pub struct BedrockSettings {
    /// Model id or inference profile id.
    pub model: String,
    /// Overrides the endpoint (a VPC endpoint, or a fake server in tests).
    pub endpoint_url: Option<String>,
    pub max_attempts: u32,
    /// First retry wait of the SDK's exponential backoff.
    pub initial_backoff: Duration,
    /// Per-attempt timeout.
    pub attempt_timeout: Duration,
    /// Total time including the SDK's retries, below the Lambda timeout.
    pub operation_timeout: Duration,
    pub max_tokens: i32,
}

impl Default for BedrockSettings {
    fn default() -> Self {
        Self {
            model: DEFAULT_MODEL.into(),
            endpoint_url: None,
            max_attempts: 3,
            initial_backoff: Duration::from_secs(1),
            attempt_timeout: Duration::from_secs(45),
            operation_timeout: Duration::from_secs(85),
            max_tokens: 1024,
        }
    }
}

#[derive(Debug, Clone)]
pub struct BedrockClient {
    client: aws_sdk_bedrockruntime::Client,
    settings: BedrockSettings,
}

impl BedrockClient {
    /// Builds the client; the SDK retries throttling and 5xx (standard mode) within
    /// `max_attempts` and the timeouts.
    pub fn new(sdk: &aws_config::SdkConfig, settings: BedrockSettings) -> Self {
        let mut conf = aws_sdk_bedrockruntime::config::Builder::from(sdk)
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(settings.max_attempts)
                    .with_initial_backoff(settings.initial_backoff),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(settings.attempt_timeout)
                    .operation_timeout(settings.operation_timeout)
                    .build(),
            );
        if let Some(url) = &settings.endpoint_url {
            conf = conf.endpoint_url(url);
        }
        Self {
            client: aws_sdk_bedrockruntime::Client::from_conf(conf.record_calls().build()),
            settings,
        }
    }

    /// The Converse call for a request: one user message with the prompt and one
    /// PNG image block per chart, and the forced `record_signal` tool.
    ///
    /// # Errors
    /// A request the SDK's builders refuse.
    pub fn converse_request(
        &self,
        request: &AnalysisRequest,
    ) -> Result<ConverseFluentBuilder, LlmError> {
        let build = |what: &str, e: aws_sdk_bedrockruntime::error::BuildError| {
            LlmError::Config(format!("bedrock {what}: {e}"))
        };
        let mut message = Message::builder()
            .role(ConversationRole::User)
            .content(ContentBlock::Text(request.prompt.clone()));
        for image in &request.images {
            message = message.content(ContentBlock::Image(
                ImageBlock::builder()
                    .format(ImageFormat::Png)
                    .source(ImageSource::Bytes(Blob::new(image.png.clone())))
                    .build()
                    .map_err(|e| build("image block", e))?,
            ));
        }
        let tool = ToolSpecification::builder()
            .name(TOOL)
            .description("Records the trading signal for the analysed chart.")
            .input_schema(ToolInputSchema::Json(to_document(
                &structured_answer_schema(),
            )))
            .build()
            .map_err(|e| build("tool", e))?;
        let tools = ToolConfiguration::builder()
            .tools(Tool::ToolSpec(tool))
            .tool_choice(ToolChoice::Tool(
                SpecificToolChoice::builder()
                    .name(TOOL)
                    .build()
                    .map_err(|e| build("tool choice", e))?,
            ))
            .build()
            .map_err(|e| build("tool config", e))?;
        Ok(self
            .client
            .converse()
            .model_id(&self.settings.model)
            .messages(message.build().map_err(|e| build("message", e))?)
            .tool_config(tools)
            .inference_config(
                InferenceConfiguration::builder()
                    .max_tokens(self.settings.max_tokens)
                    .temperature(0.0)
                    .build(),
            ))
    }
}

/// Converts JSON into the SDK's document type (tool schemas and inputs are documents).
pub(crate) fn to_document(v: &Value) -> Document {
    match v {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(if let Some(u) = n.as_u64() {
            Number::PosInt(u)
        } else if let Some(i) = n.as_i64() {
            Number::NegInt(i)
        } else {
            Number::Float(n.as_f64().unwrap_or(0.0))
        }),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(a) => Document::Array(a.iter().map(to_document).collect()),
        Value::Object(o) => {
            Document::Object(o.iter().map(|(k, v)| (k.clone(), to_document(v))).collect())
        }
    }
}

pub(crate) fn from_document(d: &Document) -> Value {
    match d {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(Number::PosInt(u)) => Value::from(*u),
        Document::Number(Number::NegInt(i)) => Value::from(*i),
        Document::Number(Number::Float(f)) => {
            serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
        }
        Document::String(s) => Value::String(s.clone()),
        Document::Array(a) => Value::Array(a.iter().map(from_document).collect()),
        Document::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), from_document(v)))
                .collect(),
        ),
    }
}

/// The answer text of a Converse reply: the `record_signal` tool input as JSON, or
/// the text blocks when the model answered in prose.
fn answer_of(out: &ConverseOutput) -> Result<String, LlmError> {
    let malformed = |message: &str| LlmError::Malformed {
        provider: "bedrock",
        message: message.into(),
    };
    let message = out
        .output()
        .and_then(|o| o.as_message().ok())
        .ok_or_else(|| malformed("no output message"))?;
    let mut text = Vec::new();
    for block in message.content() {
        match block {
            ContentBlock::ToolUse(t) if t.name() == TOOL => {
                return Ok(from_document(t.input()).to_string());
            }
            ContentBlock::Text(s) => text.push(s.as_str()),
            _ => {}
        }
    }
    if text.is_empty() {
        return Err(malformed("the message has neither a tool call nor text"));
    }
    Ok(text.join("\n"))
}

fn sdk_error<E>(e: SdkError<E>) -> LlmError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (retryable, message) = match &e {
        SdkError::TimeoutError(_) => (true, "timed out".to_string()),
        SdkError::DispatchFailure(_) => (true, "could not reach bedrock".to_string()),
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("unknown");
            let transient = matches!(
                code,
                "ThrottlingException"
                    | "ServiceUnavailableException"
                    | "InternalServerException"
                    | "ModelNotReadyException"
                    | "ModelTimeoutException"
            );
            (
                transient,
                format!("{code}: {}", se.err().message().unwrap_or("")),
            )
        }
        other => (false, other.to_string()),
    };
    LlmError::Bedrock {
        operation: "converse",
        retryable,
        message,
        source: Some(Box::new(e)),
    }
}

impl ChartAnalyst for BedrockClient {
    fn kind(&self) -> &'static str {
        "bedrock"
    }

    fn wants_images(&self) -> bool {
        true
    }

    #[tracing::instrument(skip_all, fields(provider = "bedrock", model = %self.settings.model))]
    async fn analyze(&self, request: &AnalysisRequest) -> Result<AnalysisResponse, LlmError> {
        let started = Instant::now();
        let out = self
            .converse_request(request)?
            .send()
            .await
            .map_err(sdk_error)?;
        let answer = answer_of(&out)?;
        let usage = out
            .usage()
            .map_or_else(TokenUsage::default, |u| TokenUsage {
                input_tokens: u.input_tokens().max(0) as u64,
                output_tokens: u.output_tokens().max(0) as u64,
            });
        tracing::info!(
            latency_ms = started.elapsed().as_millis() as u64,
            input_tokens = usage.input_tokens,
            output_tokens = usage.output_tokens,
            "llm answered"
        );
        Ok(AnalysisResponse {
            answer,
            // Converse does not echo the model; the id asked for is the one that ran.
            model: self.settings.model.clone(),
            usage,
            attempts: 1,
        })
    }
}

#[cfg(test)]
mod tests;
