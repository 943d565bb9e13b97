//! Credentials: secret values that builds use, stored encrypted at rest.
//!
//! - [`cipher`]: the master key and XChaCha20-Poly1305 sealing.
//! - [`mask`]: hiding secret values (and their common encodings) in build logs.
//! - [`SecretStore`]: add, list (never values), remove, and read for a build; implemented
//!   on Postgres by [`PostgresSecrets`].
//!
//! Kinds today: `env` (a named value injected into a build's environment). Scopes: one repo,
//! or every repo whose name starts with a prefix.

pub mod cipher;
pub mod mask;

use crate::store::{Store, StoreError, StoredCredential};
use cipher::{CipherError, MasterKey, Sealed};
use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

/// What a credential is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// A named value injected into the environment of the builds in scope.
    Env,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::Env => "env",
        }
    }
}

impl FromStr for CredentialKind {
    type Err = SecretError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "env" => Ok(CredentialKind::Env),
            other => Err(SecretError::Invalid(format!(
                "unknown credential kind `{other}` (kinds: env)"
            ))),
        }
    }
}

/// Which repos a credential serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Repo(String),
    /// Every repo whose name starts with this (e.g. `team/`).
    Prefix(String),
}

impl Scope {
    fn parts(&self) -> (&'static str, &str) {
        match self {
            Scope::Repo(repo) => ("repo", repo),
            Scope::Prefix(prefix) => ("prefix", prefix),
        }
    }

    fn from_parts(kind: &str, scope: &str) -> Scope {
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
}

/// Where credentials live (Postgres today; Vault later), behind one interface.
pub trait SecretStore {
    fn add(
        &self,
        name: &str,
        kind: CredentialKind,
        scope: &Scope,
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
        value: &SecretValue,
    ) -> Result<(), SecretError> {
        if kind == CredentialKind::Env && !valid_env_name(name) {
            return Err(SecretError::Invalid(format!(
                "`{name}` is not an environment variable name (letters, digits and `_`, not starting with a digit)"
            )));
        }
        mask::check_maskable(value.expose()).map_err(|e| SecretError::Invalid(e.to_string()))?;
        let (scope_kind, scope_value) = scope.parts();
        if scope_value.is_empty() {
            return Err(SecretError::Invalid(
                "the scope (repo or prefix) is empty".into(),
            ));
        }
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
    fn env_names_are_checked() {
        assert!(valid_env_name("API_TOKEN"));
        assert!(valid_env_name("_x1"));
        assert!(!valid_env_name("1X"));
        assert!(!valid_env_name("A-B"));
        assert!(!valid_env_name(""));
    }
}
