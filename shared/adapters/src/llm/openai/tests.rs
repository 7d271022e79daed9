use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tradeflow_core::StepError;

use super::*;
use crate::llm::ChartImage;

const KEY: &str = "sk-test-never-logged-0123";

#[derive(Clone)]
struct Reply {
    status: u16,
    body: String,
    delay: Duration,
    retry_after: Option<&'static str>,
}

fn ok(content: &str) -> Reply {
    Reply {
        status: 200,
        body: json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1234, "completion_tokens": 56, "total_tokens": 1290}
        })
        .to_string(),
        delay: Duration::ZERO,
        retry_after: None,
    }
}

fn status(code: u16) -> Reply {
    Reply {
        status: code,
        body: json!({"error": {"message": format!("fake error {code}")}}).to_string(),
        delay: Duration::ZERO,
        retry_after: None,
    }
}

#[derive(Clone, Default)]
struct Fake {
    replies: Arc<Mutex<VecDeque<Reply>>>,
    seen: Arc<Mutex<Vec<(HeaderMap, Value)>>>,
}

impl Fake {
    fn requests(&self) -> Vec<(HeaderMap, Value)> {
        self.seen.lock().unwrap().clone()
    }
}

async fn completions(State(fake): State<Fake>, headers: HeaderMap, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    fake.seen.lock().unwrap().push((headers, body));
    let reply = {
        let mut q = fake.replies.lock().unwrap();
        if q.len() > 1 {
            q.pop_front()
        } else {
            q.front().cloned()
        }
    }
    .unwrap_or_else(|| status(500));
    tokio::time::sleep(reply.delay).await;
    let mut resp = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    if let Some(ra) = reply.retry_after {
        resp.headers_mut()
            .insert("retry-after", ra.parse().unwrap());
    }
    resp
}

/// Starts a fake OpenAI-compatible server on 127.0.0.1 and returns its `/v1` URL.
async fn fake_server(replies: Vec<Reply>) -> (String, Fake) {
    let fake = Fake {
        replies: Arc::new(Mutex::new(replies.into())),
        ..Fake::default()
    };
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), fake)
}

fn client(base_url: &str, api_key: &str) -> OpenAiClient {
    OpenAiClient::new(OpenAiSettings {
        base_url: base_url.into(),
        model: "gpt-4o-mini".into(),
        api_key: Secret::new(api_key),
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            timeout: Duration::from_millis(300),
            deadline: Duration::from_secs(5),
        },
        structured_output: StructuredOutput::JsonSchema,
    })
    .unwrap()
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

const ANSWER: &str =
    r#"{"action":"BUY","entry":190,"stop":185,"target":200,"confidence":0.7,"reasoning":"x"}"#;

#[tokio::test]
async fn the_request_carries_the_chart_the_schema_and_the_key() {
    let (url, fake) = fake_server(vec![ok(ANSWER)]).await;

    let out = client(&url, KEY).analyze(&request()).await.unwrap();

    let seen = fake.requests();
    assert_eq!(seen.len(), 1);
    let (headers, body) = &seen[0];
    assert_eq!(headers["authorization"], format!("Bearer {KEY}").as_str());
    assert_eq!(body["model"], "gpt-4o-mini");
    let parts = body
        .pointer("/messages/0/content")
        .unwrap()
        .as_array()
        .unwrap();
    assert_eq!(
        parts[0]["text"],
        "Analyse the attached daily chart of AAPL."
    );
    let image_url = parts[1]
        .pointer("/image_url/url")
        .unwrap()
        .as_str()
        .unwrap();
    let png = STANDARD.encode(b"\x89PNG\r\n\x1a\nfake-chart");
    assert_eq!(image_url, format!("data:image/png;base64,{png}"));
    assert_eq!(
        body.pointer("/response_format/type").unwrap(),
        "json_schema"
    );
    assert_eq!(
        body.pointer("/response_format/json_schema/schema").unwrap(),
        &structured_answer_schema()
    );
    assert_eq!(out.answer, ANSWER);
    assert_eq!(out.model, "gpt-4o-mini-2024-07-18");
    assert_eq!(
        out.usage,
        TokenUsage {
            input_tokens: 1234,
            output_tokens: 56
        }
    );
    assert_eq!(out.attempts, 1);
}

