//! What every build of this worker shares: the [`Engine`] that runs a build's scripts (what
//! `ocelot exec` shares with a worker too), and the worker's connections, settings and
//! shutdown signal around it.

use crate::executor::ExecutorKind;
use ocelot_core::git::MirrorCache;
use ocelot_core::queue::Bus;
use ocelot_core::secrets::select::Secrets;
use ocelot_core::store::Store;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What runs a build's stages, with or without a server behind it: the Docker Engine and
/// the sandbox every build container gets, how stages run, and how much log a build keeps.
#[derive(Debug, Clone)]
pub(crate) struct Engine {
    pub(crate) worker_id: String,
    /// The installation's id (labels build containers; sweeps never touch another's).
    pub(crate) instance: String,
    pub(crate) docker: Option<bollard::Docker>,
    pub(crate) executor: ExecutorKind,
    pub(crate) pull_timeout: Duration,
    /// Build container limits, network, host access and private images.
    pub(crate) sandbox: Arc<crate::executor::docker::Sandbox>,
    /// Started containers ready for the next builds of recently used images
    /// (`--warm-images`); `None` without Docker or with warm starts off.
    pub(crate) warm: Option<Arc<crate::executor::docker::warm::WarmPool>>,
    /// How many stages of a graph build run at once, how many matrix jobs a build makes.
    pub(crate) stage_settings: crate::stage_settings::StageSettings,
    /// The output a build keeps (bytes).
    pub(crate) max_log_bytes: u64,
    /// The output lines a build keeps.
    pub(crate) max_log_lines: u64,
}

/// What every build of this worker shares.
#[derive(Debug, Clone)]
pub(crate) struct WorkerContext {
    pub(crate) engine: Engine,
    pub(crate) store: Store,
    pub(crate) bus: Bus,
    pub(crate) mirrors: Arc<MirrorCache>,
    pub(crate) workspaces: PathBuf,
    pub(crate) max_attempts: i32,
    pub(crate) secrets: Secrets,
    /// Cancelled when the shutdown grace period is over: running builds stop and their jobs
    /// go back to the queue.
    pub(crate) hand_back: CancellationToken,
    /// How long a build's writes wait out a Postgres outage before the build goes on
    /// (its log then waits in memory; its result waits this long again, else the job goes
    /// back to the queue).
    pub(crate) store_outage_budget: Duration,
    /// Where artifacts go (`--storage`).
    pub(crate) storage: ocelot_core::storage::Storage,
    /// The artifacts a build keeps and for how long.
    pub(crate) artifact_limits: crate::artifacts::ArtifactLimits,
    /// The largest cache a build saves and how long caches are kept.
    pub(crate) cache_settings: crate::cache::CacheSettings,
    /// The uids host builds run as (`--host-build-uids`); `None` on a Docker worker.
    pub(crate) host_users: Option<Arc<crate::executor::host::UidPool>>,
}
