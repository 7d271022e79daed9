//! The `rules` analyst: a deterministic, offline reading of the indicators. It is the
//! default provider of the local stack and tests, and a fallback users can choose.
//! It answers in the same structured JSON an LLM is asked for, so the answer goes
//! through the same parser and validation.
//!
//! Two forms: the built-in reading (`rules_answer`: trend average and momentum) and a
//! declarative one (`RuleSet`: thresholds and crossovers of indicator series, e.g.
//! `sma_10 crosses above sma_20` → BUY), so classic strategies can be written down
//! and compared with other backtesters.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::json;

/// Answers longer than this travel in S3, with only their head in the workflow
/// state (Step Functions caps the state at 256 KiB).
pub const ANSWER_INLINE_LIMIT: usize = 100 * 1024;
/// How much of an offloaded answer stays inline for lineage readers.
pub const ANSWER_HEAD: usize = 4 * 1024;

/// Returns the first `max` bytes of `text`, cut at a character boundary.
pub fn head(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Latest indicator values by series name (`sma_20`, `rsi_14`, `atr_14`, …).
pub type Latest = BTreeMap<String, f64>;

fn first_with_prefix(latest: &Latest, prefix: &str) -> Option<f64> {
    latest
        .iter()
        .find(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| *v)
}

/// Answers BUY above the trend average with momentum not overbought, SELL below it
/// with momentum not oversold, HOLD otherwise. Stop is 2 ATR (3% without ATR) from
/// the close; target is twice the risk.
pub fn rules_answer(close: f64, latest: &Latest) -> String {
    let sma = first_with_prefix(latest, "sma_");
    let rsi = first_with_prefix(latest, "rsi_");
    let atr = first_with_prefix(latest, "atr_").unwrap_or(close * 0.015);
    let risk = (2.0 * atr).max(close * 0.005);
    let round = |x: f64| (x * 100.0).round() / 100.0;
    let Some(sma) = sma else {
        return json!({"action": "HOLD", "confidence": 0.0,
            "reasoning": "rules analyst needs an SMA series"})
        .to_string();
    };
    let rsi_text = rsi.map_or("n/a".to_string(), |r| format!("{r:.1}"));
    let (action, entry, stop, target, why) = if close > sma && rsi.is_none_or(|r| r < 70.0) {
        (
            "BUY",
            close,
            close - risk,
            close + 2.0 * risk,
            format!("close {close:.2} above SMA {sma:.2}, RSI {rsi_text} not overbought"),
        )
    } else if close < sma && rsi.is_none_or(|r| r > 30.0) {
        (
            "SELL",
            close,
            close + risk,
            close - 2.0 * risk,
            format!("close {close:.2} below SMA {sma:.2}, RSI {rsi_text} not oversold"),
        )
    } else {
        return json!({"action": "HOLD", "confidence": 0.4,
            "reasoning": format!("no edge: close {close:.2}, SMA {sma:.2}, RSI {rsi_text}")})
        .to_string();
    };
    let distance = ((close - sma).abs() / sma).min(0.1);
    json!({
        "action": action,
        "entry": round(entry),
        "stop": round(stop),
        "target": round(target),
        "confidence": round(0.55 + 3.0 * distance).min(0.9),
        "reasoning": why,
    })
    .to_string()
}

/// The `rules` analyst's answer: the declarative rules when the strategy has them,
/// else the built-in reading. The workflow's `rules` provider and the backtest both
/// answer through this function.
pub fn rules_analyst_answer(rules: Option<&RuleSet>, bar: &RuleBar<'_>) -> String {
    match rules {
        Some(r) => r.answer(bar),
        None => rules_answer(bar.close, bar.latest),
    }
}

/// One side of a condition: a number, the bar's `close`, or an indicator series by
/// name (`sma_20`, `rsi_14`, `macd_hist_12_26_9`).
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Number(f64),
    Close,
    Series(String),
}

