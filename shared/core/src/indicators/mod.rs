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

mod buffer;
mod formulas;
use buffer::Buffer;
use formulas::{TrMember, TrOutput};
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
    #[error("{indicator}: column {column} has {len} values, close has {expected}")]
    ColumnLength {
        indicator: String,
        column: &'static str,
        len: usize,
        expected: usize,
    },
}

/// The bars as contiguous columns, the way TA-Lib takes its inputs. Only the columns
/// some spec reads need values: the defaults never read volume, and close-only sets
/// (SMA, EMA, RSI, MACD, Bollinger) read neither high nor low.
#[derive(Debug, Clone, Copy, Default)]
pub struct Columns<'a> {
    pub high: &'a [f64],
    pub low: &'a [f64],
    pub close: &'a [f64],
    pub volume: &'a [f64],
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

    /// The output series: name suffix and panel, in the order they are returned.
    fn outputs(&self) -> &'static [(&'static str, Panel)] {
        match self {
            IndicatorSpec::Sma { .. } | IndicatorSpec::Ema { .. } | IndicatorSpec::Vwap { .. } => {
                &[("", Panel::Price)]
            }
            IndicatorSpec::Rsi { .. } | IndicatorSpec::Atr { .. } | IndicatorSpec::Obv {} => {
                &[("", Panel::Own)]
            }
            IndicatorSpec::Macd { .. } => &[
                ("", Panel::Own),
                ("_signal", Panel::Own),
                ("_hist", Panel::Own),
            ],
            IndicatorSpec::Bollinger { .. } => &[
                ("_upper", Panel::Price),
                ("_middle", Panel::Price),
                ("_lower", Panel::Price),
            ],
            IndicatorSpec::Supertrend { .. } => {
                &[("", Panel::Price), ("_direction", Panel::Hidden)]
            }
            IndicatorSpec::Stochastic { .. } => &[("_k", Panel::Own), ("_d", Panel::Own)],
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

/// Computes every configured indicator over the bars.
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
    // The columns are staged in buffers like the outputs' (reused huge pages for a
    // million bars), filled in one pass over the bars, and dropped on return.
    let high_low = specs.iter().any(IndicatorSpec::reads_high_low);
    let volume = specs.iter().any(IndicatorSpec::reads_volume);
    let room = |needed: bool| Buffer::new(if needed { bars.len() } else { 0 });
    let (mut h, mut l, mut c, mut v) = (room(high_low), room(high_low), room(true), room(volume));
    let close = c.as_mut_slice();
    if high_low {
        let rows = h.as_mut_slice().iter_mut().zip(l.as_mut_slice());
        for ((b, (h, l)), c) in bars.iter().zip(rows).zip(close.iter_mut()) {
            (*h, *l, *c) = (b.high, b.low, b.close);
        }
    } else {
        for (b, c) in bars.iter().zip(close.iter_mut()) {
            *c = b.close;
        }
    }
    for (b, v) in bars.iter().zip(v.as_mut_slice()) {
        *v = b.volume;
    }
    compute_all_columns(
        specs,
        &Columns {
            high: h.as_slice(),
            low: l.as_slice(),
            close: c.as_slice(),
            volume: v.as_slice(),
        },
    )
}

/// Computes one indicator's series.
///
/// # Errors
/// `InvalidParameter` or `NotEnoughBars`.
pub fn compute(spec: &IndicatorSpec, bars: &[Bar]) -> Result<Vec<IndicatorSeries>, IndicatorError> {
    compute_all(std::slice::from_ref(spec), bars)
}

/// Computes every configured indicator over columns already in memory (TA-Lib's form
/// of input). Indicators that share an intermediate series get it from one pass:
/// every ATR and Supertrend reads one true range per bar, and an SMA with the period
/// of a Bollinger spec is that spec's middle band.
///
/// # Errors
/// The first invalid spec, else the first indicator short of bars or missing a column.
pub fn compute_all_columns(
    specs: &[IndicatorSpec],
    columns: &Columns,
) -> Result<Vec<IndicatorSeries>, IndicatorError> {
    for spec in specs {
        spec.validate()?;
    }
    let n = columns.close.len();
    for spec in specs {
        let needed = spec.bars_needed();
        if n < needed {
            return Err(IndicatorError::NotEnoughBars {
                indicator: spec.label(),
                needed,
                got: n,
            });
        }
        let reads = [
            ("high", columns.high, spec.reads_high_low()),
            ("low", columns.low, spec.reads_high_low()),
            ("volume", columns.volume, spec.reads_volume()),
        ];
        if let Some((column, values, _)) = reads.iter().find(|(_, v, r)| *r && v.len() != n) {
            return Err(IndicatorError::ColumnLength {
                indicator: spec.label(),
                column,
                len: values.len(),
                expected: n,
            });
        }
    }
    let mut outputs: Vec<Vec<Buffer>> = specs
        .iter()
        .map(|s| s.outputs().iter().map(|_| Buffer::new(n)).collect())
        .collect();
    let mut done = vec![false; specs.len()];

    let mut members = Vec::new();
    for ((spec, out), done) in specs.iter().zip(&mut outputs).zip(&mut done) {
        let member = match (spec.clone(), &mut out[..]) {
            (IndicatorSpec::Atr { period }, [atr]) => TrMember {
                period,
                out: TrOutput::Atr(atr.as_mut_slice()),
            },
            (IndicatorSpec::Supertrend { period, multiplier }, [value, direction]) => TrMember {
                period,
                out: TrOutput::Supertrend {
                    multiplier,
                    value: value.as_mut_slice(),
                    direction: direction.as_mut_slice(),
                },
            },
            _ => continue,
        };
        members.push(member);
        *done = true;
    }
    if !members.is_empty() {
        formulas::true_range_family(columns, &mut members);
    }
    drop(members);

    for i in 0..specs.len() {
        let IndicatorSpec::Bollinger { period, std_dev } = specs[i] else {
            continue;
        };
        let twin =
            (0..specs.len()).find(|&j| !done[j] && specs[j] == IndicatorSpec::Sma { period });
        let (bands, sma) = match twin {
            Some(j) => {
                let [bands, sma] = outputs
                    .get_disjoint_mut([i, j])
                    .expect("a Bollinger spec and an SMA spec are two specs");
                done[j] = true;
                (bands, Some(sma[0].as_mut_slice()))
            }
            None => (&mut outputs[i], None),
        };
        let [u, m, l] = &mut bands[..] else {
            unreachable!("Bollinger has three outputs")
        };
        formulas::bollinger(
            columns.close,
            period,
            std_dev,
            [u.as_mut_slice(), m.as_mut_slice(), l.as_mut_slice()],
            sma,
        );
        done[i] = true;
    }

    for ((spec, out), _) in specs
        .iter()
        .zip(&mut outputs)
        .zip(&done)
        .filter(|(_, d)| !**d)
    {
        compute_one(spec, columns, out);
    }

    Ok(specs
        .iter()
        .zip(outputs)
        .flat_map(|(spec, out)| {
            let (kind, params) = (spec.kind(), spec.params());
            spec.outputs()
                .iter()
                .zip(out)
                .map(move |(&(output, panel), buffer)| IndicatorSeries {
                    name: format!("{kind}{output}{params}"),
                    indicator: kind.into(),
                    panel,
                    values: SeriesValues::from_buffer(buffer),
                })
        })
        .collect())
}

/// Fills the outputs of a validated spec that shares no pass with another.
fn compute_one(spec: &IndicatorSpec, c: &Columns, out: &mut [Buffer]) {
    let close = c.close;
    match (spec.clone(), out) {
        (IndicatorSpec::Sma { period }, [o]) => formulas::sma(close, period, o.as_mut_slice()),
        (IndicatorSpec::Ema { period }, [o]) => formulas::ema(close, period, o.as_mut_slice()),
        (IndicatorSpec::Rsi { period }, [o]) => formulas::rsi(close, period, o.as_mut_slice()),
        (IndicatorSpec::Macd { fast, slow, signal }, [m, s, h]) => formulas::macd(
            close,
            fast,
            slow,
            signal,
            [m.as_mut_slice(), s.as_mut_slice(), h.as_mut_slice()],
        ),
        (
            IndicatorSpec::Stochastic {
                fastk_period,
                slowk_period,
                slowd_period,
            },
            [k, d],
        ) => formulas::stochastic(
            c,
            fastk_period,
            slowk_period,
            slowd_period,
            [k.as_mut_slice(), d.as_mut_slice()],
        ),
        (IndicatorSpec::Obv {}, [o]) => formulas::obv(c, o.as_mut_slice()),
        (IndicatorSpec::Vwap { period }, [o]) => formulas::vwap(c, period, o.as_mut_slice()),
        (spec, out) => unreachable!(
            "{} with {} outputs is computed in a shared pass",
            spec.label(),
            out.len()
        ),
    }
}
