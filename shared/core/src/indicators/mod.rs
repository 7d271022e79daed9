//! The indicator catalogue: specs with named parameters and defaults, validation,
//! and computation to series aligned with the input bars (`None` during warm-up).
//!
//! Definitions follow TA-Lib (the formulas and where they use the `ta` crate are in
//! `formulas.rs`; they are checked value by value against TA-Lib in `reference_tests.rs`).
//! This module is the one place that knows the formulas. Series are named `<indicator>[_<output>]_<params>`, e.g.
//! `rsi_14`, `macd_signal_12_26_9`, `bb_upper_20_2`.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::market::Bar;

mod formulas;
use formulas::Columns;
#[cfg(test)]
mod reference_tests;
mod values;
pub use values::SeriesValues;

/// One configured indicator with its parameters. Missing parameters take the defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum IndicatorSpec {
    Rsi {
        #[serde(default = "p14")]
        period: usize,
    },
    Macd {
        #[serde(default = "p12")]
        fast: usize,
        #[serde(default = "p26")]
        slow: usize,
        #[serde(default = "p9")]
        signal: usize,
    },
    Atr {
        #[serde(default = "p14")]
        period: usize,
    },
    Sma {
        #[serde(default = "p20")]
        period: usize,
    },
    Ema {
        #[serde(default = "p20")]
        period: usize,
    },
    Bollinger {
        #[serde(default = "p20")]
        period: usize,
        #[serde(default = "two")]
        std_dev: f64,
    },
    Supertrend {
        #[serde(default = "p10")]
        period: usize,
        #[serde(default = "three")]
        multiplier: f64,
    },
    /// Slow stochastic, TA-Lib's `STOCH` parameter names (defaults 5/3/3).
    Stochastic {
        #[serde(default = "p5")]
        fastk_period: usize,
        #[serde(default = "p3")]
        slowk_period: usize,
        #[serde(default = "p3")]
        slowd_period: usize,
    },
    Obv {},
    /// Rolling VWAP over `period` bars.
    Vwap {
        #[serde(default = "p20")]
        period: usize,
    },
}

fn p3() -> usize {
    3
}
fn p5() -> usize {
    5
}
fn p9() -> usize {
    9
}
fn p10() -> usize {
    10
}
fn p12() -> usize {
    12
}
fn p14() -> usize {
    14
}
fn p20() -> usize {
    20
}
fn p26() -> usize {
    26
}
fn two() -> f64 {
    2.0
}
fn three() -> f64 {
    3.0
}

/// Where a series is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Panel {
    /// Overlaid on the candles (SMA, EMA, Bollinger, Supertrend, VWAP).
    Price,
    /// A panel of its own, named after the indicator (RSI, MACD, ATR, stochastic, OBV).
    Own,
    /// Not drawn as a line: qualifies another series of the same indicator
    /// (Supertrend's direction, +1/−1, colours the Supertrend line).
    Hidden,
}

/// One output series of an indicator, aligned index-for-index with the bars.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndicatorSeries {
    /// Series name, e.g. `macd_hist_12_26_9`.
    pub name: String,
    /// The indicator it belongs to, e.g. `macd`.
    pub indicator: String,
    pub panel: Panel,
    /// One value per bar, `None` (JSON `null`) during the warm-up.
    pub values: SeriesValues,
}

impl IndicatorSeries {
    /// The last computed value, if any.
    pub fn latest(&self) -> Option<f64> {
        self.values.latest()
    }

    /// Number of computed (non-warm-up) values.
    pub fn count(&self) -> usize {
        self.values.count()
    }
}

#[derive(Debug, Error, PartialEq)]
pub enum IndicatorError {
    #[error("{indicator}: {message}")]
    InvalidParameter { indicator: String, message: String },
    #[error("{indicator}: needs at least {needed} bars, got {got}")]
    NotEnoughBars {
        indicator: String,
        needed: usize,
        got: usize,
    },
}

impl IndicatorSpec {
    /// The catalogue's defaults: what a strategy gets when it names no indicators.
    pub fn defaults() -> Vec<IndicatorSpec> {
        vec![
            IndicatorSpec::Sma { period: 20 },
            IndicatorSpec::Ema { period: 20 },
            IndicatorSpec::Bollinger {
                period: 20,
                std_dev: 2.0,
            },
            IndicatorSpec::Rsi { period: 14 },
            IndicatorSpec::Macd {
                fast: 12,
                slow: 26,
                signal: 9,
            },
            IndicatorSpec::Atr { period: 14 },
            IndicatorSpec::Supertrend {
                period: 10,
                multiplier: 3.0,
            },
        ]
    }

