//! Shared by the integration tests that replay recorded HTTP exchanges.

pub(crate) mod replay;
