//! The AWS call recorder: an SDK interceptor that appends one JSON line per call a
//! function makes to `$TRADEFLOW_AWS_CALL_LOG/<AWS_LAMBDA_FUNCTION_NAME>.jsonl`, with the
//! IAM actions and resource ARNs the call needs. `infra/local/iam_check.py` checks these
//! lines against each function's policy in the synthesized template.
//!
//! Only the local stack turns it on (its Lambda runtime passes the variable to each
//! function's process); when the variable is unset no interceptor is attached at all.
//! The request is read as the SDK serialized it (JSON body, S3 path or host), so the
//! record says what went on the wire.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use aws_types::region::{Region, SigningRegion};
use serde::Serialize;
use serde_json::Value;

/// Directory the records go to; recording is off when it is unset or empty.
pub const LOG_DIR_ENV: &str = "TRADEFLOW_AWS_CALL_LOG";
/// The account the function runs in (the local runtime knows it; the SDK's
/// credentials do not say).
pub const ACCOUNT_ENV: &str = "TRADEFLOW_AWS_CALL_ACCOUNT";

/// One authorization a call needs: what IAM evaluates for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Authorization {
    /// IAM action, e.g. `dynamodb:PutItem`.
    pub action: String,
    /// Resource ARN, or `*` for actions without resource-level permissions.
    pub resource: String,
    /// Request condition keys the action carries (e.g. `iam:PassedToService`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, String>,
}

impl Authorization {
    fn new(action: impl Into<String>, resource: impl Into<String>) -> Self {
        Self {
            action: action.into(),
            resource: resource.into(),
            context: BTreeMap::new(),
        }
    }

    fn with(mut self, key: &str, value: &str) -> Self {
        self.context.insert(key.to_string(), value.to_string());
        self
    }
}

/// One recorded call: a JSON line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallRecord {
    pub function: String,
    /// IAM service prefix: `dynamodb`, `s3`, `events`, `states`, `ssm`, ...
    pub service: String,
    /// The API operation as an IAM-style name, e.g. `dynamodb:TransactWriteItems`.
    pub operation: String,
    pub region: String,
    pub account: String,
    /// What IAM checks for this call: for transactions and batches, one entry per
    /// table and item action.
    pub requires: Vec<Authorization>,
}

/// A serialized SDK request, as the recorder sees it.
#[derive(Debug, Clone, Copy)]
pub struct WireRequest<'a> {
    /// The SDK's service name (`DynamoDB`, `S3`, `SFN`, `Bedrock Runtime`, ...).
    pub sdk_service: &'a str,
    pub operation: &'a str,
    pub uri: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
    pub region: &'a str,
    pub account: &'a str,
}

/// The IAM service prefix of an SDK service name.
pub fn iam_service(sdk_service: &str) -> String {
    let id: String = sdk_service
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    match id.as_str() {
        "eventbridge" | "cloudwatchevents" => "events".into(),
        "sfn" => "states".into(),
        "bedrockruntime" => "bedrock".into(),
        "cloudwatchlogs" => "logs".into(),
        "cloudwatch" => "cloudwatch".into(),
        _ => id,
    }
}

/// The partition of a region (`aws`, `aws-cn`, `aws-us-gov`).
fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The authorizations a serialized request needs.
pub fn describe(req: &WireRequest<'_>) -> CallRecord {
    let service = iam_service(req.sdk_service);
    let body: Value = serde_json::from_slice(req.body).unwrap_or(Value::Null);
    let arn = Arns {
        partition: partition(req.region),
        region: req.region,
        account: req.account,
    };
    let op = req.operation;
    let requires = match service.as_str() {
        "dynamodb" => dynamodb(op, &body, &arn),
        "s3" => s3(op, req, &arn),
        "events" => events(op, &body, &arn),
        "states" => states(op, &body),
        "ssm" => ssm(op, &body, &arn),
        "secretsmanager" => secrets_manager(op, &body, &arn),
        "bedrock" => bedrock(op, req.uri, &arn),
        _ => vec![Authorization::new(format!("{service}:{op}"), "*")],
    };
    CallRecord {
        function: String::new(),
        operation: format!("{service}:{op}"),
        service,
        region: req.region.to_string(),
        account: req.account.to_string(),
        requires,
    }
}

struct Arns<'a> {
    partition: &'a str,
    region: &'a str,
    account: &'a str,
}

