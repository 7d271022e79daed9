//! Every series against TA-Lib's own values (tests/data/talib_reference.csv, written by
//! tests/data/gen_talib_reference.py from tests/data/ohlcv.csv), plus validation.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rstest::rstest;

use super::*;

const OHLCV: &str = include_str!("../../../../tests/data/ohlcv.csv");
const REFERENCE: &str = include_str!("../../../../tests/data/talib_reference.csv");

/// Relative tolerance of the issue. The absolute floor only matters for values that are
/// mathematically 0: the stochastic in the halted stretch, where TA-Lib and we carry
/// different running-sum rounding (-3e-14 vs -1e-14).
const RTOL: f64 = 1e-9;
const ATOL: f64 = 1e-12;

/// The specs gen_talib_reference.py computes: defaults plus variants.
fn reference_specs() -> Vec<IndicatorSpec> {
    use IndicatorSpec::*;
    let mut specs = Vec::new();
    for period in [20, 5, 1] {
        specs.push(Sma { period });
        specs.push(Ema { period });
    }
    for period in [14, 7, 2] {
        specs.push(Rsi { period });
    }
    for period in [14, 5, 1] {
        specs.push(Atr { period });
    }
    for (fast, slow, signal) in [(12, 26, 9), (5, 35, 5), (3, 4, 1)] {
        specs.push(Macd { fast, slow, signal });
    }
    for (period, std_dev) in [(20, 2.0), (10, 1.5)] {
        specs.push(Bollinger { period, std_dev });
    }
    for (period, multiplier) in [(10, 3.0), (7, 2.5)] {
        specs.push(Supertrend { period, multiplier });
    }
    for (fastk_period, slowk_period, slowd_period) in [(5, 3, 3), (14, 1, 4)] {
        specs.push(Stochastic {
            fastk_period,
            slowk_period,
            slowd_period,
        });
    }
    specs.push(Obv {});
    for period in [20, 3] {
        specs.push(Vwap { period });
    }
    specs
}

fn bars() -> Vec<Bar> {
    OHLCV
        .lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            let num = |i: usize| f[i].parse::<f64>().unwrap();
            let t = NaiveDate::parse_from_str(f[0], "%Y-%m-%d")
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp_millis();
            Bar {
                t,
                open: num(1),
                high: num(2),
                low: num(3),
                close: num(4),
                volume: num(5),
            }
        })
        .collect()
}

/// Column name → values (None for an empty cell).
fn reference() -> BTreeMap<String, Vec<Option<f64>>> {
    let mut lines = REFERENCE.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect();
    let mut cols: BTreeMap<String, Vec<Option<f64>>> = BTreeMap::new();
    for line in lines {
        for (name, cell) in header.iter().zip(line.split(',')).skip(1) {
            let v = (!cell.is_empty()).then(|| cell.parse::<f64>().unwrap());
            cols.entry(name.clone()).or_default().push(v);
        }
    }
    cols
}

fn close_enough(a: f64, b: f64) -> bool {
    (a - b).abs() <= RTOL * a.abs().max(b.abs()) + ATOL
}

/// Describes every index where `got` differs from `want` (warm-up or value).
fn mismatches(got: &[Option<f64>], want: &[Option<f64>]) -> Vec<String> {
    let mut out = Vec::new();
    if got.len() != want.len() {
        out.push(format!("length {} != {}", got.len(), want.len()));
    }
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        match (g, w) {
            (Some(g), Some(w)) if close_enough(*g, *w) => {}
            (None, None) => {}
            _ => out.push(format!("[{i}] got {g:?}, TA-Lib {w:?}")),
        }
    }
    out
}

