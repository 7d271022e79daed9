//! Which order questions tradeflow answers "yes" to by itself. IBKR publishes no
//! complete list of reply messages (ibind issue #42), so the policy is an explicit
//! allow-list of message ids, in two layers: the deployment's (`IBKR_CONFIRM_MESSAGE_IDS`,
//! also suppressed for the whole brokerage session) and a strategy's extra ids
//! (`confirm_message_ids`, confirmed question by question for that strategy's orders
//! only). A question is confirmed only if every message it carries is allowed; any
//! other rejects the order with IBKR's own words. Every question asked and its answer
//! is recorded, so the order's history (and the step's lineage) says what was agreed to.

use serde::Serialize;

use super::types::OrderQuestion;

/// The deployment default. Each id, with why it is safe to agree to for the orders
/// tradeflow places (ids and meanings: ibind `ibkr_utils.py`, IBKR Campus
/// "Suppressible Message IDs"):
/// - `o354` "order without market data": a paper account without a subscription;
///   it does not change the order.
/// - `o10151` "risks with Market Orders" and `o10153` "Mandatory Cap Price": every
///   stop and target exit is a market order; refusing would leave the position open.
///   With the cap IBKR may leave a marketable order unfilled, which check_order and
///   the monitor see and report.
/// - `o403` "will most likely trigger and fill immediately": entries are limits at
///   the signal price, marketable by design; the limit still bounds the price.
///
/// Not confirmed by default: `o163` (limit far from the market: a bad price),
/// `o383`/`o451` (the account's own size and value limits), `p12` (switches the
/// order to IBKR's price management algo), and everything unknown.
pub const DEFAULT_CONFIRM_IDS: &[&str] = &["o354", "o10151", "o10153", "o403"];

/// Where the permission to confirm a question came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Allowed {
    Deployment,
    Strategy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmPolicy {
    /// The deployment's message ids such as `o354`.
    pub message_ids: Vec<String>,
    /// Case-insensitive substrings of the message text (for questions that come
    /// without ids).
    pub text_patterns: Vec<String>,
    /// Extra ids one strategy allows for its own orders.
    pub strategy_ids: Vec<String>,
}

/// One question IBKR asked about an order and how it was answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnsweredQuestion {
    pub message_ids: Vec<String>,
    /// The first 200 characters of IBKR's text.
    pub text: String,
    pub confirmed: bool,
    /// Why it was confirmed; none when it was declined.
    pub allowed_by: Option<Allowed>,
}

impl AnsweredQuestion {
    /// One line for an order's history: `o10151 confirmed (deployment policy)`.
    pub fn summary(&self) -> String {
        let ids = if self.message_ids.is_empty() {
            "(no id)".to_string()
        } else {
            self.message_ids.join("+")
        };
        match self.allowed_by {
            Some(Allowed::Deployment) => format!("{ids} confirmed (deployment policy)"),
            Some(Allowed::Strategy) => format!("{ids} confirmed (strategy policy)"),
            None => format!("{ids} declined (not in the confirm policy)"),
        }
    }
}

fn split(s: &str, sep: char) -> Vec<String> {
    s.split(sep)
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(String::from)
        .collect()
}

impl ConfirmPolicy {
    /// Confirms nothing.
    pub fn none() -> Self {
        Self {
            message_ids: Vec::new(),
            text_patterns: Vec::new(),
            strategy_ids: Vec::new(),
        }
    }

    /// Parses `o354,o383` style id lists and `a|b` text patterns (empty entries
    /// ignored).
    pub fn from_lists(ids: &str, patterns: &str) -> Self {
        Self {
            message_ids: split(ids, ','),
            text_patterns: split(patterns, '|'),
            strategy_ids: Vec::new(),
        }
    }

    /// The same deployment policy plus a strategy's extra ids.
    #[must_use]
    pub fn with_strategy(&self, ids: &[String]) -> Self {
        Self {
            strategy_ids: ids.to_vec(),
            ..self.clone()
        }
    }

    /// The ids to suppress for the whole brokerage session: the deployment's
    /// only, since a strategy's extras must not apply to other strategies' orders.
    pub fn session_ids(&self) -> &[String] {
        &self.message_ids
    }

