//! What the RPC handlers share.

use ocelot_core::queue::Bus;
use ocelot_core::secrets::select::Secrets;
use ocelot_core::storage::Storage;
use ocelot_core::store::Store;
use ocelot_core::trigger::Trigger;

/// What the RPC handlers share.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) store: Store,
    pub(crate) bus: Bus,
    /// The live builds' log subscriptions, shared by their watchers.
    pub(crate) live: std::sync::Arc<crate::watch::live::LiveLogs>,
    pub(crate) secrets: Secrets,
    pub(crate) trigger: Trigger,
    /// Seals the webhook secrets of new repos (`None`: `repos add` is refused).
    pub(crate) master_key: Option<ocelot_core::secrets::cipher::MasterKey>,
    /// Where the builds' artifacts are (`--storage`).
    pub(crate) storage: Storage,
    /// The dashboard's public URL (`--dashboard-url`), for `GetServerInfo`.
    pub(crate) dashboard_url: Option<String>,
}
