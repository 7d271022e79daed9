//! The account the strategies share: one IBKR account, one cash balance, one set of
//! positions. Its limits hold however runs overlap (I2) because every entry takes a
//! claim on its contract in the same transaction that counts it against them, and
//! every fill updates the account's day in the transaction that applies it.
//!
//! Rule for strategies sharing a contract: they may hold it on the same side, never
//! against each other. An entry is refused while another strategy holds the
//! contract (an open position or a working entry, from its entry claim until it is
//! flat again) on the other side, so the account never nets one strategy's long
//! against another's short and each strategy's stop and target act on shares that
//! are really there. The broker's position per contract is the sum of the books'.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::calendar::{Clock, MarketSession};
use crate::orders::Side;

/// Account-wide limits. A limit that is absent does not apply; cash always does.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AccountLimits {
    /// Contracts held at once across strategies (open positions and working entries).
    #[serde(default)]
    pub max_open_positions: Option<u32>,
    /// Realised loss of the account's trading day (New York) that stops new entries.
    #[serde(default)]
    pub daily_loss_limit: Option<Decimal>,
    /// Largest value of one contract's position (caps the entry size).
    #[serde(default)]
    pub max_contract_value: Option<Decimal>,
}

/// The account item: its limits and how many contracts are held now.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Account {
    #[serde(default)]
    pub limits: AccountLimits,
    /// Contract claims outstanding (the count the open-position cap checks).
    #[serde(default)]
    pub held: u32,
}

/// A strategy's hold on a contract (see the module rule), with the cash its working
/// entry may spend. One per (contract, strategy).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContractClaim {
    #[serde(rename = "contract", with = "crate::portfolio::conid_string")]
    pub conid: i64,
    pub holder: String,
    /// The side of the holder's entry (and so of its position).
    pub side: Side,
    /// The entry working on it; none once the entry settled (the position holds it).
    #[serde(default)]
    pub entry_order_id: Option<String>,
    /// quantity × limit of the working entry: cash other entries must not count on.
    #[serde(default)]
    pub reserved: Decimal,
    pub claimed_at: String,
}

/// Why the account refuses an entry.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum NoEntry {
    #[error(
        "contract {conid} is held {held} by strategy {holder}: strategies never trade a contract against each other"
    )]
    HeldAgainst {
        conid: i64,
        holder: String,
        held: &'static str,
    },
    #[error("entry order {order_id} is already working on this contract")]
    EntryWorking { order_id: String },
    #[error("account max open positions reached ({held} held, {max} allowed)")]
    MaxOpenPositions { held: u32, max: u32 },
    #[error(
        "account daily loss limit reached: realised {realized_today} today against {limit}; no new entries until the next trading day"
    )]
    DailyLossLimit {
        realized_today: Decimal,
        limit: Decimal,
    },
}

/// The account's trading day: New York regular hours (the session the default
/// strategy market uses), as `YYYY-MM-DD`.
pub fn account_day(at: DateTime<Utc>) -> String {
    account_clock().trading_day(at).to_string()
}

fn account_clock() -> Clock {
    MarketSession::default()
        .clock()
        .expect("the default market session parses (a constant, tested in calendar)")
}

/// Checks a new entry of `strategy_id` in `conid` against the account.
///
/// # Errors
/// The first limit that refuses it.
pub fn entry_gate(
    strategy_id: &str,
    conid: i64,
    side: Side,
    account: &Account,
    claims: &[ContractClaim],
    realized_today: Decimal,
) -> Result<(), NoEntry> {
    for c in claims.iter().filter(|c| c.conid == conid) {
        if c.holder == strategy_id {
            if let Some(order_id) = &c.entry_order_id {
                return Err(NoEntry::EntryWorking {
                    order_id: order_id.clone(),
                });
            }
        } else if c.side != side {
            return Err(NoEntry::HeldAgainst {
                conid,
                holder: c.holder.clone(),
                held: if c.side == Side::Buy { "long" } else { "short" },
            });
        }
    }
    if let Some(max) = account.limits.max_open_positions
        && account.held >= max
    {
        return Err(NoEntry::MaxOpenPositions {
            held: account.held,
            max,
        });
    }
    if let Some(limit) = account.limits.daily_loss_limit {
        let loss = -realized_today;
        if loss > Decimal::ZERO && loss >= limit {
            return Err(NoEntry::DailyLossLimit {
                realized_today,
                limit,
            });
        }
    }
    Ok(())
}