#[test]
fn every_series_equals_talib_at_every_index() {
    let bars = bars();
    let reference = reference();

    let series = compute_all(&reference_specs(), &bars).unwrap();

    let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
    let columns: Vec<&str> = reference.keys().map(String::as_str).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted, columns,
        "computed series and reference columns differ"
    );
    let mut failures = Vec::new();
    for s in &series {
        let got: Vec<Option<f64>> = s.values.iter().collect();
        let bad = mismatches(&got, &reference[&s.name]);
        if !bad.is_empty() {
            failures.push(format!(
                "{}: {} mismatches, first: {}",
                s.name,
                bad.len(),
                bad[..bad.len().min(3)].join("; ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn reference_data_covers_warm_up_and_a_halted_stretch() {
    let bars = bars();
    let reference = reference();

    let halted = bars
        .windows(20)
        .any(|w| w.iter().all(|b| b.volume == 0.0 && b.high == b.low));

    assert_eq!(bars.len(), 300);
    assert!(
        halted,
        "the flat, zero-volume stretch exercises the edge cases"
    );
    assert_eq!(
        reference["macd_12_26_9"]
            .iter()
            .take_while(|v| v.is_none())
            .count(),
        33
    );
    assert!(reference["vwap_20"][200..].iter().all(Option::is_some));
    assert!(reference["vwap_20"][170..175].iter().all(Option::is_none));
}

#[test]
fn a_perturbed_value_is_caught() {
    let bars = bars();
    let reference = reference();
    let mut rsi: Vec<Option<f64>> = compute(&IndicatorSpec::Rsi { period: 14 }, &bars)
        .unwrap()
        .remove(0)
        .values
        .iter()
        .collect();

    let clean = mismatches(&rsi, &reference["rsi_14"]);
    rsi[100] = rsi[100].map(|v| v * (1.0 + 1e-8));
    let perturbed = mismatches(&rsi, &reference["rsi_14"]);
    rsi[100] = None;
    let missing = mismatches(&rsi, &reference["rsi_14"]);

    assert!(clean.is_empty());
    assert_eq!(perturbed.len(), 1);
    assert_eq!(missing.len(), 1);
}

#[test]
fn series_are_named_indicator_output_params() {
    let bars = bars();

    let names: Vec<String> = compute_all(&IndicatorSpec::defaults(), &bars)
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();

    assert_eq!(
        names,
        [
            "sma_20",
            "ema_20",
            "bb_upper_20_2",
            "bb_middle_20_2",
            "bb_lower_20_2",
            "rsi_14",
            "macd_12_26_9",
            "macd_signal_12_26_9",
            "macd_hist_12_26_9",
            "atr_14",
            "supertrend_10_3",
            "supertrend_direction_10_3",
        ]
    );
}

#[test]
fn specs_parse_with_defaults_from_json() {
    let specs: Vec<IndicatorSpec> = serde_json::from_str(
        r#"[{"kind":"macd"},{"kind":"stochastic","fastk_period":14},{"kind":"obv"},
            {"kind":"vwap"},{"kind":"bollinger","std_dev":2.5}]"#,
    )
    .unwrap();

    assert_eq!(
        specs,
        [
            IndicatorSpec::Macd {
                fast: 12,
                slow: 26,
                signal: 9
            },
            IndicatorSpec::Stochastic {
                fastk_period: 14,
                slowk_period: 3,
                slowd_period: 3
            },
            IndicatorSpec::Obv {},
            IndicatorSpec::Vwap { period: 20 },
            IndicatorSpec::Bollinger {
                period: 20,
                std_dev: 2.5
            },
        ]
    );
}

#[rstest]
#[case::rsi_zero_period(IndicatorSpec::Rsi { period: 0 }, "rsi_0", "period must be >= 1")]
#[case::sma_zero_period(IndicatorSpec::Sma { period: 0 }, "sma_0", "period must be >= 1")]
#[case::vwap_zero_period(IndicatorSpec::Vwap { period: 0 }, "vwap_0", "period must be >= 1")]
#[case::macd_fast_not_below_slow(
    IndicatorSpec::Macd { fast: 26, slow: 12, signal: 9 }, "macd_26_12_9", "fast must be < slow")]
#[case::macd_equal_periods(
    IndicatorSpec::Macd { fast: 12, slow: 12, signal: 9 }, "macd_12_12_9", "fast must be < slow")]