impl Operand {
    fn parse(s: &str) -> Self {
        if let Ok(x) = s.parse::<f64>() {
            return Operand::Number(x);
        }
        if s == "close" {
            return Operand::Close;
        }
        Operand::Series(s.to_string())
    }

    fn value(&self, close: f64, values: &Latest) -> Option<f64> {
        match self {
            Operand::Number(x) => Some(*x),
            Operand::Close => Some(close),
            Operand::Series(name) => values.get(name).copied(),
        }
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Number(x) => write!(f, "{x}"),
            Operand::Close => f.write_str("close"),
            Operand::Series(name) => f.write_str(name),
        }
    }
}

/// How the two sides compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    /// left > right on this bar.
    Above,
    /// left < right on this bar.
    Below,
    /// left < right on the previous bar and left > right on this one (backtesting.py's
    /// `crossover`: touching is not crossing).
    CrossesAbove,
    /// left > right on the previous bar and left < right on this one.
    CrossesBelow,
}

impl Comparison {
    fn as_str(self) -> &'static str {
        match self {
            Comparison::Above => "above",
            Comparison::Below => "below",
            Comparison::CrossesAbove => "crosses above",
            Comparison::CrossesBelow => "crosses below",
        }
    }
}

/// A condition in its written form, `"<left> <comparison> <right>"`, e.g.
/// `"sma_10 crosses above sma_20"`, `"rsi_14 below 30"`, `"close > ema_50"`
/// (`>` and `<` are `above` and `below`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Condition {
    pub left: Operand,
    pub comparison: Comparison,
    pub right: Operand,
}

impl TryFrom<String> for Condition {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let (comparison, left, right) = match words.as_slice() {
            [l, "crosses", "above", r] => (Comparison::CrossesAbove, l, r),
            [l, "crosses", "below", r] => (Comparison::CrossesBelow, l, r),
            [l, "above" | ">", r] => (Comparison::Above, l, r),
            [l, "below" | "<", r] => (Comparison::Below, l, r),
            _ => {
                return Err(format!(
                    "condition {text:?} is not \"<series> above|below|crosses above|crosses below <series or number>\""
                ));
            }
        };
        let (left, right) = (Operand::parse(left), Operand::parse(right));
        if matches!(left, Operand::Number(_)) && matches!(right, Operand::Number(_)) {
            return Err(format!("condition {text:?} compares two numbers"));
        }
        Ok(Self {
            left,
            comparison,
            right,
        })
    }
}

impl From<Condition> for String {
    fn from(c: Condition) -> Self {
        c.to_string()
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.left,
            self.comparison.as_str(),
            self.right
        )
    }
}

/// What an evaluated condition saw, for the answer's reasoning.
enum Outcome {
    Holds(String),
    Fails(String),
    Missing(String),
}

impl Condition {
    /// The series names it reads (numbers and `close` excluded).
    pub fn series(&self) -> impl Iterator<Item = &str> {
        [&self.left, &self.right]
            .into_iter()
            .filter_map(|o| match o {
                Operand::Series(s) => Some(s.as_str()),
                _ => None,
            })
    }

    fn evaluate(&self, bar: &RuleBar<'_>) -> Outcome {
        let now = (
            self.left.value(bar.close, bar.latest),
            self.right.value(bar.close, bar.latest),
        );
        let (Some(l), Some(r)) = now else {
            return Outcome::Missing(format!("{self}: no value yet"));
        };
        // Rounded, then printed shortest: fixed-precision float formatting is slow,
        // and a backtest writes this reason on every bar.
        let short = |x: f64| (x * 1e4).round() / 1e4;
        let text = format!("{} {} vs {} {}", self.left, short(l), self.right, short(r));
        let holds = match self.comparison {
            Comparison::Above => l > r,
            Comparison::Below => l < r,
            Comparison::CrossesAbove | Comparison::CrossesBelow => {
                let before = bar.previous_close.and_then(|pc| {
                    Some((
                        self.left.value(pc, bar.previous)?,
                        self.right.value(pc, bar.previous)?,
                    ))
                });
                let Some((pl, pr)) = before else {
                    return Outcome::Missing(format!("{self}: no previous value yet"));
                };
                if self.comparison == Comparison::CrossesAbove {
                    pl < pr && l > r
                } else {
                    pl > pr && l < r
                }
            }
        };
        if holds {
            Outcome::Holds(format!("{self} ({text})"))
        } else {
            Outcome::Fails(format!("not {self} ({text})"))
        }
    }
}