/// Cash an entry of `strategy_id` in `conid` may spend: the broker's cash less what
/// the other working entries reserved (the broker takes cash only as they fill).
pub fn available_cash(
    broker_cash: Decimal,
    claims: &[ContractClaim],
    strategy_id: &str,
    conid: i64,
) -> Decimal {
    let reserved: Decimal = claims
        .iter()
        .filter(|c| !(c.conid == conid && c.holder == strategy_id) && c.entry_order_id.is_some())
        .map(|c| c.reserved)
        .sum();
    (broker_cash - reserved).max(Decimal::ZERO)
}

#[cfg(test)]
mod tests {
    use rust_decimal_macros::dec;

    use super::*;

    fn claim(conid: i64, holder: &str, entry: Option<&str>, reserved: Decimal) -> ContractClaim {
        ContractClaim {
            conid,
            holder: holder.into(),
            side: Side::Buy,
            entry_order_id: entry.map(String::from),
            reserved,
            claimed_at: "2026-01-05T15:00:00Z".into(),
        }
    }

    #[test]
    fn strategies_share_a_contract_on_one_side_and_never_against_each_other() {
        let claims = [claim(1, "a", None, dec!(0))];

        let with = entry_gate("b", 1, Side::Buy, &Account::default(), &claims, dec!(0));
        let against = entry_gate("b", 1, Side::Sell, &Account::default(), &claims, dec!(0));

        assert_eq!(with, Ok(()));
        assert_eq!(
            against,
            Err(NoEntry::HeldAgainst {
                conid: 1,
                holder: "a".into(),
                held: "long"
            })
        );
    }

    #[test]
    fn a_working_entry_of_the_same_strategy_refuses_a_second_one() {
        let claims = [claim(1, "a", Some("tf-1"), dec!(100))];

        let r = entry_gate("a", 1, Side::Buy, &Account::default(), &claims, dec!(0));

        assert!(matches!(r, Err(NoEntry::EntryWorking { .. })));
    }

    #[test]
    fn the_account_caps_contracts_held_and_stops_on_its_days_loss() {
        let account = Account {
            limits: AccountLimits {
                max_open_positions: Some(2),
                daily_loss_limit: Some(dec!(500)),
                max_contract_value: None,
            },
            held: 2,
        };
        let under = Account {
            held: 1,
            ..account.clone()
        };

        assert!(matches!(
            entry_gate("a", 1, Side::Buy, &account, &[], dec!(0)),
            Err(NoEntry::MaxOpenPositions { held: 2, max: 2 })
        ));
        assert!(entry_gate("a", 1, Side::Buy, &under, &[], dec!(-499.99)).is_ok());
        assert!(matches!(
            entry_gate("a", 1, Side::Buy, &under, &[], dec!(-500)),
            Err(NoEntry::DailyLossLimit { .. })
        ));
    }

    #[test]
    fn other_working_entries_reserve_cash_and_settled_ones_do_not() {
        let claims = [
            claim(1, "a", Some("tf-1"), dec!(10000)),
            claim(2, "b", None, dec!(0)),
            claim(3, "c", Some("tf-3"), dec!(2500.50)),
        ];

        assert_eq!(available_cash(dec!(20000), &claims, "c", 3), dec!(10000));
        assert_eq!(available_cash(dec!(20000), &claims, "x", 9), dec!(7499.50));
        assert_eq!(available_cash(dec!(5000), &claims, "x", 9), dec!(0));
    }

    #[test]
    fn the_account_day_is_new_yorks_trading_day() {
        let late_evening_ny = "2026-01-06T03:00:00Z".parse().unwrap();
        let saturday = "2026-01-10T15:00:00Z".parse().unwrap();

        assert_eq!(account_day(late_evening_ny), "2026-01-05");
        assert_eq!(account_day(saturday), "2026-01-09");
    }
}