    /// The indicator's kind, e.g. `macd`: the first part of its series names.
    pub fn kind(&self) -> &'static str {
        match self {
            IndicatorSpec::Rsi { .. } => "rsi",
            IndicatorSpec::Macd { .. } => "macd",
            IndicatorSpec::Atr { .. } => "atr",
            IndicatorSpec::Sma { .. } => "sma",
            IndicatorSpec::Ema { .. } => "ema",
            IndicatorSpec::Bollinger { .. } => "bb",
            IndicatorSpec::Supertrend { .. } => "supertrend",
            IndicatorSpec::Stochastic { .. } => "stoch",
            IndicatorSpec::Obv {} => "obv",
            IndicatorSpec::Vwap { .. } => "vwap",
        }
    }

    /// The parameter suffix of the series names, e.g. `_12_26_9`, `_20_2` (empty for OBV).
    fn params(&self) -> String {
        match *self {
            IndicatorSpec::Rsi { period }
            | IndicatorSpec::Atr { period }
            | IndicatorSpec::Sma { period }
            | IndicatorSpec::Ema { period }
            | IndicatorSpec::Vwap { period } => format!("_{period}"),
            IndicatorSpec::Macd { fast, slow, signal } => format!("_{fast}_{slow}_{signal}"),
            // f64's Display prints 2.0 as "2" and 2.5 as "2.5".
            IndicatorSpec::Bollinger { period, std_dev } => format!("_{period}_{std_dev}"),
            IndicatorSpec::Supertrend { period, multiplier } => format!("_{period}_{multiplier}"),
            IndicatorSpec::Stochastic {
                fastk_period,
                slowk_period,
                slowd_period,
            } => format!("_{fastk_period}_{slowk_period}_{slowd_period}"),
            IndicatorSpec::Obv {} => String::new(),
        }
    }

    /// The indicator with its parameters, e.g. `macd_12_26_9`: names it in errors.
    pub fn label(&self) -> String {
        format!("{}{}", self.kind(), self.params())
    }

    /// Bars needed for one value: TA-Lib's lookback + 1 (e.g. RSI 14 needs 15, MACD
    /// 12/26/9 needs 34, stochastic 5/3/3 needs 9).
    pub fn bars_needed(&self) -> usize {
        match *self {
            IndicatorSpec::Sma { period }
            | IndicatorSpec::Ema { period }
            | IndicatorSpec::Bollinger { period, .. }
            | IndicatorSpec::Vwap { period } => period,
            IndicatorSpec::Rsi { period }
            | IndicatorSpec::Atr { period }
            | IndicatorSpec::Supertrend { period, .. } => period + 1,
            IndicatorSpec::Macd { slow, signal, .. } => slow + signal - 1,
            IndicatorSpec::Stochastic {
                fastk_period,
                slowk_period,
                slowd_period,
            } => fastk_period + slowk_period + slowd_period - 2,
            IndicatorSpec::Obv {} => 1,
        }
    }

    /// Whether the formula reads the bars' high and low (else only close and volume).
    fn reads_high_low(&self) -> bool {
        matches!(
            self,
            IndicatorSpec::Atr { .. }
                | IndicatorSpec::Supertrend { .. }
                | IndicatorSpec::Stochastic { .. }
                | IndicatorSpec::Vwap { .. }
        )
    }

    /// Whether the formula reads the bars' volume.
    fn reads_volume(&self) -> bool {
        matches!(self, IndicatorSpec::Obv {} | IndicatorSpec::Vwap { .. })
    }

    /// Checks the parameters: periods ≥ 1, MACD fast < slow, positive finite multipliers.
    ///
    /// # Errors
    /// `InvalidParameter` naming the indicator and the parameter.
    pub fn validate(&self) -> Result<(), IndicatorError> {
        let bad = |message: &str| {
            Err(IndicatorError::InvalidParameter {
                indicator: self.label(),
                message: message.into(),
            })
        };
        let positive = |x: f64| x.is_finite() && x > 0.0;
        match *self {
            IndicatorSpec::Rsi { period }
            | IndicatorSpec::Atr { period }
            | IndicatorSpec::Sma { period }
            | IndicatorSpec::Ema { period }
            | IndicatorSpec::Vwap { period }
                if period < 1 =>
            {
                bad("period must be >= 1")
            }
            IndicatorSpec::Macd { fast, slow, signal } if fast < 1 || slow < 1 || signal < 1 => {
                bad("fast, slow and signal must be >= 1")
            }
            IndicatorSpec::Macd { fast, slow, .. } if fast >= slow => bad("fast must be < slow"),
            IndicatorSpec::Bollinger { period, std_dev } if period < 1 || !positive(std_dev) => {
                bad("period must be >= 1 and std_dev a finite number > 0")
            }
            IndicatorSpec::Supertrend { period, multiplier }
                if period < 1 || !positive(multiplier) =>
            {
                bad("period must be >= 1 and multiplier a finite number > 0")
            }
            IndicatorSpec::Stochastic {
                fastk_period,
                slowk_period,
                slowd_period,
            } if fastk_period < 1 || slowk_period < 1 || slowd_period < 1 => {
                bad("fastk_period, slowk_period and slowd_period must be >= 1")
            }
            _ => Ok(()),
        }
    }
}

