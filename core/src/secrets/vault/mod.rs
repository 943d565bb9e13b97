//! Credentials in Vault's KV version 2 secrets engine, through `vaultrs`, behind
//! [`super::SecretStore`]: the same behaviour as [`super::PostgresSecrets`] (add replaces, list
//! never returns values, removing a missing credential is a "not found" naming it, a build
//! reads the credentials whose scope covers its repo).
//!
//! # Layout
//!
//! One KV secret per credential, at `{mount}/data/{prefix}/{key}` (defaults: mount `secret`,
//! prefix `ocelot`). `key` is `KIND~SCOPEKIND~SCOPE~NAME` with every byte of the scope and
//! the name outside `[A-Za-z0-9_-]` written as `.HH` (hex), e.g. `env~repo~acme.2Fapp~API_TOKEN`:
//! always one path segment (a `/` in a repo name makes no folder), readable in `vault kv
//! list`, and decodable, so a build reads only the credentials that cover its repo.
//!
//! The secret's data is `{"name", "kind", "scope_kind", "scope", "details", "value"}` plus
//! `created_at` once a credential has been replaced. Dates are Vault's: `updated_at` is the
//! current version's `created_time`, `created_at` the secret's `created_time` from its KV
//! metadata (copied into the data when a credential is replaced; a first version's two dates
//! are one).
//!
//! Requests: `add` reads the metadata (404: a new credential) and writes the data; `list` is
//! one `LIST` of the prefix and one read per credential (the value is dropped at once);
//! `for_repo` is one `LIST` and one read per covering credential; `remove` reads the
//! metadata (404: not found) and deletes the metadata with every version.
//!
//! # Authentication
//!
//! A token (`VAULT_TOKEN`), or an AppRole login (role id and secret id) whose token is
//! renewed by logging in again shortly before its lease ends. The policy Ocelot needs:
//!
//! ```hcl
//! path "secret/data/ocelot/*"     { capabilities = ["create", "update", "read"] }
//! path "secret/metadata/ocelot/*" { capabilities = ["list", "read", "delete"] }
//! ```
//!
//! No error, `Debug` output or log line holds a token, a secret id or a credential's value.
//!
//! TLS goes through reqwest with rustls and the `ring` provider (installed as the process
//! default when none is), the platform's trust store, and the Vault CLI's `VAULT_CACERT`,
//! `VAULT_CAPATH`, `VAULT_CLIENT_CERT`/`VAULT_CLIENT_KEY` and `VAULT_SKIP_VERIFY`.
//!
//! # Parts
//!
//! `config` (address, auth, the services' flags), `login` (token or AppRole sessions),
//! `keys` (the KV layout), `kv` (reads and writes, and [`super::SecretStore`] on them) and
//! `error` (Vault's failures, without secrets).

mod config;
mod error;
mod keys;
mod kv;
mod login;

pub use config::{
    DEFAULT_APPROLE_MOUNT, DEFAULT_MOUNT, DEFAULT_PREFIX, VaultArgs, VaultAuth, VaultConfig,
};

use super::SecretError;
use login::{Session, log_in};
use std::fmt;
use std::sync::Arc;
use tokio::sync::{RwLock, RwLockReadGuard};
use vaultrs::error::ClientError;

/// Credentials in Vault KV v2. Cheap to clone.
#[derive(Clone)]
pub struct VaultSecrets {
    inner: Arc<Inner>,
}

struct Inner {
    config: VaultConfig,
    session: RwLock<Session>,
}

impl fmt::Debug for VaultSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultSecrets")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl VaultSecrets {
    /// Connects to Vault: with a token, or by logging in with AppRole (which fails here,
    /// at start-up, when the role id or secret id is wrong).
    pub async fn connect(config: VaultConfig) -> Result<Self, SecretError> {
        let config = config.checked()?;
        let session = log_in(&config).await?;
        tracing::info!(
            vault = config.address,
            mount = config.mount,
            prefix = config.prefix,
            auth = match config.auth {
                VaultAuth::Token(_) => "token",
                VaultAuth::AppRole { .. } => "approle",
            },
            "credentials are kept in Vault"
        );
        Ok(VaultSecrets {
            inner: Arc::new(Inner {
                config,
                session: RwLock::new(session),
            }),
        })
    }

    /// The client, after logging in again when the AppRole token is about to expire.
    async fn session(&self) -> Result<RwLockReadGuard<'_, Session>, SecretError> {
        {
            let session = self.inner.session.read().await;
            if !session.expiring() {
                return Ok(session);
            }
        }
        let mut session = self.inner.session.write().await;
        if session.expiring() {
            *session = log_in(&self.inner.config).await?;
        }
        Ok(session.downgrade())
    }
}

impl Inner {
    /// A Vault failure as a [`SecretError`] without the token, the secret id or `values`.
    fn error(
        &self,
        action: &str,
        error: ClientError,
        session: &Session,
        values: &[&str],
    ) -> SecretError {
        error::backend_error(&self.config, &session.token, action, error, values)
    }
}