/// Where the stop goes, measured from the entry (the bar's close).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StopRule {
    /// A fraction of the entry, e.g. 0.05.
    Percent(f64),
    /// A multiple of an ATR series, e.g. `{"series": "atr_14", "multiple": 2}`.
    Atr { series: String, multiple: f64 },
}

/// Where the target goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum TargetRule {
    /// A fraction of the entry.
    Percent(f64),
    /// A multiple of the stop distance.
    RMultiple(f64),
}

/// The declarative rules analyst: BUY when every `buy` condition holds, SELL when
/// every `sell` condition holds (BUY wins if both do), HOLD otherwise. Entry is the
/// close; stop and target come from `stop` and `target`, as the answer schema
/// requires them of every BUY and SELL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    #[serde(default)]
    pub buy: Vec<Condition>,
    #[serde(default)]
    pub sell: Vec<Condition>,
    #[serde(default = "default_stop")]
    pub stop: StopRule,
    #[serde(default = "default_target")]
    pub target: TargetRule,
    /// The confidence every BUY and SELL carries (the strategy's `min_confidence`
    /// still applies).
    #[serde(default = "default_rule_confidence")]
    pub confidence: f64,
}

fn default_stop() -> StopRule {
    StopRule::Percent(0.05)
}
fn default_target() -> TargetRule {
    TargetRule::RMultiple(2.0)
}
fn default_rule_confidence() -> f64 {
    0.8
}

/// What the declarative rules read on one bar: its close and every series' value,
/// on this bar and on the one before (for crossovers). Nothing later.
#[derive(Debug, Clone, Copy)]
pub struct RuleBar<'a> {
    pub close: f64,
    pub latest: &'a Latest,
    pub previous_close: Option<f64>,
    pub previous: &'a Latest,
}

