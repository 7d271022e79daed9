//! Support for the integration tests: clients for the local stack started by
//! `localstack/up.sh` (LocalStack, whose Lambda runs the functions as local
//! processes, + the HTTP API front + the fake IBKR gateway).
//! The environment comes from `source localstack/env.sh`; without it the tests fail
//! with a message saying so, rather than skip.

use std::time::Duration;

use anyhow::{Context, bail};
use rust_decimal::Decimal;
use rust_decimal::prelude::FromPrimitive;
use serde_json::Value;
use tradeflow_adapters::Deps;
use tradeflow_adapters::schedules::Schedules;
use tradeflow_adapters::workflow::{self, Finished};
use tradeflow_core::analyst::rules_answer;
use tradeflow_core::indicators::{IndicatorSpec, compute_all};
use tradeflow_core::lineage::LineageRecord;
use tradeflow_core::market::Timeframe;
use tradeflow_core::signal::{Action, Signal, StructuredAnswer, from_structured};
use tradeflow_core::strategy::Strategy;
use tradeflow_core::synthetic::KNOWN_CONTRACTS;

pub struct Stack {
    pub deps: Deps,
    pub sfn: aws_sdk_sfn::Client,
    pub events: aws_sdk_eventbridge::Client,
    pub state_machine_arn: String,
}

impl Stack {
    /// Connects to the local stack.
    ///
    /// # Errors
    /// When the environment of `localstack/env.sh` is missing.
    pub async fn connect() -> anyhow::Result<Self> {
        if std::env::var("AWS_ENDPOINT_URL").is_err() {
            bail!("no local stack: run `localstack/up.sh && source localstack/env.sh` first");
        }
        let deps = Deps::from_env()
            .await
            .context("config from localstack/env.sh")?;
        let sdk = aws_config::load_from_env().await;
        let state_machine_arn = deps
            .config
            .state_machine_arn
            .clone()
            .context("STATE_MACHINE_ARN")?;
        Ok(Self {
            sfn: aws_sdk_sfn::Client::new(&sdk),
            events: aws_sdk_eventbridge::Client::new(&sdk),
            deps,
            state_machine_arn,
        })
    }

    pub fn schedules(&self) -> Schedules {
        Schedules {
            events: self.events.clone(),
            prefix: self.deps.config.rule_prefix.clone(),
            bus: self.deps.config.event_bus_name.clone(),
            state_machine_arn: self.state_machine_arn.clone(),
            role_arn: "arn:aws:iam::000000000000:role/tradeflow-local-lambda".into(),
        }
    }

    /// Stores a strategy.
    ///
    /// # Errors
    /// DynamoDB errors.
    pub async fn put_strategy(&self, s: &Strategy) -> anyhow::Result<()> {
        self.deps.store().put_strategy(s).await?;
        Ok(())
    }

    /// Starts an execution and waits for its end.
    ///
    /// # Errors
    /// Step Functions errors or a timeout.
    pub async fn run(&self, name: &str, input: &Value) -> anyhow::Result<Finished> {
        let arn = workflow::start(&self.sfn, &self.state_machine_arn, name, input).await?;
        Ok(workflow::wait(&self.sfn, &arn, Duration::from_secs(600)).await?)
    }

    /// Lineage of an execution, in step order.
    ///
    /// # Errors
    /// DynamoDB/S3 errors.
    pub async fn lineage(&self, execution_id: &str) -> anyhow::Result<Vec<LineageRecord>> {
        Ok(self.deps.lineage().for_execution(execution_id).await?)
    }
}

/// A synchronous invocation's outcome, as Lambda's Invoke API reports it.
#[derive(Debug)]
pub struct Invoked {
    /// HTTP status of the Invoke call (200 also for a function error).
    pub status: u16,
    /// `X-Amz-Function-Error` (`Unhandled`) when the function failed.
    pub function_error: Option<String>,
    /// The function's result, or its error document (`errorType`, `errorMessage`).
    pub payload: Value,
}

