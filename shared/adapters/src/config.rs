//! Configuration from the environment, read once per cold start. Each function reads
//! only the variables its entry in [`FUNCTIONS`] names; `infra/resources.json` gives
//! each deployed function those names, and `tests/env_contract.rs` checks the
//! synthesized template against this list. On AWS the gateway's URL and account come
//! from SSM parameters (read once per container) and are refused when they point at
//! a loopback address or the fake gateway's account.

use std::env;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {message}")]
    Invalid { name: &'static str, message: String },
    #[error("function {0} has no entry in the configuration contract (config::FUNCTIONS)")]
    UnknownFunction(String),
    #[error("SSM parameter {parameter} could not be read")]
    Parameter {
        parameter: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("secret {secret} could not be read: {message}")]
    Secret { secret: String, message: String },
    #[error("refusing the IBKR gateway configuration on AWS: {0}")]
    Gateway(String),
}

/// A secret from the environment. Its `Debug` never shows the value.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// The IBKR gateway: where it is (deployed: the SSM parameters' names; local stack:
/// the plain values), how its certificate is verified, which order questions are
/// confirmed, and the table of the gateway-wide discipline.
const IBKR: &[&str] = &[
    "IBKR_BASE_URL_PARAMETER",
    "IBKR_ACCOUNT_ID_PARAMETER",
    "IBKR_BASE_URL",
    "IBKR_ACCOUNT_ID",
    "IBKR_ALLOW_SELF_SIGNED",
    "IBKR_TLS_CERT_SHA256",
    "IBKR_TLS_CA_PEM",
    "IBKR_CONFIRM_MESSAGE_IDS",
    "IBKR_SUPPRESS_QUESTIONS",
    "GATEWAY_TABLE",
];
/// Every workflow step: its lineage item, and the bucket a large payload spills to.
const STEP: &[&str] = &["LINEAGE_TABLE", "CHARTS_BUCKET"];
/// The order path's books and how often it polls the broker (place and check).
const ORDERS: &[&str] = &[
    "ORDERS_TABLE",
    "POSITIONS_TABLE",
    "TRADES_TABLE",
    "ORDER_POLL_SECONDS",
];

