//! tradeflow-adapters: everything that talks to the outside (AWS through the SDK,
//! the IBKR Client Portal gateway, LLM providers), plus configuration and the step
//! harness that gives every Lambda the same lineage and error behaviour.

pub mod aws;
pub mod aws_calls;
pub mod backfill;
pub mod blobs;
pub mod books;
pub mod config;
pub mod ibkr;
pub mod lease;
pub mod lineage;
pub mod llm;
pub mod market;
pub mod monitor;
pub mod prompt_store;
pub mod schedules;
pub mod step;
pub mod store;
pub mod telemetry;
pub mod workflow;

pub use aws::Deps;
pub use config::Config;