    fn allows_message(&self, id: Option<&str>, text: Option<&str>) -> Option<Allowed> {
        let by_deployment = id.is_some_and(|id| self.message_ids.iter().any(|a| a == id))
            || text.is_some_and(|t| {
                let t = t.to_lowercase();
                self.text_patterns
                    .iter()
                    .any(|p| t.contains(&p.to_lowercase()))
            });
        if by_deployment {
            Some(Allowed::Deployment)
        } else if id.is_some_and(|id| self.strategy_ids.iter().any(|a| a == id)) {
            Some(Allowed::Strategy)
        } else {
            None
        }
    }

    /// Why every message of the question may be confirmed (the strategy's layer
    /// when any message needed it), or none.
    pub fn decide(&self, q: &OrderQuestion) -> Option<Allowed> {
        let n = q.message_ids.len().max(q.messages.len());
        if n == 0 {
            return None;
        }
        let mut by = Allowed::Deployment;
        for i in 0..n {
            match self.allows_message(
                q.message_ids.get(i).map(String::as_str),
                q.messages.get(i).map(String::as_str),
            )? {
                Allowed::Strategy => by = Allowed::Strategy,
                Allowed::Deployment => {}
            }
        }
        Some(by)
    }

    /// Returns true when every message of the question may be confirmed.
    pub fn allows(&self, q: &OrderQuestion) -> bool {
        self.decide(q).is_some()
    }

    /// Decides and records the answer to `q`.
    pub fn answer(&self, q: &OrderQuestion) -> AnsweredQuestion {
        let allowed_by = self.decide(q);
        AnsweredQuestion {
            message_ids: q.message_ids.clone(),
            text: q.messages.join(" ").chars().take(200).collect(),
            confirmed: allowed_by.is_some(),
            allowed_by,
        }
    }
}

impl Default for ConfirmPolicy {
    /// `DEFAULT_CONFIRM_IDS`, plus the market-data warning's text for a question
    /// that comes without ids.
    fn default() -> Self {
        Self {
            message_ids: DEFAULT_CONFIRM_IDS.iter().map(|s| s.to_string()).collect(),
            text_patterns: vec!["without market data".into()],
            strategy_ids: Vec::new(),
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
    fn default_policy_lets_market_exits_through_and_stops_price_and_size_warnings() {
        let p = ConfirmPolicy::default();

        assert!(p.allows(&q(
            &["o354"],
            &["You are submitting an order without market data."]
        )));
        assert!(p.allows(&q(&["o10151"], &["Warns about risks with Market Orders"])));
        assert!(p.allows(&q(&["o10153"], &["Confirm Mandatory Cap Price"])));
        assert!(p.allows(&q(&["o403"], &["will most likely trigger and fill"])));
        assert!(!p.allows(&q(
            &["o163"],
            &["price exceeds the Percentage constraint of 3%"]
        )));
        assert!(!p.allows(&q(&["o383"], &["size exceeds the Size Limit"])));
        assert!(!p.allows(&q(&["o451"], &["exceeds the Total Value Limit"])));
        assert!(!p.allows(&q(&["p12"], &["Use the Price Management Algo?"])));
        assert!(!p.allows(&q(&["o354", "o163"], &["a", "b"])));
        assert!(!p.allows(&q(&[], &[])));
    }

    #[test]
    fn patterns_match_text_without_ids() {
        let p = ConfirmPolicy::from_lists("", "percentage constraint");

        assert!(p.allows(&q(&[], &["Price exceeds the Percentage Constraint of 3%"])));
        assert!(!ConfirmPolicy::none().allows(&q(&["o354"], &["x"])));
    }

    #[test]
    fn a_strategys_extra_ids_confirm_its_questions_and_are_recorded_as_its_own() {
        let base = ConfirmPolicy::default();
        let p = base.with_strategy(&["o163".into()]);

        let far = p.answer(&q(&["o163"], &["price exceeds the Percentage constraint"]));
        let mixed = p.answer(&q(&["o354", "o163"], &["a", "b"]));
        let market = p.answer(&q(&["o10151"], &["market order"]));
        let size = p.answer(&q(&["o383"], &["size limit"]));

        assert_eq!(far.allowed_by, Some(Allowed::Strategy));
        assert_eq!(mixed.allowed_by, Some(Allowed::Strategy));
        assert_eq!(market.allowed_by, Some(Allowed::Deployment));
        assert!(!size.confirmed);
        assert_eq!(size.summary(), "o383 declined (not in the confirm policy)");
        assert_eq!(far.summary(), "o163 confirmed (strategy policy)");
        assert_eq!(p.session_ids(), base.session_ids());
        assert!(!base.allows(&q(&["o163"], &["x"])));
    }
}
