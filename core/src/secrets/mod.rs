//! Credentials: secret values that builds use, stored encrypted at rest.
//!
//! - [`cipher`]: the master key and XChaCha20-Poly1305 sealing.
//! - [`mask`]: hiding secret values (and their common encodings) in build logs.
//! - [`SecretStore`]: add, list (never values), remove, and read for a build; implemented
//!   on Postgres by [`PostgresSecrets`].
//!
//! Kinds: `vcs`, `ssh`, `registry` and `env` ([`CredentialKind`]). Scopes: one repo, or every
//! repo whose name starts with a prefix. [`BuildCredentials`] picks what a build uses.

pub mod cipher;
pub mod mask;
pub mod select;
pub mod vault;

use crate::store::{Store, StoreError, StoredCredential};
use cipher::{CipherError, MasterKey, Sealed};
use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

/// What a credential is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    /// An HTTPS token or password for a git host, used by clones and `ls-remote`.
    Vcs,
    /// An SSH private key (and optionally the host's `known_hosts` entry) for `ssh://` clones.
    Ssh,
    /// A Docker registry login, used when a build's image is pulled.
    Registry,
    /// A named value injected into the environment of the builds in scope.
    Env,
}

impl CredentialKind {
    pub const ALL: [CredentialKind; 4] = [
        CredentialKind::Vcs,
        CredentialKind::Ssh,
        CredentialKind::Registry,
        CredentialKind::Env,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Vcs => "vcs",
            CredentialKind::Ssh => "ssh",
            CredentialKind::Registry => "registry",
            CredentialKind::Env => "env",
        }
    }
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CredentialKind {
    type Err = SecretError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        CredentialKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| {
                SecretError::Invalid(format!(
                    "unknown credential kind `{text}` (kinds: vcs, ssh, registry, env)"
                ))
            })
    }
}

/// The parts of a credential that are not secret: shown by listings, stored in clear.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CredentialDetails {
    /// `vcs`: the user name sent with the token (default `x-access-token`); `ssh`: the SSH
    /// user when the URL names none (default `git`); `registry`: the login (required).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// `registry`: the registry host the login is for (default `docker.io`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// `ssh`: `known_hosts` lines; when given, the server's host key must be one of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub known_hosts: Option<String>,
}

/// Which repos a credential serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Repo(String),
    /// Every repo whose name starts with this (e.g. `team/`).
    Prefix(String),
}

impl Scope {
    /// Whether this scope serves the repo named `repo`.
    pub fn covers(&self, repo: &str) -> bool {
        match self {
            Scope::Repo(name) => name == repo,
            Scope::Prefix(prefix) => repo.starts_with(prefix.as_str()),
        }
    }

    /// How specific the scope is: a repo beats every prefix, a longer prefix a shorter one.
    pub fn specificity(&self) -> usize {
        match self {
            Scope::Repo(_) => usize::MAX,
            Scope::Prefix(prefix) => prefix.len(),
        }
    }

    pub fn parts(&self) -> (&'static str, &str) {
        match self {
            Scope::Repo(repo) => ("repo", repo),
            Scope::Prefix(prefix) => ("prefix", prefix),
        }
    }

    pub fn from_parts(kind: &str, scope: &str) -> Scope {
        match kind {
            "prefix" => Scope::Prefix(scope.to_string()),
            _ => Scope::Repo(scope.to_string()),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, scope) = self.parts();
        write!(f, "{kind} {scope}")
    }
}

/// A secret value; its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: String) -> Self {
        SecretValue(value)
    }

    /// The value itself: only for putting it where it is used (a build's environment).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(***)")
    }
}

/// What a listing shows of a credential: never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialInfo {
    pub name: String,
    pub kind: CredentialKind,
    pub scope: Scope,
    pub details: CredentialDetails,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
}

/// A credential with its value, for a build.
#[derive(Debug, Clone)]
pub struct Credential {
    pub info: CredentialInfo,
    pub value: SecretValue,
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "no master key is configured: set OCELOT_MASTER_KEY_FILE (scripts/setup.sh makes one) or OCELOT_MASTER_KEY"
    )]
    NoMasterKey,
    #[error(
        "the master key (id {configured}) is not the one the stored credentials were encrypted with (id {stored}): configure the right key"
    )]
    WrongMasterKey { configured: String, stored: String },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Cipher(#[from] CipherError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An external secret store (Vault) failed or refused; says which and why.
    #[error("{0}")]
    Backend(String),
}