/// Invokes a function (RequestResponse) through the local stack's Lambda Invoke API,
/// the path Step Functions and EventBridge take: the function runs on the local
/// runtime with its Lambda configuration. The request is unsigned; LocalStack then
/// uses its default account and region, where `localstack/up.sh` provisions.
///
/// # Errors
/// Without `AWS_ENDPOINT_URL`, transport errors, or a body that is not JSON.
pub async fn invoke(function: &str, payload: &Value) -> anyhow::Result<Invoked> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL")
        .context("no local stack: run `localstack/up.sh && source localstack/env.sh` first")?;
    let r = reqwest::Client::new()
        .post(format!(
            "{}/2015-03-31/functions/{function}/invocations",
            endpoint.trim_end_matches('/')
        ))
        .json(payload)
        .timeout(Duration::from_secs(300))
        .send()
        .await
        .with_context(|| format!("invoke {function}"))?;
    let status = r.status().as_u16();
    let function_error = r
        .headers()
        .get("x-amz-function-error")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let payload = r
        .json()
        .await
        .with_context(|| format!("invoke {function}: result"))?;
    Ok(Invoked {
        status,
        function_error,
        payload,
    })
}

/// A unique suffix so repeated runs against one stack don't collide.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", chrono::Utc::now().format("%H%M%S%3f"))
}

/// An example strategy with the catalogue's default indicators.
///
/// # Panics
/// Never for the built-in JSON.
pub fn strategy(strategy_id: &str, conid: i64, symbol: &str) -> Strategy {
    serde_json::from_value(serde_json::json!({
        "strategy_id": strategy_id,
        "name": format!("integration {strategy_id}"),
        "conid": conid,
        "symbol": symbol,
        "risk": {"capital": "100000", "risk_per_trade": "0.01", "max_position_value": "25000",
                 "max_open_positions": 1, "daily_loss_limit": "2000", "min_confidence": 0.5},
        "dry_run": true
    }))
    .expect("valid strategy JSON")
}

/// The fake gateway's `/fake/*` control endpoints, found from `IBKR_BASE_URL` (the
/// same gateway the Lambdas talk to, whichever port this stack gave it).
#[derive(Clone)]
pub struct FakeIbkr {
    http: reqwest::Client,
    base: String,
}

impl FakeIbkr {
    /// The control client of the gateway at `ibkr_base_url` (`http://host:port/v1/api`).
    pub fn new(ibkr_base_url: &str) -> Self {
        let root = ibkr_base_url
            .trim_end_matches('/')
            .trim_end_matches("/v1/api");
        Self {
            http: reqwest::Client::new(),
            base: format!("{root}/fake"),
        }
    }

    /// The control client of the stack's gateway.
    pub fn of(stack: &Stack) -> Self {
        Self::new(&stack.deps.config.ibkr_base_url)
    }

    /// Clears every injected fault (`DELETE /fake/faults`).
    ///
    /// # Errors
    /// HTTP errors.
    pub async fn clear_faults(&self) -> anyhow::Result<()> {
        self.http
            .delete(format!("{}/faults", self.base))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// Calls a control endpoint.
    ///
    /// # Errors
    /// Transport errors or a non-2xx answer.
    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .with_context(|| format!("fake gateway {}{path}", self.base))?;
        let status = r.status();
        let v: Value = r.json().await?;
        if !status.is_success() {
            bail!("fake {path}: {status} {v}");
        }
        Ok(v)
    }

    /// Sets the market price of a contract (and optionally the quantity that fills per tick).
    ///
    /// # Errors
    /// See [`FakeIbkr::post`].
    pub async fn price(
        &self,
        conid: i64,
        price: rust_decimal::Decimal,
        liquidity: Option<rust_decimal::Decimal>,
    ) -> anyhow::Result<()> {
        self.post(
            "/price",
            serde_json::json!({"conid": conid, "price": price.to_string().parse::<f64>()?,
                   "liquidity": liquidity.map(|l| l.to_string().parse::<f64>()).transpose()?}),
        )
        .await?;
        Ok(())
    }

