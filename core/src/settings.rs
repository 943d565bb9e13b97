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

/// Where the master key that seals credentials comes from.
#[derive(Debug, Clone, Args)]
pub struct SecretsArgs {
    /// File holding the master key (64 hex characters; must not be readable by others)
    #[arg(long = "master-key-file", env = env_vars::OCELOT_MASTER_KEY_FILE)]
    pub master_key_file: Option<std::path::PathBuf>,
}

impl SecretsArgs {
    /// The key from `--master-key-file`, else from `OCELOT_MASTER_KEY`; `None` when neither
    /// is set (credentials then cannot be used).
    pub fn load(
        &self,
    ) -> Result<Option<crate::secrets::cipher::MasterKey>, crate::secrets::cipher::CipherError>
    {
        use crate::secrets::cipher::MasterKey;
        if let Some(path) = &self.master_key_file {
            return MasterKey::from_file(path).map(Some);
        }
        match std::env::var(env_vars::OCELOT_MASTER_KEY) {
            Ok(hex) if !hex.trim().is_empty() => MasterKey::from_hex(&hex).map(Some),
            _ => Ok(None),
        }
    }

    /// The credential store these settings describe, checked against what `store` holds.
    pub async fn open(
        &self,
        store: crate::store::Store,
    ) -> Result<crate::secrets::PostgresSecrets, crate::secrets::SecretError> {
        crate::secrets::PostgresSecrets::new(store, self.load()?).await
    }
}