/// What one function reads from its environment (besides [`RUNTIME`]).
#[derive(Debug)]
pub struct FunctionEnv {
    /// The function's name, as in `infra/resources.json`.
    pub function: &'static str,
    reads: &'static [&'static [&'static str]],
}

impl FunctionEnv {
    /// Returns the variable names the function reads, sorted.
    #[must_use]
    pub fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> =
            self.reads.iter().flat_map(|g| g.iter().copied()).collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

/// Every function's reads: the code's side of the configuration contract.
pub const FUNCTIONS: &[FunctionEnv] = &[
    FunctionEnv {
        function: "load-strategy",
        reads: &[
            STEP,
            &[
                "STRATEGIES_TABLE",
                "TICKS_TABLE",
                "EXECUTIONS_TABLE",
                "RULE_PREFIX",
            ],
        ],
    },
    FunctionEnv {
        function: "fetch-market-data",
        reads: &[STEP, IBKR],
    },
    FunctionEnv {
        function: "compute-indicators",
        reads: &[STEP],
    },
    FunctionEnv {
        function: "render-charts",
        reads: &[STEP],
    },
    FunctionEnv {
        function: "analyze-chart",
        reads: &[
            STEP,
            &[
                "PROMPTS_TABLE",
                "POSITIONS_TABLE",
                "LLM_API_KEY_SECRET_ARN",
                "OPENAI_BASE_URL",
                "OPENAI_API_KEY",
            ],
        ],
    },
    FunctionEnv {
        function: "parse-signal",
        reads: &[STEP],
    },
    FunctionEnv {
        function: "place-order",
        reads: &[STEP, IBKR, ORDERS],
    },
    FunctionEnv {
        function: "check-order",
        reads: &[STEP, IBKR, ORDERS, &["ORDER_MAX_POLLS", "EVENT_BUS_NAME"]],
    },
    FunctionEnv {
        function: "update-portfolio",
        reads: &[
            STEP,
            IBKR,
            &[
                "POSITIONS_TABLE",
                "TRADES_TABLE",
                "PORTFOLIO_TABLE",
                "EVENT_BUS_NAME",
            ],
        ],
    },
    FunctionEnv {
        function: "record-execution",
        reads: &[STEP, &["EXECUTIONS_TABLE"]],
    },
    FunctionEnv {
        function: "record-failure",
        reads: &[STEP, &["EXECUTIONS_TABLE", "RULE_PREFIX"]],
    },
    FunctionEnv {
        function: "session-keepalive",
        // The brokerage session's state is an item in the symbols table.
        reads: &[IBKR, &["SYMBOLS_TABLE"]],
    },
    FunctionEnv {
        function: "position-monitor",
        reads: &[
            STEP,
            IBKR,
            &[
                "STRATEGIES_TABLE",
                "POSITIONS_TABLE",
                "ORDERS_TABLE",
                "TRADES_TABLE",
                "EVENT_BUS_NAME",
            ],
        ],
    },
    FunctionEnv {
        function: "api",
        reads: &[
            IBKR,
            &[
                "CHARTS_BUCKET",
                "STRATEGIES_TABLE",
                "TICKS_TABLE",
                "EXECUTIONS_TABLE",
                "LINEAGE_TABLE",
                "ORDERS_TABLE",
                "POSITIONS_TABLE",
                "TRADES_TABLE",
                "PORTFOLIO_TABLE",
                "SYMBOLS_TABLE",
                "PROMPTS_TABLE",
                "RULE_PREFIX",
                "EVENT_BUS_NAME",
                "STATE_MACHINE_ARN",
                "EVENTS_ROLE_ARN",
                "API_KEY_SECRET_ARN",
            ],
        ],
    },
];

/// Returns the contract entry of `function`, if it has one.
#[must_use]
pub fn function_env(function: &str) -> Option<&'static FunctionEnv> {
    FUNCTIONS.iter().find(|f| f.function == function)
}

/// Read by every function and set by the Lambda runtime, never by the template.
/// `AWS_ENDPOINT_URL` is set only by a local emulator's Lambda (LocalStack passes its
/// own endpoint): unset on AWS, which is how a function knows it runs there.
pub const RUNTIME: &[&str] = &["AWS_LAMBDA_FUNCTION_NAME", "AWS_ENDPOINT_URL"];

/// Variables with a default that is safe on AWS, and that default: the template may
/// leave them unset.
pub const SAFE_DEFAULTS: &[(&str, &str)] = &[
    ("IBKR_ALLOW_SELF_SIGNED", "false"),
    (
        "IBKR_TLS_CERT_SHA256",
        "unset: the certificate must chain to a public CA",
    ),
    (
        "IBKR_TLS_CA_PEM",
        "unset: the certificate must chain to a public CA",
    ),
    ("IBKR_CONFIRM_MESSAGE_IDS", "ibkr::DEFAULT_CONFIRM_IDS"),
    ("IBKR_SUPPRESS_QUESTIONS", "true"),
    ("ORDER_POLL_SECONDS", "5"),
    ("ORDER_MAX_POLLS", "60"),
    ("RULE_PREFIX", "tradeflow-"),
    ("EVENT_BUS_NAME", "default"),
    (
        "OPENAI_BASE_URL",
        "the strategy's base_url, else OpenAI's public endpoint",
    ),
];

/// Read only where the template must never set them: the local stack's plain gateway
/// URL and account (a deployed function reads the SSM parameters named by
/// `IBKR_BASE_URL_PARAMETER`/`IBKR_ACCOUNT_ID_PARAMETER` instead) and a plaintext LLM
/// key for development (deployed: `LLM_API_KEY_SECRET_ARN`).
pub const LOCAL_ONLY: &[&str] = &["IBKR_BASE_URL", "IBKR_ACCOUNT_ID", "OPENAI_API_KEY"];

/// The gateway's default address (Client Portal Gateway's own default port).
const DEFAULT_GATEWAY_URL: &str = "https://localhost:5000/v1/api";
/// The fake gateway's paper account (localstack/fake-ibkr): never a real one.
pub const FAKE_ACCOUNT_ID: &str = "DU1234567";

#[derive(Debug, Clone)]
pub struct Tables {
    pub strategies: String,
    pub ticks: String,
    pub executions: String,
    pub lineage: String,
    pub orders: String,
    pub positions: String,
    pub trades: String,
    pub portfolio: String,
    pub symbols: String,
    pub prompts: String,
    /// The gateway-wide discipline's state (pacing slots, requests in flight, the
    /// order window): see `lease::DynamoDiscipline`.
    pub gateway: String,
}

/// The SSM parameters holding the gateway's URL and account (deployed stacks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayParameters {
    pub base_url: String,
    pub account_id: String,
}