impl RuleSet {
    /// Checks the rule set before a strategy is stored or backtested.
    ///
    /// # Errors
    /// What is wrong, naming the field under `provider.rules`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if self.buy.is_empty() && self.sell.is_empty() {
            return Err((
                "buy".into(),
                "at least one buy or sell condition is needed".into(),
            ));
        }
        if !(0.0..=1.0).contains(&self.confidence) {
            return Err(("confidence".into(), "must be in [0, 1]".into()));
        }
        let ok = |x: f64, max: f64| x.is_finite() && x > 0.0 && x <= max;
        match &self.stop {
            StopRule::Percent(p) if !ok(*p, crate::signal::MAX_STOP_DISTANCE) => {
                return Err(("stop.percent".into(), "must be in (0, 0.5]".into()));
            }
            StopRule::Atr { multiple, .. } if !ok(*multiple, 100.0) => {
                return Err(("stop.atr.multiple".into(), "must be in (0, 100]".into()));
            }
            _ => {}
        }
        match self.target {
            // A SELL's target a whole entry away would be a price of 0.
            TargetRule::Percent(p) if !ok(p, crate::signal::MAX_TARGET_DISTANCE) || p >= 1.0 => {
                Err(("target.percent".into(), "must be in (0, 1)".into()))
            }
            TargetRule::RMultiple(r) if !ok(r, 100.0) => {
                Err(("target.r_multiple".into(), "must be in (0, 100]".into()))
            }
            _ => Ok(()),
        }
    }

    /// Every series the rules read.
    pub fn series(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .buy
            .iter()
            .chain(&self.sell)
            .flat_map(Condition::series)
            .chain(match &self.stop {
                StopRule::Atr { series, .. } => Some(series.as_str()),
                StopRule::Percent(_) => None,
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Answers for one bar in the structured JSON an LLM is asked for.
    pub fn answer(&self, bar: &RuleBar<'_>) -> String {
        let close = bar.close;
        let side = |conditions: &[Condition]| -> Result<Vec<String>, String> {
            if conditions.is_empty() {
                return Err("no conditions".into());
            }
            let mut why = Vec::with_capacity(conditions.len());
            for c in conditions {
                match c.evaluate(bar) {
                    Outcome::Holds(t) => why.push(t),
                    Outcome::Fails(t) | Outcome::Missing(t) => return Err(t),
                }
            }
            Ok(why)
        };
        let (action, why) = match (side(&self.buy), side(&self.sell)) {
            (Ok(why), _) => ("BUY", why),
            (_, Ok(why)) => ("SELL", why),
            (Err(b), Err(s)) => {
                return json!({"action": "HOLD", "confidence": 0.0,
                    "reasoning": format!("buy: {b}; sell: {s}")})
                .to_string();
            }
        };
        let risk = match &self.stop {
            StopRule::Percent(p) => close * p,
            StopRule::Atr { series, multiple } => match bar.latest.get(series) {
                Some(atr) => atr * multiple,
                None => {
                    return json!({"action": "HOLD", "confidence": 0.0,
                        "reasoning": format!("{action} rules hold but {series} has no value for the stop")})
                    .to_string();
                }
            },
        };
        let reward = match self.target {
            TargetRule::Percent(p) => close * p,
            TargetRule::RMultiple(r) => risk * r,
        };
        let sign = if action == "BUY" { 1.0 } else { -1.0 };
        let round = |x: f64| (x * 100.0).round() / 100.0;
        json!({
            "action": action,
            "entry": round(close),
            "stop": round(close - sign * risk),
            "target": round(close + sign * reward),
            "confidence": self.confidence,
            "reasoning": why.join("; "),
        })
        .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::{Action, StructuredAnswer, from_structured};

    fn latest(pairs: &[(&str, f64)]) -> Latest {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn above_the_average_is_a_valid_buy_with_two_to_one_reward() {
        let answer = rules_answer(
            105.0,
            &latest(&[("sma_20", 100.0), ("rsi_14", 60.0), ("atr_14", 2.0)]),
        );
        let a: StructuredAnswer = serde_json::from_str(&answer).unwrap();

        let s = from_structured(&a, 105.0);

        assert_eq!(s.action, Action::Buy);
        assert_eq!(s.stop.unwrap().to_string(), "101");
        assert_eq!(s.target.unwrap().to_string(), "113");
        assert_eq!(s.risk_reward().unwrap().to_string(), "2");
    }

    #[test]
    fn overbought_or_missing_average_holds() {
        let overbought = rules_answer(105.0, &latest(&[("sma_20", 100.0), ("rsi_14", 80.0)]));
        let no_sma = rules_answer(105.0, &latest(&[("rsi_14", 50.0)]));

        for answer in [overbought, no_sma] {
            let a: StructuredAnswer = serde_json::from_str(&answer).unwrap();
            assert_eq!(from_structured(&a, 105.0).action, Action::Hold);
        }
    }

    #[test]
    fn head_cuts_at_a_character_boundary() {
        assert_eq!(head("abc", 10), "abc");
        assert_eq!(head("aé", 2), "a");
        assert_eq!(head("aéb", 3), "aé");
    }

    #[test]
    fn below_the_average_sells() {
        let answer = rules_answer(95.0, &latest(&[("sma_20", 100.0), ("rsi_14", 40.0)]));
        let a: StructuredAnswer = serde_json::from_str(&answer).unwrap();

        assert_eq!(from_structured(&a, 95.0).action, Action::Sell);
    }

    fn rules(json: serde_json::Value) -> RuleSet {
        serde_json::from_value(json).unwrap()
    }

    fn decide(r: &RuleSet, close: f64, now: &[(&str, f64)], before: &[(&str, f64)]) -> Action {
        let (latest, previous) = (latest(now), latest(before));
        let answer = r.answer(&RuleBar {
            close,
            latest: &latest,
            previous_close: Some(close),
            previous: &previous,
        });
        let a: StructuredAnswer = serde_json::from_str(&answer).unwrap();
        from_structured(&a, close).action
    }

    #[test]
    fn a_crossover_buys_on_the_crossing_bar_only() {
        let r = rules(serde_json::json!({
            "buy": ["sma_10 crosses above sma_20"], "sell": ["sma_10 crosses below sma_20"]
        }));

        let crossing = decide(
            &r,
            100.0,
            &[("sma_10", 101.0), ("sma_20", 100.0)],
            &[("sma_10", 99.0), ("sma_20", 100.0)],
        );
        let staying_above = decide(
            &r,
            100.0,
            &[("sma_10", 102.0), ("sma_20", 100.0)],
            &[("sma_10", 101.0), ("sma_20", 100.0)],
        );
        let from_a_touch = decide(
            &r,
            100.0,
            &[("sma_10", 101.0), ("sma_20", 100.0)],
            &[("sma_10", 100.0), ("sma_20", 100.0)],
        );
        let crossing_down = decide(
            &r,
            100.0,
            &[("sma_10", 99.0), ("sma_20", 100.0)],
            &[("sma_10", 101.0), ("sma_20", 100.0)],
        );

        assert_eq!(crossing, Action::Buy);
        assert_eq!(staying_above, Action::Hold);
        assert_eq!(from_a_touch, Action::Hold);
        assert_eq!(crossing_down, Action::Sell);
    }

    #[test]
    fn thresholds_all_have_to_hold_and_a_missing_value_holds() {
        let r = rules(serde_json::json!({"buy": ["rsi_14 < 30", "close above sma_200"]}));

        let both = decide(&r, 110.0, &[("rsi_14", 25.0), ("sma_200", 100.0)], &[]);
        let one = decide(&r, 90.0, &[("rsi_14", 25.0), ("sma_200", 100.0)], &[]);
        let warming_up = decide(&r, 110.0, &[("rsi_14", 25.0)], &[]);

        assert_eq!(
            (both, one, warming_up),
            (Action::Buy, Action::Hold, Action::Hold)
        );
    }

    #[test]
    fn stop_and_target_follow_the_rules_and_pass_validation() {
        let r = rules(serde_json::json!({
            "buy": ["close > 0"], "stop": {"atr": {"series": "atr_14", "multiple": 2}},
            "target": {"r_multiple": 3}
        }));
        let l = latest(&[("atr_14", 1.5)]);

        let answer = r.answer(&RuleBar {
            close: 50.0,
            latest: &l,
            previous_close: None,
            previous: &l,
        });
        let s = from_structured(&serde_json::from_str(&answer).unwrap(), 50.0);

        assert_eq!(s.action, Action::Buy);
        assert_eq!(
            (s.stop.unwrap().to_string(), s.target.unwrap().to_string()),
            ("47".into(), "59".into())
        );
    }

    #[test]
    fn conditions_read_back_as_written_and_bad_ones_name_the_problem() {
        let c: Condition = serde_json::from_str("\"sma_10  crosses above sma_20\"").unwrap();

        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            "\"sma_10 crosses above sma_20\""
        );
        assert!(serde_json::from_str::<Condition>("\"sma_10 jumps sma_20\"").is_err());
        assert!(serde_json::from_str::<Condition>("\"1 > 2\"").is_err());
        assert_eq!(
            rules(serde_json::json!({})).validate().unwrap_err().0,
            "buy"
        );
        assert_eq!(
            rules(serde_json::json!({"buy": ["close > 1"], "stop": {"percent": 0.9}}))
                .validate()
                .unwrap_err()
                .0,
            "stop.percent"
        );
    }
}
