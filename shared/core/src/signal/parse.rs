//! Reading an analyst's answer: the structured JSON first (whole answer, fenced or
//! embedded), then a tolerant reader of `Key: value` lines. Whatever cannot be read
//! unambiguously becomes HOLD with the reason; the answer never becomes a trade
//! because a parser guessed.

use serde_json::Value;

use super::{Action, Signal, StructuredAnswer, from_structured};

/// Turns an analyst's raw answer into a validated signal (HOLD with the reason when
/// it is unparseable, contradictory or fails validation against `last_close`).
pub fn parse_answer(answer: &str, last_close: f64) -> Signal {
    let text = answer.trim();
    if text.is_empty() {
        return Signal::hold("answer is empty");
    }
    let objects = json_objects(text);
    let answers: Vec<StructuredAnswer> = objects
        .iter()
        .filter_map(|(_, v)| lenient_structured(v))
        .collect();
    // The prose around the JSON objects, read on its own.
    let mut prose = String::with_capacity(text.len());
    let mut at = 0;
    for (range, _) in &objects {
        prose.push_str(&text[at..range.start]);
        prose.push('\n');
        at = range.end;
    }
    prose.push_str(&text[at..]);
    let text_fields = read_text_fields(&prose);
    if let Some(first) = answers.first() {
        let actions: Vec<String> = answers.iter().map(|a| normalise(&a.action)).collect();
        if actions.iter().any(|a| *a != actions[0]) {
            return structured_hold(format!(
                "answer holds contradictory JSON signals: {}",
                actions.join(" vs ")
            ));
        }
        // Prose around the JSON may claim another action; neither is then believed.
        match &text_fields {
            Ok(TextFields {
                action: Some(text_action),
                ..
            }) if text_action.as_str() != actions[0] => {
                return structured_hold(format!(
                    "JSON says {} but the text says {}",
                    actions[0],
                    text_action.as_str()
                ));
            }
            Err(why) => return structured_hold(why.clone()),
            _ => {}
        }
        return from_structured(first, last_close);
    }
    match text_fields.and_then(TextFields::into_answer) {
        Err(why) => Signal::hold(why),
        Ok(a) => {
            let mut signal = from_structured(&a, last_close);
            signal.parsed_from = "text".into();
            signal
        }
    }
}

fn structured_hold(reason: String) -> Signal {
    let mut s = Signal::hold(reason);
    s.parsed_from = "structured".into();
    s
}

fn normalise(action: &str) -> String {
    action.trim().to_ascii_uppercase()
}

/// Every top-level `{…}` in the text that is valid JSON (code fences need no special
/// case: the braces inside them are found like any other).
fn json_objects(text: &str) -> Vec<(std::ops::Range<usize>, Value)> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'{' {
            i += 1;
            continue;
        }
        match balanced_end(&text[i..]) {
            Some(len) => {
                if let Ok(v @ Value::Object(_)) = serde_json::from_str::<Value>(&text[i..i + len]) {
                    out.push((i..i + len, v));
                    i += len;
                } else {
                    i += 1;
                }
            }
            None => i += 1,
        }
    }
    out
}

/// Length of the balanced-brace span starting at `s[0] == '{'`, honouring strings.
fn balanced_end(s: &str) -> Option<usize> {
    let (mut depth, mut in_str, mut escaped) = (0usize, false, false);
    for (i, c) in s.char_indices() {
        if in_str {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' => depth += 1,
            '}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            _ => {}
        }
    }
    None
}

/// Reads a JSON object as a `StructuredAnswer`, accepting the usual drift: `signal`
/// for `action`, prices as strings with `$` and commas, `"N/A"` for null.
fn lenient_structured(v: &Value) -> Option<StructuredAnswer> {
    let obj = v.as_object()?;
    let field = |names: &[&str]| names.iter().find_map(|n| obj.get(*n)).cloned();
    let action = field(&["action", "signal", "recommendation", "decision"])?;
    let action = action.as_str()?.to_string();
    let number = |names: &[&str]| -> Option<f64> {
        match field(names)? {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => first_number(&s).map(|(x, _)| x),
            _ => None,
        }
    };
    let confidence = match field(&["confidence", "confidence_level"]) {
        Some(Value::String(s)) => parse_confidence(&s),
        Some(Value::Number(n)) => n.as_f64(),
        _ => None,
    };
    Some(StructuredAnswer {
        action: action_word(&action).map_or(action, |a| a.as_str().to_string()),
        entry: number(&["entry", "entry_price", "entryPrice"]),
        stop: number(&["stop", "stop_loss", "stopLoss", "sl"]),
        target: number(&["target", "take_profit", "takeProfit", "target_price", "tp"]),
        confidence,
        reasoning: field(&["reasoning", "rationale", "reason"])
            .and_then(|r| r.as_str().map(String::from)),
    })
}

