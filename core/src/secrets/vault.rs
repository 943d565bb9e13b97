//! Credentials in Vault's KV version 2 secrets engine, through `vaultrs`, behind
//! [`SecretStore`]: the same behaviour as [`super::PostgresSecrets`] (add replaces, list
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

use super::{
    Credential, CredentialDetails, CredentialInfo, CredentialKind, Scope, SecretError, SecretStore,
    SecretValue, validate_credential,
};
use crate::env_vars;
use crate::error_chain::error_chain;
use crate::store::StoreError;
use rustify::errors::ClientError as HttpError;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{RwLock, RwLockReadGuard};
use tokio::time::Instant;
use vaultrs::api::kv2::requests::ReadSecretRequest;
use vaultrs::client::{Client, VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

/// The KV v2 mount Ocelot uses unless told otherwise.
pub const DEFAULT_MOUNT: &str = "secret";
/// The path under the mount where Ocelot keeps its credentials unless told otherwise.
pub const DEFAULT_PREFIX: &str = "ocelot";
/// Where the AppRole auth method is mounted unless told otherwise.
pub const DEFAULT_APPROLE_MOUNT: &str = "approle";
/// How long one request to Vault may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// An AppRole token is replaced this long (at most half its lease) before it expires.
const RELOGIN_MARGIN: Duration = Duration::from_secs(30);

/// How Ocelot authenticates to Vault. `Debug` never shows the token or the secret id.
#[derive(Clone)]
pub enum VaultAuth {
    Token(String),
    AppRole {
        /// Where the AppRole auth method is mounted (`approle`).
        mount: String,
        role_id: String,
        secret_id: String,
    },
}

impl fmt::Debug for VaultAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VaultAuth::Token(_) => f.write_str("Token(***)"),
            VaultAuth::AppRole { mount, role_id, .. } => f
                .debug_struct("AppRole")
                .field("mount", mount)
                .field("role_id", role_id)
                .field("secret_id", &"***")
                .finish(),
        }
    }
}

/// Where credentials live in Vault and how to get there.
#[derive(Debug, Clone)]
pub struct VaultConfig {
    /// `https://vault.example:8200`
    pub address: String,
    pub auth: VaultAuth,
    /// Mount path of the KV v2 engine (`secret`).
    pub mount: String,
    /// Path under the mount holding Ocelot's credentials (`ocelot`).
    pub prefix: String,
}

impl VaultConfig {
    /// `address` and `auth` with the default mount and prefix.
    pub fn new(address: &str, auth: VaultAuth) -> Self {
        VaultConfig {
            address: address.to_string(),
            auth,
            mount: DEFAULT_MOUNT.to_string(),
            prefix: DEFAULT_PREFIX.to_string(),
        }
    }

    /// Checks the address and trims the mount and prefix of slashes.
    fn checked(mut self) -> Result<Self, SecretError> {
        self.address = self.address.trim().trim_end_matches('/').to_string();
        let url_ok = url::Url::parse(&self.address)
            .is_ok_and(|url| matches!(url.scheme(), "http" | "https") && url.has_host());
        if !url_ok {
            return Err(SecretError::Invalid(format!(
                "the Vault address `{}` is not an http(s) URL (e.g. https://vault.example:8200)",
                self.address
            )));
        }
        self.mount = self.mount.trim().trim_matches('/').to_string();
        self.prefix = self.prefix.trim().trim_matches('/').to_string();
        for (what, value) in [("mount", &self.mount), ("prefix", &self.prefix)] {
            if value.is_empty() || value.split('/').any(|part| matches!(part, "" | "." | "..")) {
                return Err(SecretError::Invalid(format!(
                    "the Vault {what} `{value}` is not a path (e.g. `secret`, `ocelot` or `ci/ocelot`)"
                )));
            }
        }
        if let VaultAuth::AppRole { mount, role_id, .. } = &mut self.auth {
            *mount = mount.trim().trim_matches('/').to_string();
            if mount.is_empty() || role_id.trim().is_empty() {
                return Err(SecretError::Invalid(
                    "an AppRole login needs a role id and the auth method's mount path".into(),
                ));
            }
        }
        Ok(self)
    }
}

