//! Colours and number formats of the charts, in one place.

use plotters::style::RGBColor;

pub const BACKGROUND: RGBColor = RGBColor(255, 255, 255);
pub const TEXT: RGBColor = RGBColor(33, 37, 41);
pub const GRID: RGBColor = RGBColor(236, 236, 240);
pub const BORDER: RGBColor = RGBColor(180, 184, 192);
pub const REFERENCE: RGBColor = RGBColor(120, 123, 134);
/// Rising candles and volume (close ≥ open).
pub const UP: RGBColor = RGBColor(38, 166, 154);
/// Falling candles and volume.
pub const DOWN: RGBColor = RGBColor(239, 83, 80);
pub const SMA: RGBColor = RGBColor(255, 152, 0);
pub const EMA: RGBColor = RGBColor(156, 39, 176);
pub const BAND: RGBColor = RGBColor(33, 150, 243);
pub const TREND_UP: RGBColor = RGBColor(0, 150, 60);
pub const TREND_DOWN: RGBColor = RGBColor(214, 39, 40);
pub const RSI: RGBColor = RGBColor(126, 87, 194);
pub const MACD: RGBColor = RGBColor(41, 98, 255);
pub const SIGNAL: RGBColor = RGBColor(255, 109, 0);
/// Lines of indicators without a colour of their own.
pub const PALETTE: [RGBColor; 5] = [
    RGBColor(0, 137, 123),
    RGBColor(121, 85, 72),
    RGBColor(233, 30, 99),
    RGBColor(96, 125, 139),
    RGBColor(205, 220, 57),
];

/// Every colour above: the canvas keeps palette room for them from the start.
pub const SOLIDS: [RGBColor; 22] = [
    BACKGROUND,
    TEXT,
    GRID,
    BORDER,
    REFERENCE,
    UP,
    DOWN,
    SMA,
    EMA,
    BAND,
    TREND_UP,
    TREND_DOWN,
    RSI,
    MACD,
    SIGNAL,
    PALETTE[0],
    PALETTE[1],
    PALETTE[2],
    PALETTE[3],
    PALETTE[4],
    plotters::style::colors::BLACK,
    plotters::style::colors::WHITE,
];

/// A price with precision to match its size: `183.42`, `4.215`, `0.0831`.
pub fn price(v: f64) -> String {
    let a = v.abs();
    if a >= 10.0 || a == 0.0 {
        format!("{v:.2}")
    } else if a >= 1.0 {
        format!("{v:.3}")
    } else {
        format!("{v:.4}")
    }
}

/// A volume in K/M/B.
pub fn volume(v: f64) -> String {
    compact(v)
}

/// A number in K/M/B for large magnitudes, else two decimals.
pub fn compact(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.2}B", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.1}K", v / 1e3)
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_keep_significant_digits_and_volumes_are_compact() {
        assert_eq!(price(183.456), "183.46");
        assert_eq!(price(4.2151), "4.215");
        assert_eq!(price(0.08312), "0.0831");
        assert_eq!(volume(1_234_567.0), "1.23M");
        assert_eq!(compact(-0.4567), "-0.46");
    }
}
