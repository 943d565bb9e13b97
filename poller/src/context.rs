//! What every poll shares.

use ocelot_core::secrets::select::Secrets;
use ocelot_core::store::Store;
use ocelot_core::trigger::Trigger;

/// What every poll shares.
#[derive(Debug, Clone)]
pub(crate) struct PollerContext {
    pub(crate) store: Store,
    /// The credentials `git ls-remote` of private repos needs.
    pub(crate) secrets: Secrets,
    pub(crate) trigger: Trigger,
}
