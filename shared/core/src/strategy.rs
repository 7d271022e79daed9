//! A trading strategy: what to trade, how to look at it, how to ask, how much to risk.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::analyst::RuleSet;
use crate::calendar::MarketSession;
use crate::indicators::IndicatorSpec;
use crate::market::Timeframe;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Strategy {
    pub strategy_id: String,
    pub name: String,
    /// IBKR contract id.
    pub conid: i64,
    pub symbol: String,
    #[serde(default = "default_currency")]
    pub currency: String,
    #[serde(default)]
    pub timeframe: Timeframe,
    /// Bars of history to fetch.
    #[serde(default = "default_bars")]
    pub bars: u32,
    #[serde(default = "default_indicators")]
    pub indicators: Vec<IndicatorSpec>,
    /// Also render a weekly chart (resampled from daily bars).
    #[serde(default)]
    pub weekly_chart: bool,
    #[serde(default = "default_template")]
    pub prompt_template: String,
    #[serde(default)]
    pub provider: ProviderSpec,
    /// AWS EventBridge cron expression (6 fields) read in `market.timezone`, e.g.
    /// `cron(30 9 ? * MON-FRI *)` is 09:30 New York all year; runs on the market
    /// calendar's holidays and past its early closes are skipped. Or `rate(n unit)`.
    #[serde(default = "default_schedule")]
    pub schedule: String,
    #[serde(default)]
    pub risk: RiskParams,
    /// The exchange session: its time zone dates the kill switch's trading day, its
    /// hours gate the position monitor. Defaults to New York 09:30–16:00.
    #[serde(default)]
    pub market: MarketSession,
    /// Order questions ("reply messages", e.g. `o163`) this strategy's orders may
    /// confirm besides the deployment's (`IBKR_CONFIRM_MESSAGE_IDS`). They are
    /// answered question by question (never suppressed for the session) and each
    /// answer is recorded in the order's history.
    #[serde(default)]
    pub confirm_message_ids: Vec<String>,
    /// Records the would-be order instead of sending it.
    #[serde(default)]
    pub dry_run: bool,
    #[serde(default = "default_true")]
    pub active: bool,
}

fn default_currency() -> String {
    "USD".into()
}
fn default_bars() -> u32 {
    500
}
fn default_template() -> String {
    "default-analysis".into()
}
fn default_schedule() -> String {
    "cron(30 9 ? * MON-FRI *)".into()
}
fn default_true() -> bool {
    true
}
fn default_indicators() -> Vec<IndicatorSpec> {
    IndicatorSpec::defaults()
}

/// Which analyst reads the chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderSpec {
    /// `rules` (deterministic, offline), `openai` (any OpenAI-compatible server) or `bedrock`.
    #[serde(default = "default_provider")]
    pub kind: String,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub base_url: Option<String>,
    /// How an OpenAI-compatible server is asked for the signal's structure.
    #[serde(default)]
    pub structured_output: StructuredOutput,
    /// The declarative form of the `rules` analyst (thresholds and crossovers);
    /// without it `rules` uses its built-in trend-and-momentum reading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<RuleSet>,
}

/// `response_format` of an OpenAI-compatible request. Servers differ: OpenAI, vLLM
/// and recent Ollama take a JSON schema; some local servers reject it and take only
/// JSON mode; some take neither. Whatever comes back, parse_signal validates it and
/// falls back to its text parser.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StructuredOutput {
    /// `{"type": "json_schema", …}` with the signal's schema, strict.
    #[default]
    JsonSchema,
    /// `{"type": "json_object"}`: any JSON object (the prompt describes the fields).
    JsonObject,
    /// No `response_format`: free text, read by the tolerant parser.
    None,
}

fn default_provider() -> String {
    "rules".into()
}

impl Default for ProviderSpec {
    fn default() -> Self {
        Self {
            kind: default_provider(),
            model: None,
            base_url: None,
            structured_output: StructuredOutput::default(),
            rules: None,
        }
    }
}