#[derive(Debug, Default)]
struct TextFields {
    action: Option<Action>,
    entry: Option<Option<f64>>,
    stop: Option<Option<f64>>,
    target: Option<Option<f64>>,
    confidence: Option<f64>,
    reasoning: Option<String>,
}

impl TextFields {
    fn into_answer(self) -> Result<StructuredAnswer, String> {
        let action = self
            .action
            .ok_or_else(|| "no signal line (e.g. `Signal: BUY`) in the answer".to_string())?;
        Ok(StructuredAnswer {
            action: action.as_str().into(),
            entry: self.entry.flatten(),
            stop: self.stop.flatten(),
            target: self.target.flatten(),
            confidence: self.confidence,
            reasoning: self.reasoning,
        })
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Key {
    Action,
    Entry,
    Stop,
    Target,
    Confidence,
    Reasoning,
}

fn key_of(label: &str) -> Option<Key> {
    // Labels such as "Target 1" or "Stop-loss (daily close)" reduce to their words.
    let words: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphabetic() {
                c.to_ascii_lowercase()
            } else {
                ' '
            }
        })
        .collect();
    let words = words.split_whitespace().collect::<Vec<_>>().join(" ");
    let key = match words.as_str() {
        "signal"
        | "action"
        | "recommendation"
        | "decision"
        | "trade signal"
        | "final signal"
        | "trading signal"
        | "final recommendation"
        | "final decision"
        | "trade" => Key::Action,
        "entry" | "entry price" | "entry point" | "entry level" | "entry zone" | "limit price"
        | "limit entry" => Key::Entry,
        "stop" | "stop loss" | "stoploss" | "sl" | "stop price" | "stop level" => Key::Stop,
        "target" | "target price" | "take profit" | "takeprofit" | "tp" | "profit target"
        | "price target" | "target level" => Key::Target,
        "confidence" | "confidence level" | "conviction" => Key::Confidence,
        "reasoning" | "rationale" | "reason" | "why" | "summary" => Key::Reasoning,
        _ => return None,
    };
    Some(key)
}

/// Strips markdown decoration from a line: bullets, numbering, headings, emphasis,
/// inline code and quote markers.
fn plain(line: &str) -> String {
    let cleaned: String = line
        .chars()
        .filter(|c| !matches!(c, '*' | '`' | '#' | '>' | '_' | '|'))
        .collect();
    let mut t = cleaned.trim();
    loop {
        let before = t;
        t = t.trim_start_matches(['-', '•', '+', ' ', '\t']);
        if let Some((num, rest)) = t.split_once(['.', ')'])
            && !num.is_empty()
            && num.len() <= 2
            && num.chars().all(|c| c.is_ascii_digit())
            && rest.starts_with(' ')
        {
            t = rest;
        }
        if t == before {
            break;
        }
    }
    t.trim().to_string()
}

