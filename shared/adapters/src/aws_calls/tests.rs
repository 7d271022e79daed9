use super::*;

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "000000000000";

fn wire<'a>(service: &'a str, op: &'a str, uri: &'a str, body: &'a str) -> WireRequest<'a> {
    WireRequest {
        sdk_service: service,
        operation: op,
        uri,
        headers: &[],
        body: body.as_bytes(),
        region: REGION,
        account: ACCOUNT,
    }
}

fn pairs(record: &CallRecord) -> Vec<(String, String)> {
    record
        .requires
        .iter()
        .map(|a| (a.action.clone(), a.resource.clone()))
        .collect()
}

fn pair(action: &str, resource: &str) -> (String, String) {
    (action.to_string(), resource.to_string())
}

const TABLE: &str = "arn:aws:dynamodb:us-east-1:000000000000:table";

#[test]
fn sdk_service_names_map_to_iam_prefixes() {
    let names = [
        "DynamoDB",
        "S3",
        "EventBridge",
        "SFN",
        "Secrets Manager",
        "SSM",
        "Bedrock Runtime",
    ];

    let prefixes: Vec<String> = names.iter().map(|n| iam_service(n)).collect();

    assert_eq!(
        prefixes,
        [
            "dynamodb",
            "s3",
            "events",
            "states",
            "secretsmanager",
            "ssm",
            "bedrock"
        ]
    );
}

#[test]
fn dynamodb_item_call_needs_its_action_on_the_table() {
    let r = describe(&wire(
        "DynamoDB",
        "PutItem",
        "http://x/",
        r#"{"TableName":"tradeflow-orders","Item":{}}"#,
    ));

    assert_eq!(r.operation, "dynamodb:PutItem");
    assert_eq!(
        pairs(&r),
        [pair(
            "dynamodb:PutItem",
            &format!("{TABLE}/tradeflow-orders")
        )]
    );
}

#[test]
fn dynamodb_query_on_an_index_needs_the_index_arn() {
    let body =
        r#"{"TableName":"tradeflow-lineage","IndexName":"by_step","KeyConditionExpression":"x"}"#;

    let r = describe(&wire("DynamoDB", "Query", "http://x/", body));

    assert_eq!(
        pairs(&r),
        [pair(
            "dynamodb:Query",
            &format!("{TABLE}/tradeflow-lineage/index/by_step")
        )]
    );
}

#[test]
fn dynamodb_transaction_needs_each_item_action_on_each_table() {
    let body = r#"{"TransactItems":[
        {"Put":{"TableName":"tradeflow-trades","Item":{}}},
        {"Update":{"TableName":"tradeflow-positions","Key":{}}},
        {"Delete":{"TableName":"tradeflow-orders","Key":{}}},
        {"ConditionCheck":{"TableName":"tradeflow-gateway","Key":{}}}]}"#;

    let r = describe(&wire("DynamoDB", "TransactWriteItems", "http://x/", body));

    assert_eq!(r.operation, "dynamodb:TransactWriteItems");
    assert_eq!(
        pairs(&r),
        [
            pair("dynamodb:PutItem", &format!("{TABLE}/tradeflow-trades")),
            pair(
                "dynamodb:UpdateItem",
                &format!("{TABLE}/tradeflow-positions")
            ),
            pair("dynamodb:DeleteItem", &format!("{TABLE}/tradeflow-orders")),
            pair(
                "dynamodb:ConditionCheckItem",
                &format!("{TABLE}/tradeflow-gateway")
            ),
        ]
    );
    assert!(
        r.requires
            .iter()
            .all(|a| a.context["dynamodb:EnclosingOperation"] == "TransactWriteItems")
    );
}

#[test]
fn dynamodb_batch_needs_the_batch_action_on_every_table() {
    let body = r#"{"RequestItems":{"tradeflow-a":[],"tradeflow-b":[]}}"#;

    let r = describe(&wire("DynamoDB", "BatchGetItem", "http://x/", body));

    assert_eq!(
        pairs(&r),
        [
            pair("dynamodb:BatchGetItem", &format!("{TABLE}/tradeflow-a")),
            pair("dynamodb:BatchGetItem", &format!("{TABLE}/tradeflow-b")),
        ]
    );
}

