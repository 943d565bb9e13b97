//! `ocelot-poller`: for repositories without webhooks. Claims due polls from Postgres (any
//! number of pollers can run: a poll is claimed by one at a time), lists each repo's heads
//! with `git ls-remote` (no clone), and queues a build for every tracked branch whose head
//! moved, through the same `core::trigger::queue_build` as `ocelot build`.
//!
//! - [`run`]: connect and poll until shutdown.
//! - `poll_loop`: claiming due polls, bounded concurrency, one poll's work and its outcome.

mod context;
mod poll_loop;

use anyhow::Context;
use clap::Parser;
use context::PollerContext;
use ocelot_core::connect::{Connections, cache_dir, connect};
use ocelot_core::discovery::consul::{ConsulArgs, ServiceDefinition, deregister};
use ocelot_core::env_vars;
use ocelot_core::secrets::select::SecretStoreArgs;
use ocelot_core::settings::{DatabaseArgs, LogArgs, NatsArgs, SecretsArgs};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The poller's configuration: flags, or the environment variables named in `--help`.
#[derive(Debug, Clone, Parser)]
#[command(name = "ocelot-poller", version, about = "Ocelot's branch poller")]
pub struct Settings {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub log: LogArgs,
    /// The master key: reading ocelot.yml from private repos needs their credentials
    #[command(flatten)]
    pub secrets: SecretsArgs,
    #[command(flatten)]
    pub secret_store: SecretStoreArgs,
    #[command(flatten)]
    pub consul: ConsulArgs,
    #[command(flatten)]
    pub health: ocelot_core::health::HealthArgs,
    /// Directory of the git mirrors used to read ocelot.yml (default: under the temp dir)
    #[arg(long, env = env_vars::OCELOT_CACHE_DIR)]
    pub cache_dir: Option<PathBuf>,
    /// `git ls-remote`s (and builds being queued) at once
    #[arg(long, env = env_vars::OCELOT_POLLER_CONCURRENCY, default_value_t = 16)]
    pub concurrency: usize,
    /// How often the poller looks for due polls
    #[arg(long, env = env_vars::OCELOT_POLL_TICK, value_parser = parse_duration, default_value = "1s")]
    pub tick: Duration,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    ocelot_core::pipeline::parse_duration(text)
}

/// Connects to Postgres and NATS, then polls until `shutdown` resolves. `health`: where to
/// serve `/healthz`, `/readyz` and `/metrics`, bound (`--health-listen`, see
/// [`ocelot_core::health::HealthArgs::bind`]); none when `None`.
pub async fn run(
    settings: Settings,
    health: Option<tokio::net::TcpListener>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    anyhow::ensure!(settings.concurrency > 0, "--concurrency must be at least 1");
    let connections = connect(
        &settings.database,
        &settings.secrets,
        &settings.secret_store,
        &settings.nats,
        ocelot_core::queue::Setup::PublishOnly,
    )
    .await?;
    let trigger = connections.trigger(cache_dir(settings.cache_dir.clone(), "poller"));
    let Connections {
        store,
        secrets,
        bus,
    } = connections;
    // /readyz: ready while Postgres and NATS answer
    let health_stop = tokio_util::sync::CancellationToken::new();
    let health = {
        let (store, bus) = (store.clone(), bus.clone());
        let probe: ocelot_core::health::Probe = Arc::new(move || {
            let (store, bus) = (store.clone(), bus.clone());
            Box::pin(async move {
                ocelot_core::health::dependency_problems(&store, &bus, Duration::from_secs(2)).await
            })
        });
        ocelot_core::health::spawn(health, probe, health_stop.clone())
            .context("serving the health endpoints")?
    };
    let context = PollerContext {
        store,
        secrets,
        trigger,
    };
    tracing::info!(concurrency = settings.concurrency, "poller started");
    let registration = settings
        .consul
        .register(ServiceDefinition::new(
            "ocelot-poller",
            &format!("ocelot-poller-{}", std::process::id()),
        ))
        .await
        .context("registering in Consul")?;
    poll_loop::run(context, settings.concurrency, settings.tick, shutdown).await;
    health_stop.cancel();
    if let Some(health) = health {
        let _ = health.await;
    }
    deregister(registration).await;
    Ok(())
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