/// Where credentials live (Postgres by default, or Vault), behind one interface. Every
/// implementation checks new credentials with [`validate_credential`].
pub trait SecretStore {
    fn add(
        &self,
        name: &str,
        kind: CredentialKind,
        scope: &Scope,
        details: &CredentialDetails,
        value: &SecretValue,
    ) -> impl Future<Output = Result<(), SecretError>> + Send;
    fn list(&self) -> impl Future<Output = Result<Vec<CredentialInfo>, SecretError>> + Send;
    fn remove(
        &self,
        name: &str,
        kind: CredentialKind,
        scope: &Scope,
    ) -> impl Future<Output = Result<(), SecretError>> + Send;
    /// Every credential whose scope covers `repo`, with its value.
    fn for_repo(
        &self,
        repo: &str,
    ) -> impl Future<Output = Result<Vec<Credential>, SecretError>> + Send;
}

/// Credentials sealed with the master key in the `credentials` table.
#[derive(Debug, Clone)]
pub struct PostgresSecrets {
    store: Store,
    key: Option<MasterKey>,
}

fn associated(kind: &str, scope_kind: &str, scope: &str, name: &str) -> String {
    format!("{kind}:{scope_kind}:{scope}:{name}")
}

/// A valid environment variable name.
fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Checks a credential before any store keeps it: a usable name, a scope, details that fit
/// its kind, and a value long enough to be masked in logs.
pub fn validate_credential(
    name: &str,
    kind: CredentialKind,
    scope: &Scope,
    details: &CredentialDetails,
    value: &SecretValue,
) -> Result<(), SecretError> {
    let invalid = |message: String| Err(SecretError::Invalid(message));
    if name.is_empty() || name.chars().any(|c| c.is_control() || c == '/') {
        return invalid(format!(
            "`{name}` is not a credential name (non-empty, no `/` or control characters)"
        ));
    }
    if scope.parts().1.is_empty() {
        return invalid("the scope (repo or prefix) is empty".into());
    }
    let unexpected = |field: &str, present: bool| -> Result<(), SecretError> {
        if present {
            return Err(SecretError::Invalid(format!(
                "a {kind} credential has no {field}"
            )));
        }
        Ok(())
    };
    match kind {
        CredentialKind::Env => {
            if !valid_env_name(name) {
                return invalid(format!(
                    "`{name}` is not an environment variable name (letters, digits and `_`, not starting with a digit)"
                ));
            }
            unexpected("username", details.username.is_some())?;
            unexpected("registry", details.registry.is_some())?;
            unexpected("known_hosts", details.known_hosts.is_some())?;
        }
        CredentialKind::Vcs => {
            unexpected("registry", details.registry.is_some())?;
            unexpected("known_hosts", details.known_hosts.is_some())?;
        }
        CredentialKind::Ssh => {
            unexpected("registry", details.registry.is_some())?;
            let key = value.expose();
            if !(key.trim_start().starts_with("-----BEGIN") && key.contains("PRIVATE KEY-----")) {
                return invalid(
                    "an ssh credential's value is a private key (`-----BEGIN ... PRIVATE KEY-----`), e.g. from `ssh-keygen -t ed25519 -N ''`".into(),
                );
            }
            if let Some(known_hosts) = &details.known_hosts {
                crate::git::KnownHosts::parse(known_hosts)
                    .map_err(|e| SecretError::Invalid(e.to_string()))?;
            }
        }
        CredentialKind::Registry => {
            unexpected("known_hosts", details.known_hosts.is_some())?;
            if details.username.as_deref().is_none_or(str::is_empty) {
                return invalid("a registry credential needs a username (--username)".into());
            }
        }
    }
    for line in value.expose().lines().filter(|l| !l.trim().is_empty()) {
        mask::check_maskable(line).map_err(|e| SecretError::Invalid(e.to_string()))?;
    }
    if value.expose().trim().is_empty() {
        return invalid("the value is empty".into());
    }
    Ok(())
}

/// The credentials of one build, by use.
#[derive(Debug, Clone, Default)]
pub struct BuildCredentials {
    all: Vec<Credential>,
}