#[test]
fn s3_object_calls_name_bucket_and_key_path_style_or_virtual_host() {
    let put = describe(&wire(
        "S3",
        "PutObject",
        "http://127.0.0.1:4566/tradeflow-charts/charts/a%20b.png?x-id=PutObject",
        "",
    ));
    let head = describe(&wire(
        "S3",
        "HeadObject",
        "https://tradeflow-charts.s3.us-east-1.amazonaws.com/lineage/x.json",
        "",
    ));

    assert_eq!(
        pairs(&put),
        [pair(
            "s3:PutObject",
            "arn:aws:s3:::tradeflow-charts/charts/a b.png"
        )]
    );
    assert_eq!(
        pairs(&head),
        [pair(
            "s3:GetObject",
            "arn:aws:s3:::tradeflow-charts/lineage/x.json"
        )]
    );
}

#[test]
fn s3_listing_needs_list_bucket_on_the_bucket() {
    let r = describe(&wire(
        "S3",
        "ListObjectsV2",
        "http://127.0.0.1:4566/tradeflow-charts?list-type=2&prefix=charts%2F",
        "",
    ));

    assert_eq!(
        pairs(&r),
        [pair("s3:ListBucket", "arn:aws:s3:::tradeflow-charts")]
    );
}

#[test]
fn s3_copy_reads_the_source_and_writes_the_target() {
    let req = WireRequest {
        headers: &[("x-amz-copy-source", "src-bucket/a%2Fb.json")],
        ..wire("S3", "CopyObject", "http://127.0.0.1:4566/dst/c.json", "")
    };

    let r = describe(&req);

    assert_eq!(
        pairs(&r),
        [
            pair("s3:PutObject", "arn:aws:s3:::dst/c.json"),
            pair("s3:GetObject", "arn:aws:s3:::src-bucket/a/b.json")
        ]
    );
}

#[test]
fn eventbridge_put_events_names_each_bus_once() {
    let body = r#"{"Entries":[{"Source":"a"},{"Source":"b","EventBusName":"default"},{"EventBusName":"orders"}]}"#;

    let r = describe(&wire("EventBridge", "PutEvents", "http://x/", body));

    assert_eq!(
        pairs(&r),
        [
            pair(
                "events:PutEvents",
                "arn:aws:events:us-east-1:000000000000:event-bus/default"
            ),
            pair(
                "events:PutEvents",
                "arn:aws:events:us-east-1:000000000000:event-bus/orders"
            ),
        ]
    );
}

#[test]
fn eventbridge_rule_calls_name_the_rule_and_targets_pass_their_role() {
    let rule = describe(&wire(
        "EventBridge",
        "PutRule",
        "http://x/",
        r#"{"Name":"tradeflow-s1","ScheduleExpression":"rate(1 minute)"}"#,
    ));
    let targets = describe(&wire(
        "EventBridge",
        "PutTargets",
        "http://x/",
        r#"{"Rule":"tradeflow-s1","EventBusName":"orders","Targets":[{"Id":"1","Arn":"arn:sm","RoleArn":"arn:aws:iam::000000000000:role/ev"}]}"#,
    ));

    assert_eq!(
        pairs(&rule),
        [pair(
            "events:PutRule",
            "arn:aws:events:us-east-1:000000000000:rule/tradeflow-s1"
        )]
    );
    assert_eq!(
        pairs(&targets),
        [
            pair(
                "events:PutTargets",
                "arn:aws:events:us-east-1:000000000000:rule/orders/tradeflow-s1"
            ),
            pair("iam:PassRole", "arn:aws:iam::000000000000:role/ev"),
        ]
    );
    assert_eq!(
        targets.requires[1].context["iam:PassedToService"],
        "events.amazonaws.com"
    );
}

