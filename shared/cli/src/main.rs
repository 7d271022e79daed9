//! `tradeflow`: the command line for local work.

use clap::{Parser, Subcommand};

mod demo;

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
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Demo(args) => demo::run(args).await,
    }
}
