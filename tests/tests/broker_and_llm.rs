//! The workflow against an unhappy broker and a real-HTTP LLM: an unauthenticated
//! gateway fails the execution with a lineage error naming the cause, a transient
//! gateway 500 is survived through retry, and analyze_chart → parse_signal work with
//! an OpenAI-compatible server (a fake one started here, reached by the Lambdas).
//!
//! The fake gateway is global to the stack: the tests of this binary take
//! `gateway_lock` so a logout or an injected fault never meets another of them.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tradeflow_adapters::ibkr::RetryPolicy;
use tradeflow_adapters::workflow::{Finished, entered_states};
use tradeflow_core::lineage::{LineageRecord, StepStatus};
use tradeflow_core::payloads::{AnalyzeChartOutput, ParseSignalOutput, RenderChartsOutput};
use tradeflow_core::signal::{Action, StructuredAnswer, from_structured, structured_answer_schema};
use tradeflow_core::strategy::ProviderSpec;
use tradeflow_integration_tests::{FakeIbkr, Stack, gateway_lock, strategy, unique};

/// An execution that has not ended by then is a failure, not a hang.
const EXECUTION_LIMIT: Duration = Duration::from_secs(300);

async fn run(stack: &Stack, name: &str, input: &Value) -> Finished {
    tokio::time::timeout(EXECUTION_LIMIT, stack.run(name, input))
        .await
        .unwrap_or_else(|_| panic!("{name} did not end within {EXECUTION_LIMIT:?}"))
        .unwrap_or_else(|e| panic!("{name}: {e:#}"))
}

fn step<'a>(lineage: &'a [LineageRecord], name: &str) -> &'a LineageRecord {
    lineage
        .iter()
        .find(|r| r.step_name == name)
        .unwrap_or_else(|| panic!("no lineage for {name}"))
}

#[tokio::test]
async fn an_unauthenticated_gateway_fails_the_execution_with_a_clear_lineage_error() {
    let _gateway = gateway_lock().await;
    let stack = Stack::connect().await.unwrap();
    let id = unique("it-noauth");
    stack
        .put_strategy(&strategy(&id, 265598, "AAPL"))
        .await
        .unwrap();
    let name = format!("{id}-manual");
    let logged_out = FakeIbkr::of(&stack).logout().await.unwrap();

    let done = run(&stack, &name, &json!({"strategy_id": id})).await;
    drop(logged_out);

    assert_eq!(done.status, "FAILED", "cause: {:?}", done.cause);
    let states = entered_states(&stack.sfn, &done.execution_arn)
        .await
        .unwrap();
    assert!(states.iter().any(|s| s == "record_failure"), "{states:?}");
    assert!(
        !states.iter().any(|s| s == "compute_indicators"),
        "{states:?}"
    );
    let lineage = stack.lineage(&name).await.unwrap();
    let fetch = step(&lineage, "fetch_market_data");
    assert_eq!(fetch.status, StepStatus::Failed);
    assert!(
        fetch
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("IBKR session not authenticated"),
        "{:?}",
        fetch.error
    );
    // A login is needed, not a retry: one attempt, failed fast.
    assert_eq!(fetch.error_type.as_deref(), Some("Fatal"));
    assert_eq!(fetch.attempts, 1, "{:?}", fetch.previous_errors);
    let recorder = step(&lineage, "record_failure");
    let err = &recorder.output.as_ref().unwrap()["execution_error"];
    assert_eq!(err["failed_step"], "fetch_market_data", "{err}");
    assert!(
        err["message"]
            .as_str()
            .unwrap_or_default()
            .contains("IBKR session not authenticated"),
        "{err}"
    );
    let execution = stack.deps.store().execution(&name).await.unwrap().unwrap();
    assert_eq!(
        execution.status,
        tradeflow_core::execution::ExecutionStatus::Failed
    );
    let status = stack.deps.ibkr().unwrap().auth_status().await.unwrap();
    assert!(status.authenticated, "not logged back in: {status:?}");
}

