//! fake-ibkr: runs the fake IBKR Client Portal gateway on 127.0.0.1 (plain HTTP).

use clap::Parser;
use fake_ibkr::Options;

#[derive(Debug, Parser)]
#[command(about = "A fake IBKR Client Portal gateway (paper broker of the local stack)")]
struct Args {
    /// Port to listen on (the local stack uses 5001).
    #[arg(long, env = "FAKE_IBKR_PORT", default_value_t = 5001)]
    port: u16,
    /// Start with an authenticated brokerage session. On by default so the local
    /// stack works without a login; `--logged-in false` starts logged out.
    #[arg(long, env = "FAKE_IBKR_LOGGED_IN", default_value_t = true,
          num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    logged_in: bool,
    /// The paper account the gateway serves.
    #[arg(long, env = "IBKR_ACCOUNT_ID", default_value = "DU1234567")]
    account: String,
    /// Enforce IBKR's pacing limits with HTTP 429.
    #[arg(long, env = "FAKE_IBKR_PACING", default_value_t = true,
          num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pacing: bool,
    /// Seconds the IP stays in the penalty box after a pacing violation (IBKR: 10
    /// minutes; tests shorten it).
    #[arg(long, env = "FAKE_IBKR_PENALTY_BOX_SECS", default_value_t = 600)]
    penalty_box_secs: u64,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    tracing::info!(
        port = args.port,
        logged_in = args.logged_in,
        "fake ibkr gateway listening"
    );
    fake_ibkr::serve(
        listener,
        Options {
            logged_in: args.logged_in,
            account_id: args.account,
            pacing: args.pacing,
            penalty_box: std::time::Duration::from_secs(args.penalty_box_secs),
        },
    )
    .await
}
