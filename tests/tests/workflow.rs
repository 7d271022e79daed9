//! The walking skeleton, on real (emulated) parts: the state machine file in
//! `statemachine/` executing the Rust Lambdas (on the local Lambda runtime) against
//! LocalStack's DynamoDB, S3, Step Functions and EventBridge.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tradeflow_adapters::workflow::entered_states;
use tradeflow_core::lineage::StepStatus;
use tradeflow_core::payloads::LoadStrategyOutput;
use tradeflow_core::schedule::MarketSchedule;
use tradeflow_integration_tests::{Stack, strategy, unique};

#[tokio::test]
async fn a_strategy_executes_end_to_end_through_the_state_machine() {
    let stack = Stack::connect().await.unwrap();
    let id = unique("it-e2e");
    stack
        .put_strategy(&strategy(&id, 265598, "AAPL"))
        .await
        .unwrap();
    let name = format!("{id}-manual");

    let done = stack.run(&name, &json!({"strategy_id": id})).await.unwrap();

    assert_eq!(done.status, "SUCCEEDED", "cause: {:?}", done.cause);
    let states = entered_states(&stack.sfn, &done.execution_arn)
        .await
        .unwrap();
    for expected in [
        "load_strategy",
        "fetch_market_data",
        "compute_indicators",
        "render_charts",
        "analyze_chart",
        "parse_signal",
        "update_portfolio",
        "record_execution",
    ] {
        assert!(
            states.iter().any(|s| s == expected),
            "{expected} not in {states:?}"
        );
    }
    let lineage = stack.lineage(&name).await.unwrap();
    let task_states: Vec<&String> = states
        .iter()
        .filter(|s| tradeflow_core::Step::from_name(s).is_some())
        .collect();
    for state in &task_states {
        let rec = lineage
            .iter()
            .find(|r| &&r.step_name == state)
            .unwrap_or_else(|| panic!("no lineage for {state}"));
        assert_eq!(
            rec.status,
            StepStatus::Succeeded,
            "{state}: {:?}",
            rec.error
        );
        assert_eq!(rec.execution_id, name);
        assert_eq!(rec.strategy_id, id);
        assert!(
            rec.input
                .as_ref()
                .is_some_and(|v| v.as_object().is_some_and(|o| !o.is_empty())),
            "{state} input"
        );
        assert!(
            rec.output.as_ref().is_some_and(|v| !v.is_null()),
            "{state} output"
        );
        assert!(!rec.recorded_at.is_empty());
        assert_eq!(rec.attempts, 1);
    }
    assert!(lineage.iter().map(|r| r.duration_ms).sum::<u64>() > 0);

    let charts = lineage
        .iter()
        .find(|r| r.step_name == "render_charts")
        .and_then(|r| r.output.clone())
        .unwrap();
    let key = charts["charts"][0]["key"].as_str().unwrap().to_string();
    assert_eq!(key, format!("charts/{id}/{name}/daily.png"));
    let png = stack.deps.blobs().get(&key).await.unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    // IHDR: width and height follow the signature and chunk header.
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (1600, 900));

    let execution = stack.deps.store().execution(&name).await.unwrap().unwrap();
    assert_eq!(
        execution.status,
        tradeflow_core::execution::ExecutionStatus::Succeeded
    );
    assert!(execution.summary.unwrap()["signal"]["action"].is_string());
}

#[tokio::test]
async fn a_failing_step_ends_the_execution_with_its_error_in_lineage() {
    let stack = Stack::connect().await.unwrap();
    let id = unique("it-fail");
    stack
        .put_strategy(&strategy(&id, 999_999_999, "NOPE"))
        .await
        .unwrap();
    let name = format!("{id}-manual");

    let done = stack.run(&name, &json!({"strategy_id": id})).await.unwrap();

    assert_eq!(done.status, "FAILED");
    let states = entered_states(&stack.sfn, &done.execution_arn)
        .await
        .unwrap();
    assert!(states.iter().any(|s| s == "record_failure"), "{states:?}");
    let lineage = stack.lineage(&name).await.unwrap();
    let failed = lineage
        .iter()
        .find(|r| r.step_name == "fetch_market_data")
        .unwrap();
    assert_eq!(failed.status, StepStatus::Failed);
    assert!(
        failed
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("999999999"),
        "{:?}",
        failed.error
    );
    assert_eq!(failed.error_type.as_deref(), Some("Fatal"));
    let recorder = lineage
        .iter()
        .find(|r| r.step_name == "record_failure")
        .unwrap();
    let err = &recorder.output.as_ref().unwrap()["execution_error"];
    assert_eq!(err["failed_step"], "fetch_market_data");
    assert!(
        err["message"].as_str().unwrap().contains("999999999"),
        "{err}"
    );
    let execution = stack.deps.store().execution(&name).await.unwrap().unwrap();
    assert_eq!(
        execution.status,
        tradeflow_core::execution::ExecutionStatus::Failed
    );
    assert_eq!(execution.error.unwrap()["failed_step"], "fetch_market_data");
}

