//! The fill rules of a backtest: when and at what price an order placed after bar t
//! fills on a later bar, judged from that bar's open, high and low only. Where a
//! daily bar cannot tell what came first, the rule takes the worse outcome.
//!
//! - A market order fills at the next bar's open.
//! - A limit order (IBKR `LMT`, `DAY`) lives for the next bar only. It fills at the
//!   open when the bar opens at or through the limit, else at the limit when the
//!   bar trades *through* it (a buy needs low < limit): a touch may leave the order
//!   unfilled behind the queue, so it does not count.
//! - A protective stop fills when the bar touches it, at the stop or at the open
//!   when the bar opens beyond it (a gap fills worse than the stop). A target fills
//!   when touched, at the target or at a better open.
//! - When one bar touches both the stop and the target, the stop fills.
//! - On the bar a limit entry fills, its stop can fill (the low may come after the
//!   entry) but its target cannot (the high may have come before it). A market
//!   entry fills at the open, before the rest of the bar, so both can.

use crate::market::Bar;
use crate::orders::Side;
use crate::portfolio::ExitTrigger;

/// The price a limit order on `side` fills at on `bar`, if it fills.
pub fn limit_fill(side: Side, limit: f64, bar: &Bar) -> Option<f64> {
    match side {
        Side::Buy if bar.open <= limit => Some(bar.open),
        Side::Buy if bar.low < limit => Some(limit),
        Side::Sell if bar.open >= limit => Some(bar.open),
        Side::Sell if bar.high > limit => Some(limit),
        _ => None,
    }
}

/// How the position being protected came to be open on this bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    /// Before this bar, or at its open: the whole bar comes after the entry.
    BeforeTheBar,
    /// By a limit inside this bar: only the stop can follow on this bar.
    InsideTheBar,
}

/// The protective exit `bar` triggers for a position (`long` or short) with its
/// stop and target, and the price it fills at.
pub fn protective_exit(
    long: bool,
    stop: Option<f64>,
    target: Option<f64>,
    bar: &Bar,
    opened: Opened,
) -> Option<(ExitTrigger, f64)> {
    let inside = opened == Opened::InsideTheBar;
    if let Some(stop) = stop {
        let touched = if long {
            bar.low <= stop
        } else {
            bar.high >= stop
        };
        if touched {
            let gapped = if long {
                bar.open < stop
            } else {
                bar.open > stop
            };
            let price = if gapped && !inside { bar.open } else { stop };
            return Some((ExitTrigger::Stop, price));
        }
    }
    if inside {
        return None;
    }
    let target = target?;
    let touched = if long {
        bar.high >= target
    } else {
        bar.low <= target
    };
    if !touched {
        return None;
    }
    let gapped = if long {
        bar.open > target
    } else {
        bar.open < target
    };
    Some((ExitTrigger::Target, if gapped { bar.open } else { target }))
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn bar(open: f64, high: f64, low: f64, close: f64) -> Bar {
        Bar {
            t: 0,
            open,
            high,
            low,
            close,
            volume: 1.0,
        }
    }

    #[rstest]
    #[case::traded_through(Side::Buy, 99.0, bar(100.0, 101.0, 98.5, 100.0), Some(99.0))]
    #[case::only_touched(Side::Buy, 99.0, bar(100.0, 101.0, 99.0, 100.0), None)]
    #[case::opened_below_the_limit(Side::Buy, 99.0, bar(97.0, 98.0, 96.0, 97.5), Some(97.0))]
    #[case::never_reached(Side::Buy, 99.0, bar(100.0, 101.0, 99.5, 100.0), None)]
    #[case::sell_traded_through(Side::Sell, 101.0, bar(100.0, 101.5, 99.0, 100.0), Some(101.0))]
    #[case::sell_opened_above(Side::Sell, 101.0, bar(103.0, 104.0, 102.0, 103.0), Some(103.0))]
    fn a_limit_fills_only_when_the_bar_trades_through_it(
        #[case] side: Side,
        #[case] limit: f64,
        #[case] b: Bar,
        #[case] expected: Option<f64>,
    ) {
        assert_eq!(limit_fill(side, limit, &b), expected);
    }

    #[rstest]
    #[case::both_touched_the_stop_wins(true, bar(100.0, 111.0, 94.0, 100.0), Opened::BeforeTheBar, Some((ExitTrigger::Stop, 95.0)))]
    #[case::gap_down_fills_at_the_open(true, bar(90.0, 92.0, 89.0, 91.0), Opened::BeforeTheBar, Some((ExitTrigger::Stop, 90.0)))]
    #[case::target(true, bar(105.0, 111.0, 104.0, 109.0), Opened::BeforeTheBar, Some((ExitTrigger::Target, 110.0)))]
    #[case::gap_up_through_the_target(true, bar(112.0, 113.0, 111.0, 112.0), Opened::BeforeTheBar, Some((ExitTrigger::Target, 112.0)))]
    #[case::no_target_on_a_limit_entry_bar(
        true,
        bar(100.0, 111.0, 99.0, 105.0),
        Opened::InsideTheBar,
        None
    )]
    #[case::but_the_stop(true, bar(100.0, 111.0, 94.0, 105.0), Opened::InsideTheBar, Some((ExitTrigger::Stop, 95.0)))]
    #[case::short_stop_above(false, bar(104.0, 106.0, 103.0, 105.0), Opened::BeforeTheBar, Some((ExitTrigger::Stop, 105.0)))]
    #[case::short_target_below(false, bar(92.0, 93.0, 89.0, 90.0), Opened::BeforeTheBar, Some((ExitTrigger::Target, 90.0)))]
    fn protective_exits_take_the_worse_case(
        #[case] long: bool,
        #[case] b: Bar,
        #[case] opened: Opened,
        #[case] expected: Option<(ExitTrigger, f64)>,
    ) {
        let (stop, target) = if long { (95.0, 110.0) } else { (105.0, 90.0) };

        assert_eq!(
            protective_exit(long, Some(stop), Some(target), &b, opened),
            expected
        );
    }
}