impl Arns<'_> {
    fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:{}:{service}:{}:{}:{resource}",
            self.partition, self.region, self.account
        )
    }

    /// `name` as given (an ARN) or the ARN of `<kind>/<name>` in this account.
    fn named(&self, service: &str, kind: &str, name: &str) -> String {
        if name.starts_with("arn:") {
            name.to_string()
        } else {
            self.arn(service, &format!("{kind}/{name}"))
        }
    }
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn dynamodb(op: &str, body: &Value, arn: &Arns<'_>) -> Vec<Authorization> {
    let table = |name: &str| arn.named("dynamodb", "table", name);
    match op {
        // Transactions need the per-item action on each table (there is no IAM action
        // for the transaction itself).
        "TransactWriteItems" | "TransactGetItems" => body
            .get("TransactItems")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|item| item.as_object())
            .flat_map(|item| item.iter())
            .filter_map(|(kind, spec)| {
                let action = match kind.as_str() {
                    "Put" => "PutItem",
                    "Update" => "UpdateItem",
                    "Delete" => "DeleteItem",
                    "ConditionCheck" => "ConditionCheckItem",
                    "Get" => "GetItem",
                    _ => return None,
                };
                let name = str_at(spec, "TableName")?;
                Some(
                    Authorization::new(format!("dynamodb:{action}"), table(name))
                        .with("dynamodb:EnclosingOperation", op),
                )
            })
            .collect(),
        "BatchWriteItem" | "BatchGetItem" => body
            .get("RequestItems")
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|items| items.keys())
            .map(|name| Authorization::new(format!("dynamodb:{op}"), table(name)))
            .collect(),
        _ => {
            let resource = match (str_at(body, "TableName"), str_at(body, "IndexName")) {
                (Some(t), Some(i)) => format!("{}/index/{i}", table(t)),
                (Some(t), None) => table(t),
                _ => "*".to_string(),
            };
            vec![Authorization::new(format!("dynamodb:{op}"), resource)]
        }
    }
}

/// Bucket and key of an S3 request: path style (`/bucket/key`) or virtual host
/// (`bucket.s3.<region>.amazonaws.com/key`).
fn s3_target(uri: &str) -> Option<(String, String)> {
    let url = url::Url::parse(uri).ok()?;
    let host = url.host_str().unwrap_or_default();
    let path = url.path().trim_start_matches('/');
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("k={}", s.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let virtual_bucket = host
        .split_once(".s3")
        .map(|(b, _)| b)
        .filter(|b| !b.is_empty());
    match virtual_bucket {
        Some(bucket) => Some((bucket.to_string(), decode(path))),
        None => {
            let (bucket, key) = path.split_once('/').unwrap_or((path, ""));
            (!bucket.is_empty()).then(|| (decode(bucket), decode(key)))
        }
    }
}

fn s3(op: &str, req: &WireRequest<'_>, arn: &Arns<'_>) -> Vec<Authorization> {
    let Some((bucket, key)) = s3_target(req.uri) else {
        return vec![Authorization::new(format!("s3:{op}"), "*")];
    };
    let bucket_arn = format!("arn:{}:s3:::{bucket}", arn.partition);
    let object_arn = format!("{bucket_arn}/{key}");
    let action = match op {
        "HeadObject" | "GetObject" => "GetObject",
        "PutObject" | "CreateMultipartUpload" | "UploadPart" | "CompleteMultipartUpload" => {
            "PutObject"
        }
        "ListObjectsV2" | "ListObjects" | "HeadBucket" | "ListMultipartUploads" => {
            return vec![Authorization::new("s3:ListBucket", bucket_arn)];
        }
        "DeleteObjects" => {
            let body = String::from_utf8_lossy(req.body);
            return body
                .split("<Key>")
                .skip(1)
                .filter_map(|rest| rest.split_once("</Key>").map(|(k, _)| k))
                .map(|k| Authorization::new("s3:DeleteObject", format!("{bucket_arn}/{k}")))
                .collect();
        }
        "CopyObject" | "UploadPartCopy" => {
            let source = req
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-copy-source"))
                .map(|(_, v)| {
                    v.trim_start_matches('/')
                        .split('?')
                        .next()
                        .unwrap_or_default()
                });
            let mut out = vec![Authorization::new("s3:PutObject", object_arn)];
            if let Some(src) = source {
                let src = url::form_urlencoded::parse(format!("k={src}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                out.push(Authorization::new(
                    "s3:GetObject",
                    format!("arn:{}:s3:::{src}", arn.partition),
                ));
            }
            return out;
        }
        other => other,
    };
    let resource = if key.is_empty() {
        bucket_arn
    } else {
        object_arn
    };
    vec![Authorization::new(format!("s3:{action}"), resource)]
}

fn events(op: &str, body: &Value, arn: &Arns<'_>) -> Vec<Authorization> {
    let bus_arn = |bus: Option<&str>| arn.named("events", "event-bus", bus.unwrap_or("default"));
    // Rules on the default bus are rule/<name>; on another bus rule/<bus>/<name>.
    let rule_arn = |name: &str, bus: Option<&str>| match bus {
        _ if name.starts_with("arn:") => name.to_string(),
        None | Some("default") => arn.arn("events", &format!("rule/{name}")),
        Some(b) if b.starts_with("arn:") => {
            let bus_name = b.rsplit('/').next().unwrap_or(b);
            arn.arn("events", &format!("rule/{bus_name}/{name}"))
        }
        Some(b) => arn.arn("events", &format!("rule/{b}/{name}")),
    };
    let bus = str_at(body, "EventBusName");
    let action = format!("events:{op}");
    match op {
        "PutEvents" => {
            let mut buses: Vec<String> = body
                .get("Entries")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|e| bus_arn(str_at(e, "EventBusName")))
                .collect();
            buses.sort();
            buses.dedup();
            buses
                .into_iter()
                .map(|b| Authorization::new(&action, b))
                .collect()
        }
        "PutRule" | "DeleteRule" | "DescribeRule" | "EnableRule" | "DisableRule" => {
            match str_at(body, "Name") {
                Some(name) => vec![Authorization::new(&action, rule_arn(name, bus))],
                None => vec![Authorization::new(&action, "*")],
            }
        }
        "PutTargets" | "RemoveTargets" | "ListTargetsByRule" => {
            let Some(rule) = str_at(body, "Rule") else {
                return vec![Authorization::new(&action, "*")];
            };
            let mut out = vec![Authorization::new(&action, rule_arn(rule, bus))];
            // A target with a role: EventBridge needs iam:PassRole on it.
            let mut roles: Vec<&str> = body
                .get("Targets")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|t| str_at(t, "RoleArn"))
                .collect();
            roles.sort_unstable();
            roles.dedup();
            out.extend(roles.into_iter().map(|role| {
                Authorization::new("iam:PassRole", role)
                    .with("iam:PassedToService", "events.amazonaws.com")
            }));
            out
        }
        _ => vec![Authorization::new(&action, "*")],
    }
}

