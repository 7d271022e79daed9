//! `tradeflow`: the command line for local work.

use clap::{Parser, Subcommand};

mod backtest;
mod backtest_report;
mod chart;
mod demo;
mod indicators;
mod signal;

#[derive(Parser)]
#[command(name = "tradeflow", about = "tradeflow local tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Backtests a strategy over an OHLCV CSV with the workflow's own core code.
    Backtest(Box<backtest::BacktestArgs>),
    /// Renders the chart (candles, volume, default indicators) for an OHLCV CSV to a PNG.
    Chart(chart::ChartArgs),
    /// Seeds the example strategy, runs one execution on the local stack and prints its lineage.
    Demo(demo::DemoArgs),
    /// Computes indicators over an OHLCV CSV and prints every series.
    Indicators(indicators::IndicatorsArgs),
    /// Reads an analyst answer on stdin and prints the validated signal (or HOLD with the reason) as JSON.
    ParseSignal(signal::ParseSignalArgs),
    /// Renders a prompt template against a context JSON file (or the sample context).
    RenderPrompt(signal::RenderPromptArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Backtest(args) => backtest::run_backtest(*args).await,
        Command::Chart(args) => chart::run(args),
        Command::Demo(args) => demo::run(args).await,
        Command::Indicators(args) => indicators::run(args),
        Command::ParseSignal(args) => signal::parse_signal(args),
        Command::RenderPrompt(args) => signal::render_prompt(args),
    }
}