/// A function's configuration. A table or bucket the function does not read (see
/// [`FUNCTIONS`]) is an empty name, which every AWS call refuses.
#[derive(Debug, Clone)]
pub struct Config {
    pub tables: Tables,
    pub charts_bucket: String,
    /// The function reads the IBKR settings.
    pub uses_ibkr: bool,
    /// Where the deployed gateway's URL and account live; when set, `Deps` reads them
    /// into `ibkr_base_url` and `ibkr_account_id` at init.
    pub ibkr_parameters: Option<GatewayParameters>,
    pub ibkr_base_url: String,
    pub ibkr_account_id: String,
    /// Accept any gateway certificate: refused unless the gateway is on this host.
    pub ibkr_allow_self_signed: bool,
    /// PEM CA certificate(s) the gateway's certificate must chain to.
    pub ibkr_tls_ca_pem: Option<String>,
    /// SHA-256 of the gateway's own certificate (hex, `:` allowed).
    pub ibkr_tls_cert_sha256: Option<String>,
    /// Order question ids the deployment confirms (and suppresses per session).
    pub ibkr_confirm_message_ids: Vec<String>,
    /// Suppress those questions for the brokerage session before ordering.
    pub ibkr_suppress_questions: bool,
    pub openai_base_url: Option<String>,
    pub openai_api_key: Secret,
    /// Secrets Manager secret holding the LLM API key (deployed stacks), read when
    /// `OPENAI_API_KEY` is empty.
    pub llm_api_key_secret_arn: Option<String>,
    /// Secrets Manager secret holding the API's key (the api function only).
    pub api_key_secret_arn: Option<String>,
    /// Role EventBridge assumes to start the state machine (the api function only).
    pub events_role_arn: Option<String>,
    pub order_poll_seconds: u32,
    pub order_max_polls: u32,
    pub rule_prefix: String,
    pub event_bus_name: String,
    pub state_machine_arn: Option<String>,
    /// True when `AWS_ENDPOINT_URL` points at an emulator (S3 then needs path-style).
    pub local_endpoint: bool,
    /// True in a Lambda function on AWS: `AWS_LAMBDA_FUNCTION_NAME` set and no
    /// emulator endpoint (`AWS_ENDPOINT_URL` unset).
    pub on_aws: bool,
}

/// Reads variables for one function: a name it does not declare reads as unset.
struct Env<'a> {
    declared: Option<Vec<&'static str>>,
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Env<'_> {
    fn declares(&self, name: &str) -> bool {
        self.declared.as_ref().is_none_or(|d| d.contains(&name))
    }

    fn get(&self, name: &'static str) -> Option<String> {
        if self.declares(name) {
            (self.lookup)(name)
        } else {
            None
        }
    }

    fn nonempty(&self, name: &'static str) -> Option<String> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// A name the function must be given; empty when it does not read it.
    fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        if !self.declares(name) {
            return Ok(String::new());
        }
        self.get(name).ok_or(ConfigError::Missing(name))
    }

    fn or(&self, name: &'static str, default: &str) -> String {
        self.get(name).unwrap_or_else(|| default.to_string())
    }

    fn parse<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: &str,
    ) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        self.or(name, default)
            .parse()
            .map_err(|e: T::Err| ConfigError::Invalid {
                name,
                message: e.to_string(),
            })
    }
}