fn states(op: &str, body: &Value) -> Vec<Authorization> {
    let resource = [
        "executionArn",
        "stateMachineArn",
        "mapRunArn",
        "activityArn",
    ]
    .iter()
    .find_map(|k| str_at(body, k))
    .unwrap_or("*");
    vec![Authorization::new(format!("states:{op}"), resource)]
}

fn ssm(op: &str, body: &Value, arn: &Arns<'_>) -> Vec<Authorization> {
    let param = |name: &str| {
        if name.starts_with("arn:") {
            name.to_string()
        } else {
            // A hierarchical name keeps its leading '/': parameter/tradeflow/x.
            arn.arn(
                "ssm",
                &format!("parameter/{}", name.trim_start_matches('/')),
            )
        }
    };
    let action = format!("ssm:{op}");
    let mut names: Vec<&str> = str_at(body, "Name").into_iter().collect();
    names.extend(
        body.get("Names")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str),
    );
    if let Some(path) = str_at(body, "Path") {
        names.push(path);
    }
    if names.is_empty() {
        return vec![Authorization::new(action, "*")];
    }
    names
        .into_iter()
        .map(|n| Authorization::new(&action, param(n)))
        .collect()
}

fn secrets_manager(op: &str, body: &Value, arn: &Arns<'_>) -> Vec<Authorization> {
    let action = format!("secretsmanager:{op}");
    match str_at(body, "SecretId") {
        Some(id) if id.starts_with("arn:") => vec![Authorization::new(action, id)],
        // By name: IAM sees the full ARN, whose six-character suffix the caller does
        // not know here.
        Some(name) => vec![Authorization::new(
            action,
            arn.arn("secretsmanager", &format!("secret:{name}-??????")),
        )],
        None => vec![Authorization::new(action, "*")],
    }
}

