//! Tracing setup shared by every function: honours `RUST_LOG`/`AWS_LAMBDA_LOG_LEVEL`
//! and `AWS_LAMBDA_LOG_FORMAT=JSON` (set by infra/).

/// Installs the global subscriber once per cold start.
pub fn init() {
    lambda_runtime::tracing::init_default_subscriber();
}
