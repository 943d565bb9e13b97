//! Logging in to Vault: a client with the configured token, or with the token of an AppRole
//! login, which is replaced by logging in again shortly before its lease ends.

use super::config::{VaultAuth, VaultConfig};
use super::error::{redact, vault_message};
use crate::error_chain::error_chain;
use crate::secrets::SecretError;
use std::time::Duration;
use tokio::time::Instant;
use vaultrs::client::{Client, VaultClient, VaultClientSettingsBuilder};

/// How long one request to Vault may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// An AppRole token is replaced this long (at most half its lease) before it expires.
const RELOGIN_MARGIN: Duration = Duration::from_secs(30);

/// A client holding a token, and when to log in again (AppRole tokens).
pub(super) struct Session {
    pub(super) client: VaultClient,
    pub(super) token: String,
    renew_at: Option<Instant>,
}

impl Session {
    /// Whether the token is about to expire, so the next request logs in again first.
    pub(super) fn expiring(&self) -> bool {
        self.renew_at.is_some_and(|at| Instant::now() >= at)
    }
}

/// A session for `config`: its token, or a fresh AppRole login.
pub(super) async fn log_in(config: &VaultConfig) -> Result<Session, SecretError> {
    match &config.auth {
        VaultAuth::Token(token) => Ok(Session {
            client: new_client(config, token)?,
            token: token.clone(),
            renew_at: None,
        }),
        VaultAuth::AppRole {
            mount,
            role_id,
            secret_id,
        } => {
            let mut client = new_client(config, "")?;
            let auth = vaultrs::auth::approle::login(&client, mount, role_id, secret_id)
                .await
                .map_err(|error| {
                    let message = vault_message(
                        config,
                        &format!("log in with AppRole (auth/{mount}/login)"),
                        &error,
                    );
                    SecretError::Backend(redact(message, &[secret_id]))
                })?;
            client.set_token(&auth.client_token);
            let lease = Duration::from_secs(auth.lease_duration);
            // a lease too long to add to the clock is as good as none
            let renew_at = (!lease.is_zero())
                .then(|| Instant::now().checked_add(lease - RELOGIN_MARGIN.min(lease / 2)))
                .flatten();
            tracing::info!(
                vault = config.address,
                role_id,
                policies = ?auth.policies,
                lease = %humantime::format_duration(lease),
                "logged in to Vault with AppRole"
            );
            Ok(Session {
                client,
                token: auth.client_token,
                renew_at,
            })
        }
    }
}

/// Makes rustls's `ring` provider the process default unless one is installed already:
/// reqwest (built without a provider of its own, to keep aws-lc-rs out) needs one.
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // a concurrent install may win the race; either way a provider is then in place
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

fn new_client(config: &VaultConfig, token: &str) -> Result<VaultClient, SecretError> {
    ensure_crypto_provider();
    let settings = VaultClientSettingsBuilder::default()
        // checked by `VaultConfig::checked`, so the setter's URL parse cannot fail
        .address(&config.address)
        .token(token)
        .timeout(Some(REQUEST_TIMEOUT))
        .build()
        .map_err(|error| SecretError::Backend(format!("Vault client settings: {error}")))?;
    VaultClient::new(settings).map_err(|error| {
        SecretError::Backend(format!(
            "cannot set up the Vault client: {}",
            error_chain(&error)
        ))
    })
}
