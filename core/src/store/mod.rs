//! The Postgres store: one pool, embedded migrations applied at start-up under an advisory
//! lock, and one module per table that owns its queries.

mod api_tokens;
mod builds;
mod credentials;
mod deliveries;
mod error;
mod events;
mod migrate;
mod polls;
mod repos;
mod stages;

pub use api_tokens::ApiToken;
pub use builds::{BuildFilter, ClaimOutcome, Inserted, NewBuild};
pub use credentials::StoredCredential;
pub use deliveries::{Delivery, NewDelivery, Recorded};
pub use error::{StoreError, retrying};
pub use events::Appended;
pub use migrate::migrations_before;
pub use ocelot_domain::repo_url::normalize_url;
pub use polls::{ClaimedPoll, PollOutcome};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::str::FromStr;
use std::time::Duration;

/// Handle to the Postgres store; cheap to clone (the pool is shared).
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
}

impl Store {
    /// Connects to `url`, applies pending migrations and returns the store.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let mut config = tokio_postgres::Config::from_str(url)
            .map_err(|e| StoreError::Config(format!("invalid database URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let manager = Manager::from_config(
            config,
            tokio_postgres::NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
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
