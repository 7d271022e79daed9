//! The HTTP API over real HTTP against the local stack: every route, bad input,
//! authentication, pagination, schedules in EventBridge, and HTML escaping.

mod api_support;

use std::time::Duration;

use api_support::{Api, strategy_body};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tradeflow_adapters::workflow;
use tradeflow_core::execution::{Execution, ExecutionStatus};
use tradeflow_core::lineage::{LineageRecord, StepStatus};
use tradeflow_integration_tests::{Stack, unique};

/// One request per route (ids need not exist: authentication comes first).
const ROUTES: &[(&str, &str)] = &[
    ("GET", "strategies"),
    ("POST", "strategies"),
    ("GET", "strategies/x"),
    ("PUT", "strategies/x"),
    ("DELETE", "strategies/x"),
    ("POST", "strategies/x/activate"),
    ("POST", "strategies/x/deactivate"),
    ("POST", "strategies/x/run"),
    ("GET", "strategies/x/executions"),
    ("GET", "strategies/x/schedule"),
    ("GET", "executions/x"),
    ("GET", "symbols?q=AAPL"),
    ("GET", "indicators"),
    ("GET", "prompts"),
    ("POST", "prompts"),
    ("GET", "prompts/x"),
    ("PUT", "prompts/x"),
    ("DELETE", "prompts/x"),
    ("GET", "prompts/x/versions"),
    ("GET", "prompts/x/versions/1"),
    ("GET", "lineage/execution/x"),
    ("GET", "lineage/execution/x/step/load_strategy"),
    ("GET", "lineage/strategy/x/recent?limit=5"),
    ("GET", "lineage/step/load_strategy/statistics?days=7"),
    ("GET", "lineage/recent"),
    ("GET", "orders"),
    ("GET", "orders/x"),
    ("GET", "positions"),
    ("GET", "trades"),
    ("GET", "portfolio"),
    ("GET", "stats"),
    ("GET", "viewer"),
    ("GET", "viewer/strategy/x"),
    ("GET", "viewer/execution/x"),
    ("GET", "viewer/portfolio"),
    ("GET", "viewer/orders"),
];

fn field(body: &Value) -> &str {
    body["field"].as_str().unwrap_or_default()
}

/// Logs in as the viewer does (`?key=`) and returns the `Set-Cookie` header.
async fn viewer_login(api: &Api) -> String {
    let login = api
        .http
        .get(api.url(&format!("viewer?key={}", api.key)))
        .send()
        .await
        .expect("api reachable");
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    login.headers()["set-cookie"]
        .to_str()
        .expect("ascii cookie")
        .to_string()
}

#[tokio::test]
async fn the_viewer_login_sets_a_signed_secure_session_cookie_not_the_key() {
    let api = Api::from_env();

    let set_cookie = viewer_login(&api).await;
    let session = set_cookie.split(';').next().unwrap();
    let with_session = api
        .http
        .get(api.url("viewer"))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    let with_raw_key = api
        .http
        .get(api.url("viewer"))
        .header("cookie", format!("tf_session={}", api.key))
        .send()
        .await
        .unwrap();

    assert!(session.starts_with("tf_session="), "{set_cookie}");
    assert!(!set_cookie.contains(&api.key), "{set_cookie}");
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(
            set_cookie.split("; ").any(|a| a == attr),
            "{attr} in {set_cookie}"
        );
    }
    assert_eq!(with_session.status(), StatusCode::OK);
    assert_eq!(with_raw_key.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn every_route_refuses_requests_without_the_api_key() {
    let api = Api::from_env();
    let set_cookie = viewer_login(&api).await;
    let session = set_cookie.split(';').next().unwrap();

    for (method, path) in ROUTES {
        let m: Method = method.parse().unwrap();
        let url = api.url(path);
        let none = api.http.request(m.clone(), &url).send().await.unwrap();
        let wrong = api
            .http
            .request(m.clone(), &url)
            .header("x-api-key", "not-the-key")
            .send()
            .await
            .unwrap();
        let bearer = api
            .http
            .request(m.clone(), &url)
            .bearer_auth("not-the-key")
            .send()
            .await
            .unwrap();
        let cookie_post = api.http.request(m.clone(), &url).header("cookie", session);
        let cookie_post = cookie_post.send().await.unwrap();

        assert_eq!(
            none.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path} without a key"
        );
        assert!(none.headers().contains_key("www-authenticate"));
        assert_eq!(
            wrong.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path} with a wrong key"
        );
        assert_eq!(
            bearer.status(),
            StatusCode::UNAUTHORIZED,
            "{method} {path} with a wrong bearer"
        );
        if *method != "GET" {
            // The viewer's cookie never authorises a write.
            assert_eq!(
                cookie_post.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} with the cookie"
            );
        }
    }
    let (ok, _) = api.get("indicators").await;
    assert_eq!(ok, StatusCode::OK);
}