fn bedrock(op: &str, uri: &str, arn: &Arns<'_>) -> Vec<Authorization> {
    let action = match op {
        "Converse" | "InvokeModel" => "bedrock:InvokeModel",
        "ConverseStream" | "InvokeModelWithResponseStream" => {
            "bedrock:InvokeModelWithResponseStream"
        }
        other => return vec![Authorization::new(format!("bedrock:{other}"), "*")],
    };
    let model = url::Url::parse(uri).ok().and_then(|u| {
        let segments: Vec<String> = u.path_segments()?.map(str::to_string).collect();
        let at = segments.iter().position(|s| s == "model")?;
        let raw = segments.get(at + 1)?;
        url::form_urlencoded::parse(format!("m={}", raw.replace('+', "%2B")).as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    });
    let resource = match model {
        None => "*".to_string(),
        Some(m) if m.starts_with("arn:") => m,
        // Cross-region inference profiles: "us.anthropic...", "eu.", "apac.", "global.".
        Some(m)
            if m.split('.')
                .next()
                .is_some_and(|p| matches!(p, "us" | "eu" | "apac" | "global" | "us-gov")) =>
        {
            arn.arn("bedrock", &format!("inference-profile/{m}"))
        }
        Some(m) => format!(
            "arn:{}:bedrock:{}::foundation-model/{m}",
            arn.partition, arn.region
        ),
    };
    vec![Authorization::new(action, resource)]
}

/// The interceptor. Cloned into every client it is attached to; all clones append to
/// the same file.
#[derive(Debug, Clone)]
pub struct CallRecorder {
    path: PathBuf,
    function: String,
    account: String,
}

impl CallRecorder {
    /// A recorder writing to `<dir>/<function>.jsonl`.
    pub fn new(dir: impl Into<PathBuf>, function: &str, account: &str) -> Self {
        Self {
            path: dir.into().join(format!("{function}.jsonl")),
            function: function.to_string(),
            account: account.to_string(),
        }
    }

    /// The recorder the environment asks for, if any: `TRADEFLOW_AWS_CALL_LOG` names a
    /// directory and the process is a Lambda function.
    pub fn from_env() -> Option<Self> {
        let dir = std::env::var(LOG_DIR_ENV).ok().filter(|d| !d.is_empty())?;
        let function = std::env::var("AWS_LAMBDA_FUNCTION_NAME")
            .ok()
            .filter(|f| !f.is_empty())?;
        let account = std::env::var(ACCOUNT_ENV).unwrap_or_default();
        Some(Self::new(dir, &function, &account))
    }

    fn append(&self, record: &CallRecord) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // One write per line on an O_APPEND file: concurrent instances of the same
        // function do not interleave.
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?
            .write_all(&line)
    }
}

/// The process-wide recorder (read from the environment once), or `None` when
/// recording is off.
pub fn recorder() -> Option<CallRecorder> {
    static RECORDER: OnceLock<Option<CallRecorder>> = OnceLock::new();
    RECORDER.get_or_init(CallRecorder::from_env).clone()
}

impl Intercept for CallRecorder {
    fn name(&self) -> &'static str {
        "TradeflowCallRecorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // One record per call, not per retry.
        if cfg
            .load::<RequestAttempts>()
            .is_some_and(|a| a.attempts() > 1)
        {
            return Ok(());
        }
        let Some(meta) = cfg.load::<Metadata>() else {
            return Ok(());
        };
        let region = cfg
            .load::<SigningRegion>()
            .map(|r| r.as_ref().to_string())
            .or_else(|| cfg.load::<Region>().map(|r| r.as_ref().to_string()))
            .unwrap_or_default();
        let request = context.request();
        let headers: Vec<(&str, &str)> = request.headers().iter().collect();
        let wire = WireRequest {
            sdk_service: meta.service(),
            operation: meta.name(),
            uri: request.uri(),
            headers: &headers,
            body: request.body().bytes().unwrap_or_default(),
            region: &region,
            account: &self.account,
        };
        let record = CallRecord {
            function: self.function.clone(),
            ..describe(&wire)
        };
        if let Err(e) = self.append(&record) {
            // Recording must never change what the function does.
            tracing::warn!(error = %e, path = %self.path.display(), "aws call record not written");
        }
        Ok(())
    }
}

/// Attaches the call recorder to an SDK client config builder when recording is on.
pub trait RecordCalls: Sized {
    #[must_use]
    fn record_calls(self) -> Self;
}

macro_rules! record_calls_for {
    ($($builder:ty),* $(,)?) => {$(
        impl RecordCalls for $builder {
            fn record_calls(self) -> Self {
                match recorder() {
                    Some(r) => self.interceptor(r),
                    None => self,
                }
            }
        }
    )*};
}

record_calls_for!(
    aws_sdk_dynamodb::config::Builder,
    aws_sdk_s3::config::Builder,
    aws_sdk_eventbridge::config::Builder,
    aws_sdk_sfn::config::Builder,
    aws_sdk_secretsmanager::config::Builder,
    aws_sdk_bedrockruntime::config::Builder,
    aws_sdk_ssm::config::Builder,
);

#[cfg(test)]
mod tests;
