//! `tradeflow indicators`: the indicator catalogue over a local OHLCV CSV.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::{DateTime, NaiveDate};
use clap::Args;
use serde_json::json;
use tradeflow_core::indicators::{IndicatorSpec, compute_all};
use tradeflow_core::market::{Bar, validate_bars};

#[derive(Args)]
pub struct IndicatorsArgs {
    /// OHLCV CSV with a header naming date,open,high,low,close,volume (any order).
    #[arg(long)]
    csv: PathBuf,
    /// Indicator specs as JSON: one spec or an array, e.g. '[{"kind":"rsi","period":7}]'.
    /// Defaults to the catalogue's defaults.
    #[arg(long)]
    spec: Option<String>,
    /// Prints dates and every series' values as JSON instead of a summary table.
    #[arg(long)]
    json: bool,
}

/// Parses the `--spec` JSON: a single spec object or an array of specs.
fn parse_specs(text: &str) -> anyhow::Result<Vec<IndicatorSpec>> {
    let value: serde_json::Value = serde_json::from_str(text).context("--spec is not JSON")?;
    let specs = if value.is_array() {
        serde_json::from_value(value)
    } else {
        serde_json::from_value(value).map(|s| vec![s])
    };
    specs.context("--spec is not a valid indicator spec")
}

fn parse_time(s: &str) -> anyhow::Result<i64> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .and_utc()
            .timestamp_millis());
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .with_context(|| format!("date {s:?} is neither YYYY-MM-DD nor RFC 3339"))
}

/// Reads bars from a CSV with columns date,open,high,low,close,volume (located by the
/// header) and checks them with `validate_bars`.
///
/// # Errors
/// An unreadable file, a missing column, an unparsable cell (naming the line) or bars
/// that fail validation.
pub fn read_bars_csv(path: &Path) -> anyhow::Result<Vec<Bar>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        bail!("{}: empty file", path.display());
    };
    let header: Vec<String> = header.split(',').map(|h| h.trim().to_lowercase()).collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .with_context(|| format!("{}: no {name} column", path.display()))
    };
    let idx = [
        col("date")?,
        col("open")?,
        col("high")?,
        col("low")?,
        col("close")?,
        col("volume")?,
    ];
    let mut bars = Vec::new();
    for (n, line) in lines {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let cell = |i: usize| {
            cells
                .get(idx[i])
                .copied()
                .with_context(|| format!("line {}: too few columns", n + 1))
        };
        let num = |i: usize| -> anyhow::Result<f64> {
            let c = cell(i)?;
            c.parse()
                .with_context(|| format!("line {}: {c:?} is not a number", n + 1))
        };
        bars.push(Bar {
            t: parse_time(cell(0)?).with_context(|| format!("line {}", n + 1))?,
            open: num(1)?,
            high: num(2)?,
            low: num(3)?,
            close: num(4)?,
            volume: num(5)?,
        });
    }
    validate_bars(&bars).with_context(|| format!("{}", path.display()))?;
    Ok(bars)
}

pub fn run(args: IndicatorsArgs) -> anyhow::Result<()> {
    let bars = read_bars_csv(&args.csv)?;
    let specs = match &args.spec {
        Some(text) => parse_specs(text)?,
        None => IndicatorSpec::defaults(),
    };
    let series = compute_all(&specs, &bars)?;
    if args.json {
        let dates: Vec<String> = bars.iter().map(|b| b.date().to_string()).collect();
        // A writer rather than println!, so a closed pipe (`| head`) is an error, not a panic.
        let mut out = std::io::stdout().lock();
        serde_json::to_writer(
            &mut out,
            &json!({"bars": bars.len(), "dates": dates, "series": series}),
        )?;
        writeln!(out)?;
    } else {
        println!("{:<32} {:>8} {:>16}", "series", "count", "latest");
        for s in &series {
            let latest = s.latest().map_or("-".into(), |v| format!("{v:.6}"));
            println!("{:<32} {:>8} {:>16}", s.name, s.count(), latest);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_accepts_one_object_or_an_array() {
        let one = parse_specs(r#"{"kind":"rsi","period":7}"#).unwrap();
        let many = parse_specs(r#"[{"kind":"rsi"},{"kind":"obv"}]"#).unwrap();

        assert_eq!(one, [IndicatorSpec::Rsi { period: 7 }]);
        assert_eq!(
            many,
            [IndicatorSpec::Rsi { period: 14 }, IndicatorSpec::Obv {}]
        );
        assert!(parse_specs(r#"{"kind":"rsi","lenght":7}"#).is_err());
    }

    #[test]
    fn reads_the_reference_csv_with_dates_at_midnight_utc() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/ohlcv.csv");

        let bars = read_bars_csv(&path).unwrap();

        assert_eq!(bars.len(), 300);
        assert_eq!(bars[0].date().to_string(), "2023-01-02");
        assert_eq!(bars[0].t % 86_400_000, 0);
        assert_eq!(bars[0].close, 97.28);
    }

    #[test]
    fn a_bad_cell_names_its_line() {
        let dir = std::env::temp_dir().join(format!("tradeflow-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.csv");
        std::fs::write(
            &path,
            "date,open,high,low,close,volume\n2024-01-02,1,2,0.5,1.5,10\n2024-01-03,1,x,0.5,1,10\n",
        )
        .unwrap();

        let err = read_bars_csv(&path).unwrap_err();

        assert!(format!("{err:#}").contains("line 3"), "{err:#}");
    }
}