/// Money-at-risk settings. Amounts are exact decimals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskParams {
    /// Capital the strategy trades with.
    pub capital: Decimal,
    /// Fraction of capital risked per trade (entry to stop), e.g. 0.01.
    pub risk_per_trade: Decimal,
    /// Largest position value allowed.
    pub max_position_value: Decimal,
    /// Open positions allowed at once for this strategy.
    pub max_open_positions: u32,
    /// Realised loss per day after which no new entries are made.
    pub daily_loss_limit: Decimal,
    /// Signals below this confidence are not traded.
    pub min_confidence: f64,
    /// Allow SELL signals to open short positions.
    #[serde(default)]
    pub allow_short: bool,
}

impl Default for RiskParams {
    fn default() -> Self {
        Self {
            capital: Decimal::from(100_000),
            risk_per_trade: Decimal::new(1, 2),
            max_position_value: Decimal::from(25_000),
            max_open_positions: 1,
            daily_loss_limit: Decimal::from(2_000),
            min_confidence: 0.5,
            allow_short: false,
        }
    }
}

#[derive(Debug, Error, PartialEq)]
#[error("{field}: {message}")]
pub struct ValidationError {
    pub field: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl Strategy {
    /// The names of the series the strategy's indicators produce (`sma_20`,
    /// `macd_hist_12_26_9`, …), found by computing them over flat bars.
    pub fn series_names(&self) -> Vec<String> {
        let needed = self
            .indicators
            .iter()
            .map(IndicatorSpec::bars_needed)
            .max()
            .unwrap_or(0);
        let flat: Vec<crate::market::Bar> = (0..needed as i64)
            .map(|i| crate::market::Bar {
                t: i * 86_400_000,
                open: 100.0,
                high: 101.0,
                low: 99.0,
                close: 100.0,
                volume: 1.0,
            })
            .collect();
        crate::indicators::compute_all(&self.indicators, &flat)
            .map(|all| all.into_iter().map(|s| s.name).collect())
            .unwrap_or_default()
    }

    /// Checks a strategy before it is stored or run.
    ///
    /// # Errors
    /// The first invalid field, named as in the JSON body.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.strategy_id.is_empty()
            || !self
                .strategy_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            || self.strategy_id.len() > 48
        {
            return Err(ValidationError::new(
                "strategy_id",
                "must be 1-48 characters of letters, digits, '-' or '_'",
            ));
        }
        if self.name.trim().is_empty() {
            return Err(ValidationError::new("name", "must not be empty"));
        }
        if self.conid <= 0 {
            return Err(ValidationError::new(
                "conid",
                "must be a positive IBKR conid",
            ));
        }
        if self.symbol.trim().is_empty() {
            return Err(ValidationError::new("symbol", "must not be empty"));
        }
        if !(30..=1000).contains(&self.bars) {
            return Err(ValidationError::new("bars", "must be between 30 and 1000"));
        }
        for (i, spec) in self.indicators.iter().enumerate() {
            spec.validate()
                .map_err(|e| ValidationError::new(format!("indicators[{i}]"), e.to_string()))?;
        }
        let r = &self.risk;
        if r.capital <= Decimal::ZERO {
            return Err(ValidationError::new("risk.capital", "must be positive"));
        }
        if r.risk_per_trade <= Decimal::ZERO || r.risk_per_trade > Decimal::new(1, 1) {
            return Err(ValidationError::new(
                "risk.risk_per_trade",
                "must be a fraction in (0, 0.1]",
            ));
        }
        if r.max_position_value <= Decimal::ZERO {
            return Err(ValidationError::new(
                "risk.max_position_value",
                "must be positive",
            ));
        }
        if r.daily_loss_limit < Decimal::ZERO {
            return Err(ValidationError::new(
                "risk.daily_loss_limit",
                "must not be negative",
            ));
        }
        if !(0.0..=1.0).contains(&r.min_confidence) {
            return Err(ValidationError::new(
                "risk.min_confidence",
                "must be in [0, 1]",
            ));
        }
        if let Err(e) = self.market.clock() {
            return Err(ValidationError::new(
                format!("market.{}", e.field),
                e.message,
            ));
        }
        if !["rules", "openai", "bedrock"].contains(&self.provider.kind.as_str()) {
            return Err(ValidationError::new(
                "provider.kind",
                "must be one of rules, openai, bedrock",
            ));
        }
        if let Some(rules) = &self.provider.rules {
            if self.provider.kind != "rules" {
                return Err(ValidationError::new(
                    "provider.rules",
                    "only the rules analyst takes rules",
                ));
            }
            rules.validate().map_err(|(field, why)| {
                ValidationError::new(format!("provider.rules.{field}"), why)
            })?;
            let produced = self.series_names();
            if let Some(missing) = rules
                .series()
                .into_iter()
                .find(|n| !produced.iter().any(|p| p == n))
            {
                return Err(ValidationError::new(
                    "provider.rules",
                    format!(
                        "series {missing} is not among the strategy's indicator series ({})",
                        produced.join(", ")
                    ),
                ));
            }
        }
        if self.confirm_message_ids.len() > 20 {
            return Err(ValidationError::new(
                "confirm_message_ids",
                "at most 20 message ids",
            ));
        }
        for (i, id) in self.confirm_message_ids.iter().enumerate() {
            if !is_message_id(id) {
                return Err(ValidationError::new(
                    format!("confirm_message_ids[{i}]"),
                    "must be an IBKR order message id such as o163 or p12",
                ));
            }
        }
        Ok(())
    }
}