impl BuildCredentials {
    pub fn new(mut all: Vec<Credential>) -> Self {
        // most specific scope first, then by name, so picks are stable
        all.sort_by(|a, b| {
            b.info
                .scope
                .specificity()
                .cmp(&a.info.scope.specificity())
                .then_with(|| a.info.name.cmp(&b.info.name))
        });
        BuildCredentials { all }
    }

    pub fn all(&self) -> &[Credential] {
        &self.all
    }

    /// Without the secrets a build's own code could read (env values and registry logins):
    /// what a pull request from a fork gets unless its repo opts in.
    pub fn without_build_secrets(&self) -> Self {
        BuildCredentials {
            all: self
                .all
                .iter()
                .filter(|c| matches!(c.info.kind, CredentialKind::Vcs | CredentialKind::Ssh))
                .cloned()
                .collect(),
        }
    }

    fn of_kind(&self, kind: CredentialKind) -> impl Iterator<Item = &Credential> {
        self.all.iter().filter(move |c| c.info.kind == kind)
    }

    /// `NAME=value` for every `env` credential (the most specific one per name).
    pub fn env(&self) -> Vec<(String, SecretValue)> {
        let mut seen = std::collections::HashSet::new();
        self.of_kind(CredentialKind::Env)
            .filter(|c| seen.insert(c.info.name.clone()))
            .map(|c| (c.info.name.clone(), c.value.clone()))
            .collect()
    }

    /// How to authenticate to the git server at `url`: an `ssh` key for SSH URLs, a `vcs`
    /// token for the others; the most specific credential wins.
    pub fn git_auth(&self, url: &str) -> Option<crate::git::GitAuth> {
        if crate::git::is_ssh_url(url) {
            self.of_kind(CredentialKind::Ssh)
                .next()
                .map(|c| crate::git::GitAuth::Ssh {
                    username: c.info.details.username.clone(),
                    private_key: c.value.clone(),
                    known_hosts: c.info.details.known_hosts.clone(),
                })
        } else {
            self.of_kind(CredentialKind::Vcs)
                .next()
                .map(|c| crate::git::GitAuth::Https {
                    username: c
                        .info
                        .details
                        .username
                        .clone()
                        .unwrap_or_else(|| crate::git::DEFAULT_TOKEN_USERNAME.to_string()),
                    password: c.value.clone(),
                })
        }
    }

    /// The registry login for pulling `image` (its registry host, `docker.io` by default).
    pub fn registry_login(&self, image: &str) -> Option<RegistryLogin> {
        let host = image_registry(image);
        self.of_kind(CredentialKind::Registry)
            .find(|c| {
                c.info
                    .details
                    .registry
                    .as_deref()
                    .unwrap_or(DEFAULT_REGISTRY)
                    == host
            })
            .map(|c| RegistryLogin {
                registry: host.to_string(),
                username: c.info.details.username.clone().unwrap_or_default(),
                password: c.value.clone(),
            })
    }
}

/// The registry Docker uses for images whose name has no registry host.
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// The registry host of an image reference: its first path part when that looks like a
/// host (has a `.` or `:`, or is `localhost`), else `docker.io`.
pub fn image_registry(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first
        }
        _ => DEFAULT_REGISTRY,
    }
}

/// A login for pulling images from a registry.
#[derive(Debug, Clone)]
pub struct RegistryLogin {
    pub registry: String,
    pub username: String,
    pub password: SecretValue,
}

impl PostgresSecrets {
    /// Checks that `key` is the key the stored credentials were sealed with.
    pub async fn new(store: Store, key: Option<MasterKey>) -> Result<Self, SecretError> {
        if let Some(key) = &key {
            let configured = key.id();
            if let Some(stored) = store
                .credential_key_ids()
                .await?
                .into_iter()
                .find(|id| *id != configured)
            {
                return Err(SecretError::WrongMasterKey { configured, stored });
            }
        }
        Ok(PostgresSecrets { store, key })
    }

    fn key(&self) -> Result<&MasterKey, SecretError> {
        self.key.as_ref().ok_or(SecretError::NoMasterKey)
    }

