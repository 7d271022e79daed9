//! Configuration from the environment, read once per cold start. The names are the
//! ones in `infra/resources.json`, which the CDK app and the local stack both use.

use std::env;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {message}")]
    Invalid { name: &'static str, message: String },
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

#[derive(Debug, Clone)]
pub struct Config {
    pub tables: Tables,
    pub charts_bucket: String,
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
    pub llm_provider: String,
    pub openai_base_url: Option<String>,
    pub openai_api_key: Secret,
    /// Secrets Manager secret holding the LLM API key (deployed stacks), read when
    /// `OPENAI_API_KEY` is empty.
    pub llm_api_key_secret_arn: Option<String>,
    pub order_poll_seconds: u32,
    pub order_max_polls: u32,
    pub rule_prefix: String,
    pub event_bus_name: String,
    pub state_machine_arn: Option<String>,
    /// True when `AWS_ENDPOINT_URL` points at an emulator (S3 then needs path-style).
    pub local_endpoint: bool,
}

fn var(name: &'static str) -> Result<String, ConfigError> {
    env::var(name).map_err(|_| ConfigError::Missing(name))
}

fn var_or(name: &'static str, default: &str) -> String {
    env::var(name).unwrap_or_else(|_| default.to_string())
}

fn parse<T: std::str::FromStr>(name: &'static str, default: &str) -> Result<T, ConfigError>
where
    T::Err: std::fmt::Display,
{
    var_or(name, default)
        .parse()
        .map_err(|e: T::Err| ConfigError::Invalid {
            name,
            message: e.to_string(),
        })
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

impl Config {
    /// Reads the configuration.
    ///
    /// # Errors
    /// A missing table or bucket name, or an unparsable number.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            tables: Tables {
                strategies: var("STRATEGIES_TABLE")?,
                ticks: var("TICKS_TABLE")?,
                executions: var("EXECUTIONS_TABLE")?,
                lineage: var("LINEAGE_TABLE")?,
                orders: var("ORDERS_TABLE")?,
                positions: var("POSITIONS_TABLE")?,
                trades: var("TRADES_TABLE")?,
                portfolio: var("PORTFOLIO_TABLE")?,
                symbols: var("SYMBOLS_TABLE")?,
                prompts: var("PROMPTS_TABLE")?,
                gateway: var("GATEWAY_TABLE")?,
            },
            charts_bucket: var("CHARTS_BUCKET")?,
            ibkr_base_url: var_or("IBKR_BASE_URL", "https://localhost:5000/v1/api"),
            ibkr_account_id: var_or("IBKR_ACCOUNT_ID", ""),
            ibkr_allow_self_signed: parse("IBKR_ALLOW_SELF_SIGNED", "false")?,
            ibkr_tls_ca_pem: env::var("IBKR_TLS_CA_PEM").ok().filter(|s| !s.is_empty()),
            ibkr_tls_cert_sha256: env::var("IBKR_TLS_CERT_SHA256")
                .ok()
                .filter(|s| !s.is_empty()),
            ibkr_confirm_message_ids: message_ids(&var_or(
                "IBKR_CONFIRM_MESSAGE_IDS",
                &crate::ibkr::DEFAULT_CONFIRM_IDS.join(","),
            ))?,
            ibkr_suppress_questions: parse("IBKR_SUPPRESS_QUESTIONS", "true")?,
            llm_provider: var_or("LLM_PROVIDER", "rules"),
            openai_base_url: env::var("OPENAI_BASE_URL").ok(),
            openai_api_key: Secret::new(var_or("OPENAI_API_KEY", "")),
            llm_api_key_secret_arn: env::var("LLM_API_KEY_SECRET_ARN")
                .ok()
                .filter(|s| !s.is_empty()),
            order_poll_seconds: parse("ORDER_POLL_SECONDS", "5")?,
            order_max_polls: parse("ORDER_MAX_POLLS", "60")?,
            rule_prefix: var_or("RULE_PREFIX", "tradeflow-"),
            event_bus_name: var_or("EVENT_BUS_NAME", "default"),
            state_machine_arn: env::var("STATE_MACHINE_ARN").ok(),
            local_endpoint: env::var("AWS_ENDPOINT_URL").is_ok(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
