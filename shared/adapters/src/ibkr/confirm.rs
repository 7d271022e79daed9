//! Which order questions tradeflow answers "yes" to by itself. IBKR publishes no
//! complete list of reply messages (ibind issue #42), so the policy is an explicit
//! allow-list: a question is confirmed only if every message it carries is allowed
//! by id or by text; anything else rejects the order with IBKR's own words.

use super::types::OrderQuestion;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmPolicy {
    /// Message ids such as `o354`.
    pub message_ids: Vec<String>,
    /// Case-insensitive substrings of the message text.
    pub text_patterns: Vec<String>,
}

impl ConfirmPolicy {
    /// Confirms nothing.
    pub fn none() -> Self {
        Self {
            message_ids: Vec::new(),
            text_patterns: Vec::new(),
        }
    }

    /// Parses `o354,o383` style lists (empty entries ignored).
    pub fn from_lists(ids: &str, patterns: &str) -> Self {
        let split = |s: &str, sep: char| {
            s.split(sep)
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect()
        };
        Self {
            message_ids: split(ids, ','),
            text_patterns: split(patterns, '|'),
        }
    }

    fn allows_message(&self, id: Option<&str>, text: Option<&str>) -> bool {
        id.is_some_and(|id| self.message_ids.iter().any(|a| a == id))
            || text.is_some_and(|t| {
                let t = t.to_lowercase();
                self.text_patterns
                    .iter()
                    .any(|p| t.contains(&p.to_lowercase()))
            })
    }

    /// Returns true when every message of the question may be confirmed.
    pub fn allows(&self, q: &OrderQuestion) -> bool {
        let n = q.message_ids.len().max(q.messages.len());
        n > 0
            && (0..n).all(|i| {
                self.allows_message(
                    q.message_ids.get(i).map(String::as_str),
                    q.messages.get(i).map(String::as_str),
                )
            })
    }
}

impl Default for ConfirmPolicy {
    /// Only the "no market data subscription" warning (o354): it does not change
    /// the order, it warns that the account lacks a live data subscription, which
    /// is normal for paper accounts. Price, size and cap warnings are never
    /// confirmed by default.
    fn default() -> Self {
        Self {
            message_ids: vec!["o354".into()],
            text_patterns: vec!["without market data".into()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(ids: &[&str], texts: &[&str]) -> OrderQuestion {
        OrderQuestion {
            reply_id: "r".into(),
            message_ids: ids.iter().map(|s| s.to_string()).collect(),
            messages: texts.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn default_policy_confirms_only_the_market_data_warning() {
        let p = ConfirmPolicy::default();

        assert!(p.allows(&q(
            &["o354"],
            &["You are submitting an order without market data."]
        )));
        assert!(!p.allows(&q(
            &["o163"],
            &["price exceeds the Percentage constraint of 3%"]
        )));
        assert!(!p.allows(&q(&["o354", "o163"], &["a", "b"])));
        assert!(!p.allows(&q(&[], &[])));
    }

    #[test]
    fn patterns_match_text_without_ids() {
        let p = ConfirmPolicy::from_lists("", "percentage constraint");

        assert!(p.allows(&q(&[], &["Price exceeds the Percentage Constraint of 3%"])));
        assert!(!ConfirmPolicy::none().allows(&q(&["o354"], &["x"])));
    }
}