#[tokio::test]
async fn a_strategy_lives_through_create_update_activation_and_delete_with_its_rule() {
    let (api, stack) = (Api::from_env(), Stack::connect().await.unwrap());
    let id = unique("api-crud");
    let rule = format!("{}{id}", stack.deps.config.rule_prefix);

    let (created, body) = api.post("strategies", &strategy_body(&id)).await;
    assert_eq!(created, StatusCode::CREATED, "{body}");
    assert_eq!(body["strategy_id"], id);
    // The cron is read in the market's zone: 14:30 New York, 18:30 or 19:30 UTC.
    assert_eq!(body["schedule_timezone"], "America/New_York");
    assert_eq!(body["schedule_calendar"], "nyse");
    let next = chrono::DateTime::parse_from_rfc3339(body["next_run"].as_str().unwrap()).unwrap();
    assert!(
        next > chrono::Utc::now()
            && ["18:30", "19:30"].contains(&next.format("%H:%M").to_string().as_str()),
        "{next}"
    );
    let local = body["next_runs"][0]["local"].as_str().unwrap();
    assert!(local.contains("T14:30:00-0"), "{local}");
    assert_eq!(body["next_runs"].as_array().unwrap().len(), 5);
    let r = stack
        .events
        .describe_rule()
        .name(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.schedule_expression(),
        Some("cron(30 18,19 ? * MON-FRI *)")
    );
    assert_eq!(r.state().map(|s| s.as_str()), Some("ENABLED"));
    let targets = stack
        .events
        .list_targets_by_rule()
        .rule(&rule)
        .send()
        .await
        .unwrap();
    let t = &targets.targets()[0];
    assert_eq!(t.arn(), stack.state_machine_arn);
    assert_eq!(
        t.input(),
        None,
        "no constant Input: load_strategy reads the Scheduled Event"
    );

    let (status, got) = api.get(&format!("strategies/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["conid"], 265598);
    assert_eq!(got["indicators"][1], json!({"kind": "rsi", "period": 14}));

    let mut changed = strategy_body(&id);
    changed["schedule"] = json!("rate(15 minutes)");
    changed["name"] = json!("renamed");
    let (status, updated) = api.put(&format!("strategies/{id}"), &changed).await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "renamed");
    let r = stack
        .events
        .describe_rule()
        .name(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(r.schedule_expression(), Some("rate(15 minutes)"));

    let (status, off) = api
        .post(&format!("strategies/{id}/deactivate"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (off["active"].clone(), off["next_run"].clone()),
        (json!(false), Value::Null)
    );
    let r = stack
        .events
        .describe_rule()
        .name(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(r.state().map(|s| s.as_str()), Some("DISABLED"));
    let (_, on) = api
        .post(&format!("strategies/{id}/activate"), &json!({}))
        .await;
    assert_eq!(on["active"], true);
    let r = stack
        .events
        .describe_rule()
        .name(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(r.state().map(|s| s.as_str()), Some("ENABLED"));

    let (status, _) = api.delete(&format!("strategies/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        stack
            .events
            .describe_rule()
            .name(&rule)
            .send()
            .await
            .is_err(),
        "rule still there"
    );
    assert_eq!(
        api.get(&format!("strategies/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.delete(&format!("strategies/{id}")).await.0,
        StatusCode::NOT_FOUND
    );
}

/// The (UTC, market time) runs `/strategies/{id}/schedule` lists after `after`.
async fn runs(api: &Api, id: &str, after: &str, count: u32) -> Vec<(String, String)> {
    let (status, body) = api
        .get(&format!(
            "strategies/{id}/schedule?after={after}&count={count}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["runs"]
        .as_array()
        .expect("runs is a list")
        .iter()
        .map(|r| {
            (
                r["utc"].as_str().expect("utc").to_string(),
                r["local"].as_str().expect("local").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn the_schedule_runs_in_market_time_across_dst_and_skips_exchange_holidays() {
    let (api, stack) = (Api::from_env(), Stack::connect().await.unwrap());
    let id = unique("api-sched");
    let mut body = strategy_body(&id);
    body["schedule"] = json!("cron(30 9 ? * MON-FRI *)");
    let (created, got) = api.post("strategies", &body).await;
    assert_eq!(created, StatusCode::CREATED, "{got}");
    let rule = format!("{}{id}", stack.deps.config.rule_prefix);
    let r = stack
        .events
        .describe_rule()
        .name(&rule)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.schedule_expression(),
        Some("cron(30 13,14 ? * MON-FRI *)")
    );
    let november = runs(&api, &id, "2026-10-29T00:00:00Z", 4).await;
    let thanksgiving = runs(&api, &id, "2026-11-24T00:00:00Z", 4).await;

    // US daylight saving ends on Sunday 2026-11-01: same local time, UTC moves.
    assert_eq!(
        november,
        [
            ("2026-10-29T13:30:00Z", "2026-10-29T09:30:00-04:00"),
            ("2026-10-30T13:30:00Z", "2026-10-30T09:30:00-04:00"),
            ("2026-11-02T14:30:00Z", "2026-11-02T09:30:00-05:00"),
            ("2026-11-03T14:30:00Z", "2026-11-03T09:30:00-05:00"),
        ]
        .map(|(u, l)| (u.to_string(), l.to_string()))
    );
    // Thanksgiving (26th) is skipped; the 27th closes at 13:00, after the run.
    let utc: Vec<&str> = thanksgiving.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        utc,
        [
            "2026-11-24T14:30:00Z",
            "2026-11-25T14:30:00Z",
            "2026-11-27T14:30:00Z",
            "2026-11-30T14:30:00Z"
        ]
    );
    let (status, err) = api.get(&format!("strategies/{id}/schedule?count=0")).await;
    assert_eq!((status, field(&err)), (StatusCode::BAD_REQUEST, "count"));
    let (status, err) = api
        .get(&format!("strategies/{id}/schedule?after=tomorrow"))
        .await;
    assert_eq!((status, field(&err)), (StatusCode::BAD_REQUEST, "after"));
    api.delete(&format!("strategies/{id}")).await;
}

#[tokio::test]
async fn bad_input_is_refused_with_a_400_naming_the_field() {
    let api = Api::from_env();
    let id = unique("api-bad");
    let with = |f: &dyn Fn(&mut Value)| {
        let mut b = strategy_body(&id);
        f(&mut b);
        b
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "missing conid",
            with(&|b| {
                b.as_object_mut().unwrap().remove("conid");
            }),
            "conid",
        ),
        (
            "missing name",
            with(&|b| {
                b.as_object_mut().unwrap().remove("name");
            }),
            "name",
        ),
        (
            "missing capital",
            with(&|b| {
                b["risk"].as_object_mut().unwrap().remove("capital");
            }),
            "risk.capital",
        ),
        (
            "negative risk",
            with(&|b| b["risk"]["risk_per_trade"] = json!("-0.01")),
            "risk.risk_per_trade",
        ),
        (
            "negative capital",
            with(&|b| b["risk"]["capital"] = json!("-5")),
            "risk.capital",
        ),
        (
            "unknown market time zone",
            with(&|b| b["market"] = json!({"timezone": "America/Gotham"})),
            "market.timezone",
        ),
        (
            "bad cron",
            with(&|b| b["schedule"] = json!("cron(30 14 * * MON-FRI)")),
            "schedule",
        ),
        (
            "both days",
            with(&|b| b["schedule"] = json!("cron(30 14 1 * MON *)")),
            "schedule",
        ),
        (
            "unix cron",
            with(&|b| b["schedule"] = json!("30 14 * * 1-5")),
            "schedule",
        ),
        (
            "unknown calendar",
            with(&|b| b["market"] = json!({"calendar": "lse"})),
            "market.calendar",
        ),
        (
            "unknown conid",
            with(&|b| b["conid"] = json!(999_999_999)),
            "conid",
        ),
        (
            "bad id",
            with(&|b| b["strategy_id"] = json!("no spaces!")),
            "strategy_id",
        ),
        (
            "bad indicator",
            with(&|b| b["indicators"] = json!([{"kind": "macd", "fast": 30, "slow": 10}])),
            "indicators[0]",
        ),
        (
            "unknown indicator",
            with(&|b| b["indicators"] = json!([{"kind": "ichimoku"}])),
            "indicators[0]",
        ),
        ("wrong type", with(&|b| b["bars"] = json!("many")), "bars"),
    ];

    for (what, body, expected) in cases {
        let (status, err) = api.post("strategies", &body).await;

        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {err}");
        assert!(
            field(&err).starts_with(expected),
            "{what}: field {} in {err}",
            field(&err)
        );
        assert!(
            !err["message"].as_str().unwrap_or_default().is_empty(),
            "{what}"
        );
    }

    let raw = api
        .http
        .post(api.url("strategies"))
        .header("x-api-key", &api.key)
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    assert_eq!(raw.json::<Value>().await.unwrap()["field"], "body");
    assert_eq!(
        api.get(&format!("strategies/{id}")).await.0,
        StatusCode::NOT_FOUND,
        "nothing was stored"
    );

    assert_eq!(
        api.post("strategies", &strategy_body(&id)).await.0,
        StatusCode::CREATED
    );
    let (dup, err) = api.post("strategies", &strategy_body(&id)).await;
    assert_eq!(dup, StatusCode::CONFLICT, "{err}");
    let (status, err) = api
        .put(
            &format!("strategies/{id}"),
            &json!({"strategy_id": "other"}),
        )
        .await;
    assert_eq!(
        (status, field(&err)),
        (StatusCode::BAD_REQUEST, "strategy_id")
    );
    let mut bad_update = strategy_body(&id);
    bad_update["schedule"] = json!("rate(0 minutes)");
    let (status, err) = api.put(&format!("strategies/{id}"), &bad_update).await;
    assert_eq!((status, field(&err)), (StatusCode::BAD_REQUEST, "schedule"));
    api.delete(&format!("strategies/{id}")).await;

    for (path, expected) in [
        ("symbols", "q"),
        ("symbols?q=AAPL&sec_type=XYZ", "sec_type"),
        ("strategies?limit=0", "limit"),
        ("strategies?limit=abc", "limit"),
        ("strategies?next=garbage", "next"),
        ("lineage/step/no_such_step/statistics", "step"),
        ("lineage/step/load_strategy/statistics?days=0", "days"),
        ("prompts/default-analysis/versions/zero", "version"),
        ("portfolio?points=1", "points"),
    ] {
        let (status, err) = api.get(path).await;
        assert_eq!(
            (status, field(&err)),
            (StatusCode::BAD_REQUEST, expected),
            "{path}: {err}"
        );
    }
    let (status, _) = api.get("no/such/route").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api.call(Method::DELETE, "indicators", None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn lists_page_through_every_item_with_an_opaque_next_token() {
    let api = Api::from_env();
    let prefix = unique("api-page");
    let ids: Vec<String> = (0..3).map(|i| format!("{prefix}-{i}")).collect();
    for id in &ids {
        assert_eq!(
            api.post("strategies", &strategy_body(id)).await.0,
            StatusCode::CREATED
        );
    }

    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &next {
            Some(t) => format!("strategies?limit=2&next={t}"),
            None => "strategies?limit=2".into(),
        };
        let (status, page) = api.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(
            items
                .iter()
                .map(|s| s["strategy_id"].as_str().unwrap().to_string()),
        );
        pages += 1;
        next = page["next"].as_str().map(String::from);
        if next.is_none() || pages > 1000 {
            break;
        }
    }

    for id in &ids {
        assert_eq!(
            seen.iter().filter(|s| *s == id).count(),
            1,
            "{id} seen once across {pages} pages"
        );
    }
    assert!(pages >= 2);
    for id in &ids {
        api.delete(&format!("strategies/{id}")).await;
    }
}

#[tokio::test]
async fn run_now_starts_an_execution_whose_lineage_the_api_serves() {
    let (api, stack) = (Api::from_env(), Stack::connect().await.unwrap());
    let id = unique("api-run");
    assert_eq!(
        api.post("strategies", &strategy_body(&id)).await.0,
        StatusCode::CREATED
    );

    let (status, run) = api.post(&format!("strategies/{id}/run"), &json!({})).await;

    assert_eq!(status, StatusCode::ACCEPTED, "{run}");
    let name = run["execution_id"].as_str().unwrap().to_string();
    assert!(name.starts_with(&format!("{id}-manual-")), "{name}");
    let done = workflow::wait(
        &stack.sfn,
        run["execution_arn"].as_str().unwrap(),
        Duration::from_secs(600),
    )
    .await
    .unwrap();
    assert_eq!(done.status, "SUCCEEDED", "{:?}", done.cause);

    let (_, list) = api
        .get(&format!("strategies/{id}/executions?limit=5"))
        .await;
    assert_eq!(list["items"][0]["execution_id"], name.as_str());
    assert_eq!(list["items"][0]["status"], "SUCCEEDED");
    let (_, one) = api.get(&format!("executions/{name}")).await;
    assert_eq!(one["strategy_id"], id.as_str());

    let (status, lineage) = api.get(&format!("lineage/execution/{name}")).await;
    assert_eq!(status, StatusCode::OK);
    let steps: Vec<&str> = lineage["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step_name"].as_str().unwrap())
        .collect();
    for expected in [
        "load_strategy",
        "fetch_market_data",
        "render_charts",
        "parse_signal",
        "record_execution",
    ] {
        assert!(steps.contains(&expected), "{expected} not in {steps:?}");
    }
    let (_, step) = api
        .get(&format!("lineage/execution/{name}/step/parse_signal"))
        .await;
    assert!(
        step["records"][0]["output"]["signal"]["action"].is_string(),
        "{step}"
    );
    assert_eq!(
        api.get(&format!("lineage/execution/{name}/step/no_step"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.get("lineage/execution/no-such-execution").await.0,
        StatusCode::NOT_FOUND
    );

    let (_, recent) = api
        .get(&format!("lineage/strategy/{id}/recent?limit=3"))
        .await;
    assert_eq!(recent["items"].as_array().unwrap().len(), 3);
    assert!(recent["next"].is_string(), "more records than one page");
    assert!(
        recent["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["strategy_id"] == id.as_str())
    );

    let (_, stats) = api
        .get("lineage/step/load_strategy/statistics?days=1")
        .await;
    assert!(stats["count"].as_u64().unwrap() >= 1, "{stats}");
    let rate = stats["success_rate"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&rate));
    assert!(
        stats["p95_duration_ms"].as_u64().unwrap()
            >= stats["avg_duration_ms"].as_f64().unwrap() as u64 / 100
    );
    assert!(stats["common_errors"].is_array());

    let (_, all) = api.get("lineage/recent?limit=100").await;
    assert!(
        all["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["execution_id"] == name.as_str()),
        "{name} not recent"
    );

    api.delete(&format!("strategies/{id}")).await;
}

#[tokio::test]
async fn reference_routes_serve_symbols_and_the_indicator_catalogue() {
    let api = Api::from_env();

    let (_, found) = api.get("symbols?q=aapl").await;
    let (_, missing) = api.get("symbols?q=ZZZNOPE").await;
    let (_, catalogue) = api.get("indicators").await;

    assert_eq!(found["items"][0]["record"]["conid"], 265598, "{found}");
    assert_eq!(missing["items"], json!([]));
    let kinds: Vec<&str> = catalogue["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.len(), 10, "{kinds:?}");
    let rsi = catalogue["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "rsi")
        .unwrap();
    assert_eq!(rsi["params"], json!({"period": 14}));
}

#[tokio::test]
async fn prompt_templates_keep_versions_and_are_deleted_only_when_unused() {
    let api = Api::from_env();
    let tid = unique("api-prompt");
    let body = |text: &str| json!({"template_id": tid, "body": text, "description": "test"});

    let (created, v1) = api
        .post(
            "prompts",
            &body("Analyse {{ symbol }} on the {{ timeframe }} chart."),
        )
        .await;
    let (updated, v2) = api
        .put(
            &format!("prompts/{tid}"),
            &json!({"body": "Look at {{ symbol }} again."}),
        )
        .await;

    assert_eq!(created, StatusCode::CREATED, "{v1}");
    assert_eq!(updated, StatusCode::CREATED, "{v2}");
    assert_eq!(
        (
            v1["template"]["version"].clone(),
            v2["template"]["version"].clone()
        ),
        (json!(1), json!(2))
    );
    let (_, latest) = api.get(&format!("prompts/{tid}")).await;
    assert_eq!(latest["template"]["version"], 2);
    let (_, first) = api.get(&format!("prompts/{tid}/versions/1")).await;
    assert!(
        first["template"]["body"]
            .as_str()
            .unwrap()
            .starts_with("Analyse")
    );
    let (_, versions) = api.get(&format!("prompts/{tid}/versions")).await;
    assert_eq!(versions["items"].as_array().unwrap().len(), 2);
    assert_eq!(
        api.get(&format!("prompts/{tid}/versions/9")).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, builtin) = api.get("prompts/default-analysis").await;
    assert!(builtin["template"]["body"].is_string());

    let mut listed = false;
    let mut next: Option<String> = None;
    for _ in 0..100 {
        let path = next.as_ref().map_or("prompts?limit=5".to_string(), |t| {
            format!("prompts?limit=5&next={t}")
        });
        let (_, page) = api.get(&path).await;
        listed |= page["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["template_id"] == tid.as_str() && t["versions"] == 2);
        next = page["next"].as_str().map(String::from);
        if next.is_none() {
            break;
        }
    }
    assert!(listed, "{tid} not listed with 2 versions");

    let (status, err) = api.post("prompts", &body("{{ unclosed")).await;
    assert_eq!(
        (status, field(&err)),
        (StatusCode::BAD_REQUEST, "body"),
        "{err}"
    );
    let (status, err) = api.post("prompts", &json!({"body": "x"})).await;
    assert_eq!(
        (status, field(&err)),
        (StatusCode::BAD_REQUEST, "template_id"),
        "{err}"
    );

    let sid = unique("api-prompt-user");
    let mut s = strategy_body(&sid);
    s["prompt_template"] = json!(format!("{tid}@1"));
    assert_eq!(api.post("strategies", &s).await.0, StatusCode::CREATED);
    assert_eq!(
        api.delete(&format!("prompts/{tid}")).await.0,
        StatusCode::CONFLICT
    );
    api.delete(&format!("strategies/{sid}")).await;
    let (status, deleted) = api.delete(&format!("prompts/{tid}")).await;
    assert_eq!(
        (status, deleted["versions"].clone()),
        (StatusCode::OK, json!(2))
    );
    assert_eq!(
        api.get(&format!("prompts/{tid}")).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn orders_positions_trades_portfolio_and_stats_read_their_tables() {
    let (api, stack) = (Api::from_env(), Stack::connect().await.unwrap());
    let store = stack.deps.store();
    let sid = unique("api-trading");
    let order_id = format!("tf-{sid}");
    store
        .put(&store.tables.orders, &json!({
            "order_id": order_id, "strategy_id": sid, "execution_id": format!("{sid}-x"), "conid": 265598,
            "symbol": "AAPL", "side": "BUY", "order_type": "LMT", "quantity": "10", "limit_price": "190.5",
            "tif": "DAY", "status": "FILLED", "filled_quantity": "10", "avg_fill_price": "190.4",
            "commission": "1", "created_at": "2026-01-02T15:00:00Z", "updated_at": "2026-01-02T15:01:00Z",
            "history": [{"status": "SUBMITTED", "at": "2026-01-02T15:00:00Z"}, {"status": "FILLED", "at": "2026-01-02T15:01:00Z"}],
            "purpose": "entry"
        }), None)
        .await
        .unwrap();
    for (i, pnl) in ["0", "150.25", "90"].iter().enumerate() {
        store
            .put(&store.tables.portfolio, &json!({
                "portfolio_id": sid, "snapshot_at": format!("2026-01-0{}T21:00:00Z", i + 2), "capital": "100000",
                "positions": [{"conid": "265598", "symbol": "AAPL", "quantity": "10", "unrealized_pnl": pnl}]
            }), None)
            .await
            .unwrap();
    }
    store
        .put(
            &store.tables.positions,
            &json!({"strategy_id": sid, "conid": "265598", "symbol": "AAPL", "quantity": "10"}),
            None,
        )
        .await
        .unwrap();
    store
        .put(&store.tables.trades, &json!({"strategy_id": sid, "trade_id": "t1", "realized_pnl": "42.5", "status": "CLOSED"}), None)
        .await
        .unwrap();

    let (_, orders) = api.get(&format!("orders?strategy_id={sid}")).await;
    let (_, order) = api.get(&format!("orders/{order_id}")).await;
    let (_, positions) = api.get(&format!("positions?strategy_id={sid}")).await;
    let (_, trades) = api.get(&format!("trades?strategy_id={sid}")).await;
    let (_, portfolio) = api.get(&format!("portfolio?strategy_id={sid}")).await;
    let (_, stats) = api.get("stats").await;

    assert_eq!(orders["items"][0]["order_id"], order_id.as_str());
    assert_eq!(order["status"], "FILLED");
    assert_eq!(positions["items"][0]["quantity"], "10");
    assert_eq!(trades["items"][0]["realized_pnl"], "42.5");
    let p = &portfolio["items"][0];
    assert_eq!(p["equity"], 100_090.0);
    let curve: Vec<f64> = p["equity_curve"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["equity"].as_f64().unwrap())
        .collect();
    assert_eq!(curve, vec![100_000.0, 100_150.25, 100_090.0]);
    assert!(
        stats["orders"]["by_status"]["FILLED"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    assert!(stats["trades"]["closed"].as_u64().unwrap() >= 1);
    for path in ["orders", "positions", "trades"] {
        let (status, all) = api.get(&format!("{path}?limit=1")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(all["items"].as_array().unwrap().len() <= 1);
    }
    assert_eq!(
        api.get("orders/no-such-order").await.0,
        StatusCode::NOT_FOUND
    );

    let (status, _, orders_page) = api.page(&format!("viewer/orders?strategy_id={sid}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(orders_page.contains(&order_id) && orders_page.contains("FILLED"));
    let (status, _, portfolio_page) = api
        .page(&format!("viewer/portfolio?strategy_id={sid}"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(portfolio_page.contains("<polyline"), "equity curve drawn");
}

#[tokio::test]
async fn an_llm_answer_with_script_and_html_is_rendered_inert() {
    let (api, stack) = (Api::from_env(), Stack::connect().await.unwrap());
    let sid = unique("api-xss");
    let name = format!("{sid}-manual");
    let evil = "<script>document.title='pwned'</script><b onmouseover=alert(1)>BUY</b><img src=x onerror=alert(2)>";
    stack
        .deps
        .store()
        .start_execution(&Execution {
            execution_id: name.clone(),
            execution_arn: format!("arn:aws:states:us-east-1:000000000000:execution:x:{name}"),
            strategy_id: sid.clone(),
            status: ExecutionStatus::Succeeded,
            trigger: "manual".into(),
            tick: format!("manual#{name}"),
            started_at: chrono::Utc::now().to_rfc3339(),
            finished_at: None,
            summary: None,
            error: None,
        })
        .await
        .unwrap();
    stack
        .deps
        .lineage()
        .record(LineageRecord {
            execution_id: name.clone(),
            execution_arn: "arn".into(),
            step_key: "analyze_chart".into(),
            step_name: "analyze_chart".into(),
            step_number: 5,
            strategy_id: sid.clone(),
            status: StepStatus::Succeeded,
            input: Some(json!({"note": evil})),
            output: Some(json!({
                "provider": "openai", "model": "<i>model</i>", "template_id": "t", "template_version": 1,
                "template_source": "store", "prompt": "<style>body{display:none}</style>", "answer": evil,
                "charts": [], "latency_ms": 5, "usage": {"input_tokens": 1, "output_tokens": 2}
            })),
            error: None,
            error_type: None,
            duration_ms: 5,
            recorded_at: chrono::Utc::now().to_rfc3339(),
            attempts: 1,
            previous_errors: vec![],
            payload_key: None,
        })
        .await
        .unwrap();

    let (status, csp, page) = api.page(&format!("viewer/execution/{name}")).await;

    assert_eq!(status, StatusCode::OK);
    assert!(!page.contains("<script"), "a script tag reached the page");
    assert!(
        !page.contains("<b onmouseover")
            && !page.contains("<img src=x")
            && !page.contains("<i>model")
    );
    assert!(!page.contains("<style>body"));
    assert!(
        page.contains("&lt;script&gt;document.title="),
        "the answer is shown as text"
    );
    assert!(page.contains("&lt;b onmouseover=alert(1)&gt;BUY&lt;"));
    assert!(
        csp.contains("default-src 'none'"),
        "no script may run: {csp}"
    );
}

#[tokio::test]
async fn an_execution_that_failed_before_its_strategy_loaded_is_served_with_its_error() {
    // What a rule firing for a just-deleted strategy does: the run fails in load_strategy,
    // before the execution item exists, and record_failure writes the item alone.
    let (api, stack) = (Api::from_env(), Stack::connect().await.unwrap());
    let id = unique("gone");
    let name = format!("{id}-manual");

    let done = stack.run(&name, &json!({"strategy_id": id})).await.unwrap();

    assert_eq!(done.status, "FAILED");
    let (status, body) = api.get(&format!("lineage/execution/{name}")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let execution = &body["execution"];
    assert_eq!(execution["status"], "FAILED", "{body}");
    assert_eq!(execution["error"]["failed_step"], "load_strategy", "{body}");
    assert!(
        execution["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not found"),
        "{body}"
    );
    let (status, one) = api.get(&format!("executions/{name}")).await;
    assert_eq!(status, StatusCode::OK, "{one}");
    let (status, recent) = api.get("lineage/recent?limit=100").await;
    assert_eq!(status, StatusCode::OK, "{recent}");
    assert!(
        recent["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["execution_id"] == name.as_str()),
        "{name} not recent: {recent}"
    );
}

#[tokio::test]
async fn same_second_runs_answer_with_the_started_execution_and_an_inactive_strategy_409() {
    let (api, stack) = (Api::from_env(), Stack::connect().await.unwrap());
    let id = unique("api-burst");
    assert_eq!(
        api.post("strategies", &strategy_body(&id)).await.0,
        StatusCode::CREATED
    );
    let path = format!("strategies/{id}/run");

    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..12 {
        let path = path.clone();
        burst.spawn(async move { Api::from_env().post(&path, &json!({})).await });
    }
    let answers: Vec<(StatusCode, Value)> = burst.join_all().await;

    let started: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::ACCEPTED)
        .map(|(_, b)| b)
        .collect();
    let mut names: Vec<&str> = answers
        .iter()
        .map(|(s, b)| {
            assert!(
                *s == StatusCode::ACCEPTED || *s == StatusCode::OK,
                "{s}: {b}"
            );
            b["execution_id"].as_str().unwrap()
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    // One start per distinct second; every other answer names a started run.
    assert_eq!(started.len(), names.len(), "{answers:?}");
    for (s, b) in &answers {
        if *s == StatusCode::OK {
            assert_eq!(b["already_started"], true, "{b}");
        }
    }
    for name in &names {
        let arn = answers
            .iter()
            .find(|(_, b)| b["execution_id"] == *name)
            .map(|(_, b)| b["execution_arn"].as_str().unwrap().to_string())
            .unwrap();
        let done = workflow::wait(&stack.sfn, &arn, Duration::from_secs(600))
            .await
            .unwrap();
        assert_eq!(done.status, "SUCCEEDED", "{name}: {:?}", done.cause);
    }

    let (status, _) = api
        .post(&format!("strategies/{id}/deactivate"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = api.post(&path, &json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.to_string().contains("inactive"), "{body}");
    api.delete(&format!("strategies/{id}")).await;
}