#[tokio::test]
async fn a_transient_gateway_500_is_survived_through_retry() {
    let _gateway = gateway_lock().await;
    let stack = Stack::connect().await.unwrap();
    let fake = FakeIbkr::of(&stack);
    let id = unique("it-500");
    stack
        .put_strategy(&strategy(&id, 265598, "AAPL"))
        .await
        .unwrap();
    let name = format!("{id}-manual");
    // As many 500s as the client tries within one invocation: its own retries give
    // up, the step fails as Transient and Step Functions' Retry runs it again.
    let client_attempts = RetryPolicy::default().max_attempts;
    fake.fault("/iserver/marketdata/history", "status500", client_attempts)
        .await
        .unwrap();

    let done = run(&stack, &name, &json!({"strategy_id": id})).await;

    assert_eq!(done.status, "SUCCEEDED", "cause: {:?}", done.cause);
    let lineage = stack.lineage(&name).await.unwrap();
    let fetch = step(&lineage, "fetch_market_data");
    assert_eq!(fetch.status, StepStatus::Succeeded, "{:?}", fetch.error);
    assert_eq!(fetch.attempts, 2, "{:?}", fetch.previous_errors);
    assert_eq!(
        fetch.previous_errors.len(),
        1,
        "{:?}",
        fetch.previous_errors
    );
    assert!(
        fetch.previous_errors[0].contains("HTTP 500"),
        "{:?}",
        fetch.previous_errors
    );
    let out = fetch.output.as_ref().unwrap();
    assert_eq!(out["rows"], 500, "{out}");
    assert_eq!(out["source"], "ibkr");
    for later in ["compute_indicators", "analyze_chart", "record_execution"] {
        assert_eq!(
            step(&lineage, later).status,
            StepStatus::Succeeded,
            "{later}"
        );
    }
}

/// What the fake chat-completions server received: (request line, JSON body).
type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// A minimal OpenAI-compatible chat-completions server on 127.0.0.1 (a std thread;
/// the Lambdas are host processes, so they reach it). It answers a structured BUY at
/// the prompt's latest close, or HOLD when the prompt names none.
fn fake_openai(model: &'static str) -> (u16, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake LLM server");
    let port = listener.local_addr().expect("its address").port();
    let received: Received = Arc::default();
    let log = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            // One bad connection must not stop the server.
            let _ = serve_one(stream, model, &log);
        }
    });
    (port, received)
}

fn serve_one(
    stream: std::net::TcpStream,
    model: &str,
    log: &Mutex<Vec<(String, Value)>>,
) -> anyhow::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let request: Value = serde_json::from_slice(&body)?;
    let answer = answer_for(prompt_of(&request).unwrap_or_default());
    log.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push((request_line.trim_end().to_string(), request));
    let completion = json!({
        "id": "chatcmpl-fake", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": answer}}],
        "usage": {"prompt_tokens": 1234, "completion_tokens": 56, "total_tokens": 1290},
    })
    .to_string();
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{completion}",
        completion.len()
    )?;
    stream.flush()?;
    Ok(())
}

/// The text part of the first user message.
fn prompt_of(request: &Value) -> Option<&str> {
    request["messages"][0]["content"]
        .as_array()?
        .iter()
        .find(|p| p["type"] == "text")?["text"]
        .as_str()
}