    /// Orders at the broker whose cOID is `coid`.
    ///
    /// # Errors
    /// Transport errors or an answer without `orders`.
    pub async fn orders_with_ref(&self, coid: &str) -> anyhow::Result<Vec<Value>> {
        let v: Value = self
            .http
            .get(format!("{}/orders", self.base))
            .timeout(Duration::from_secs(10))
            .send()
            .await?
            .json()
            .await?;
        Ok(v["orders"]
            .as_array()
            .context("orders")?
            .iter()
            .filter(|o| o["coid"] == coid)
            .cloned()
            .collect())
    }

    /// The commission the gateway reports for the order with cOID `coid`: the sum
    /// over its executions, as `/iserver/account/trades` lists them (read through
    /// the unpaced control endpoint, so the Lambdas' pacing budget is left alone).
    ///
    /// # Errors
    /// Transport errors, an answer without `executions`, an execution whose
    /// commission is not reported or not a decimal.
    pub async fn commission_of(&self, coid: &str) -> anyhow::Result<rust_decimal::Decimal> {
        let v: Value = self
            .http
            .get(format!("{}/executions", self.base))
            .timeout(Duration::from_secs(10))
            .send()
            .await?
            .json()
            .await?;
        let mut total = rust_decimal::Decimal::ZERO;
        for e in v["executions"]
            .as_array()
            .context("executions")?
            .iter()
            .filter(|e| e["order_ref"] == coid)
        {
            let c = e["commission"]
                .as_str()
                .with_context(|| format!("commission of {e}"))?;
            total += c.parse::<rust_decimal::Decimal>()?;
        }
        Ok(total)
    }

    /// Makes the next `count` requests whose path starts with `path` fail with `kind`
    /// (`status500`, `status503`, `garbage`, `delay`).
    ///
    /// # Errors
    /// See [`FakeIbkr::post`].
    pub async fn fault(&self, path: &str, kind: &str, count: u32) -> anyhow::Result<Value> {
        self.post(
            "/faults",
            serde_json::json!({"path": path, "kind": kind, "count": count}),
        )
        .await
    }

    /// Holds commissions back: new executions come without theirs (served as `""`)
    /// until [`FakeIbkr::report_commissions`] or the returned guard is dropped,
    /// which reports every held-back commission, also when the test panics.
    ///
    /// # Errors
    /// See [`FakeIbkr::post`].
    pub async fn hold_commissions(&self) -> anyhow::Result<PostOnDrop> {
        let guard = PostOnDrop {
            url: format!("{}/commissions", self.base),
            body: r#"{"reported":true}"#.into(),
        };
        self.post("/commissions", serde_json::json!({"reported": false}))
            .await?;
        Ok(guard)
    }

    /// Reports every commission held back so far, and the ones to come.
    ///
    /// # Errors
    /// See [`FakeIbkr::post`].
    pub async fn report_commissions(&self) -> anyhow::Result<()> {
        self.post("/commissions", serde_json::json!({"reported": true}))
            .await?;
        Ok(())
    }

    /// Makes the gateway ask these order questions even when suppressed, until the
    /// returned guard is dropped (also when the test panics).
    ///
    /// # Errors
    /// See [`FakeIbkr::post`].
    pub async fn ask_despite_suppression(
        &self,
        message_ids: &[&str],
    ) -> anyhow::Result<PostOnDrop> {
        let guard = PostOnDrop {
            url: format!("{}/questions", self.base),
            body: r#"{"unsuppressible":[]}"#.into(),
        };
        self.post(
            "/questions",
            serde_json::json!({ "unsuppressible": message_ids }),
        )
        .await?;
        Ok(guard)
    }

    /// The gateway's counters (`pacing_violations`, `interleaved_replies`, …).
    ///
    /// # Errors
    /// Transport errors or a non-JSON answer.
    pub async fn stats(&self) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(format!("{}/stats", self.base))
            .timeout(Duration::from_secs(10))
            .send()
            .await?
            .json()
            .await?)
    }

    /// Logs the gateway out (every `/v1/api` call answers 401) until the returned
    /// guard is dropped, which logs it back in, also when the test panics.
    ///
    /// # Errors
    /// See [`FakeIbkr::post`].
    pub async fn logout(&self) -> anyhow::Result<LoginOnDrop> {
        // The guard exists before the logout so that no path leaves it logged out.
        let guard = LoginOnDrop {
            url: format!("{}/login", self.base),
        };
        self.post("/logout", serde_json::json!({})).await?;
        Ok(guard)
    }
}