#[case::macd_zero_signal(
    IndicatorSpec::Macd { fast: 12, slow: 26, signal: 0 }, "macd_12_26_0", "must be >= 1")]
#[case::bollinger_nan_width(
    IndicatorSpec::Bollinger { period: 20, std_dev: f64::NAN }, "bb_20_NaN", "std_dev")]
#[case::bollinger_negative_width(
    IndicatorSpec::Bollinger { period: 20, std_dev: -2.0 }, "bb_20_-2", "std_dev")]
#[case::supertrend_zero_multiplier(
    IndicatorSpec::Supertrend { period: 10, multiplier: 0.0 }, "supertrend_10_0", "multiplier")]
#[case::stochastic_zero_smoothing(
    IndicatorSpec::Stochastic { fastk_period: 5, slowk_period: 0, slowd_period: 3 },
    "stoch_5_0_3", "slowk_period")]
fn invalid_parameters_are_rejected_naming_the_indicator(
    #[case] spec: IndicatorSpec,
    #[case] label: &str,
    #[case] message_part: &str,
) {
    let err = compute_all(&[IndicatorSpec::Sma { period: 20 }, spec], &bars()).unwrap_err();

    match err {
        IndicatorError::InvalidParameter { indicator, message } => {
            assert_eq!(indicator, label);
            assert!(message.contains(message_part), "{message}");
        }
        other => panic!("expected InvalidParameter, got {other:?}"),
    }
}

#[rstest]
#[case::sma(IndicatorSpec::Sma { period: 20 }, 20)]
#[case::ema(IndicatorSpec::Ema { period: 20 }, 20)]
#[case::rsi(IndicatorSpec::Rsi { period: 14 }, 15)]
#[case::atr(IndicatorSpec::Atr { period: 14 }, 15)]
#[case::macd(IndicatorSpec::Macd { fast: 12, slow: 26, signal: 9 }, 34)]
#[case::bollinger(IndicatorSpec::Bollinger { period: 20, std_dev: 2.0 }, 20)]
#[case::supertrend(IndicatorSpec::Supertrend { period: 10, multiplier: 3.0 }, 11)]
#[case::stochastic(
    IndicatorSpec::Stochastic { fastk_period: 5, slowk_period: 3, slowd_period: 3 }, 9)]
#[case::obv(IndicatorSpec::Obv {}, 1)]
#[case::vwap(IndicatorSpec::Vwap { period: 20 }, 20)]
fn one_bar_short_is_an_error_naming_the_bars_needed(
    #[case] spec: IndicatorSpec,
    #[case] needed: usize,
) {
    let bars = bars();

    let short = compute(&spec, &bars[..needed - 1]).unwrap_err();
    let enough = compute(&spec, &bars[..needed]).unwrap();

    assert_eq!(
        short,
        IndicatorError::NotEnoughBars {
            indicator: spec.label(),
            needed,
            got: needed - 1
        }
    );
    assert!(
        short
            .to_string()
            .contains(&format!("needs at least {needed} bars"))
    );
    assert!(
        enough
            .iter()
            .all(|s| s.values.get(s.values.len() - 1).is_some()),
        "exactly enough bars give one value in every output"
    );
}

#[test]
fn supertrend_direction_is_plus_or_minus_one_and_picks_the_band() {
    let bars = bars();

    let out = compute(
        &IndicatorSpec::Supertrend {
            period: 10,
            multiplier: 3.0,
        },
        &bars,
    )
    .unwrap();

    let (value, direction) = (&out[0].values, &out[1].values);
    assert_eq!(out[1].panel, Panel::Hidden);
    for (i, bar) in bars.iter().enumerate().skip(10) {
        let (v, d) = (value.get(i).unwrap(), direction.get(i).unwrap());
        assert!(d == 1.0 || d == -1.0);
        // An uptrend's line is a support below the close, a downtrend's a resistance above.
        if d == 1.0 {
            assert!(v <= bar.close, "bar {i}");
        } else {
            assert!(v >= bar.close, "bar {i}");
        }
    }
    assert!(direction.iter().flatten().any(|d| d == 1.0));
    assert!(direction.iter().flatten().any(|d| d == -1.0));
}

