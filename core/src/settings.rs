//! Command-line/environment argument groups shared by the service binaries.

use crate::env_vars;
use clap::Args;

/// Where the Postgres store is.
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Postgres URL, e.g. postgres://ocelot@127.0.0.1:5432/ocelot
    #[arg(long = "database-url", env = env_vars::OCELOT_DATABASE_URL)]
    pub database_url: String,
}

/// Where the NATS (JetStream) server is.
#[derive(Debug, Clone, Args)]
pub struct NatsArgs {
    /// NATS URL, e.g. nats://127.0.0.1:4222
    #[arg(long = "nats-url", env = env_vars::OCELOT_NATS_URL, default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
}

/// How services log.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// `plain` or `json` (logs go to stderr; RUST_LOG sets the level)
    #[arg(long = "log-format", env = env_vars::OCELOT_LOG_FORMAT, default_value = "plain")]
    pub log_format: crate::telemetry::LogFormat,
}

pub use ocelot_discovery::host_name;

pub use crate::secrets::select::SecretsArgs;
