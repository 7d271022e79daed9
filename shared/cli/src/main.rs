//! `tradeflow`: the command line for local work.

use clap::{Parser, Subcommand};

mod demo;
mod indicators;

#[derive(Parser)]
#[command(name = "tradeflow", about = "tradeflow local tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Seeds the example strategy, runs one execution on the local stack and prints its lineage.
    Demo(demo::DemoArgs),
    /// Computes indicators over an OHLCV CSV and prints every series.
    Indicators(indicators::IndicatorsArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Demo(args) => demo::run(args).await,
        Command::Indicators(args) => indicators::run(args),
    }
}