/// Where Vault is and how Ocelot logs in, for the services (used with `--secret-store vault`).
#[derive(Debug, Clone, clap::Args)]
pub struct VaultArgs {
    /// Vault address, e.g. https://vault.example:8200. Ocelot authenticates with AppRole when
    /// a role id is given, else with the token in VAULT_TOKEN. VAULT_CACERT, VAULT_CAPATH and
    /// VAULT_SKIP_VERIFY work as for the Vault CLI
    #[arg(long = "vault-addr", env = env_vars::VAULT_ADDR)]
    pub vault_addr: Option<String>,
    /// AppRole role id; the secret id comes from --vault-secret-id-file or
    /// OCELOT_VAULT_SECRET_ID
    #[arg(long = "vault-role-id", env = env_vars::OCELOT_VAULT_ROLE_ID)]
    pub vault_role_id: Option<String>,
    /// File holding the AppRole secret id
    #[arg(long = "vault-secret-id-file", env = env_vars::OCELOT_VAULT_SECRET_ID_FILE)]
    pub vault_secret_id_file: Option<PathBuf>,
    /// Mount path of the AppRole auth method
    #[arg(long = "vault-approle-mount", env = env_vars::OCELOT_VAULT_APPROLE_MOUNT, default_value = DEFAULT_APPROLE_MOUNT)]
    pub vault_approle_mount: String,
    /// Mount path of the KV version 2 secrets engine holding the credentials
    #[arg(long = "vault-mount", env = env_vars::OCELOT_VAULT_MOUNT, default_value = DEFAULT_MOUNT)]
    pub vault_mount: String,
    /// Path under the mount where Ocelot keeps its credentials
    #[arg(long = "vault-prefix", env = env_vars::OCELOT_VAULT_PREFIX, default_value = DEFAULT_PREFIX)]
    pub vault_prefix: String,
}

impl Default for VaultArgs {
    /// No Vault: what the flags' defaults give when nothing is set.
    fn default() -> Self {
        VaultArgs {
            vault_addr: None,
            vault_role_id: None,
            vault_secret_id_file: None,
            vault_approle_mount: DEFAULT_APPROLE_MOUNT.to_string(),
            vault_mount: DEFAULT_MOUNT.to_string(),
            vault_prefix: DEFAULT_PREFIX.to_string(),
        }
    }
}

impl VaultArgs {
    /// The configuration these arguments describe, with the token (`VAULT_TOKEN`) or the
    /// AppRole secret id (its file, else `OCELOT_VAULT_SECRET_ID`) read from where they live.
    pub fn config(&self) -> Result<VaultConfig, SecretError> {
        let address = self
            .vault_addr
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .ok_or_else(|| {
                SecretError::Invalid(
                    "the Vault secret store needs VAULT_ADDR (or --vault-addr)".into(),
                )
            })?;
        let auth = match self.vault_role_id.as_deref().map(str::trim) {
            Some(role_id) if !role_id.is_empty() => {
                let secret_id = match &self.vault_secret_id_file {
                    Some(path) => std::fs::read_to_string(path).map_err(|error| {
                        SecretError::Invalid(format!(
                            "cannot read the AppRole secret id from {}: {error}",
                            path.display()
                        ))
                    })?,
                    None => std::env::var(env_vars::OCELOT_VAULT_SECRET_ID).unwrap_or_default(),
                };
                let secret_id = secret_id.trim().to_string();
                if secret_id.is_empty() {
                    return Err(SecretError::Invalid(
                        "an AppRole login needs a secret id: set OCELOT_VAULT_SECRET_ID_FILE or OCELOT_VAULT_SECRET_ID".into(),
                    ));
                }
                VaultAuth::AppRole {
                    mount: self.vault_approle_mount.clone(),
                    role_id: role_id.to_string(),
                    secret_id,
                }
            }
            _ => {
                let token = std::env::var(env_vars::VAULT_TOKEN).unwrap_or_default();
                let token = token.trim();
                if token.is_empty() {
                    return Err(SecretError::Invalid(
                        "the Vault secret store needs VAULT_TOKEN, or an AppRole (OCELOT_VAULT_ROLE_ID and OCELOT_VAULT_SECRET_ID_FILE)".into(),
                    ));
                }
                VaultAuth::Token(token.to_string())
            }
        };
        Ok(VaultConfig {
            address: address.to_string(),
            auth,
            mount: self.vault_mount.clone(),
            prefix: self.vault_prefix.clone(),
        })
    }
}

/// Credentials in Vault KV v2. Cheap to clone.
#[derive(Clone)]
pub struct VaultSecrets {
    inner: Arc<Inner>,
}