/// An IBKR order question id: `o` or `p` and digits (`o354`, `p12`).
pub fn is_message_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some('o' | 'p')) && id.len() > 1 && chars.all(|c| c.is_ascii_digit())
}

fn message_ids(list: &str) -> Result<Vec<String>, ConfigError> {
    let ids: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    match ids
        .iter()
        .find(|id| !tradeflow_core::strategy::is_message_id(id))
    {
        Some(bad) => Err(ConfigError::Invalid {
            name: "IBKR_CONFIRM_MESSAGE_IDS",
            message: format!("{bad} is not an IBKR message id such as o354"),
        }),
        None => Ok(ids),
    }
}

fn process_env(name: &str) -> Option<String> {
    env::var(name).ok()
}

impl Config {
    /// Reads every variable any function reads: for tools and tests, not functions.
    ///
    /// # Errors
    /// A missing table or bucket name, or an unparsable number.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(None, &process_env)
    }

    /// Reads the variables `function` declares in [`FUNCTIONS`], and only those.
    ///
    /// # Errors
    /// An unknown function, a declared name that is not set, or an invalid value.
    pub fn for_function(function: &str) -> Result<Self, ConfigError> {
        Self::from_lookup(function, &process_env)
    }

    /// As [`Config::for_function`], with variables from `lookup` instead of the
    /// process environment.
    ///
    /// # Errors
    /// As [`Config::for_function`].
    pub fn from_lookup(
        function: &str,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let entry =
            function_env(function).ok_or_else(|| ConfigError::UnknownFunction(function.into()))?;
        Self::read(Some(entry.names()), lookup)
    }

    fn read(
        declared: Option<Vec<&'static str>>,
        lookup: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let env = Env { declared, lookup };
        let runtime = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let local_endpoint = runtime("AWS_ENDPOINT_URL").is_some();
        let uses_ibkr = env.declares("IBKR_BASE_URL_PARAMETER");
        let ibkr_parameters = match (
            env.nonempty("IBKR_BASE_URL_PARAMETER"),
            env.nonempty("IBKR_ACCOUNT_ID_PARAMETER"),
        ) {
            (Some(base_url), Some(account_id)) => Some(GatewayParameters {
                base_url,
                account_id,
            }),
            (None, None) => None,
            (Some(_), None) => return Err(ConfigError::Missing("IBKR_ACCOUNT_ID_PARAMETER")),
            (None, Some(_)) => return Err(ConfigError::Missing("IBKR_BASE_URL_PARAMETER")),
        };
        let (ibkr_base_url, ibkr_account_id) = if uses_ibkr && ibkr_parameters.is_none() {
            (
                env.or("IBKR_BASE_URL", DEFAULT_GATEWAY_URL),
                env.or("IBKR_ACCOUNT_ID", ""),
            )
        } else {
            (String::new(), String::new())
        };
        Ok(Self {
            tables: Tables {
                strategies: env.required("STRATEGIES_TABLE")?,
                ticks: env.required("TICKS_TABLE")?,
                executions: env.required("EXECUTIONS_TABLE")?,
                lineage: env.required("LINEAGE_TABLE")?,
                orders: env.required("ORDERS_TABLE")?,
                positions: env.required("POSITIONS_TABLE")?,
                trades: env.required("TRADES_TABLE")?,
                portfolio: env.required("PORTFOLIO_TABLE")?,
                symbols: env.required("SYMBOLS_TABLE")?,
                prompts: env.required("PROMPTS_TABLE")?,
                gateway: env.required("GATEWAY_TABLE")?,
            },
            charts_bucket: env.required("CHARTS_BUCKET")?,
            uses_ibkr,
            ibkr_parameters,
            ibkr_base_url,
            ibkr_account_id,
            ibkr_allow_self_signed: env.parse("IBKR_ALLOW_SELF_SIGNED", "false")?,
            ibkr_tls_ca_pem: env.nonempty("IBKR_TLS_CA_PEM"),
            ibkr_tls_cert_sha256: env.nonempty("IBKR_TLS_CERT_SHA256"),
            ibkr_confirm_message_ids: message_ids(&env.or(
                "IBKR_CONFIRM_MESSAGE_IDS",
                &crate::ibkr::DEFAULT_CONFIRM_IDS.join(","),
            ))?,
            ibkr_suppress_questions: env.parse("IBKR_SUPPRESS_QUESTIONS", "true")?,
            openai_base_url: env.nonempty("OPENAI_BASE_URL"),
            openai_api_key: Secret::new(env.or("OPENAI_API_KEY", "")),
            llm_api_key_secret_arn: env.nonempty("LLM_API_KEY_SECRET_ARN"),
            api_key_secret_arn: env.nonempty("API_KEY_SECRET_ARN"),
            events_role_arn: env.nonempty("EVENTS_ROLE_ARN"),
            order_poll_seconds: env.parse("ORDER_POLL_SECONDS", "5")?,
            order_max_polls: env.parse("ORDER_MAX_POLLS", "60")?,
            rule_prefix: env.or("RULE_PREFIX", "tradeflow-"),
            event_bus_name: env.or("EVENT_BUS_NAME", "default"),
            state_machine_arn: env.nonempty("STATE_MACHINE_ARN"),
            local_endpoint,
            on_aws: runtime("AWS_LAMBDA_FUNCTION_NAME").is_some() && !local_endpoint,
        })
    }

    /// Reads the gateway's URL and account from their SSM parameters, when the
    /// function is given their names (deployed stacks). Called once per cold start,
    /// so the values are kept for the container's life.
    ///
    /// # Errors
    /// A parameter that cannot be read.
    pub async fn resolve_gateway(&mut self, ssm: &aws_sdk_ssm::Client) -> Result<(), ConfigError> {
        let Some(p) = self.ibkr_parameters.clone() else {
            return Ok(());
        };
        self.ibkr_base_url = parameter(ssm, &p.base_url).await?;
        self.ibkr_account_id = parameter(ssm, &p.account_id).await?;
        Ok(())
    }

    /// Refuses, in a function on AWS, a gateway this configuration must never reach
    /// there (see [`check_deployed_gateway`]); anywhere else it accepts everything.
    ///
    /// # Errors
    /// `Gateway`, saying what is wrong and where the value came from.
    pub fn check_gateway(&self) -> Result<(), ConfigError> {
        if !(self.on_aws && self.uses_ibkr) {
            return Ok(());
        }
        let (url_from, account_from) = match &self.ibkr_parameters {
            Some(p) => (
                format!("SSM parameter {}", p.base_url),
                format!("SSM parameter {}", p.account_id),
            ),
            None => ("IBKR_BASE_URL".into(), "IBKR_ACCOUNT_ID".into()),
        };
        check_deployed_gateway(&self.ibkr_base_url, &self.ibkr_account_id)
            .map_err(|e| ConfigError::Gateway(e.describe(&url_from, &account_from)))
    }
}