#[test]
fn computed_series_round_trip_through_json_with_warm_up_as_null() {
    let bars = bars();
    let series = compute_all(&IndicatorSpec::defaults(), &bars).unwrap();

    let text = serde_json::to_string(&series).unwrap();
    let wire: serde_json::Value = serde_json::from_str(&text).unwrap();
    let back: Vec<IndicatorSeries> = serde_json::from_str(&text).unwrap();

    // serde_json without its float_roundtrip feature may read a number back 1 ulp off.
    for (b, s) in back.iter().zip(&series) {
        assert_eq!(
            (&b.name, &b.indicator, b.panel),
            (&s.name, &s.indicator, s.panel)
        );
        assert_eq!(b.values.len(), s.values.len());
        for (i, (x, y)) in b.values.iter().zip(s.values.iter()).enumerate() {
            match (x, y) {
                (Some(x), Some(y)) => assert!((x - y).abs() <= 1e-15 * y.abs(), "{} [{i}]", s.name),
                (x, y) => assert_eq!(x, y, "{} [{i}]", s.name),
            }
        }
    }
    assert_eq!(back.len(), series.len());
    let macd = &wire[6];
    assert_eq!(macd["name"], "macd_12_26_9");
    let values = macd["values"].as_array().unwrap();
    assert_eq!(values.len(), bars.len());
    assert!(values[..33].iter().all(serde_json::Value::is_null));
    assert!(values[33..].iter().all(serde_json::Value::is_f64));
    assert_eq!(back[6].values.get(32), None);
    assert_eq!(back[6].values.get(33), series[6].values.get(33));
}

/// Every spec of the reference set alone (its own pass) and all together (ATRs and
/// Supertrends sharing one true-range pass, SMA 20 taken from Bollinger 20's) give the
/// same doubles, over more bars than a block and at a million-bar scale.
#[rstest]
#[case::reference_bars(bars())]
#[case::synthetic_300k(crate::synthetic::daily_bars(
    7,
    NaiveDate::from_ymd_opt(2999, 1, 1).unwrap(),
    300_000
))]
fn shared_passes_equal_separate_ones(#[case] bars: Vec<Bar>) {
    let specs = reference_specs();
    let together = compute_all(&specs, &bars).unwrap();

    let alone: Vec<IndicatorSeries> = specs
        .iter()
        .flat_map(|s| compute(s, &bars).unwrap())
        .collect();

    assert_eq!(together.len(), alone.len());
    for (t, a) in together.iter().zip(&alone) {
        assert_eq!(t.name, a.name);
        let same = t
            .values
            .as_nan_padded()
            .iter()
            .zip(a.values.as_nan_padded())
            .all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(same, "{} differs when computed with the others", t.name);
    }
}

#[test]
fn columns_of_the_wrong_length_are_an_error_naming_the_column() {
    let close = [1.0; 30];
    let high = [2.0; 29];
    let columns = Columns {
        high: &high,
        low: &close,
        close: &close,
        volume: &[],
    };

    let atr = compute_all_columns(&[IndicatorSpec::Atr { period: 14 }], &columns);
    let sma = compute_all_columns(&[IndicatorSpec::Sma { period: 5 }], &columns);

    assert_eq!(
        atr.unwrap_err().to_string(),
        "atr_14: column high has 29 values, close has 30"
    );
    assert_eq!(sma.unwrap().len(), 1, "SMA reads neither high nor volume");
}