struct Inner {
    config: VaultConfig,
    session: RwLock<Session>,
}

/// A client holding a token, and when to log in again (AppRole tokens).
struct Session {
    client: VaultClient,
    token: String,
    renew_at: Option<Instant>,
}

impl Session {
    fn expiring(&self) -> bool {
        self.renew_at.is_some_and(|at| Instant::now() >= at)
    }
}

impl fmt::Debug for VaultSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultSecrets")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// A credential's identity as its key encodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeyParts {
    kind: CredentialKind,
    scope: Scope,
    name: String,
}

/// What Ocelot keeps in a KV secret. No `Debug`: it holds the value.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredSecret {
    name: String,
    kind: String,
    scope_kind: String,
    scope: String,
    #[serde(default)]
    details: CredentialDetails,
    value: String,
    /// The secret's first creation (RFC 3339), once it has more than one version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_at: Option<String>,
}

/// Bytes kept as they are in keys; every other byte is written `.HH`.
fn plain_key_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-'
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for byte in text.bytes() {
        if plain_key_byte(byte) {
            escaped.push(char::from(byte));
        } else {
            escaped.push_str(&format!(".{byte:02X}"));
        }
    }
    escaped
}

fn unescape(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut plain = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'.' {
            let hex = text.get(i + 1..i + 3)?;
            plain.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else if plain_key_byte(bytes[i]) {
            plain.push(bytes[i]);
            i += 1;
        } else {
            return None;
        }
    }
    String::from_utf8(plain).ok()
}

/// The key (one path segment) of a credential: `KIND~SCOPEKIND~SCOPE~NAME`, escaped.
fn credential_key(kind: CredentialKind, scope: &Scope, name: &str) -> String {
    let (scope_kind, scope_value) = scope.parts();
    format!(
        "{}~{scope_kind}~{}~{}",
        kind.as_str(),
        escape(scope_value),
        escape(name)
    )
}

/// The credential a key names, or `None` for a key Ocelot did not write.
fn parse_key(key: &str) -> Option<KeyParts> {
    let mut parts = key.split('~');
    let (kind, scope_kind, scope, name) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !matches!(scope_kind, "repo" | "prefix") {
        return None;
    }
    Some(KeyParts {
        kind: kind.parse().ok()?,
        scope: Scope::from_parts(scope_kind, &unescape(scope)?),
        name: unescape(name)?,
    })
}

fn parse_time(text: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(SystemTime::from)
}