async fn parameter(ssm: &aws_sdk_ssm::Client, name: &str) -> Result<String, ConfigError> {
    let out = ssm
        .get_parameter()
        .name(name)
        .send()
        .await
        .map_err(|e| ConfigError::Parameter {
            parameter: name.to_string(),
            source: Box::new(e),
        })?;
    out.parameter()
        .and_then(|p| p.value())
        .map(|v| v.trim().to_string())
        .ok_or_else(|| ConfigError::Parameter {
            parameter: name.to_string(),
            source: "the parameter has no value".into(),
        })
}

/// Reads a secret's string from Secrets Manager (for example the API's key).
///
/// # Errors
/// `Secret` when it cannot be read or is empty.
pub async fn read_secret(
    client: &aws_sdk_secretsmanager::Client,
    secret_id: &str,
) -> Result<Secret, ConfigError> {
    let fail = |message: String| ConfigError::Secret {
        secret: secret_id.to_string(),
        message,
    };
    let out = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| fail(aws_sdk_secretsmanager::error::DisplayErrorContext(&e).to_string()))?;
    let value = out.secret_string().map(str::trim).unwrap_or_default();
    if value.is_empty() {
        return Err(fail("the secret has no string value".into()));
    }
    Ok(Secret::new(value))
}

/// Why a gateway setting is refused on AWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GatewayRefusal {
    /// The URL does not parse or has no host.
    InvalidUrl(String),
    /// The URL's host is this machine (a loopback or unspecified address, localhost).
    Loopback(String),
    /// The URL's host is a reserved placeholder (`*.invalid`): never configured.
    Placeholder(String),
    /// The fake gateway's paper account.
    FakeAccount,
    /// No account, or something that is not an IBKR account id (letters, then digits).
    NotAnAccount,
}

