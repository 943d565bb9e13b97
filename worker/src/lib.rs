//! `ocelot-worker`: pulls build jobs for its tags, runs each build's stages in a clean
//! container (or, with `--executor host`, directly on the host for builds that name no
//! image), streams every line, records every stage and always cleans up.
//!
//! - [`run`]: connect and pull jobs until shutdown.
//! - `job_loop`: one pull loop per tag, bounded by `--concurrency`, in-progress acks.
//! - `build_runner`: claim → checkout → ocelot.yml → environment → stages → result; and
//!   [`LocalRunner`]: a checkout's build the same way on this machine, no server
//!   (`ocelot exec`).
//! - `executor`: where scripts run: `docker` (bollard) or `host`.
//! - `artifacts`: a stage's `artifacts:` streamed from the workspace to the storage, within
//!   the build's limits (`--max-artifact-mib`, `--max-artifacts`).
//! - `cache`: a build's `cache:` restored before its first stage and saved after it passed.
//! - `file_secrets`: a build's `file` credentials, written before its stages and removed
//!   before anything is read out of its environment.
//! - `attempt_log`: numbers an attempt's events, publishes them, stores them in batches.
//! - `log_sink`, `log_limit`: what executors write output to, and how much a build keeps.
//! - `lines`: splits output chunks into lines.
//! - `output`: a stage's output to the log: split, masked, bounded (both executors).
//! - `sweeper`: removes build containers no attempt owns (left by a dead worker).
//! - `pressure`: back-pressure checks (disk, Postgres, NATS, Docker) that pause job pulls.
//! - `registry`: this worker's entry in the worker registry (NATS KV), kept fresh.
//! - `queue_depth`: how many jobs wait for each of its tags (`ocelot_queue_depth`).
//!
//! Every job is handled in a span `job{trace_id=… build_id=…}` (the build's trace id,
//! [`ocelot_core::trace`]); its metrics are recorded through [`ocelot_core::metrics`] and
//! served on `--health-listen` at `/metrics`.

mod artifacts;
mod attempt_log;
mod build_runner;
mod cache;
mod context;
mod executor;
mod file_secrets;
mod host_setup;
mod job_loop;
mod lines;
mod log_limit;
mod log_sink;
mod output;
mod pressure;
mod queue_depth;
mod registry;
mod stage_log;
mod stage_settings;
mod sweeper;

pub use artifacts::ArtifactLimits;
pub use build_runner::local::{LocalBuild, LocalError, LocalRunner};
pub use cache::CacheSettings;
use context::{Engine, WorkerContext};
pub use executor::ExecutorKind;
/// The uids a host worker's builds run as (`--host-build-uids`).
pub use executor::host::UidRange;
pub use stage_settings::StageSettings;

/// The build sandbox's settings and the host firewall rule it relies on.
pub use executor::docker::firewall::rule_commands as host_firewall_rules;
pub use executor::docker::{HostAccess, PullPolicy, SandboxArgs};
/// How build containers are named and labelled (what the sweeper goes by), for tests that
/// make containers like a worker's.
pub use executor::docker::{build_name_filter, container_labels, container_name, container_owner};

