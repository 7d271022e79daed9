//! Trading signals: what the analyst recommends, validated before it can become an order.

mod parse;

pub use parse::parse_answer;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Action {
    Buy,
    Sell,
    Hold,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Buy => "BUY",
            Action::Sell => "SELL",
            Action::Hold => "HOLD",
        }
    }
}

/// A validated signal. A HOLD carries the reason it is not a trade.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    pub action: Action,
    pub entry: Option<Decimal>,
    pub stop: Option<Decimal>,
    pub target: Option<Decimal>,
    /// In [0, 1].
    pub confidence: f64,
    /// Why: the analyst's rationale, or why the answer was turned into HOLD.
    pub reason: String,
    /// `structured` (JSON answer), `text` (tolerant parser) or `none`.
    pub parsed_from: String,
    /// Prompt template that produced it, kept to score prompts by outcome.
    #[serde(default)]
    pub template_id: Option<String>,
    #[serde(default)]
    pub template_version: Option<u32>,
}

impl Signal {
    pub fn hold(reason: impl Into<String>) -> Self {
        Self {
            action: Action::Hold,
            entry: None,
            stop: None,
            target: None,
            confidence: 0.0,
            reason: reason.into(),
            parsed_from: "none".into(),
            template_id: None,
            template_version: None,
        }
    }

    /// Reward per unit of risk, when entry, stop and target are present.
    pub fn risk_reward(&self) -> Option<Decimal> {
        let (e, s, t) = (self.entry?, self.stop?, self.target?);
        let risk = (e - s).abs();
        if risk.is_zero() {
            return None;
        }
        Some(((t - e).abs() / risk).round_dp(2))
    }
}

/// The JSON shape analysts are asked to answer in (also the structured-output schema).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StructuredAnswer {
    pub action: String,
    #[serde(default)]
    pub entry: Option<f64>,
    #[serde(default)]
    pub stop: Option<f64>,
    #[serde(default)]
    pub target: Option<f64>,
    #[serde(default)]
    pub confidence: Option<f64>,
    #[serde(default)]
    pub reasoning: Option<String>,
}

/// The JSON schema of `StructuredAnswer`, in the strict form OpenAI's structured
/// output accepts (every property required, nullable where optional, no extras).
pub fn structured_answer_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": ["BUY", "SELL", "HOLD"]},
            "entry": {"type": ["number", "null"], "description": "limit entry price"},
            "stop": {"type": ["number", "null"], "description": "stop-loss price"},
            "target": {"type": ["number", "null"], "description": "take-profit price"},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "reasoning": {"type": "string", "description": "one or two sentences"}
        },
        "required": ["action", "entry", "stop", "target", "confidence", "reasoning"],
        "additionalProperties": false
    })
}

/// How far from the last close an entry may be before the answer is not believed.
pub const MAX_ENTRY_DISTANCE: f64 = 0.2;
/// How far from the entry a stop may be (a stop further away is not a stop).
pub const MAX_STOP_DISTANCE: f64 = 0.5;
/// How far from the entry a target may be (a 100% move is not a swing target).
pub const MAX_TARGET_DISTANCE: f64 = 1.0;

fn dec(x: f64) -> Option<Decimal> {
    Decimal::from_f64_retain(x).map(|d| d.round_dp(4))
}

/// Turns a structured answer into a validated signal; anything inconsistent is HOLD
/// with the reason.
pub fn from_structured(a: &StructuredAnswer, last_close: f64) -> Signal {
    let action = match a.action.trim().to_ascii_uppercase().as_str() {
        "BUY" => Action::Buy,
        "SELL" => Action::Sell,
        "HOLD" => Action::Hold,
        other => return Signal::hold(format!("unknown action {other:?}")),
    };
    let confidence = a.confidence.unwrap_or(0.0);
    let confidence = if confidence > 1.0 && confidence <= 100.0 {
        confidence / 100.0
    } else {
        confidence
    };
    let reasoning = a.reasoning.clone().unwrap_or_default();
    if action == Action::Hold {
        let mut s = Signal::hold(if reasoning.is_empty() {
            "analyst said HOLD".to_string()
        } else {
            reasoning
        });
        s.confidence = confidence.clamp(0.0, 1.0);
        s.parsed_from = "structured".into();
        return s;
    }
    let candidate = Signal {
        action,
        entry: a.entry.and_then(dec),
        stop: a.stop.and_then(dec),
        target: a.target.and_then(dec),
        confidence,
        reason: reasoning,
        parsed_from: "structured".into(),
        template_id: None,
        template_version: None,
    };
    match validate(&candidate, last_close) {
        Ok(()) => candidate,
        Err(why) => {
            let mut s = Signal::hold(format!("{} signal rejected: {why}", action.as_str()));
            s.parsed_from = "structured".into();
            s
        }
    }
}

/// Checks a BUY/SELL: prices present and positive, stop < entry < target for BUY (the
/// mirror for SELL), confidence in [0, 1], entry within `MAX_ENTRY_DISTANCE` of the close.
///
/// # Errors
/// Why the signal cannot be traded.
pub fn validate(s: &Signal, last_close: f64) -> Result<(), String> {
    if s.action == Action::Hold {
        return Ok(());
    }
    let (Some(entry), Some(stop), Some(target)) = (s.entry, s.stop, s.target) else {
        return Err("entry, stop and target are all required".into());
    };
    if entry <= Decimal::ZERO || stop <= Decimal::ZERO || target <= Decimal::ZERO {
        return Err("prices must be positive".into());
    }
    if !(0.0..=1.0).contains(&s.confidence) || s.confidence.is_nan() {
        return Err(format!("confidence {} is not in [0, 1]", s.confidence));
    }
    match s.action {
        Action::Buy if !(stop < entry && entry < target) => {
            return Err(format!(
                "BUY needs stop < entry < target (got {stop} / {entry} / {target})"
            ));
        }
        Action::Sell if !(target < entry && entry < stop) => {
            return Err(format!(
                "SELL needs target < entry < stop (got {target} / {entry} / {stop})"
            ));
        }
        _ => {}
    }
    let e: f64 = entry.try_into().unwrap_or(0.0);
    let away = |x: Decimal| (x.try_into().unwrap_or(0.0) - e).abs() / e;
    if away(stop) > MAX_STOP_DISTANCE {
        return Err(format!(
            "stop {stop} is {:.0}% away from the entry {entry}",
            away(stop) * 100.0
        ));
    }
    if away(target) > MAX_TARGET_DISTANCE {
        return Err(format!(
            "target {target} is {:.0}% away from the entry {entry}",
            away(target) * 100.0
        ));
    }
    if last_close > 0.0 {
        let distance = (e - last_close).abs() / last_close;
        if distance > MAX_ENTRY_DISTANCE {
            return Err(format!(
                "entry {entry} is {:.0}% away from the last close {last_close}",
                distance * 100.0
            ));
        }
    }
    Ok(())
}
