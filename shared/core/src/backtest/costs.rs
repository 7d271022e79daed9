//! What a fill costs: the commission models a backtest charges.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// IBKR Pro Fixed, US stocks: USD 0.005 per share, at least USD 1.00 and at most 1%
/// of the trade value per order; exchange and regulatory fees left out (IBKR
/// "Commissions: Stocks, ETFs and Warrants", Fixed pricing; the same rule the fake
/// gateway charges in `localstack/fake-ibkr/src/broker.rs`).
const IBKR_PER_SHARE: Decimal = Decimal::from_parts(5, 0, 0, false, 3);
const IBKR_MIN: Decimal = Decimal::ONE;
const IBKR_MAX_OF_VALUE: Decimal = Decimal::from_parts(1, 0, 0, false, 2);

/// How a backtest charges commission on each fill.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CommissionModel {
    /// IBKR Pro Fixed (the default: what the live broker charges), to the cent.
    #[default]
    IbkrFixed,
    /// A fraction of the fill's value, unrounded (backtesting.py's `commission=`).
    Percent { rate: Decimal },
    /// No commission.
    None,
}

impl CommissionModel {
    /// The commission of one fill of `quantity` shares at `price`.
    pub fn commission(&self, quantity: Decimal, price: Decimal) -> Decimal {
        let quantity = quantity.abs();
        if quantity.is_zero() {
            return Decimal::ZERO;
        }
        match self {
            CommissionModel::IbkrFixed => (quantity * IBKR_PER_SHARE)
                .max(IBKR_MIN)
                .min(quantity * price * IBKR_MAX_OF_VALUE)
                .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero),
            CommissionModel::Percent { rate } => quantity * price * rate,
            CommissionModel::None => Decimal::ZERO,
        }
    }

    /// The cost of one more share at `price` when sizing by money: the price plus
    /// the per-share part of the commission (the fixed minimum is left to the cash
    /// check after sizing).
    pub fn cost_per_share(&self, price: Decimal) -> Decimal {
        match self {
            CommissionModel::IbkrFixed => price + IBKR_PER_SHARE,
            CommissionModel::Percent { rate } => price * (Decimal::ONE + rate),
            CommissionModel::None => price,
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use rust_decimal_macros::dec;

    use super::*;

    #[rstest]
    #[case::minimum_applies(dec!(100), dec!(50), dec!(1.00))]
    #[case::per_share(dec!(1000), dec!(50), dec!(5.00))]
    #[case::cap_of_one_percent_of_value(dec!(1000), dec!(0.05), dec!(0.50))]
    #[case::rounded_to_the_cent(dec!(333), dec!(20), dec!(1.67))]
    fn ibkr_fixed_follows_the_published_schedule(
        #[case] qty: Decimal,
        #[case] price: Decimal,
        #[case] expected: Decimal,
    ) {
        assert_eq!(CommissionModel::IbkrFixed.commission(qty, price), expected);
    }

    #[test]
    fn percent_is_of_the_value_and_a_sell_pays_like_a_buy() {
        let m = CommissionModel::Percent { rate: dec!(0.002) };

        assert_eq!(m.commission(dec!(-10), dec!(101.5)), dec!(2.03));
        assert_eq!(m.commission(Decimal::ZERO, dec!(101.5)), Decimal::ZERO);
    }
}