use anyhow::Context;
use clap::Parser;
use ocelot_core::connect::{Connections, connect};
use ocelot_core::discovery::consul::{ConsulArgs, ServiceDefinition, deregister};
use ocelot_core::env_vars;
use ocelot_core::git::MirrorCache;
use ocelot_core::queue;
use ocelot_core::secrets::select::SecretStoreArgs;
use ocelot_core::settings::{DatabaseArgs, LogArgs, NatsArgs, SecretsArgs};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The worker's configuration: flags, or the environment variables named in `--help`.
#[derive(Debug, Clone, Parser)]
#[command(name = "ocelot-worker", version, about = "Ocelot's build worker")]
pub struct Settings {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub log: LogArgs,
    #[command(flatten)]
    pub secrets: SecretsArgs,
    #[command(flatten)]
    pub secret_store: SecretStoreArgs,
    #[command(flatten)]
    pub consul: ConsulArgs,
    #[command(flatten)]
    pub health: ocelot_core::health::HealthArgs,
    /// Build container limits, network, host access and pulls.
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// Where artifacts go.
    #[command(flatten)]
    pub storage: ocelot_core::storage::StorageArgs,
    /// The artifacts a build keeps.
    #[command(flatten)]
    pub artifacts: ArtifactLimits,
    /// The caches builds save.
    #[command(flatten)]
    pub caches: CacheSettings,
    /// How the stages of a build run (`--max-parallel-stages`).
    #[command(flatten)]
    pub stages: StageSettings,
    /// Builds run at once
    #[arg(long, env = env_vars::OCELOT_WORKER_CONCURRENCY, default_value_t = 2)]
    pub concurrency: usize,
    /// Routing tags this worker serves (ocelot.yml `machineTag`); `default` takes builds
    /// that name none
    #[arg(long, env = env_vars::OCELOT_WORKER_TAGS, value_delimiter = ',', default_value = "default")]
    pub tags: Vec<String>,
    /// Where scripts run
    #[arg(long, env = env_vars::OCELOT_WORKER_EXECUTOR, value_enum, default_value = "docker")]
    pub executor: ExecutorKind,
    /// With `--executor host`: the uids its host builds run as, `FIRST-LAST` (at least
    /// `--concurrency` of them, 10000 or above), one per running build; no other user or
    /// worker on the host may use them. A host worker runs as root to switch to them
    #[arg(long, env = env_vars::OCELOT_HOST_BUILD_UIDS, value_parser = UidRange::parse)]
    pub host_build_uids: Option<UidRange>,
    /// This worker's id (default: host name and a random suffix)
    #[arg(long, env = env_vars::OCELOT_WORKER_ID)]
    pub worker_id: Option<String>,
    /// Directory of git mirrors and build workspaces (default: under the temp directory)
    #[arg(long, env = env_vars::OCELOT_CACHE_DIR)]
    pub cache_dir: Option<PathBuf>,
    /// Attempts a build gets before it ends errored (a worker lost mid-build costs one)
    #[arg(long, env = env_vars::OCELOT_MAX_ATTEMPTS, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..))]
    pub max_attempts: i32,
    /// How long an image pull may take
    #[arg(long, env = env_vars::OCELOT_PULL_TIMEOUT, value_parser = humantime_duration, default_value = "10m")]
    pub pull_timeout: Duration,
    /// How long running builds may take to finish after a shutdown signal; builds still
    /// running then are stopped and handed back to the queue for another worker
    #[arg(long, env = env_vars::OCELOT_SHUTDOWN_GRACE, value_parser = humantime_duration, default_value = "30s")]
    pub shutdown_grace: Duration,
    /// How long a job stays with a worker that gives no sign of life (a crashed or cut-off
    /// worker) before another worker takes its build over: the job's lease. Running builds
    /// renew it every 2 s (every quarter of it, if shorter); a worker that could not renew
    /// it for this long (paused, cut off from NATS) stops the build and leaves it to the
    /// worker that took it over. The last worker to start sets it for its tags: keep it
    /// equal on all workers
    #[arg(long, env = env_vars::OCELOT_JOB_ACK_WAIT, value_parser = job_ack_wait, default_value = "10s")]
    pub job_ack_wait: Duration,
    /// The output a build keeps, in MiB: past it, a marker line says so and the rest is
    /// counted, not kept (the build goes on). Lines keep at most 64 KiB each
    #[arg(long, env = env_vars::OCELOT_MAX_LOG_MIB, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_log_mib: u64,
    /// The output lines a build keeps: past it, a marker line says so and the rest is
    /// counted, not kept (the build goes on). Each line costs a row in Postgres and a
    /// message on the log bus however short it is
    #[arg(long, env = env_vars::OCELOT_MAX_LOG_LINES, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_log_lines: u64,
    /// How long a build's Postgres writes wait out an outage (a restart): past it the build
    /// goes on and its log waits in memory until Postgres is back; a result that cannot be
    /// recorded within it sends the job back to the queue
    #[arg(long, env = env_vars::OCELOT_STORE_OUTAGE_BUDGET, value_parser = humantime_duration, default_value = "60s")]
    pub store_outage_budget: Duration,
    /// Free disk (MiB) under the cache directory below which the worker takes no new jobs
    #[arg(long, env = env_vars::OCELOT_MIN_FREE_DISK_MIB, default_value_t = 1024)]
    pub min_free_disk_mib: u64,
    /// How often the worker checks its disk and dependencies (Postgres, NATS, Docker); while
    /// a check fails it takes no new jobs and says why in `ocelot workers`
    #[arg(long, env = env_vars::OCELOT_CHECK_EVERY, value_parser = humantime_duration, default_value = "5s")]
    pub check_every: Duration,
    /// How often build containers and workspaces that no attempt owns (left by a dead
    /// worker) are removed from this worker's host
    #[arg(long, env = env_vars::OCELOT_SWEEP_EVERY, value_parser = humantime_duration, default_value = "1m")]
    pub sweep_every: Duration,
}