/// An IBKR order question id: `o` or `p` and 1-6 digits (`o354`, `o10151`, `p12`).
pub fn is_message_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some('o' | 'p'))
        && (2..=7).contains(&id.len())
        && chars.all(|c| c.is_ascii_digit())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn example() -> Strategy {
        serde_json::from_value(serde_json::json!({
            "strategy_id": "aapl-swing",
            "name": "AAPL daily swing",
            "conid": 265598,
            "symbol": "AAPL",
            "risk": {
                "capital": "100000", "risk_per_trade": "0.01", "max_position_value": "25000",
                "max_open_positions": 1, "daily_loss_limit": "2000", "min_confidence": 0.5
            }
        }))
        .unwrap()
    }

    #[test]
    fn confirm_message_ids_must_be_ibkr_message_ids_and_name_the_bad_one() {
        let mut s = example();
        s.confirm_message_ids = vec!["o163".into(), "p12".into()];
        let ok = s.validate();
        s.confirm_message_ids = vec!["o163".into(), "market".into()];

        let e = s.validate().unwrap_err();

        assert_eq!(ok, Ok(()));
        assert_eq!(e.field, "confirm_message_ids[1]");
        assert!(example().confirm_message_ids.is_empty());
    }

    #[test]
    fn a_minimal_strategy_gets_the_documented_defaults_and_validates() {
        let s = example();

        assert_eq!(s.bars, 500);
        assert_eq!(s.timeframe, Timeframe::Daily);
        assert_eq!(s.provider.kind, "rules");
        assert!(!s.indicators.is_empty());
        assert_eq!(s.market.timezone, "America/New_York");
        assert_eq!(
            (s.market.open.as_str(), s.market.close.as_str()),
            ("09:30", "16:00")
        );
        assert_eq!(s.validate(), Ok(()));
    }

    #[test]
    fn validation_names_the_field() {
        let mut s = example();
        s.risk.risk_per_trade = Decimal::new(-1, 2);
        assert_eq!(s.validate().unwrap_err().field, "risk.risk_per_trade");

        let mut s = example();
        s.conid = 0;
        assert_eq!(s.validate().unwrap_err().field, "conid");

        let mut s = example();
        s.strategy_id = "bad id!".into();
        assert_eq!(s.validate().unwrap_err().field, "strategy_id");

        let mut s = example();
        s.market.timezone = "EST5EDT-ish".into();
        assert_eq!(s.validate().unwrap_err().field, "market.timezone");

        let mut s = example();
        s.market.close = "08:00".into();
        assert_eq!(s.validate().unwrap_err().field, "market.close");
    }
}