#[tokio::test]
#[allow(clippy::too_many_lines)]
async fn an_eventbridge_schedule_starts_the_workflow_and_off_schedule_ticks_are_skipped() {
    let stack = Stack::connect().await.unwrap();
    let id = unique("it-sched");
    let mut s = strategy(&id, 272093, "MSFT");
    // Every minute in Kolkata (UTC+05:30, no exchange calendar): the rule is the
    // cover the API would put, and every tick of it is a run.
    s.schedule = "cron(* * ? * * *)".into();
    s.market.timezone = "Asia/Kolkata".into();
    stack.put_strategy(&s).await.unwrap();
    let rule = MarketSchedule::new(&s.schedule, &s.market)
        .unwrap()
        .rule_expression(chrono::Utc::now());
    let schedules = stack.schedules();
    let rule_arn = schedules.put(&id, &rule, true).await.unwrap();

    // EventBridge itself must start an execution (LocalStack fires within ~1 minute).
    let deadline = Instant::now() + Duration::from_secs(180);
    let scheduled = loop {
        let found = find_execution_for_rule(&stack, &rule_arn).await;
        if let Some(f) = found {
            break f;
        }
        assert!(
            Instant::now() < deadline,
            "no execution started by rule {rule_arn}"
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
    };
    schedules.delete(&id).await.unwrap();
    let first =
        tradeflow_adapters::workflow::wait(&stack.sfn, &scheduled.0, Duration::from_secs(600))
            .await
            .unwrap();
    assert_eq!(first.status, "SUCCEEDED", "{:?}", first.cause);
    let states = entered_states(&stack.sfn, &scheduled.0).await.unwrap();
    assert!(
        states.iter().any(|s| s == "fetch_market_data"),
        "the fired tick is a run: {states:?}"
    );
    let event: Value = serde_json::from_str(&scheduled.1).unwrap();
    assert_eq!(event["detail-type"], "Scheduled Event");

    let again = stack
        .run(&format!("{id}-redelivered"), &event)
        .await
        .unwrap();

    assert_eq!(again.status, "SUCCEEDED");
    let states = entered_states(&stack.sfn, &again.execution_arn)
        .await
        .unwrap();
    assert!(
        states.iter().any(|s| s == "duplicate_tick_skipped"),
        "{states:?}"
    );
    assert!(
        !states.iter().any(|s| s == "fetch_market_data"),
        "{states:?}"
    );
    let lineage = stack.lineage(&format!("{id}-redelivered")).await.unwrap();
    let load = lineage
        .iter()
        .find(|r| r.step_name == "load_strategy")
        .unwrap();
    let out = load.output.as_ref().unwrap();
    assert_eq!(out["skipped"], true);
    assert!(
        out["skip_reason"]
            .as_str()
            .unwrap()
            .contains("duplicate tick")
    );

    // A New York strategy at 09:30 market time, ticked by its cover
    // cron(30 13,14 ? * MON-FRI *): the tick at the other DST offset and the
    // ticks of an exchange holiday or past an early close end skipped.
    let ny = format!("{id}-ny");
    let mut s = strategy(&ny, 272093, "MSFT");
    s.schedule = "cron(30 9,15 ? * MON-FRI *)".into();
    stack.put_strategy(&s).await.unwrap();
    let ny_rule_arn = rule_arn.replace(&id, &ny);
    for (tick, reason) in [
        // 10:30 EDT in July: the winter half of the cover.
        ("2026-07-15T14:30:00Z", "not_scheduled"),
        (
            "2026-11-26T14:30:00Z",
            "holiday: nyse is closed on 2026-11-26 (Thanksgiving Day)",
        ),
        (
            "2026-11-27T20:30:00Z",
            "early_close: nyse closes at 13:00 on 2026-11-27",
        ),
    ] {
        let mut ev = event.clone();
        ev["time"] = json!(tick);
        ev["resources"] = json!([ny_rule_arn]);
        let name = format!("{ny}-{}", tick.replace(':', ""));

        let done = stack.run(&name, &ev).await.unwrap();

        assert_eq!(done.status, "SUCCEEDED", "{tick}: {:?}", done.cause);
        let states = entered_states(&stack.sfn, &done.execution_arn)
            .await
            .unwrap();
        assert!(
            states.iter().any(|s| s == "not_scheduled_skipped")
                && !states.iter().any(|s| s == "fetch_market_data"),
            "{tick}: {states:?}"
        );
        let lineage = stack.lineage(&name).await.unwrap();
        let out = lineage
            .iter()
            .find(|r| r.step_name == "load_strategy")
            .and_then(|r| r.output.clone())
            .unwrap();
        assert_eq!(out["skipped"], true, "{tick}");
        let got = out["skip_reason"].as_str().unwrap();
        assert!(got.starts_with(reason), "{tick}: {got}");
        assert!(
            stack.deps.store().execution(&name).await.unwrap().is_none(),
            "{tick}: a skipped tick opens no execution"
        );
    }
}

/// The (execution ARN, input) of an execution whose Scheduled Event names the rule.
async fn find_execution_for_rule(stack: &Stack, rule_arn: &str) -> Option<(String, String)> {
    let list = stack
        .sfn
        .list_executions()
        .state_machine_arn(&stack.state_machine_arn)
        .max_results(100)
        .send()
        .await
        .ok()?;
    for e in list.executions {
        let d = stack
            .sfn
            .describe_execution()
            .execution_arn(&e.execution_arn)
            .send()
            .await
            .ok()?;
        if let Some(input) = d.input
            && input.contains(rule_arn)
        {
            return Some((e.execution_arn, input));
        }
    }
    None
}

/// Invokes a function directly, through the local stack's Lambda Invoke API.
async fn invoke(function: &str, payload: &Value) -> (Option<String>, Value) {
    let r = tradeflow_integration_tests::invoke(function, payload)
        .await
        .expect("Lambda answers");
    assert_eq!(r.status, 200, "{r:?}");
    (r.function_error, r.payload)
}

#[tokio::test]
async fn a_step_retried_after_it_succeeded_replays_its_recorded_output() {
    let stack = Stack::connect().await.unwrap();
    let id = unique("it-replay");
    stack
        .put_strategy(&strategy(&id, 265598, "AAPL"))
        .await
        .unwrap();
    let name = format!("{id}-direct");
    // What Step Functions sends to load_strategy (see the Task Parameters in the ASL file).
    let payload = json!({
        "ctx": {
            "executionId": format!("arn:aws:states:us-east-1:000000000000:execution:tradeflow-trading-workflow:{name}"),
            "executionName": name,
            "executionStartTime": "2026-11-22T00:00:00Z",
            "stateName": "load_strategy",
            "stateEnteredTime": "2026-11-22T00:00:00Z"
        },
        "state": {"strategy_id": id}
    });

    let (first_error, first) = invoke("load-strategy", &payload).await;
    // The strategy changes between the attempts: a re-run would load the new name.
    let mut changed = strategy(&id, 265598, "AAPL");
    changed.name = "renamed after the first attempt".into();
    stack.put_strategy(&changed).await.unwrap();
    let (second_error, second) = invoke("load-strategy", &payload).await;

    assert_eq!(
        (first_error, second_error),
        (None, None),
        "{first} {second}"
    );
    // Compared as typed values: DynamoDB stores 2.0 as the number 2.
    let typed = |v: &Value| serde_json::from_value::<LoadStrategyOutput>(v.clone()).unwrap();
    assert_eq!(typed(&first), typed(&second));
    assert_eq!(second["strategy"]["name"], format!("integration {id}"));
    let lineage = stack.lineage(&name).await.unwrap();
    assert_eq!(lineage.len(), 1);
    assert_eq!(lineage[0].attempts, 1);
    assert_eq!(typed(lineage[0].output.as_ref().unwrap()), typed(&first));
}

#[tokio::test]
async fn a_function_invoked_for_another_state_refuses_with_a_fatal_error() {
    let payload = json!({
        "ctx": {"executionId": "arn:x", "executionName": unique("it-wrong-state"),
                "executionStartTime": "t", "stateName": "fetch_market_data", "stateEnteredTime": "t"},
        "state": {"strategy_id": "whatever"}
    });

    let (function_error, body) = invoke("load-strategy", &payload).await;

    assert_eq!(function_error.as_deref(), Some("Unhandled"), "{body}");
    assert_eq!(body["errorType"], "Fatal");
    assert!(
        body["errorMessage"]
            .as_str()
            .unwrap()
            .contains("state and function names must match")
    );
}