/// Computes every configured indicator.
///
/// # Errors
/// The first invalid spec, else the first indicator short of bars.
pub fn compute_all(
    specs: &[IndicatorSpec],
    bars: &[Bar],
) -> Result<Vec<IndicatorSeries>, IndicatorError> {
    for spec in specs {
        spec.validate()?;
    }
    let columns = Columns::new(
        bars,
        specs.iter().any(IndicatorSpec::reads_high_low),
        specs.iter().any(IndicatorSpec::reads_volume),
    );
    let mut out = Vec::with_capacity(specs.len() * 3);
    for spec in specs {
        out.extend(compute_with(spec, &columns)?);
    }
    Ok(out)
}

/// Computes one indicator's series.
///
/// # Errors
/// `InvalidParameter` or `NotEnoughBars`.
pub fn compute(spec: &IndicatorSpec, bars: &[Bar]) -> Result<Vec<IndicatorSeries>, IndicatorError> {
    spec.validate()?;
    let columns = Columns::new(bars, spec.reads_high_low(), spec.reads_volume());
    compute_with(spec, &columns)
}

/// Computes a validated spec over the bars' columns.
fn compute_with(spec: &IndicatorSpec, c: &Columns) -> Result<Vec<IndicatorSeries>, IndicatorError> {
    let needed = spec.bars_needed();
    if c.close.len() < needed {
        return Err(IndicatorError::NotEnoughBars {
            indicator: spec.label(),
            needed,
            got: c.close.len(),
        });
    }
    let close = &c.close;
    let (kind, params) = (spec.kind(), spec.params());
    let series = |output: &str, panel: Panel, values: Vec<f64>| IndicatorSeries {
        name: format!("{kind}{output}{params}"),
        indicator: kind.into(),
        panel,
        values: SeriesValues::from_nan_padded(values),
    };
    Ok(match *spec {
        IndicatorSpec::Sma { period } => {
            vec![series("", Panel::Price, formulas::sma(close, period))]
        }
        IndicatorSpec::Ema { period } => {
            vec![series("", Panel::Price, formulas::ema(close, period))]
        }
        IndicatorSpec::Rsi { period } => vec![series("", Panel::Own, formulas::rsi(close, period))],
        IndicatorSpec::Atr { period } => vec![series("", Panel::Own, formulas::atr(c, period))],
        IndicatorSpec::Macd { fast, slow, signal } => {
            let [m, s, h] = formulas::macd(close, fast, slow, signal);
            vec![
                series("", Panel::Own, m),
                series("_signal", Panel::Own, s),
                series("_hist", Panel::Own, h),
            ]
        }
        IndicatorSpec::Bollinger { period, std_dev } => {
            let [u, m, l] = formulas::bollinger(close, period, std_dev);
            vec![
                series("_upper", Panel::Price, u),
                series("_middle", Panel::Price, m),
                series("_lower", Panel::Price, l),
            ]
        }
        IndicatorSpec::Supertrend { period, multiplier } => {
            let [v, d] = formulas::supertrend(c, period, multiplier);
            vec![
                series("", Panel::Price, v),
                series("_direction", Panel::Hidden, d),
            ]
        }
        IndicatorSpec::Stochastic {
            fastk_period,
            slowk_period,
            slowd_period,
        } => {
            let [k, d] = formulas::stochastic(c, fastk_period, slowk_period, slowd_period);
            vec![series("_k", Panel::Own, k), series("_d", Panel::Own, d)]
        }
        IndicatorSpec::Obv {} => vec![series("", Panel::Own, formulas::obv(c))],
        IndicatorSpec::Vwap { period } => {
            vec![series("", Panel::Price, formulas::vwap(c, period))]
        }
    })
}
