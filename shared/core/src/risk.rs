//! Position sizing and the risk gates a new entry must pass: pure functions on exact
//! decimals, so a sizing decision can be replayed from its lineage to the share.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::orders::Side;
use crate::strategy::RiskParams;

/// What the sizing knows about the account and the strategy when a signal arrives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryRequest {
    /// The side of the new position (SELL only when the strategy allows shorts).
    pub side: Side,
    pub entry: Option<Decimal>,
    pub stop: Option<Decimal>,
    pub confidence: f64,
    /// Cash the account can spend now (broker ledger; the strategy capital in dry runs).
    pub available_cash: Decimal,
    /// Positions of this strategy that are open now.
    pub open_positions: u32,
    /// Realised P&L of this strategy today, net of commission (negative = loss).
    pub realized_today: Decimal,
}

/// Which limit decided the quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cap {
    /// capital × risk_per_trade / risk per share.
    Risk,
    AvailableCash,
    MaxPositionValue,
}

impl std::fmt::Display for Cap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cap::Risk => "risk per trade",
            Cap::AvailableCash => "available cash",
            Cap::MaxPositionValue => "max position value",
        })
    }
}

/// A sized entry, with the numbers that produced it (kept in lineage).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sizing {
    pub quantity: Decimal,
    pub entry: Decimal,
    pub stop: Decimal,
    pub risk_per_share: Decimal,
    /// capital × risk_per_trade.
    pub risk_budget: Decimal,
    pub limited_by: Cap,
}

/// Why no order is placed. The text is what lineage and the step output show.
#[derive(Debug, Clone, PartialEq, Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NoOrder {
    #[error(
        "daily loss limit reached: realised {realized_today} today against a limit of {limit}; no new entries until the next trading day"
    )]
    DailyLossLimit {
        realized_today: Decimal,
        limit: Decimal,
    },
    #[error("max open positions reached ({open} open, {max} allowed)")]
    MaxOpenPositions { open: u32, max: u32 },
    #[error("confidence {confidence} is below the strategy minimum {min}")]
    LowConfidence { confidence: f64, min: f64 },
    #[error("signal has no entry price")]
    MissingEntry,
    #[error("signal has no stop")]
    MissingStop,
    #[error("entry price {entry} is not positive")]
    NonPositiveEntry { entry: Decimal },
    #[error(
        "risk distance is {distance} (entry {entry}, stop {stop}): the stop must be on the losing side of the entry"
    )]
    NoRiskDistance {
        entry: Decimal,
        stop: Decimal,
        distance: Decimal,
    },
    #[error("quantity rounds to 0 (limited by {limited_by})")]
    ZeroQuantity { limited_by: Cap },
}

/// The kill switch: once the strategy's realised loss today reaches the limit, no new
/// entries until the next trading day (the next day starts with no realised P&L).
/// A limit of 0 allows no loss at all.
///
/// # Errors
/// `DailyLossLimit` when the switch is on.
pub fn kill_switch(risk: &RiskParams, realized_today: Decimal) -> Result<(), NoOrder> {
    let loss = -realized_today;
    if loss > Decimal::ZERO && loss >= risk.daily_loss_limit {
        return Err(NoOrder::DailyLossLimit {
            realized_today,
            limit: risk.daily_loss_limit,
        });
    }
    Ok(())
}