/// The chart images (data URLs) of the first user message.
fn image_urls(request: &Value) -> Vec<String> {
    request["messages"][0]["content"]
        .as_array()
        .map(|parts| {
            parts
                .iter()
                .filter(|p| p["type"] == "image_url")
                .filter_map(|p| p["image_url"]["url"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// BUY at the prompt's "Latest close", stop 4% below, target 8% above.
fn answer_for(prompt: &str) -> String {
    let close = prompt
        .split("Latest close:")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<f64>().ok());
    let answer = match close {
        Some(c) => {
            let round = |x: f64| (x * 100.0).round() / 100.0;
            json!({"action": "BUY", "entry": round(c), "stop": round(c * 0.96),
                   "target": round(c * 1.08), "confidence": 0.72,
                   "reasoning": "Price holds above its rising averages; momentum is positive."})
        }
        None => json!({"action": "HOLD", "entry": null, "stop": null, "target": null,
                       "confidence": 0.0, "reasoning": "the prompt names no latest close"}),
    };
    answer.to_string()
}

#[tokio::test]
async fn the_workflow_analyses_with_an_openai_compatible_server() {
    let _gateway = gateway_lock().await;
    let stack = Stack::connect().await.unwrap();
    let (port, received) = fake_openai("fake-vision-1");
    let id = unique("it-openai");
    let mut s = strategy(&id, 272093, "MSFT");
    s.weekly_chart = true;
    s.provider = ProviderSpec {
        kind: "openai".into(),
        base_url: Some(format!("http://127.0.0.1:{port}/v1")),
        model: Some("fake-vision-1".into()),
        ..ProviderSpec::default()
    };
    assert!(s.dry_run);
    stack.put_strategy(&s).await.unwrap();
    let name = format!("{id}-manual");

    let done = run(&stack, &name, &json!({"strategy_id": id})).await;

    assert_eq!(done.status, "SUCCEEDED", "cause: {:?}", done.cause);
    let requests = received.lock().unwrap().clone();
    assert_eq!(requests.len(), 1, "{:?}", requests.iter().map(|r| &r.0));
    let (line, request) = &requests[0];
    assert!(line.starts_with("POST /v1/chat/completions "), "{line}");
    assert_eq!(request["model"], "fake-vision-1");
    assert_eq!(request["response_format"]["type"], "json_schema");
    assert_eq!(
        request["response_format"]["json_schema"]["schema"],
        structured_answer_schema()
    );
    let images = image_urls(request);
    let lineage = stack.lineage(&name).await.unwrap();
    let charts: RenderChartsOutput =
        serde_json::from_value(step(&lineage, "render_charts").output.clone().unwrap()).unwrap();
    assert_eq!(images.len(), charts.charts.len(), "one image per chart");
    assert_eq!(images.len(), 2, "daily and weekly charts");
    for url in &images {
        let b64 = url
            .strip_prefix("data:image/png;base64,")
            .unwrap_or_else(|| panic!("not a PNG data URL: {}", &url[..url.len().min(40)]));
        let png = STANDARD.decode(b64).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    }

    let analyze = step(&lineage, "analyze_chart");
    assert_eq!(analyze.status, StepStatus::Succeeded, "{:?}", analyze.error);
    let analysis: AnalyzeChartOutput =
        serde_json::from_value(analyze.output.clone().unwrap()).unwrap();
    let sent_prompt = prompt_of(request).unwrap();
    let answer = answer_for(sent_prompt);
    assert_eq!(analysis.provider, "openai");
    assert_eq!(analysis.model, "fake-vision-1");
    assert_eq!(analysis.answer, answer, "answer kept verbatim");
    assert_eq!(analysis.prompt, sent_prompt);
    assert_eq!(
        (analysis.usage.input_tokens, analysis.usage.output_tokens),
        (1234, 56)
    );
    assert_eq!(
        analysis.charts,
        charts
            .charts
            .iter()
            .map(|c| c.key.clone())
            .collect::<Vec<_>>()
    );
    let parsed: ParseSignalOutput =
        serde_json::from_value(step(&lineage, "parse_signal").output.clone().unwrap()).unwrap();
    let structured: StructuredAnswer = serde_json::from_str(&answer).unwrap();
    let expected = from_structured(&structured, parsed.last_close);
    assert_eq!(parsed.signal.action, Action::Buy, "{:?}", parsed.signal);
    assert_eq!(parsed.signal.parsed_from, "structured");
    assert_eq!(
        (
            parsed.signal.entry,
            parsed.signal.stop,
            parsed.signal.target
        ),
        (expected.entry, expected.stop, expected.target)
    );
    assert_eq!(parsed.signal.confidence, 0.72);
    assert_eq!(
        parsed.signal.template_id.as_deref(),
        Some(analysis.template_id.as_str())
    );
    let fetched = step(&lineage, "fetch_market_data").output.clone().unwrap();
    assert_eq!(fetched["latest_close"].as_f64(), Some(parsed.last_close));
    assert!(
        sent_prompt.contains("MSFT"),
        "prompt names the symbol: {sent_prompt}"
    );
}
