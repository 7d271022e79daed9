//! OpenAI-compatible chat completions (OpenAI, Ollama, vLLM, LM Studio): the prompt
//! and the charts as base64 PNG data URLs, with structured output requested through
//! `response_format` (a JSON schema by default; JSON mode or nothing for servers
//! that reject it, chosen per strategy).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tradeflow_core::payloads::TokenUsage;
use tradeflow_core::signal::structured_answer_schema;
use tradeflow_core::strategy::StructuredOutput;

use super::{AnalysisRequest, AnalysisResponse, ChartAnalyst, LlmError, RetryPolicy};
use crate::config::Secret;

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";
const PROVIDER: &str = "openai";
/// Error bodies are quoted in errors and lineage only up to this length.
const BODY_HEAD: usize = 300;

#[derive(Debug, Clone)]
pub struct OpenAiSettings {
    /// Up to and including `/v1`, e.g. `http://127.0.0.1:11434/v1` for Ollama.
    pub base_url: String,
    pub model: String,
    /// Sent as a bearer token when not empty (local servers need none).
    pub api_key: Secret,
    pub retry: RetryPolicy,
    pub structured_output: StructuredOutput,
}

impl OpenAiSettings {
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            model: DEFAULT_MODEL.into(),
            api_key: Secret::default(),
            retry: RetryPolicy::default(),
            structured_output: StructuredOutput::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct OpenAiClient {
    http: reqwest::Client,
    url: reqwest::Url,
    settings: OpenAiSettings,
}

/// One HTTP client per process: it keeps connections and TLS sessions warm
/// across invocations of a warm Lambda.
fn shared_http() -> Result<reqwest::Client, LlmError> {
    static HTTP: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(c) = HTTP.get() {
        return Ok(c.clone());
    }
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| LlmError::Config(format!("http client: {e}")))?;
    Ok(HTTP.get_or_init(|| client).clone())
}

impl OpenAiClient {
    /// Builds a client for `{base_url}/chat/completions`.
    ///
    /// # Errors
    /// A base URL that is not an http(s) URL.
    pub fn new(settings: OpenAiSettings) -> Result<Self, LlmError> {
        let base = settings.base_url.trim_end_matches('/');
        let url: reqwest::Url = format!("{base}/chat/completions")
            .parse()
            .map_err(|e| LlmError::Config(format!("base_url {base:?}: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(LlmError::Config(format!(
                "base_url {base:?} must be http or https"
            )));
        }
        Ok(Self {
            http: shared_http()?,
            url,
            settings,
        })
    }

    /// The chat completion request body.
    pub fn request_body(&self, request: &AnalysisRequest) -> Value {
        let mut content = vec![json!({"type": "text", "text": request.prompt})];
        for image in &request.images {
            content.push(json!({
                "type": "image_url",
                "image_url": {"url": format!("data:image/png;base64,{}", STANDARD.encode(&image.png))},
            }));
        }
        let mut body = json!({
            "model": self.settings.model,
            "messages": [{"role": "user", "content": content}],
        });
        let format = match self.settings.structured_output {
            StructuredOutput::JsonSchema => Some(json!({
                "type": "json_schema",
                "json_schema": {"name": "trading_signal", "strict": true, "schema": structured_answer_schema()},
            })),
            StructuredOutput::JsonObject => Some(json!({"type": "json_object"})),
            StructuredOutput::None => None,
        };
        if let Some(f) = format {
            body["response_format"] = f;
        }
        body
    }
}

fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

fn head(s: &str) -> String {
    match s.char_indices().nth(BODY_HEAD) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// Reads the answer, model and usage from a chat completion.
fn read_completion(
    body: &str,
    requested_model: &str,
) -> Result<(String, String, TokenUsage), String> {
    let v: Value =
        serde_json::from_str(body).map_err(|e| format!("not JSON ({e}): {}", head(body)))?;
    let message = v
        .pointer("/choices/0/message")
        .ok_or_else(|| format!("no choices[0].message: {}", head(body)))?;
    let answer = match message.get("content") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        // Some servers return content parts instead of a string.
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        // A refusal is an answer too: parse_signal turns it into HOLD, lineage keeps it.
        _ => match message.get("refusal").and_then(Value::as_str) {
            Some(r) => format!("refusal: {r}"),
            None => return Err(format!("choices[0].message has no content: {}", head(body))),
        },
    };
    let model = v
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(requested_model)
        .to_string();
    let tokens = |name: &str| {
        v.pointer(&format!("/usage/{name}"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    };
    let usage = TokenUsage {
        input_tokens: tokens("prompt_tokens"),
        output_tokens: tokens("completion_tokens"),
    };
    Ok((answer, model, usage))
}

impl ChartAnalyst for OpenAiClient {
    fn kind(&self) -> &'static str {
        PROVIDER
    }

    fn wants_images(&self) -> bool {
        true
    }

    #[tracing::instrument(skip_all, fields(provider = PROVIDER, model = %self.settings.model))]
    async fn analyze(&self, request: &AnalysisRequest) -> Result<AnalysisResponse, LlmError> {
        let body = self.request_body(request);
        let policy = self.settings.retry;
        let started = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let remaining = policy.deadline.saturating_sub(started.elapsed());
            let mut req = self
                .http
                .post(self.url.clone())
                .timeout(policy.timeout.min(remaining))
                .json(&body);
            if !self.settings.api_key.is_empty() {
                req = req.bearer_auth(self.settings.api_key.expose());
            }
            let (failure, wait_hint) = match req.send().await {
                Ok(resp) if resp.status().is_success() => {
                    let text = resp.text().await.map_err(|source| {
                        if source.is_timeout() {
                            LlmError::Timeout {
                                provider: PROVIDER,
                                attempts,
                            }
                        } else {
                            LlmError::Transport {
                                provider: PROVIDER,
                                attempts,
                                source,
                            }
                        }
                    });
                    match text {
                        Ok(text) => {
                            let (answer, model, usage) =
                                read_completion(&text, &self.settings.model).map_err(
                                    |message| LlmError::Malformed {
                                        provider: PROVIDER,
                                        message,
                                    },
                                )?;
                            tracing::info!(
                                attempts,
                                input_tokens = usage.input_tokens,
                                output_tokens = usage.output_tokens,
                                "llm answered"
                            );
                            return Ok(AnalysisResponse {
                                answer,
                                model,
                                usage,
                                attempts,
                            });
                        }
                        Err(e) => (e, None),
                    }
                }
                Ok(resp) => {
                    let status = resp.status();
                    let hint = retry_after(resp.headers());
                    let text = resp.text().await.unwrap_or_default();
                    let e = LlmError::Status {
                        provider: PROVIDER,
                        status: status.as_u16(),
                        attempts,
                        body: head(&text),
                    };
                    if !(status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()) {
                        return Err(e);
                    }
                    (e, hint)
                }
                Err(source) if source.is_timeout() => (
                    LlmError::Timeout {
                        provider: PROVIDER,
                        attempts,
                    },
                    None,
                ),
                Err(source) => {
                    let e = LlmError::Transport {
                        provider: PROVIDER,
                        attempts,
                        source,
                    };
                    if !e.is_retryable() {
                        return Err(e);
                    }
                    (e, None)
                }
            };
            let wait = policy.delay(attempts, wait_hint);
            let out_of_time = started.elapsed() + wait >= policy.deadline;
            tracing::warn!(attempts, error = %failure, wait_ms = wait.as_millis() as u64, "llm attempt failed");
            if attempts >= policy.max_attempts || out_of_time {
                return Err(failure);
            }
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests;