/// Logs the fake gateway back in when dropped (see [`FakeIbkr::logout`]).
pub struct LoginOnDrop {
    url: String,
}

impl LoginOnDrop {
    fn login(&self) -> anyhow::Result<()> {
        post_blocking(&self.url, "{}")
    }
}

/// Posts a control request to the fake gateway when dropped (see
/// [`FakeIbkr::hold_commissions`]).
pub struct PostOnDrop {
    url: String,
    body: String,
}

impl Drop for PostOnDrop {
    fn drop(&mut self) {
        if let Err(e) = post_blocking(&self.url, &self.body) {
            eprintln!("could not restore the fake gateway at {}: {e:#}", self.url);
        }
    }
}

/// A plain HTTP/1.0 POST over a std socket: `Drop` cannot await, and this also
/// runs while a panic unwinds inside the async runtime.
fn post_blocking(url: &str, body: &str) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let url = reqwest::Url::parse(url)?;
    let host = url.host_str().context("fake gateway host")?;
    let port = url.port_or_known_default().context("fake gateway port")?;
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))?
        .next()
        .context("fake gateway address")?;
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "POST {} HTTP/1.0\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        url.path(),
        body.len()
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    if !answer.starts_with("HTTP/1.0 200") && !answer.starts_with("HTTP/1.1 200") {
        bail!(
            "fake gateway {}: {}",
            url.path(),
            answer.lines().next().unwrap_or("")
        );
    }
    Ok(())
}

impl Drop for LoginOnDrop {
    fn drop(&mut self) {
        if let Err(e) = self.login() {
            // Nothing to return to from a drop; say it loudly for the next test's sake.
            eprintln!(
                "could not log the fake gateway back in at {}: {e:#}",
                self.url
            );
        }
    }
}

/// Serialises the tests of one test binary that change or depend on the fake
/// gateway's global state (login, faults on a path). Test binaries run one after
/// another, so a process-wide lock is enough.
pub async fn gateway_lock() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// A strategy setup that the rules analyst reads as BUY today, found the way the
/// workflow computes it (same bars from the gateway, same indicators, same analyst).
pub struct BuySetup {
    pub conid: i64,
    pub symbol: &'static str,
    pub indicators: Vec<IndicatorSpec>,
    pub signal: Signal,
    pub close: Decimal,
}

/// # Errors
/// Gateway errors.
pub async fn buy_setups(stack: &Stack) -> anyhow::Result<Vec<BuySetup>> {
    let ibkr = stack.deps.ibkr()?;
    let mut out = Vec::new();
    for &(conid, symbol, _, _) in KNOWN_CONTRACTS {
        let bars = ibkr.bars(conid, Timeframe::Daily, 500).await?;
        let close = bars.last().context("no bars")?.close;
        'periods: for sma in [20, 10, 50, 5, 100, 200] {
            for rsi in [14, 30] {
                let indicators = vec![
                    IndicatorSpec::Sma { period: sma },
                    IndicatorSpec::Rsi { period: rsi },
                    IndicatorSpec::Atr { period: 14 },
                ];
                let latest = compute_all(&indicators, &bars)?
                    .iter()
                    .filter_map(|s| Some((s.name.clone(), s.latest()?)))
                    .collect();
                let answer: StructuredAnswer = serde_json::from_str(&rules_answer(close, &latest))?;
                let signal = from_structured(&answer, close);
                if signal.action == Action::Buy {
                    out.push(BuySetup {
                        conid,
                        symbol,
                        indicators,
                        signal,
                        close: Decimal::from_f64(close).context("close")?.round_dp(2),
                    });
                    break 'periods;
                }
            }
        }
    }
    Ok(out)
}

/// A live (not dry-run) strategy on a setup.
pub fn live_strategy(id: &str, setup: &BuySetup) -> Strategy {
    let mut s = strategy(id, setup.conid, setup.symbol);
    s.dry_run = false;
    s.indicators = setup.indicators.clone();
    s.bars = 500;
    s
}