#[test]
fn step_functions_calls_name_the_execution_or_state_machine() {
    let sm = "arn:aws:states:us-east-1:000000000000:stateMachine:wf";
    let ex = "arn:aws:states:us-east-1:000000000000:execution:wf:run-1";

    let start = describe(&wire(
        "SFN",
        "StartExecution",
        "http://x/",
        &format!(r#"{{"stateMachineArn":"{sm}","input":"{{}}"}}"#),
    ));
    let history = describe(&wire(
        "SFN",
        "GetExecutionHistory",
        "http://x/",
        &format!(r#"{{"executionArn":"{ex}"}}"#),
    ));

    assert_eq!(pairs(&start), [pair("states:StartExecution", sm)]);
    assert_eq!(pairs(&history), [pair("states:GetExecutionHistory", ex)]);
}

#[test]
fn ssm_parameter_arn_keeps_the_hierarchy() {
    let r = describe(&wire(
        "SSM",
        "GetParameter",
        "http://x/",
        r#"{"Name":"/tradeflow/ibkr-base-url"}"#,
    ));

    assert_eq!(
        pairs(&r),
        [pair(
            "ssm:GetParameter",
            "arn:aws:ssm:us-east-1:000000000000:parameter/tradeflow/ibkr-base-url"
        )]
    );
}

#[test]
fn secret_by_arn_or_by_name() {
    let arn = "arn:aws:secretsmanager:us-east-1:000000000000:secret:tradeflow/llm-api-key-AbCdEf";

    let by_arn = describe(&wire(
        "Secrets Manager",
        "GetSecretValue",
        "http://x/",
        &format!(r#"{{"SecretId":"{arn}"}}"#),
    ));
    let by_name = describe(&wire(
        "Secrets Manager",
        "GetSecretValue",
        "http://x/",
        r#"{"SecretId":"tradeflow/llm-api-key"}"#,
    ));

    assert_eq!(pairs(&by_arn), [pair("secretsmanager:GetSecretValue", arn)]);
    assert_eq!(
        pairs(&by_name),
        [pair(
            "secretsmanager:GetSecretValue",
            "arn:aws:secretsmanager:us-east-1:000000000000:secret:tradeflow/llm-api-key-??????"
        )]
    );
}

#[test]
fn bedrock_converse_needs_invoke_model_on_the_model_or_profile() {
    let model = describe(&wire(
        "Bedrock Runtime",
        "Converse",
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse",
        "{}",
    ));
    let profile = describe(&wire(
        "Bedrock Runtime",
        "Converse",
        "https://bedrock-runtime.us-east-1.amazonaws.com/model/us.anthropic.claude-3-haiku-20240307-v1%3A0/converse",
        "{}",
    ));

    assert_eq!(
        pairs(&model),
        [pair(
            "bedrock:InvokeModel",
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0"
        )]
    );
    assert_eq!(
        pairs(&profile),
        [pair(
            "bedrock:InvokeModel",
            "arn:aws:bedrock:us-east-1:000000000000:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0"
        )]
    );
}

/// A unique empty directory under the system temp dir.
fn scratch_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("aws-calls-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// A DynamoDB client with the recorder, against a local server that answers `{}`.
async fn recorded_dynamo(dir: &std::path::Path) -> aws_sdk_dynamodb::Client {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new()
        .fallback(|| async { ([("content-type", "application/x-amz-json-1.0")], "{}") });
    tokio::spawn(async move { axum::serve(listener, app).await });
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("eu-west-1"))
        .endpoint_url(format!("http://{addr}"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "a", "b", None, None, "test",
        ))
        .load()
        .await;
    let conf = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .interceptor(CallRecorder::new(dir, "check-order", "123456789012"))
        .build();
    aws_sdk_dynamodb::Client::from_conf(conf)
}

#[tokio::test]
async fn recorder_appends_one_line_per_sdk_call() {
    let dir = scratch_dir("sdk");
    let client = recorded_dynamo(&dir).await;

    client
        .get_item()
        .table_name("tradeflow-orders")
        .send()
        .await
        .expect("get_item");
    client
        .query()
        .table_name("tradeflow-orders")
        .index_name("working")
        .send()
        .await
        .expect("query");

    let text = std::fs::read_to_string(dir.join("check-order.jsonl")).expect("record file");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["function"], "check-order");
    assert_eq!(lines[0]["service"], "dynamodb");
    assert_eq!(lines[0]["operation"], "dynamodb:GetItem");
    assert_eq!(lines[0]["region"], "eu-west-1");
    assert_eq!(lines[0]["account"], "123456789012");
    assert_eq!(
        lines[0]["requires"][0]["resource"],
        "arn:aws:dynamodb:eu-west-1:123456789012:table/tradeflow-orders"
    );
    assert_eq!(
        lines[1]["requires"][0]["resource"],
        "arn:aws:dynamodb:eu-west-1:123456789012:table/tradeflow-orders/index/working"
    );
    let _ = std::fs::remove_dir_all(dir);
}
