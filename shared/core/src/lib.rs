//! tradeflow-core: the domain of the trading workflow (strategies, bars, indicators,
//! signals, orders, positions, lineage) and the pure logic on it. No AWS, no HTTP:
//! everything here is testable with plain values.

pub mod account;
pub mod analyst;
pub mod backtest;
pub mod books;
pub mod calendar;
pub mod commission;
pub mod error;
pub mod execution;
pub mod exits;
pub mod holidays;
pub mod indicators;
pub mod lineage;
pub mod market;
pub mod orders;
pub mod payloads;
pub mod placement;
pub mod portfolio;
pub mod prompts;
pub mod reconcile;
pub mod risk;
pub mod schedule;
pub mod scoring;
pub mod signal;
pub mod steps;
pub mod strategy;
pub mod synthetic;
pub mod tracking;

pub use error::StepError;
pub use market::{Bar, Timeframe};
pub use steps::Step;
pub use strategy::Strategy;
