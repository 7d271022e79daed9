use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use tradeflow_core::StepError;

use super::*;
use crate::llm::ChartImage;

type Seen = Arc<Mutex<Vec<(String, HeaderMap, Value)>>>;
/// (status, `x-amzn-errortype`, body, delay).
type Reply = (u16, Option<&'static str>, Value, Duration);

#[derive(Clone)]
struct Fake {
    seen: Seen,
    /// One reply per call; the last one repeats.
    replies: Arc<Mutex<Vec<Reply>>>,
}

async fn converse(
    State(fake): State<Fake>,
    Path(model): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    fake.seen.lock().unwrap().push((model, headers, body));
    let (status, error_type, reply, delay) = {
        let mut q = fake.replies.lock().unwrap();
        if q.len() > 1 {
            q.remove(0)
        } else {
            q[0].clone()
        }
    };
    tokio::time::sleep(delay).await;
    let mut resp = (StatusCode::from_u16(status).unwrap(), reply.to_string()).into_response();
    resp.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    if let Some(t) = error_type {
        resp.headers_mut()
            .insert("x-amzn-errortype", t.parse().unwrap());
    }
    resp
}

fn tool_reply() -> Reply {
    let answer = json!({"action": "SELL", "entry": 189.5, "stop": 193, "target": 182, "confidence": 0.64, "reasoning": "lower highs"});
    let body = json!({
        "output": {"message": {"role": "assistant", "content": [
            {"toolUse": {"toolUseId": "tooluse_1", "name": "record_signal", "input": answer}}
        ]}},
        "stopReason": "tool_use",
        "usage": {"inputTokens": 1600, "outputTokens": 80, "totalTokens": 1680},
        "metrics": {"latencyMs": 900}
    });
    (200, None, body, Duration::ZERO)
}

fn error_reply(status: u16, kind: &'static str) -> Reply {
    (
        status,
        Some(kind),
        json!({"message": format!("fake {kind}")}),
        Duration::ZERO,
    )
}

async fn fake_bedrock(replies: Vec<Reply>, attempt_timeout: Duration) -> (BedrockClient, Seen) {
    let fake = Fake {
        seen: Seen::default(),
        replies: Arc::new(Mutex::new(replies)),
    };
    let app = Router::new()
        .route("/model/{model}/converse", post(converse))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_bedrockruntime::config::Credentials::new(
            "AKIDFAKE",
            "fake-secret",
            None,
            None,
            "test",
        ))
        .load()
        .await;
    let client = BedrockClient::new(
        &sdk,
        BedrockSettings {
            model: "anthropic.claude-3-5-sonnet-20240620-v1:0".into(),
            endpoint_url: Some(format!("http://{addr}")),
            max_attempts: 3,
            initial_backoff: Duration::from_millis(10),
            attempt_timeout,
            operation_timeout: Duration::from_secs(5),
            max_tokens: 512,
        },
    );
    (client, fake.seen)
}

fn request() -> AnalysisRequest {
    AnalysisRequest {
        prompt: "Analyse the attached daily chart of AAPL.".into(),
        images: vec![ChartImage {
            timeframe: "daily".into(),
            png: b"\x89PNG\r\n\x1a\nfake-chart".to_vec(),
        }],
        close: 190.0,
        indicators: Default::default(),
        ..Default::default()
    }
}

#[tokio::test]
async fn converse_sends_the_chart_as_an_image_block_and_forces_the_signal_tool() {
    let (client, seen) = fake_bedrock(vec![tool_reply()], Duration::from_secs(2)).await;

    let out = client.analyze(&request()).await.unwrap();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let (model, headers, body) = &seen[0];
    assert_eq!(model, "anthropic.claude-3-5-sonnet-20240620-v1:0");
    assert!(
        headers["authorization"]
            .to_str()
            .unwrap()
            .starts_with("AWS4-HMAC-SHA256")
    );
    let content = body.pointer("/messages/0/content").unwrap();
    assert_eq!(
        content[0]["text"],
        "Analyse the attached daily chart of AAPL."
    );
    assert_eq!(content[1].pointer("/image/format").unwrap(), "png");
    assert_eq!(
        content[1].pointer("/image/source/bytes").unwrap(),
        &json!(STANDARD.encode(b"\x89PNG\r\n\x1a\nfake-chart"))
    );
    assert_eq!(
        body.pointer("/toolConfig/tools/0/toolSpec/inputSchema/json")
            .unwrap(),
        &structured_answer_schema()
    );
    assert_eq!(
        body.pointer("/toolConfig/toolChoice/tool/name").unwrap(),
        "record_signal"
    );
    let answer: Value = serde_json::from_str(&out.answer).unwrap();
    assert_eq!(answer["action"], "SELL");
    assert_eq!(answer["entry"], 189.5);
    assert_eq!(
        out.usage,
        TokenUsage {
            input_tokens: 1600,
            output_tokens: 80
        }
    );
}

#[tokio::test]
async fn throttling_is_retried_by_the_sdk() {
    let replies = vec![error_reply(429, "ThrottlingException"), tool_reply()];
    let (client, seen) = fake_bedrock(replies, Duration::from_secs(2)).await;

    let out = client.analyze(&request()).await.unwrap();

    assert_eq!(seen.lock().unwrap().len(), 2);
    assert!(out.answer.contains("SELL"));
}

#[tokio::test]
async fn a_validation_error_is_fatal_and_not_retried() {
    let replies = vec![error_reply(400, "ValidationException")];
    let (client, seen) = fake_bedrock(replies, Duration::from_secs(2)).await;

    let err = client.analyze(&request()).await.unwrap_err();

    assert_eq!(seen.lock().unwrap().len(), 1);
    assert!(err.to_string().contains("ValidationException"), "{err}");
    assert!(!StepError::from(err).is_retryable());
}

#[tokio::test]
async fn a_slow_model_times_out_as_transient() {
    let (status, kind, body, _) = tool_reply();
    let (client, _) = fake_bedrock(
        vec![(status, kind, body, Duration::from_secs(3))],
        Duration::from_millis(200),
    )
    .await;

    let err = client.analyze(&request()).await.unwrap_err();

    assert!(StepError::from(err).is_retryable());
}

#[tokio::test]
async fn a_text_answer_is_passed_on_for_the_tolerant_parser() {
    let body = json!({
        "output": {"message": {"role": "assistant", "content": [{"text": "Signal: HOLD\nReasoning: range"}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 10, "outputTokens": 5, "totalTokens": 15},
        "metrics": {"latencyMs": 10}
    });
    let (client, _) = fake_bedrock(
        vec![(200, None, body, Duration::ZERO)],
        Duration::from_secs(2),
    )
    .await;

    let out = client.analyze(&request()).await.unwrap();

    assert_eq!(out.answer, "Signal: HOLD\nReasoning: range");
}
