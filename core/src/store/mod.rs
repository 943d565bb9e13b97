//! The Postgres store: one pool, embedded migrations applied at start-up under an advisory
//! lock, and one module per table that owns its queries.

mod api_tokens;
mod artifacts;
mod builds;
mod caches;
mod commit_status;
mod credentials;
mod deliveries;
mod error;
mod events;
mod log_retention;
mod migrate;
mod outbox;
mod polls;
mod repos;
mod stages;
pub mod tls;
mod webhook_secrets;

pub use api_tokens::ApiToken;
pub use artifacts::{Artifact, NewArtifact};
pub use builds::{BuildFilter, Claim, ClaimOutcome, Inserted, NewBuild, Superseded};
pub use caches::{CacheEntry, CacheHit, CacheLookup, NewCache};
pub use commit_status::{STATUS_KIND, status_context};
pub use credentials::StoredCredential;
pub use deliveries::{Delivery, NewDelivery, Recorded};
pub use error::{StoreError, retrying};
pub use events::Appended;
pub use log_retention::STALE_CLAIM;
pub use migrate::migrations_before;
pub use ocelot_domain::repo_url::normalize_url;
pub use outbox::{DeliveryRecord, OutboxMessage};
pub use polls::{ClaimedPoll, PollOutcome};
pub use webhook_secrets::{SealedWebhookSecret, StoredWebhookSecret};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::str::FromStr;
use std::time::Duration;

/// The pool size of a service that is not told one (`--database-pool-size`).
pub const DEFAULT_POOL_SIZE: u16 = 16;

/// This program's file name (`ocelot-admin`, `ocelot-worker`, …), as Postgres shows it.
fn program_name() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.file_name()?.to_str()?.to_owned())
}

/// Handle to the Postgres store; cheap to clone (the pool is shared).
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
}

impl Store {
    /// Connects to `url`, applies pending migrations and returns the store. TLS as its
    /// `sslmode` says ([`tls`]), trusting the system's roots.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Store::connect_with_ca(url, None).await
    }

    /// [`Store::connect`], trusting the CA certificates of `ca_file` (PEM) when given.
    pub async fn connect_with_ca(
        url: &str,
        ca_file: Option<&std::path::Path>,
    ) -> Result<Store, StoreError> {
        Store::connect_with_pool(url, ca_file, usize::from(DEFAULT_POOL_SIZE)).await
    }

    /// [`Store::connect_with_ca`] with a pool of at most `pool_size` connections. Unless the
    /// URL names an `application_name`, the connections carry this program's file name
    /// (`ocelot-worker`, …), so that `pg_stat_activity` tells the services apart.
    pub async fn connect_with_pool(
        url: &str,
        ca_file: Option<&std::path::Path>,
        pool_size: usize,
    ) -> Result<Store, StoreError> {
        let (url, ssl_mode) = tls::split_mode(url)?;
        let mut config = tokio_postgres::Config::from_str(&url)
            .map_err(|e| StoreError::Config(format!("invalid database URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none()
            && let Some(name) = program_name()
        {
            config.application_name(&name);
        }
        config.ssl_mode(match ssl_mode {
            None | Some(tls::SslMode::Disable) => tokio_postgres::config::SslMode::Disable,
            Some(tls::SslMode::Prefer) => tokio_postgres::config::SslMode::Prefer,
            Some(_) => tokio_postgres::config::SslMode::Require,
        });
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = match tls::connector(ssl_mode, ca_file)? {
            Some(connector) => Manager::from_config(config, connector, manager_config),
            None => Manager::from_config(config, tokio_postgres::NoTls, manager_config),
        };
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(10)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Config(e.to_string()))?;
        let store = Store { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(StoreError::from)
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client().await?.simple_query("SELECT 1").await?;
        Ok(())
    }
}
