//! tradeflow-core: the domain of the trading workflow (strategies, bars, indicators,
//! signals, orders, positions, lineage) and the pure logic on it. No AWS, no HTTP:
//! everything here is testable with plain values.

pub mod analyst;
pub mod backtest;
pub mod calendar;
pub mod commission;
pub mod error;
pub mod execution;
pub mod indicators;
pub mod lineage;
pub mod market;
pub mod orders;
pub mod payloads;
pub mod portfolio;
pub mod prompts;
pub mod risk;
pub mod scoring;
pub mod signal;
pub mod steps;
pub mod strategy;
pub mod synthetic;

pub use error::StepError;
pub use market::{Bar, Timeframe};
pub use steps::Step;
pub use strategy::Strategy;