impl GatewayRefusal {
    fn describe(&self, url_from: &str, account_from: &str) -> String {
        match self {
            Self::InvalidUrl(url) => format!("{url_from} is not a gateway URL: {url}"),
            Self::Loopback(host) => format!(
                "{url_from} points at {host}, this machine: a deployed function must call the gateway host, not a loopback address"
            ),
            Self::Placeholder(host) => format!(
                "{url_from} is the placeholder {host}: set it to the gateway host's URL (cdk -c ibkrBaseUrl=...)"
            ),
            Self::FakeAccount => format!(
                "{account_from} is {FAKE_ACCOUNT_ID}, the fake gateway's account: set the real account id (cdk -c ibkrAccountId=...)"
            ),
            Self::NotAnAccount => format!(
                "{account_from} does not hold an IBKR account id (such as U1234567): set it (cdk -c ibkrAccountId=...)"
            ),
        }
    }
}

/// The rules for a gateway configuration on AWS: a gateway URL whose host is not this
/// machine nor a placeholder, and a real-looking account that is not the fake's.
///
/// # Errors
/// The first rule broken.
pub fn check_deployed_gateway(base_url: &str, account_id: &str) -> Result<(), GatewayRefusal> {
    let url = url::Url::parse(base_url).map_err(|_| GatewayRefusal::InvalidUrl(base_url.into()))?;
    let host = url
        .host()
        .ok_or_else(|| GatewayRefusal::InvalidUrl(base_url.into()))?;
    let loopback = match &host {
        url::Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        url::Host::Ipv4(ip) => ip.is_loopback() || ip.is_unspecified(),
        url::Host::Ipv6(ip) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || ip
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_loopback() || v4.is_unspecified())
        }
    };
    if loopback {
        return Err(GatewayRefusal::Loopback(host.to_string()));
    }
    if let url::Host::Domain(d) = &host
        && (d.eq_ignore_ascii_case("invalid") || d.to_ascii_lowercase().ends_with(".invalid"))
    {
        return Err(GatewayRefusal::Placeholder(host.to_string()));
    }
    if account_id == FAKE_ACCOUNT_ID {
        return Err(GatewayRefusal::FakeAccount);
    }
    let letters = account_id
        .chars()
        .take_while(char::is_ascii_uppercase)
        .count();
    let digits = &account_id[letters..];
    if letters == 0 || digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(GatewayRefusal::NotAnAccount);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rstest::rstest;

    use super::*;

    fn lookup<'a>(vars: &'a HashMap<&'a str, String>) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.get(name).cloned()
    }

    /// What a function's template entry would set: every name it reads that is
    /// neither local-only nor defaulted, plus the Lambda runtime's name.
    fn deployed_env(function: &str) -> HashMap<&'static str, String> {
        let mut vars: HashMap<&'static str, String> = function_env(function)
            .unwrap()
            .names()
            .into_iter()
            .filter(|n| !LOCAL_ONLY.contains(n) && !SAFE_DEFAULTS.iter().any(|(d, _)| d == n))
            .map(|n| (n, format!("value-of-{n}")))
            .collect();
        vars.insert("AWS_LAMBDA_FUNCTION_NAME", function.to_string());
        vars
    }

    #[test]
    fn confirm_ids_must_look_like_ibkr_message_ids() {
        assert_eq!(
            message_ids(" o354, o10151 ,p12,").unwrap(),
            ["o354", "o10151", "p12"]
        );
        assert!(matches!(
            message_ids("o354,market"),
            Err(ConfigError::Invalid {
                name: "IBKR_CONFIRM_MESSAGE_IDS",
                ..
            })
        ));
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("sk-live-123");

        assert_eq!(format!("{s:?}"), "***");
        assert_eq!(s.expose(), "sk-live-123");
    }

    #[test]
    fn every_function_starts_with_what_its_template_entry_sets() {
        for f in FUNCTIONS {
            let vars = deployed_env(f.function);

            let config = Config::from_lookup(f.function, &lookup(&vars));

            let config = config.unwrap_or_else(|e| panic!("{}: {e}", f.function));
            assert!(config.on_aws, "{}", f.function);
            assert_eq!(config.uses_ibkr, config.ibkr_parameters.is_some());
        }
    }

    #[test]
    fn a_declared_variable_left_unset_stops_the_function_at_init() {
        let mut vars = deployed_env("place-order");
        vars.remove("ORDERS_TABLE");

        let err = Config::from_lookup("place-order", &lookup(&vars)).unwrap_err();

        assert!(matches!(err, ConfigError::Missing("ORDERS_TABLE")), "{err}");
    }

    #[test]
    fn a_function_never_sees_a_variable_it_does_not_declare() {
        let mut vars = deployed_env("compute-indicators");
        vars.insert("ORDERS_TABLE", "tradeflow-orders".into());
        vars.insert("IBKR_BASE_URL", "https://gw.example:5000/v1/api".into());

        let config = Config::from_lookup("compute-indicators", &lookup(&vars)).unwrap();

        assert_eq!(config.tables.orders, "");
        assert_eq!(config.ibkr_base_url, "");
        assert!(!config.uses_ibkr);
    }

    #[test]
    fn an_unknown_function_has_no_configuration() {
        let vars = HashMap::new();

        let err = Config::from_lookup("no-such-function", &lookup(&vars)).unwrap_err();

        assert!(matches!(err, ConfigError::UnknownFunction(_)));
    }

    #[test]
    fn one_gateway_parameter_without_the_other_is_missing() {
        let mut vars = deployed_env("session-keepalive");
        vars.remove("IBKR_ACCOUNT_ID_PARAMETER");

        let err = Config::from_lookup("session-keepalive", &lookup(&vars)).unwrap_err();

        assert!(matches!(
            err,
            ConfigError::Missing("IBKR_ACCOUNT_ID_PARAMETER")
        ));
    }

    #[rstest]
    #[case::loopback_v4("http://127.0.0.1:5001/v1/api", "U1234567")]
    #[case::loopback_v4_range("https://127.8.9.10/v1/api", "U1234567")]
    #[case::localhost("https://localhost:5000/v1/api", "U1234567")]
    #[case::localhost_dot("https://LocalHost.:5000/v1/api", "U1234567")]
    #[case::sub_localhost("https://gw.localhost:5000/v1/api", "U1234567")]
    #[case::loopback_v6("https://[::1]:5000/v1/api", "U1234567")]
    #[case::mapped_v6("https://[::ffff:127.0.0.1]:5000/v1/api", "U1234567")]
    #[case::unspecified("https://0.0.0.0:5000/v1/api", "U1234567")]
    #[case::placeholder("https://ibkr-gateway.invalid:5000/v1/api", "U1234567")]
    #[case::not_a_url("gateway:5000", "U1234567")]
    #[case::fake_account("https://gw.internal:5000/v1/api", "DU1234567")]
    #[case::no_account("https://gw.internal:5000/v1/api", "")]
    #[case::placeholder_account("https://gw.internal:5000/v1/api", "not-configured")]
    #[case::digits_only("https://gw.internal:5000/v1/api", "1234567")]
    fn on_aws_a_loopback_gateway_or_the_fake_account_is_refused(
        #[case] url: &str,
        #[case] account: &str,
    ) {
        assert!(
            check_deployed_gateway(url, account).is_err(),
            "{url} {account}"
        );
    }

    #[rstest]
    #[case("https://10.0.1.17:5000/v1/api", "U1234567")]
    #[case("https://gateway.internal:5000/v1/api", "DU7654321")]
    #[case("https://ibkr.example.com/v1/api", "F1234567")]
    fn on_aws_a_gateway_host_and_a_real_account_are_accepted(
        #[case] url: &str,
        #[case] account: &str,
    ) {
        assert_eq!(check_deployed_gateway(url, account), Ok(()));
    }

    fn ibkr_config(env: &[(&'static str, &str)]) -> Config {
        let vars: HashMap<&str, String> = env.iter().map(|(k, v)| (*k, v.to_string())).collect();
        let mut all = deployed_env("session-keepalive");
        all.remove("IBKR_BASE_URL_PARAMETER");
        all.remove("IBKR_ACCOUNT_ID_PARAMETER");
        all.remove("AWS_LAMBDA_FUNCTION_NAME");
        all.extend(vars);
        Config::from_lookup("session-keepalive", &lookup(&all)).unwrap()
    }

    #[test]
    fn a_function_on_aws_refuses_the_local_stacks_gateway_with_a_clear_error() {
        let config = ibkr_config(&[
            ("AWS_LAMBDA_FUNCTION_NAME", "session-keepalive"),
            ("IBKR_BASE_URL", "http://127.0.0.1:5001/v1/api"),
            ("IBKR_ACCOUNT_ID", "DU1234567"),
        ]);

        let err = config.check_gateway().unwrap_err().to_string();

        assert!(err.contains("IBKR_BASE_URL points at 127.0.0.1"), "{err}");
    }

    #[test]
    fn the_fake_account_from_ssm_is_refused_on_aws_naming_the_parameter() {
        let mut config = ibkr_config(&[("AWS_LAMBDA_FUNCTION_NAME", "session-keepalive")]);
        config.ibkr_parameters = Some(GatewayParameters {
            base_url: "/tradeflow/ibkr-base-url".into(),
            account_id: "/tradeflow/ibkr-account-id".into(),
        });
        config.ibkr_base_url = "https://gateway.internal:5000/v1/api".into();
        config.ibkr_account_id = FAKE_ACCOUNT_ID.into();

        let err = config.check_gateway().unwrap_err().to_string();

        assert!(
            err.contains("SSM parameter /tradeflow/ibkr-account-id is DU1234567"),
            "{err}"
        );
    }

    #[rstest]
    #[case::emulator_endpoint(&[("AWS_LAMBDA_FUNCTION_NAME", "session-keepalive"), ("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")])]
    #[case::not_in_lambda(&[])]
    fn the_local_stack_may_use_a_loopback_gateway_and_the_fake_account(
        #[case] runtime: &[(&'static str, &str)],
    ) {
        let mut env = runtime.to_vec();
        env.push(("IBKR_BASE_URL", "http://127.0.0.1:5001/v1/api"));
        env.push(("IBKR_ACCOUNT_ID", "DU1234567"));
        let config = ibkr_config(&env);

        assert!(!config.on_aws);
        assert!(config.check_gateway().is_ok());
    }
}
