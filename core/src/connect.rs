//! What every service connects to at start-up, in one place: Postgres (its migrations
//! applied), the credential store it is configured with, NATS (its streams created), and the
//! directory that caches repository mirrors.

use crate::git::MirrorCache;
use crate::queue::{Bus, QueueError, Setup};
use crate::secrets::SecretError;
use crate::secrets::select::{SecretStoreArgs, Secrets};
use crate::settings::{DatabaseArgs, NatsArgs, SecretsArgs};
use crate::store::{Store, StoreError};
use crate::trigger::Trigger;
use std::path::PathBuf;
use std::sync::Arc;

/// A service's connections.
#[derive(Debug, Clone)]
pub struct Connections {
    pub store: Store,
    pub secrets: Secrets,
    pub bus: Bus,
}

impl Connections {
    /// The one way builds are queued, over these connections and the mirrors in `cache_dir`.
    pub fn trigger(&self, cache_dir: PathBuf) -> Trigger {
        Trigger::new(
            self.store.clone(),
            self.bus.clone(),
            Arc::new(MirrorCache::new(cache_dir)),
            self.secrets.clone(),
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connecting to Postgres")]
    Store(#[source] StoreError),
    #[error("opening the credential store")]
    Secrets(#[source] SecretError),
    #[error("connecting to NATS")]
    Bus(#[source] QueueError),
}

/// Connects to Postgres (applying migrations), opens the credential store, then connects to
/// NATS (creating the streams when `setup` says so).
pub async fn connect(
    database: &DatabaseArgs,
    master_key: &SecretsArgs,
    secret_store: &SecretStoreArgs,
    nats: &NatsArgs,
    setup: Setup,
) -> Result<Connections, ConnectError> {
    let store = database.connect().await.map_err(ConnectError::Store)?;
    let secrets = Secrets::open(secret_store, master_key, store.clone())
        .await
        .map_err(ConnectError::Secrets)?;
    let bus = Bus::connect(nats, setup).await.map_err(ConnectError::Bus)?;
    Ok(Connections {
        store,
        secrets,
        bus,
    })
}

/// `--cache-dir` when given, else `ocelot-<service>-mirrors` in the system's temporary
/// directory.
pub fn cache_dir(configured: Option<PathBuf>, service: &str) -> PathBuf {
    configured.unwrap_or_else(|| std::env::temp_dir().join(format!("ocelot-{service}-mirrors")))
}
