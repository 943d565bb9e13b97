//! What the request handlers and processors share.

use crate::rate_limit;
use ocelot_core::queue::Bus;
use ocelot_core::store::Store;
use std::sync::Arc;
use tokio::sync::Notify;

/// What the request handlers and processors share.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) store: Store,
    /// For readiness only (`/readyz`).
    pub(crate) bus: Bus,
    pub(crate) limiter: Arc<rate_limit::SourceLimiter>,
    /// Wakes the processors when a delivery was recorded.
    pub(crate) recorded: Arc<Notify>,
    /// Records deliveries by group commit.
    pub(crate) recorder: crate::record::Recorder,
    /// The secrets deliveries are verified with.
    pub(crate) secrets: Arc<crate::secret::HookSecrets>,
}