/// Whether Vault answered "nothing there" (also for a deleted, not destroyed, version).
fn is_not_found(error: &ClientError) -> bool {
    match error {
        ClientError::APIError { code, .. } => *code == 404,
        ClientError::RestClientError {
            source: HttpError::ServerResponseError { code, .. },
        } => *code == 404,
        _ => false,
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

impl VaultSecrets {
    /// Connects to Vault: with a token, or by logging in with AppRole (which fails here,
    /// at start-up, when the role id or secret id is wrong).
    pub async fn connect(config: VaultConfig) -> Result<Self, SecretError> {
        let config = config.checked()?;
        let session = Inner::log_in(&config).await?;
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
            *session = Inner::log_in(&self.inner.config).await?;
        }
        Ok(session.downgrade())
    }

    /// The path of a credential's secret under the mount.
    fn path(&self, key: &str) -> String {
        format!("{}/{key}", self.inner.config.prefix)
    }

    /// The keys under the prefix (none when Vault has no folder there yet).
    async fn keys(&self, session: &Session) -> Result<Vec<String>, SecretError> {
        let config = &self.inner.config;
        match vaultrs::kv2::list(&session.client, &config.mount, &config.prefix).await {
            Ok(keys) => Ok(keys),
            Err(error) if is_not_found(&error) => Ok(Vec::new()),
            Err(error) => Err(self.inner.error(
                &format!("list {}/metadata/{}", config.mount, config.prefix),
                error,
                session,
                &[],
            )),
        }
    }

    /// Keys Ocelot wrote, decoded; others are skipped with a warning.
    async fn credential_keys(
        &self,
        session: &Session,
    ) -> Result<Vec<(String, KeyParts)>, SecretError> {
        Ok(self
            .keys(session)
            .await?
            .into_iter()
            .filter_map(|key| match parse_key(&key) {
                Some(parts) => Some((key, parts)),
                None => {
                    tracing::warn!(key, "skipping a Vault key that is not an Ocelot credential");
                    None
                }
            })
            .collect())
    }

    /// One credential with its value; `None` when it vanished since it was listed.
    async fn read(
        &self,
        session: &Session,
        key: &str,
        parts: &KeyParts,
    ) -> Result<Option<Credential>, SecretError> {
        let config = &self.inner.config;
        let path = self.path(key);
        let what = describe(parts.kind, &parts.scope, &parts.name);
        let request = ReadSecretRequest::builder()
            .mount(config.mount.as_str())
            .path(path.as_str())
            .build()
            .map_err(|error| SecretError::Backend(format!("Vault request for {what}: {error}")))?;
        let response = match vaultrs::api::exec_with_result(&session.client, request).await {
            Ok(response) => response,
            Err(error) if is_not_found(&error) => return Ok(None),
            Err(error) => {
                return Err(self
                    .inner
                    .error(&format!("read {what}"), error, session, &[]));
            }
        };
        // a serde error could quote the value: never show it
        let stored: StoredSecret = serde_json::from_value(response.data).map_err(|_| {
            SecretError::Backend(format!(
                "the Vault secret {}/data/{path} is not an Ocelot credential (fields name, kind, scope_kind, scope, details, value)",
                config.mount
            ))
        })?;
        let (scope_kind, scope) = parts.scope.parts();
        if stored.name != parts.name
            || stored.kind != parts.kind.as_str()
            || stored.scope_kind != scope_kind
            || stored.scope != scope
        {
            return Err(SecretError::Backend(format!(
                "the Vault secret {}/data/{path} names another credential than its path",
                config.mount
            )));
        }
        let updated_at = parse_time(&response.metadata.created_time).ok_or_else(|| {
            SecretError::Backend(format!(
                "Vault's version time of {what} is not an RFC 3339 time"
            ))
        })?;
        let created_at = stored
            .created_at
            .as_deref()
            .and_then(parse_time)
            .unwrap_or(updated_at);
        Ok(Some(Credential {
            info: CredentialInfo {
                name: parts.name.clone(),
                kind: parts.kind,
                scope: parts.scope.clone(),
                details: stored.details,
                created_at,
                updated_at,
            },
            value: SecretValue::new(stored.value),
        }))
    }

    /// The secret's creation time from its KV metadata, or `None` when there is no such
    /// secret.
    async fn created_time(
        &self,
        session: &Session,
        path: &str,
        what: &str,
    ) -> Result<Option<String>, SecretError> {
        let config = &self.inner.config;
        match vaultrs::kv2::read_metadata(&session.client, &config.mount, path).await {
            Ok(metadata) => Ok(Some(metadata.created_time)),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => {
                Err(self
                    .inner
                    .error(&format!("read the metadata of {what}"), error, session, &[]))
            }
        }
    }
}

/// `env `API_TOKEN` (repo acme/app)`, as the Postgres store names credentials.
fn describe(kind: CredentialKind, scope: &Scope, name: &str) -> String {
    format!("credential {kind} `{name}` ({scope})")
}

impl Inner {
    async fn log_in(config: &VaultConfig) -> Result<Session, SecretError> {
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

    /// A Vault failure as a [`SecretError`] without the token, the secret id or `values`.
    fn error(
        &self,
        action: &str,
        error: ClientError,
        session: &Session,
        values: &[&str],
    ) -> SecretError {
        let mut message = vault_message(&self.config, action, &error);
        message = redact(message, &[session.token.as_str()]);
        if let VaultAuth::AppRole { secret_id, .. } = &self.config.auth {
            message = redact(message, &[secret_id]);
        }
        SecretError::Backend(redact(message, values))
    }
}

/// What a Vault failure means, for people.
fn vault_message(config: &VaultConfig, action: &str, error: &ClientError) -> String {
    let address = &config.address;
    match error {
        ClientError::APIError { code, errors } => {
            let detail = if errors.is_empty() {
                String::new()
            } else {
                format!(" {}", vault_errors(errors))
            };
            let hint = match code {
                403 => format!(
                    " (the token must be valid and its policy allow reading and writing {0}/data/{1}/* and listing, reading and deleting {0}/metadata/{1}/*)",
                    config.mount, config.prefix
                ),
                503 => " (is Vault sealed?)".to_string(),
                _ => String::new(),
            };
            format!("Vault at {address} refused to {action}: {code}{detail}{hint}")
        }
        ClientError::RestClientError { source } => match source {
            HttpError::RequestError { source, .. } => format!(
                "cannot reach Vault at {address} to {action}: {}",
                error_chain(source.as_ref())
            ),
            HttpError::ServerResponseError { code, .. } => {
                format!("Vault at {address} answered {code} to {action}")
            }
            HttpError::ResponseParseError { .. } | HttpError::ResponseConversionError { .. } => {
                format!(
                    "the answer to {action} is not what Vault's API documents: is {address} a Vault server?"
                )
            }
            other => format!("cannot {action} in Vault at {address}: {other}"),
        },
        other => format!("cannot {action} in Vault at {address}: {other}"),
    }
}

/// Vault's error strings on one line; its multi-error form (`1 error occurred:\n\t* permission
/// denied\n\n`) becomes its items.
fn vault_errors(errors: &[String]) -> String {
    errors
        .iter()
        .flat_map(|error| {
            let items: Vec<&str> = error
                .lines()
                .filter_map(|line| line.trim().strip_prefix("* "))
                .collect();
            if error.contains("error occurred:") || error.contains("errors occurred:") {
                items
            } else {
                vec![error.trim()]
            }
        })
        .map(|item| item.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `message` with every (non-empty) secret cut out.
fn redact(mut message: String, secrets: &[&str]) -> String {
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        message = message.replace(secret, "***");
    }
    message
}

impl SecretStore for VaultSecrets {
    async fn add(
        &self,
        name: &str,
        kind: CredentialKind,
        scope: &Scope,
        details: &CredentialDetails,
        value: &SecretValue,
    ) -> Result<(), SecretError> {
        validate_credential(name, kind, scope, details, value)?;
        let session = self.session().await?;
        let config = &self.inner.config;
        let path = self.path(&credential_key(kind, scope, name));
        let what = describe(kind, scope, name);
        let created_at = self.created_time(&session, &path, &what).await?;
        let (scope_kind, scope_value) = scope.parts();
        let stored = StoredSecret {
            name: name.to_string(),
            kind: kind.as_str().to_string(),
            scope_kind: scope_kind.to_string(),
            scope: scope_value.to_string(),
            details: details.clone(),
            value: value.expose().to_string(),
            created_at: created_at.clone(),
        };
        vaultrs::kv2::set(&session.client, &config.mount, &path, &stored)
            .await
            .map_err(|error| {
                self.inner
                    .error(&format!("write {what}"), error, &session, &[value.expose()])
            })?;
        tracing::info!(
            name,
            kind = kind.as_str(),
            scope = %scope,
            replaced = created_at.is_some(),
            "credential stored in Vault"
        );
        Ok(())
    }

    async fn list(&self) -> Result<Vec<CredentialInfo>, SecretError> {
        let session = self.session().await?;
        let mut infos = Vec::new();
        for (key, parts) in self.credential_keys(&session).await? {
            if let Some(credential) = self.read(&session, &key, &parts).await? {
                infos.push(credential.info);
            }
        }
        // as the Postgres store orders them
        infos.sort_by(|a, b| {
            let (a_kind, a_scope) = a.scope.parts();
            let (b_kind, b_scope) = b.scope.parts();
            (a_kind, a_scope, a.kind.as_str(), &a.name).cmp(&(
                b_kind,
                b_scope,
                b.kind.as_str(),
                &b.name,
            ))
        });
        Ok(infos)
    }

    async fn remove(
        &self,
        name: &str,
        kind: CredentialKind,
        scope: &Scope,
    ) -> Result<(), SecretError> {
        let session = self.session().await?;
        let config = &self.inner.config;
        let path = self.path(&credential_key(kind, scope, name));
        let what = describe(kind, scope, name);
        if self.created_time(&session, &path, &what).await?.is_none() {
            return Err(SecretError::Store(StoreError::NotFound(what)));
        }
        vaultrs::kv2::delete_metadata(&session.client, &config.mount, &path)
            .await
            .map_err(|error| {
                self.inner
                    .error(&format!("delete {what}"), error, &session, &[])
            })?;
        tracing::info!(name, kind = kind.as_str(), scope = %scope, "credential removed from Vault");
        Ok(())
    }

    async fn for_repo(&self, repo: &str) -> Result<Vec<Credential>, SecretError> {
        let session = self.session().await?;
        let mut credentials = Vec::new();
        for (key, parts) in self.credential_keys(&session).await? {
            if !parts.scope.covers(repo) {
                continue;
            }
            if let Some(credential) = self.read(&session, &key, &parts).await? {
                credentials.push(credential);
            }
        }
        // as the Postgres store orders them: the repo's own first, then shorter prefixes
        credentials.sort_by(|a, b| {
            let (a_kind, a_scope) = a.info.scope.parts();
            let (b_kind, b_scope) = b.info.scope.parts();
            b_kind
                .cmp(a_kind)
                .then(a_scope.len().cmp(&b_scope.len()))
                .then(a.info.name.cmp(&b.info.name))
        });
        Ok(credentials)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_one_readable_segment_and_decode() {
        let scope = Scope::Repo("acme/app".into());
        let key = credential_key(CredentialKind::Env, &scope, "API_TOKEN");
        assert_eq!(key, "env~repo~acme.2Fapp~API_TOKEN");
        assert_eq!(
            parse_key(&key),
            Some(KeyParts {
                kind: CredentialKind::Env,
                scope,
                name: "API_TOKEN".into()
            })
        );
        for (scope, name) in [
            (Scope::Prefix("team/".into()), "deploy key ~ ü.x"),
            (Scope::Repo("a~b/../c".into()), "../../x"),
            (Scope::Prefix("%2F.2F".into()), "."),
        ] {
            let key = credential_key(CredentialKind::Ssh, &scope, name);
            assert!(!key.contains('/') && !key.contains('%'), "{key}");
            assert_eq!(key.matches('~').count(), 3, "{key}");
            let parts = parse_key(&key).unwrap();
            assert_eq!((parts.scope, parts.name.as_str()), (scope, name));
        }
    }

    #[test]
    fn foreign_keys_are_not_credentials() {
        for key in [
            "folder/",
            "env~repo~x",
            "env~team~x~Y",
            "nope~repo~x~Y",
            "env~repo~x~Y~Z",
            "env~repo~x.2~Y",
            "env~repo~x.ZZ~Y",
            "env~repo~a b~Y",
        ] {
            assert_eq!(parse_key(key), None, "{key}");
        }
    }

    #[test]
    fn vault_times_parse() {
        let time = parse_time("2018-03-22T02:24:06.945319214Z").unwrap();
        assert_eq!(
            time.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            1_521_685_446
        );
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn configs_are_checked() {
        let token = || VaultAuth::Token("hvs.x".into());
        assert!(
            VaultConfig::new("vault.example:8200", token())
                .checked()
                .is_err()
        );
        let config = VaultConfig {
            mount: "/kv/".into(),
            prefix: "ci/ocelot/".into(),
            ..VaultConfig::new("https://vault.example:8200/", token())
        }
        .checked()
        .unwrap();
        assert_eq!(
            (
                config.address.as_str(),
                config.mount.as_str(),
                config.prefix.as_str()
            ),
            ("https://vault.example:8200", "kv", "ci/ocelot")
        );
        let bad_prefix = VaultConfig {
            prefix: "a/../b".into(),
            ..VaultConfig::new("http://127.0.0.1:8200", token())
        };
        assert!(bad_prefix.checked().is_err());
    }

    #[test]
    fn debug_hides_tokens_and_secret_ids() {
        let token = format!("{:?}", VaultAuth::Token("hvs.s3cr3t".into()));
        let approle = format!(
            "{:?}",
            VaultAuth::AppRole {
                mount: "approle".into(),
                role_id: "role-1".into(),
                secret_id: "s3cr3t-id".into()
            }
        );
        assert!(!token.contains("s3cr3t") && !approle.contains("s3cr3t"));
        assert!(approle.contains("role-1"));
    }

    #[test]
    fn vault_errors_read_on_one_line() {
        assert_eq!(
            vault_errors(&["1 error occurred:\n\t* permission denied\n\n".into()]),
            "permission denied"
        );
        assert_eq!(
            vault_errors(&["2 errors occurred:\n\t* a\n\t* b\n\n".into(), "c  d".into()]),
            "a; b; c d"
        );
    }

    #[test]
    fn redaction_cuts_every_secret() {
        assert_eq!(
            redact("a hvs.T b S c hvs.T".into(), &["hvs.T", "S", ""]),
            "a *** b *** c ***"
        );
    }
}