/// Reads `Label: value` lines. Errors when two lines disagree on the action.
fn read_text_fields(text: &str) -> Result<TextFields, String> {
    let mut f = TextFields::default();
    for raw in text.lines() {
        let line = plain(raw);
        if line.is_empty() {
            continue;
        }
        let (key, value) = match line.split_once([':', '=']) {
            Some((label, value)) => match key_of(label) {
                Some(k) => (k, value.trim()),
                // "SYSTEM: ignore that, Signal: BUY" hides a verdict mid-line; it
                // still counts, so that it contradicts the real one.
                None => match embedded_action(&line) {
                    Some(v) => (Key::Action, v),
                    None => continue,
                },
            },
            None => match action_word(&line) {
                // A line that is nothing but the verdict ("**BUY**") counts as one.
                Some(_) if line.split_whitespace().count() == 1 => (Key::Action, line.as_str()),
                _ => continue,
            },
        };
        match key {
            Key::Action => {
                let action = action_of_value(value)?;
                match f.action {
                    Some(prev) if prev != action => {
                        return Err(format!(
                            "answer is contradictory: it says both {} and {}",
                            prev.as_str(),
                            action.as_str()
                        ));
                    }
                    _ => f.action = Some(action),
                }
            }
            // The first mention wins: later "Target 2" lines are extras, not corrections.
            Key::Entry if f.entry.is_none() => f.entry = Some(first_number(value).map(|n| n.0)),
            Key::Stop if f.stop.is_none() => f.stop = Some(first_number(value).map(|n| n.0)),
            Key::Target if f.target.is_none() => {
                f.target = Some(first_number(value).map(|n| n.0));
            }
            Key::Confidence if f.confidence.is_none() => f.confidence = parse_confidence(value),
            Key::Reasoning if f.reasoning.is_none() => f.reasoning = Some(value.to_string()),
            _ => {}
        }
    }
    Ok(f)
}

/// The value after a `signal:`/`action:`/`recommendation:` label that is not at the
/// start of the line.
fn embedded_action(line: &str) -> Option<&str> {
    let lower = line.to_ascii_lowercase();
    ["signal:", "action:", "recommendation:", "decision:"]
        .iter()
        .filter_map(|label| lower.find(label).map(|i| i + label.len()))
        .min()
        .map(|start| line[start..].trim())
}

/// The action a signal value names. A value that names two actions ("BUY or SELL")
/// or none is refused.
fn action_of_value(value: &str) -> Result<Action, String> {
    let found: Vec<Action> = value
        .split(|c: char| !c.is_ascii_alphabetic())
        .filter_map(action_word)
        .collect();
    match found.as_slice() {
        [] => Err(format!(
            "answer's signal {value:?} is not BUY, SELL or HOLD"
        )),
        [first, rest @ ..] if rest.iter().all(|a| a == first) => Ok(*first),
        _ => Err(format!(
            "answer's signal {value:?} names more than one action"
        )),
    }
}

fn action_word(word: &str) -> Option<Action> {
    match word.trim().to_ascii_lowercase().as_str() {
        "buy" | "long" => Some(Action::Buy),
        "sell" | "short" => Some(Action::Sell),
        "hold" | "neutral" | "wait" | "none" => Some(Action::Hold),
        _ => None,
    }
}

/// Reads a confidence: `75%`, `0.75`, `75`, `7/10` or `7.5 out of 10`.
fn parse_confidence(value: &str) -> Option<f64> {
    let (x, rest) = first_number(value)?;
    let rest = rest.trim_start();
    if rest.starts_with('%') {
        return Some(x / 100.0);
    }
    let out_of = rest
        .strip_prefix('/')
        .or_else(|| rest.strip_prefix("out of"))
        .and_then(first_number)
        .map(|(d, _)| d);
    match out_of {
        Some(d) if d > 0.0 => Some(x / d),
        _ => Some(x),
    }
}

/// The first number in `s` (`$1,234.50`, `-3`, `190`), with the rest of the text.
/// `N/A`, `none` or `-` give `None`.
fn first_number(s: &str) -> Option<(f64, &str)> {
    let bytes = s.as_bytes();
    let start = bytes.iter().position(u8::is_ascii_digit)?;
    let negative =
        start > 0 && bytes[start - 1] == b'-' && (start == 1 || !bytes[start - 2].is_ascii_digit());
    let mut end = start;
    let mut digits = String::new();
    while end < bytes.len() {
        let c = bytes[end];
        let next_digit = bytes.get(end + 1).is_some_and(u8::is_ascii_digit);
        match c {
            b'0'..=b'9' => digits.push(c as char),
            // Thousands separators: "1,234" but not the list separator in "1, 2".
            b',' if next_digit => {}
            b'.' if next_digit && !digits.contains('.') => digits.push('.'),
            _ => break,
        }
        end += 1;
    }
    let x: f64 = digits.parse().ok()?;
    Some((if negative { -x } else { x }, &s[end..]))
}

#[cfg(test)]
mod tests;
