//! Command-line/environment argument groups shared by the service binaries.

use crate::env_vars;
use clap::Args;
use std::path::PathBuf;

/// Where the Postgres store is. TLS follows the URL's `sslmode` (`disable`, `prefer`,
/// `require`, `verify-ca`, `verify-full`); see [`crate::store::tls`].
#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// Postgres URL, e.g. postgres://ocelot@127.0.0.1:5432/ocelot (add ?sslmode=verify-full for TLS)
    #[arg(long = "database-url", env = env_vars::OCELOT_DATABASE_URL)]
    pub database_url: String,
    /// PEM CA certificate(s) the Postgres server's certificate must chain to (sslmode=verify-ca or verify-full; default: the system's roots)
    #[arg(long = "database-ca-file", env = env_vars::OCELOT_DATABASE_CA_FILE)]
    pub database_ca_file: Option<PathBuf>,
    /// Most Postgres connections this process opens (its pool; opened as needed, kept while idle)
    #[arg(long = "database-pool-size", env = env_vars::OCELOT_DATABASE_POOL_SIZE,
          default_value_t = crate::store::DEFAULT_POOL_SIZE,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub database_pool_size: u16,
}

impl DatabaseArgs {
    /// The store at `url`, TLS as its `sslmode` says, trusting the system's roots.
    pub fn new(url: impl Into<String>) -> Self {
        DatabaseArgs {
            database_url: url.into(),
            database_ca_file: None,
            database_pool_size: crate::store::DEFAULT_POOL_SIZE,
        }
    }

    /// Connects to the store (applying migrations).
    pub async fn connect(&self) -> Result<crate::store::Store, crate::store::StoreError> {
        crate::store::Store::connect_with_pool(
            &self.database_url,
            self.database_ca_file.as_deref(),
            usize::from(self.database_pool_size),
        )
        .await
    }
}

/// Where the NATS (JetStream) server is, and who this service is to it. The server admits
/// one user per service kind (admin, worker, hookhandler, poller), each allowed only the
/// subjects it needs (scripts/nats-auth.conf).
#[derive(Debug, Clone, Args)]
pub struct NatsArgs {
    /// NATS URL, e.g. nats://127.0.0.1:4222 (tls://host:port with --nats-tls-ca); a cluster's servers comma-separated: nats://a:4222,nats://b:4222,nats://c:4222
    #[arg(long = "nats-url", env = env_vars::OCELOT_NATS_URL, default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// NATS user of this service: admin, worker, hookhandler or poller (scripts/nats-auth.conf)
    #[arg(long = "nats-user", env = env_vars::OCELOT_NATS_USER)]
    pub nats_user: Option<String>,
    /// File holding the password of --nats-user (mode 0600)
    #[arg(long = "nats-password-file", env = env_vars::OCELOT_NATS_PASSWORD_FILE, requires = "nats_user", conflicts_with = "nats_password")]
    pub nats_password_file: Option<PathBuf>,
    /// The password of --nats-user itself, when no file is given (prefer the environment to the command line)
    #[arg(long = "nats-password", env = env_vars::OCELOT_NATS_PASSWORD, hide_env_values = true, requires = "nats_user")]
    pub nats_password: Option<String>,
    /// PEM CA certificate that signed the NATS server's certificate: the connection must use TLS
    #[arg(long = "nats-tls-ca", env = env_vars::OCELOT_NATS_TLS_CA)]
    pub nats_tls_ca: Option<PathBuf>,
    /// PEM client certificate for NATS TLS, when the server verifies clients (with --nats-tls-key)
    #[arg(long = "nats-tls-cert", env = env_vars::OCELOT_NATS_TLS_CERT, requires = "nats_tls_key")]
    pub nats_tls_cert: Option<PathBuf>,
    /// PEM private key of --nats-tls-cert
    #[arg(long = "nats-tls-key", env = env_vars::OCELOT_NATS_TLS_KEY, requires = "nats_tls_cert")]
    pub nats_tls_key: Option<PathBuf>,
    /// Copies JetStream keeps of the job and log streams, their consumers and the worker registry: 1 for one server, 3 for a 3-node cluster (at most 5, and no more than the cluster's servers). The admin changes existing streams to it at start-up
    #[arg(long = "nats-replicas", env = env_vars::OCELOT_NATS_REPLICAS, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=5))]
    pub nats_replicas: u8,
}

impl NatsArgs {
    /// The server at `url`, no credentials, no TLS (a server without authorization).
    pub fn new(url: impl Into<String>) -> Self {
        NatsArgs {
            nats_url: url.into(),
            nats_user: None,
            nats_password_file: None,
            nats_password: None,
            nats_tls_ca: None,
            nats_tls_cert: None,
            nats_tls_key: None,
            nats_replicas: 1,
        }
    }

    /// `self` with `replicas` copies of the streams (`--nats-replicas`).
    pub fn with_replicas(mut self, replicas: u8) -> Self {
        self.nats_replicas = replicas;
        self
    }

    /// `self` as `user` with the password in `password_file`.
    pub fn with_user(mut self, user: impl Into<String>, password_file: PathBuf) -> Self {
        self.nats_user = Some(user.into());
        self.nats_password_file = Some(password_file);
        self.nats_password = None;
        self
    }
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