    fn info(row: &StoredCredential) -> Result<CredentialInfo, SecretError> {
        Ok(CredentialInfo {
            name: row.name.clone(),
            kind: row.kind.parse()?,
            scope: Scope::from_parts(&row.scope_kind, &row.scope),
            // unreadable details fail closed: a lost known_hosts must not turn off the
            // host key check
            details: serde_json::from_value(row.details.clone()).map_err(|error| {
                StoreError::Corrupt(format!(
                    "details of credential {} `{}`: {error}",
                    row.kind, row.name
                ))
            })?,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

/// Re-encrypts every credential under `new` (all or nothing) and returns how many there
/// were. `old` must open every one of them.
pub async fn rotate_master_key(
    store: &Store,
    old: &MasterKey,
    new: &MasterKey,
) -> Result<usize, SecretError> {
    let rows = store.list_credentials().await?;
    let mut updates = Vec::with_capacity(rows.len());
    for row in rows {
        let binding = associated(&row.kind, &row.scope_kind, &row.scope, &row.name);
        let plain = old.open(
            &Sealed {
                nonce: row.nonce.clone(),
                ciphertext: row.ciphertext.clone(),
            },
            &binding,
        )?;
        let sealed = new.seal(&plain, &binding)?;
        let resealed = StoredCredential {
            key_id: new.id(),
            nonce: sealed.nonce,
            ciphertext: sealed.ciphertext,
            ..row.clone()
        };
        updates.push((row, resealed));
    }
    Ok(store.reseal_credentials(&updates).await?)
}

impl SecretStore for PostgresSecrets {
    async fn add(
        &self,
        name: &str,
        kind: CredentialKind,
        scope: &Scope,
        details: &CredentialDetails,
        value: &SecretValue,
    ) -> Result<(), SecretError> {
        validate_credential(name, kind, scope, details, value)?;
        let (scope_kind, scope_value) = scope.parts();
        let key = self.key()?;
        let sealed = key.seal(
            value.expose().as_bytes(),
            &associated(kind.as_str(), scope_kind, scope_value, name),
        )?;
        let now = SystemTime::now();
        self.store
            .put_credential(&StoredCredential {
                name: name.to_string(),
                kind: kind.as_str().to_string(),
                scope_kind: scope_kind.to_string(),
                scope: scope_value.to_string(),
                details: serde_json::to_value(details)
                    .map_err(|e| SecretError::Invalid(format!("details: {e}")))?,
                key_id: key.id(),
                nonce: sealed.nonce,
                ciphertext: sealed.ciphertext,
                created_at: now,
                updated_at: now,
            })
            .await?;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<CredentialInfo>, SecretError> {
        self.store
            .list_credentials()
            .await?
            .iter()
            .map(Self::info)
            .collect()
    }

    async fn remove(
        &self,
        name: &str,
        kind: CredentialKind,
        scope: &Scope,
    ) -> Result<(), SecretError> {
        let (scope_kind, scope_value) = scope.parts();
        self.store
            .remove_credential(kind.as_str(), scope_kind, scope_value, name)
            .await?;
        Ok(())
    }

    async fn for_repo(&self, repo: &str) -> Result<Vec<Credential>, SecretError> {
        let rows = self.store.credentials_for_repo(repo).await?;
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let key = self.key()?;
        rows.iter()
            .map(|row| {
                let plain = key.open(
                    &Sealed {
                        nonce: row.nonce.clone(),
                        ciphertext: row.ciphertext.clone(),
                    },
                    &associated(&row.kind, &row.scope_kind, &row.scope, &row.name),
                )?;
                Ok(Credential {
                    info: Self::info(row)?,
                    value: SecretValue(String::from_utf8_lossy(&plain).into_owned()),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_never_show_in_debug() {
        let value = SecretValue::new("hunter2-long".into());
        assert!(!format!("{value:?}").contains("hunter2"));
    }

    #[test]
    fn unreadable_details_fail_closed() {
        let row = StoredCredential {
            name: "deploy".into(),
            kind: "ssh".into(),
            scope_kind: "repo".into(),
            scope: "api".into(),
            details: serde_json::json!({"known_hosts": 42}),
            key_id: "k".into(),
            nonce: Vec::new(),
            ciphertext: Vec::new(),
            created_at: SystemTime::UNIX_EPOCH,
            updated_at: SystemTime::UNIX_EPOCH,
        };
        let error = PostgresSecrets::info(&row).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("details of credential ssh `deploy`"),
            "{error}"
        );
    }

    #[test]
    fn env_names_are_checked() {
        assert!(valid_env_name("API_TOKEN"));
        assert!(valid_env_name("_x1"));
        assert!(!valid_env_name("1X"));
        assert!(!valid_env_name("A-B"));
        assert!(!valid_env_name(""));
    }
}
