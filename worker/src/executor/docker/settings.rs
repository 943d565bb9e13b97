//! The worker's sandbox settings (flags and environment variables) and what every build
//! container of the worker shares ([`Sandbox`]).

use super::firewall::HostAccess;
use super::image::{PrivateImages, PullPolicy};
use ocelot_core::env_vars;
use ocelot_core::pipeline::{Limits, NANO_CPUS_PER_CPU, parse_cpus, parse_memory, parse_pids};
use std::path::Path;
use std::time::Duration;

/// Build container limits and isolation.
#[derive(Debug, Clone, clap::Args)]
pub struct SandboxArgs {
    /// Memory a build container may use, with no swap on top (`2g`, `512m`); ocelot.yml's
    /// `resources.memory` may lower it
    #[arg(long, env = env_vars::OCELOT_BUILD_MEMORY, value_parser = parse_memory, default_value = "2g")]
    pub build_memory: u64,
    /// CPUs a build container may use (`1.5`; default: all of this host's, so a build
    /// running alone is not slowed down and builds running together share the CPUs
    /// fairly); ocelot.yml's `resources.cpus` may lower it
    #[arg(long, env = env_vars::OCELOT_BUILD_CPUS, value_parser = parse_cpus)]
    pub build_cpus: Option<u64>,
    /// Processes and threads a build container may run at once; ocelot.yml's
    /// `resources.pids` may lower it
    #[arg(long, env = env_vars::OCELOT_BUILD_PIDS, value_parser = parse_pids, default_value = "512")]
    pub build_pids: u64,
    /// Whether builds may reach this host's own addresses: `deny` installs a firewall rule
    /// (`iptables -I INPUT -i ocb+ -j DROP`, and ip6tables) at start, `external` leaves it to
    /// the operator (a worker in a container), `allow` lets builds reach the host
    #[arg(long, env = env_vars::OCELOT_BUILD_HOST_ACCESS, value_enum, default_value = "deny")]
    pub build_host_access: HostAccess,
    /// When build images are pulled: `if-not-present` (and an image pulled before with
    /// another build's registry login again, with this build's), or `always`
    #[arg(long, env = env_vars::OCELOT_PULL, value_enum, default_value = "if-not-present")]
    pub pull: PullPolicy,
    /// For how many recently used images a started, unused container (with its network) is
    /// kept ready, so that a build starts without waiting for Docker; each serves one build
    /// and is never reused. `0` turns warm starts off
    #[arg(long, env = env_vars::OCELOT_WARM_IMAGES, default_value_t = 2)]
    pub warm_images: usize,
    /// How long a warm container nobody used is kept before it is removed
    #[arg(long, env = env_vars::OCELOT_WARM_IDLE, value_parser = parse_idle, default_value = "10m")]
    pub warm_idle: Duration,
}

fn parse_idle(text: &str) -> Result<Duration, String> {
    let idle = ocelot_core::pipeline::parse_duration(text)?;
    if idle < super::warm::MIN_IDLE {
        return Err(format!(
            "at least {} s: a warm container is handed out only while it has a minute left",
            super::warm::MIN_IDLE.as_secs()
        ));
    }
    Ok(idle)
}

impl Default for SandboxArgs {
    fn default() -> Self {
        SandboxArgs {
            build_memory: 2 << 30,
            build_cpus: None,
            build_pids: 512,
            build_host_access: HostAccess::Deny,
            pull: PullPolicy::IfNotPresent,
            warm_images: 2,
            warm_idle: Duration::from_secs(600),
        }
    }
}

/// What every build container of a worker shares.
#[derive(Debug)]
pub(crate) struct Sandbox {
    /// The worker's limits: a build's `resources` may only lower them.
    pub(crate) limits: Limits,
    pub(crate) host_access: HostAccess,
    pub(crate) pull: PullPolicy,
    pub(crate) private_images: PrivateImages,
}

impl Sandbox {
    /// The worker's sandbox; its private images are recorded under `cache_dir`.
    pub(crate) fn new(args: &SandboxArgs, cache_dir: &Path) -> Result<Self, std::io::Error> {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let host_cpus = u64::try_from(cpus)
            .unwrap_or(1)
            .saturating_mul(NANO_CPUS_PER_CPU);
        Ok(Sandbox {
            limits: Limits {
                memory: args.build_memory,
                nano_cpus: args.build_cpus.unwrap_or(host_cpus),
                pids: args.build_pids,
            },
            host_access: args.build_host_access,
            pull: args.pull,
            private_images: PrivateImages::load(&cache_dir.join("private-images"))?,
        })
    }
}
