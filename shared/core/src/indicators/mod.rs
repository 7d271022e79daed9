//! The indicator catalogue: specs with named parameters and defaults, validation,
//! and computation to series aligned with the input bars (`None` during warm-up).
//!
//! Definitions follow TA-Lib (see each function); this module is the one place that
//! knows the formulas. Series are named `<indicator>[_<output>]_<params>`, e.g.
//! `rsi_14`, `macd_signal_12_26_9`, `bb_upper_20_2`.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::market::Bar;

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
    /// Overlaid on the candles (SMA, EMA, Bollinger, Supertrend).
    Price,
    /// A panel of its own, named after the indicator (RSI, MACD, ATR).
    Own,
}

/// One output series of an indicator, aligned index-for-index with the bars.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndicatorSeries {
    /// Series name, e.g. `macd_hist_12_26_9`.
    pub name: String,
    /// The indicator it belongs to, e.g. `macd`.
    pub indicator: String,
    pub panel: Panel,
    pub values: Vec<Option<f64>>,
}

impl IndicatorSeries {
    /// The last computed value, if any.
    pub fn latest(&self) -> Option<f64> {
        self.values.iter().rev().find_map(|v| *v)
    }

    /// Number of computed (non-warm-up) values.
    pub fn count(&self) -> usize {
        self.values.iter().filter(|v| v.is_some()).count()
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

    /// The indicator's kind, e.g. `macd`.
    pub fn kind(&self) -> &'static str {
        match self {
            IndicatorSpec::Rsi { .. } => "rsi",
            IndicatorSpec::Macd { .. } => "macd",
            IndicatorSpec::Atr { .. } => "atr",
            IndicatorSpec::Sma { .. } => "sma",
            IndicatorSpec::Ema { .. } => "ema",
            IndicatorSpec::Bollinger { .. } => "bb",
            IndicatorSpec::Supertrend { .. } => "supertrend",
        }
    }

    /// Checks the parameters.
    ///
    /// # Errors
    /// `InvalidParameter` naming the indicator and the parameter.
    pub fn validate(&self) -> Result<(), IndicatorError> {
        let bad = |message: &str| {
            Err(IndicatorError::InvalidParameter {
                indicator: self.kind().into(),
                message: message.into(),
            })
        };
        match *self {
            IndicatorSpec::Rsi { period }
            | IndicatorSpec::Atr { period }
            | IndicatorSpec::Sma { period }
            | IndicatorSpec::Ema { period }
                if period < 1 =>
            {
                bad("period must be >= 1")
            }
            IndicatorSpec::Macd { fast, slow, signal } if fast < 1 || slow < 1 || signal < 1 => {
                bad("fast, slow and signal must be >= 1")
            }
            IndicatorSpec::Macd { fast, slow, .. } if fast >= slow => bad("fast must be < slow"),
            IndicatorSpec::Bollinger { period, std_dev } if period < 1 || std_dev <= 0.0 => {
                bad("period must be >= 1 and std_dev > 0")
            }
            IndicatorSpec::Supertrend { period, multiplier } if period < 1 || multiplier <= 0.0 => {
                bad("period must be >= 1 and multiplier > 0")
            }
            _ => Ok(()),
        }
    }
}

/// Computes every configured indicator.
///
/// # Errors
/// The first invalid spec or the first indicator short of bars.
pub fn compute_all(
    specs: &[IndicatorSpec],
    bars: &[Bar],
) -> Result<Vec<IndicatorSeries>, IndicatorError> {
    let mut out = Vec::new();
    for spec in specs {
        out.extend(compute(spec, bars)?);
    }
    Ok(out)
}

/// Computes one indicator's series.
///
/// # Errors
/// `InvalidParameter` or `NotEnoughBars`.
pub fn compute(spec: &IndicatorSpec, bars: &[Bar]) -> Result<Vec<IndicatorSeries>, IndicatorError> {
    spec.validate()?;
    let close: Vec<f64> = bars.iter().map(|b| b.close).collect();
    let series = |name: String, panel: Panel, values: Vec<Option<f64>>| IndicatorSeries {
        name,
        indicator: spec.kind().into(),
        panel,
        values,
    };
    match *spec {
        IndicatorSpec::Sma { period } => {
            need(spec, period, bars.len())?;
            Ok(vec![series(
                format!("sma_{period}"),
                Panel::Price,
                sma(&close, period),
            )])
        }
        _ => Err(IndicatorError::InvalidParameter {
            indicator: spec.kind().into(),
            message: "not implemented yet".into(),
        }),
    }
}

fn need(spec: &IndicatorSpec, needed: usize, got: usize) -> Result<(), IndicatorError> {
    if got < needed {
        return Err(IndicatorError::NotEnoughBars {
            indicator: spec.kind().into(),
            needed,
            got,
        });
    }
    Ok(())
}

/// Simple moving average (TA-Lib SMA): mean of the last `period` values.
fn sma(x: &[f64], period: usize) -> Vec<Option<f64>> {
    let mut out = vec![None; x.len()];
    let mut sum = 0.0;
    for i in 0..x.len() {
        sum += x[i];
        if i >= period {
            sum -= x[i - period];
        }
        if i + 1 >= period {
            out[i] = Some(sum / period as f64);
        }
    }
    out
}
