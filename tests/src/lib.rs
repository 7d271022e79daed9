//! Shared support for the integration tests: clients for the local stack.