/// Sizes a new entry: quantity = floor(capital × risk_per_trade / risk per share),
/// capped by available cash and max position value, after the gates (kill switch,
/// open positions, confidence, prices).
///
/// # Errors
/// The first gate that blocks the entry, or `ZeroQuantity`.
pub fn size_entry(risk: &RiskParams, req: &EntryRequest) -> Result<Sizing, NoOrder> {
    kill_switch(risk, req.realized_today)?;
    if req.open_positions >= risk.max_open_positions {
        return Err(NoOrder::MaxOpenPositions {
            open: req.open_positions,
            max: risk.max_open_positions,
        });
    }
    if req.confidence < risk.min_confidence || req.confidence.is_nan() {
        return Err(NoOrder::LowConfidence {
            confidence: req.confidence,
            min: risk.min_confidence,
        });
    }
    let entry = req.entry.ok_or(NoOrder::MissingEntry)?;
    let stop = req.stop.ok_or(NoOrder::MissingStop)?;
    if entry <= Decimal::ZERO {
        return Err(NoOrder::NonPositiveEntry { entry });
    }
    // A long loses below the entry, a short above it: a stop on the other side
    // (or at the entry) is no stop, and the formula would divide by <= 0.
    let distance = match req.side {
        Side::Buy => entry - stop,
        Side::Sell => stop - entry,
    };
    if distance <= Decimal::ZERO {
        return Err(NoOrder::NoRiskDistance {
            entry,
            stop,
            distance,
        });
    }
    let risk_budget = risk.capital * risk.risk_per_trade;
    let candidates = [
        (Cap::Risk, (risk_budget / distance).floor()),
        (
            Cap::AvailableCash,
            (req.available_cash.max(Decimal::ZERO) / entry).floor(),
        ),
        (
            Cap::MaxPositionValue,
            (risk.max_position_value / entry).floor(),
        ),
    ];
    let (limited_by, quantity) =
        candidates
            .into_iter()
            .fold((Cap::Risk, candidates[0].1), |best, c| {
                if c.1 < best.1 { c } else { best }
            });
    if quantity <= Decimal::ZERO {
        return Err(NoOrder::ZeroQuantity { limited_by });
    }
    Ok(Sizing {
        quantity,
        entry,
        stop,
        risk_per_share: distance,
        risk_budget,
        limited_by,
    })
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use rust_decimal_macros::dec;

    use super::*;

    fn risk() -> RiskParams {
        RiskParams {
            capital: dec!(100000),
            risk_per_trade: dec!(0.01),
            max_position_value: dec!(25000),
            max_open_positions: 1,
            daily_loss_limit: dec!(2000),
            min_confidence: 0.5,
            allow_short: false,
        }
    }

    fn req(entry: Option<Decimal>, stop: Option<Decimal>) -> EntryRequest {
        EntryRequest {
            side: Side::Buy,
            entry,
            stop,
            confidence: 0.8,
            available_cash: dec!(1000000),
            open_positions: 0,
            realized_today: Decimal::ZERO,
        }
    }

    #[rstest]
    // 1000 risk / 2.50 per share = 400 shares = 40000 > 25000 cap -> 25000/100 = 250.
    #[case(dec!(100), dec!(97.50), dec!(250), Cap::MaxPositionValue)]
    // 1000 / 5 = 200 shares, 200 x 100 = 20000 < 25000.
    #[case(dec!(100), dec!(95), dec!(200), Cap::Risk)]
    // 1000 / 3 = 333.33 -> 333 (floor, never round up), 333 x 50 = 16650.
    #[case(dec!(50), dec!(47), dec!(333), Cap::Risk)]
    // 1000 / 0.07 = 14285.7 -> capped by 25000 / 12.34 = 2025.9 -> 2025.
    #[case(dec!(12.34), dec!(12.27), dec!(2025), Cap::MaxPositionValue)]
    // a wide stop: 1000 / 180.15 = 5.55 -> 5.
    #[case(dec!(190.15), dec!(10), dec!(5), Cap::Risk)]
    fn quantity_is_the_floor_of_risk_budget_over_risk_per_share_within_caps(
        #[case] entry: Decimal,
        #[case] stop: Decimal,
        #[case] quantity: Decimal,
        #[case] cap: Cap,
    ) {
        let s = size_entry(&risk(), &req(Some(entry), Some(stop))).unwrap();

        assert_eq!((s.quantity, s.limited_by), (quantity, cap));
        assert_eq!(s.risk_budget, dec!(1000));
    }

    #[rstest]
    #[case(dec!(10000), dec!(100), Cap::Risk)]
    // 5000 cash / 100 = 50 shares, below the 200 the risk allows.
    #[case(dec!(5000), dec!(50), Cap::AvailableCash)]
    #[case(dec!(5099.99), dec!(50), Cap::AvailableCash)]
    fn available_cash_caps_the_quantity(
        #[case] cash: Decimal,
        #[case] quantity: Decimal,
        #[case] cap: Cap,
    ) {
        let mut r = risk();
        r.risk_per_trade = dec!(0.005);
        let mut q = req(Some(dec!(100)), Some(dec!(95)));
        q.available_cash = cash;

        let s = size_entry(&r, &q).unwrap();

        assert_eq!((s.quantity, s.limited_by), (quantity, cap));
    }

    #[rstest]
    #[case(Some(dec!(100)), Some(dec!(100)), "risk distance is 0")]
    #[case(Some(dec!(100)), Some(dec!(101)), "risk distance is -1")]
    #[case(Some(dec!(100)), None, "signal has no stop")]
    #[case(None, Some(dec!(95)), "signal has no entry price")]
    #[case(Some(dec!(0)), Some(dec!(-1)), "entry price 0 is not positive")]
    fn unusable_prices_give_no_order_with_the_reason(
        #[case] entry: Option<Decimal>,
        #[case] stop: Option<Decimal>,
        #[case] reason: &str,
    ) {
        let e = size_entry(&risk(), &req(entry, stop)).unwrap_err();

        assert!(e.to_string().contains(reason), "{e}");
    }

    #[rstest]
    // no cash at all
    #[case(dec!(0), dec!(25000), Cap::AvailableCash)]
    #[case(dec!(-50), dec!(25000), Cap::AvailableCash)]
    // cash for less than one share
    #[case(dec!(99.99), dec!(25000), Cap::AvailableCash)]
    // max position value below one share
    #[case(dec!(1000000), dec!(99), Cap::MaxPositionValue)]
    fn a_quantity_of_zero_is_no_order(
        #[case] cash: Decimal,
        #[case] max_value: Decimal,
        #[case] cap: Cap,
    ) {
        let mut r = risk();
        r.max_position_value = max_value;
        let mut q = req(Some(dec!(100)), Some(dec!(95)));
        q.available_cash = cash;

        let e = size_entry(&r, &q).unwrap_err();

        assert_eq!(e, NoOrder::ZeroQuantity { limited_by: cap });
    }

    #[test]
    fn risk_too_small_for_one_share_is_no_order() {
        let mut r = risk();
        r.capital = dec!(100);

        let e = size_entry(&r, &req(Some(dec!(100)), Some(dec!(95)))).unwrap_err();

        assert_eq!(
            e,
            NoOrder::ZeroQuantity {
                limited_by: Cap::Risk
            }
        );
    }

    #[rstest]
    #[case(dec!(0), true)]
    #[case(dec!(500), true)]
    #[case(dec!(-1999.99), true)]
    #[case(dec!(-2000), false)]
    #[case(dec!(-2500.01), false)]
    fn the_kill_switch_blocks_entries_once_the_daily_loss_reaches_the_limit(
        #[case] realized_today: Decimal,
        #[case] allowed: bool,
    ) {
        let mut q = req(Some(dec!(100)), Some(dec!(95)));
        q.realized_today = realized_today;

        let r = size_entry(&risk(), &q);

        assert_eq!(r.is_ok(), allowed, "{r:?}");
        if !allowed {
            assert!(matches!(r, Err(NoOrder::DailyLossLimit { .. })));
            assert!(r.unwrap_err().to_string().contains("next trading day"));
        }
    }

    #[test]
    fn a_zero_loss_limit_blocks_after_any_loss_but_not_before() {
        let mut r = risk();
        r.daily_loss_limit = Decimal::ZERO;

        assert_eq!(kill_switch(&r, Decimal::ZERO), Ok(()));
        assert_eq!(kill_switch(&r, dec!(10)), Ok(()));
        assert!(kill_switch(&r, dec!(-0.01)).is_err());
    }

    #[rstest]
    #[case(0, 1, true)]
    #[case(1, 1, false)]
    #[case(2, 3, true)]
    #[case(3, 3, false)]
    fn open_positions_are_capped_per_strategy(
        #[case] open: u32,
        #[case] max: u32,
        #[case] allowed: bool,
    ) {
        let mut r = risk();
        r.max_open_positions = max;
        let mut q = req(Some(dec!(100)), Some(dec!(95)));
        q.open_positions = open;

        assert_eq!(size_entry(&r, &q).is_ok(), allowed);
    }

    #[rstest]
    #[case(0.49, false)]
    #[case(0.5, true)]
    #[case(f64::NAN, false)]
    fn confidence_below_the_minimum_is_no_order(#[case] confidence: f64, #[case] allowed: bool) {
        let mut q = req(Some(dec!(100)), Some(dec!(95)));
        q.confidence = confidence;

        assert_eq!(size_entry(&risk(), &q).is_ok(), allowed);
    }

    #[test]
    fn a_short_entry_needs_its_stop_above_the_entry() {
        let mut q = req(Some(dec!(100)), Some(dec!(104)));
        q.side = Side::Sell;

        let s = size_entry(&risk(), &q).unwrap();
        q.stop = Some(dec!(96));

        assert_eq!((s.quantity, s.risk_per_share), (dec!(250), dec!(4)));
        assert!(matches!(
            size_entry(&risk(), &q),
            Err(NoOrder::NoRiskDistance { .. })
        ));
    }
}