#[test]
fn servers_that_reject_a_schema_get_json_mode_or_no_format() {
    let with = |structured_output| {
        OpenAiClient::new(OpenAiSettings {
            structured_output,
            ..OpenAiSettings::new("http://127.0.0.1:9/v1")
        })
        .unwrap()
        .request_body(&request())
    };

    let object = with(StructuredOutput::JsonObject);
    let none = with(StructuredOutput::None);

    assert_eq!(object["response_format"], json!({"type": "json_object"}));
    assert!(none.get("response_format").is_none(), "{none}");
    assert_eq!(none["messages"], object["messages"]);
    assert_eq!(
        with(StructuredOutput::JsonSchema).pointer("/response_format/type"),
        Some(&json!("json_schema"))
    );
}

#[tokio::test]
async fn a_local_server_without_a_key_gets_no_authorization_header() {
    let (url, fake) = fake_server(vec![ok(ANSWER)]).await;

    client(&url, "").analyze(&request()).await.unwrap();

    assert!(fake.requests()[0].0.get("authorization").is_none());
}

#[tokio::test]
async fn throttling_is_retried_until_the_server_answers() {
    let throttled = Reply {
        retry_after: Some("0.02"),
        ..status(429)
    };
    let (url, fake) = fake_server(vec![throttled, status(503), ok(ANSWER)]).await;

    let out = client(&url, KEY).analyze(&request()).await.unwrap();

    assert_eq!(out.attempts, 3);
    assert_eq!(fake.requests().len(), 3);
    assert_eq!(out.answer, ANSWER);
}

#[tokio::test]
async fn server_errors_give_up_after_the_bounded_attempts_as_transient() {
    let (url, fake) = fake_server(vec![status(500)]).await;

    let err = client(&url, KEY).analyze(&request()).await.unwrap_err();

    assert!(
        matches!(
            err,
            LlmError::Status {
                status: 500,
                attempts: 3,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(fake.requests().len(), 3);
    assert!(StepError::from(err).is_retryable());
}

#[tokio::test]
async fn a_slow_server_times_out_on_every_attempt() {
    let slow = Reply {
        delay: Duration::from_secs(2),
        ..ok(ANSWER)
    };
    let (url, fake) = fake_server(vec![slow]).await;
    let started = Instant::now();

    let err = client(&url, KEY).analyze(&request()).await.unwrap_err();

    assert!(
        matches!(err, LlmError::Timeout { attempts: 3, .. }),
        "{err}"
    );
    assert_eq!(fake.requests().len(), 3);
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_malformed_completion_is_fatal_and_not_retried() {
    let garbage = Reply {
        body: "<html>gateway</html>".into(),
        ..ok("")
    };
    let (url, fake) = fake_server(vec![garbage]).await;

    let err = client(&url, KEY).analyze(&request()).await.unwrap_err();

    assert!(matches!(err, LlmError::Malformed { .. }), "{err}");
    assert_eq!(fake.requests().len(), 1);
    assert!(!StepError::from(err).is_retryable());
}

#[tokio::test]
async fn a_completion_without_content_is_malformed_but_a_refusal_is_an_answer() {
    let empty = Reply {
        body: json!({"choices": [{"message": {"role": "assistant", "content": null}}]}).to_string(),
        ..ok("")
    };
    let refusal = Reply {
        body: json!({"choices": [{"message": {"role": "assistant", "content": null, "refusal": "I can't help with that."}}]}).to_string(),
        ..ok("")
    };
    let (url, _) = fake_server(vec![empty, refusal]).await;
    let c = client(&url, KEY);

    let first = c.analyze(&request()).await;
    let second = c.analyze(&request()).await.unwrap();

    assert!(matches!(first, Err(LlmError::Malformed { .. })));
    assert_eq!(second.answer, "refusal: I can't help with that.");
    assert_eq!(second.model, "gpt-4o-mini");
}

#[tokio::test]
async fn a_rejected_key_fails_at_once_and_the_key_appears_in_no_error_or_log() {
    let logs = Arc::new(Mutex::new(Vec::<u8>::new()));
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || LogWriter(sink.clone()))
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (url, fake) = fake_server(vec![status(500), status(401)]).await;
    let c = client(&url, KEY);

    let err = c.analyze(&request()).await.unwrap_err();

    assert!(
        matches!(
            err,
            LlmError::Status {
                status: 401,
                attempts: 2,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(fake.requests().len(), 2);
    let logs = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("llm attempt failed"),
        "logs were not captured: {logs}"
    );
    for text in [logs, err.to_string(), format!("{err:?}"), format!("{c:?}")] {
        assert!(!text.contains(KEY), "key leaked into: {text}");
    }
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
