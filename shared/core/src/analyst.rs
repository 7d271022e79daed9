//! The `rules` analyst: a deterministic, offline reading of the indicators. It is the
//! default provider of the local stack and tests, and a fallback users can choose.
//! It answers in the same structured JSON an LLM is asked for, so the answer goes
//! through the same parser and validation.

use std::collections::BTreeMap;

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
}