fn humantime_duration(text: &str) -> Result<Duration, String> {
    ocelot_core::pipeline::parse_duration(text)
}

/// A job's ack wait: long enough for a few renewals.
fn job_ack_wait(text: &str) -> Result<Duration, String> {
    let wait = humantime_duration(text)?;
    if wait < Duration::from_secs(2) {
        return Err(format!("{text} is too short: at least 2s"));
    }
    Ok(wait)
}

fn default_worker_id() -> String {
    let host = ocelot_core::settings::host_name().unwrap_or_else(|| "worker".to_string());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}-{}", &suffix[..8])
}

/// Connects to Postgres, NATS and Docker, then runs builds until `shutdown` resolves.
/// `health`: where to serve `/healthz`, `/readyz` and `/metrics`, bound (`--health-listen`, see
/// [`ocelot_core::health::HealthArgs::bind`]); none when `None`.
pub async fn run(
    settings: Settings,
    health: Option<tokio::net::TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    for tag in &settings.tags {
        queue::validate_tag(tag)?;
    }
    anyhow::ensure!(settings.concurrency > 0, "--concurrency must be at least 1");
    let host_users = match settings.executor {
        ExecutorKind::Host => Some(host_setup::check(&settings)?),
        ExecutorKind::Docker => None,
    };
    let Connections {
        store,
        secrets,
        bus,
    } = connect(
        &settings.database,
        &settings.secrets,
        &settings.secret_store,
        &settings.nats,
        ocelot_core::queue::Setup::StreamsIfMissing,
    )
    .await?;
    let docker = match executor::docker::connect().await {
        Ok(docker) => Some(docker),
        Err(error) if settings.executor == ExecutorKind::Host => {
            tracing::warn!(%error, "no Docker Engine: this host worker runs only builds without an image");
            None
        }
        Err(error) => return Err(error).context("connecting to the Docker Engine"),
    };
    // builds in containers must not reach this host unless the operator says so
    if docker.is_some() {
        let access = settings.sandbox.build_host_access;
        tokio::task::spawn_blocking(move || executor::docker::firewall::ensure(access))
            .await
            .context("checking the host firewall")??;
    }
    let worker_id = settings.worker_id.clone().unwrap_or_else(default_worker_id);
    // the worker keeps mirrors and workspaces under it
    let cache_dir = settings
        .cache_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("ocelot-worker"));
    let instance = store
        .instance_id()
        .await
        .context("reading the installation id")?;
    // one directory per installation: workers of another installation sharing the cache
    // directory never sweep this one's workspaces
    let workspaces = cache_dir.join("workspaces").join(&instance);
    std::fs::create_dir_all(&workspaces)
        .with_context(|| format!("creating {}", workspaces.display()))?;
    if host_users.is_some() {
        host_setup::protect_cache_dir(&cache_dir, &workspaces)?;
    }
    let storage_args = settings
        .storage
        .clone()
        .with_credential(&secrets)
        .await
        .context("reading the storage's key")?;
    let storage = ocelot_core::storage::Storage::open(&storage_args)
        .context("opening the artifact storage")?;
    let sandbox = executor::docker::Sandbox::new(&settings.sandbox, &cache_dir)
        .with_context(|| format!("reading the private images under {}", cache_dir.display()))?;
    let warm = match &docker {
        Some(docker) if settings.sandbox.warm_images > 0 => {
            Some(executor::docker::warm::WarmPool::start(
                docker.clone(),
                executor::docker::warm::WarmSettings {
                    images: settings.sandbox.warm_images,
                    idle: settings.sandbox.warm_idle,
                    worker_id: worker_id.clone(),
                    instance: instance.clone(),
                    host_access: settings.sandbox.build_host_access,
                },
            ))
        }
        _ => None,
    };
    let context = WorkerContext {
        engine: Engine {
            warm: warm.clone(),
            worker_id,
            instance,
            docker,
            executor: settings.executor,
            pull_timeout: settings.pull_timeout,
            max_log_bytes: settings.max_log_mib.saturating_mul(1024 * 1024),
            max_log_lines: settings.max_log_lines,
            sandbox: Arc::new(sandbox),
            stage_settings: settings.stages,
        },
        store,
        bus,
        mirrors: Arc::new(MirrorCache::new(cache_dir.join("mirrors"))),
        workspaces,
        max_attempts: settings.max_attempts,
        secrets,
        hand_back: CancellationToken::new(),
        store_outage_budget: settings.store_outage_budget,
        host_users,
        storage,
        artifact_limits: settings.artifacts,
        cache_settings: settings.caches,
    };
    tracing::info!(worker_id = %context.engine.worker_id, tags = ?settings.tags,
        concurrency = settings.concurrency, executor = ?settings.executor, "worker started");
    let now = ocelot_core::model::unix_ms(std::time::SystemTime::now());
    let registry_entry = ocelot_core::queue::WorkerInfo {
        id: context.engine.worker_id.clone(),
        tags: settings.tags.clone(),
        capacity: u32::try_from(settings.concurrency).unwrap_or(u32::MAX),
        running: 0,
        executor: match settings.executor {
            ExecutorKind::Docker => "docker",
            ExecutorKind::Host => "host",
        }
        .to_string(),
        host: ocelot_core::settings::host_name().unwrap_or_default(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        started_at_ms: now,
        seen_at_ms: now,
        paused: None,
    };
    let registration = settings
        .consul
        .register(ServiceDefinition::new(
            "ocelot-worker",
            &context.engine.worker_id,
        ))
        .await
        .context("registering in Consul")?;
    let sweep_stop = CancellationToken::new();
    let sweeper = tokio::spawn(sweeper::run(
        context.engine.docker.clone(),
        context.store.clone(),
        context.engine.instance.clone(),
        context.workspaces.clone(),
        settings.sweep_every,
        sweep_stop.clone(),
    ));
    let (paused_sender, paused) = tokio::sync::watch::channel(None::<String>);
    // /readyz: ready while the worker takes jobs
    let health = {
        let paused = paused.clone();
        let probe: ocelot_core::health::Probe = Arc::new(move || {
            let problem = paused.borrow().clone();
            Box::pin(async move { problem.into_iter().collect() })
        });
        ocelot_core::health::spawn(health, probe, sweep_stop.clone())
            .context("serving the health endpoints")?
    };
    let checks = tokio::spawn(pressure::run(
        pressure::Checks {
            store: context.store.clone(),
            bus: context.bus.clone(),
            docker: match settings.executor {
                ExecutorKind::Docker => context.engine.docker.clone(),
                ExecutorKind::Host => None,
            },
            cache_dir: cache_dir.clone(),
            min_free_disk_bytes: settings.min_free_disk_mib.saturating_mul(1024 * 1024),
            timeout: settings.check_every.max(Duration::from_secs(2)),
        },
        settings.check_every,
        paused_sender,
        sweep_stop.clone(),
    ));
    let ran = job_loop::run(
        context,
        registry_entry,
        settings.concurrency,
        job_loop::Timing {
            grace: settings.shutdown_grace,
            ack_wait: settings.job_ack_wait,
        },
        paused,
        shutdown,
    )
    .await;
    if let Some(warm) = warm {
        warm.close().await;
    }
    sweep_stop.cancel();
    let _ = sweeper.await;
    let _ = checks.await;
    if let Some(health) = health {
        let _ = health.await;
    }
    deregister(registration).await;
    ran
}

#[cfg(test)]
mod flag_tests {
    /// Every flag has its own name and its own environment variable (clap checks it when
    /// the binary starts: a clash would stop the service before it does anything).
    #[test]
    fn the_flags_are_consistent() {
        <super::Settings as clap::CommandFactory>::command().debug_assert();
    }
}
