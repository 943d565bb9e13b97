//! Credentials: secret values that builds use, stored encrypted at rest.
//!
//! - [`cipher`]: the master key and XChaCha20-Poly1305 sealing.
//! - [`mask`]: hiding secret values (and their common encodings) in build logs.
//! - [`SecretStore`]: add, list (never values), remove, and read for a build; implemented
//!   on Postgres by [`PostgresSecrets`].
//! - [`vault`]: the same interface on Vault KV v2; [`select`]: which of the two a service
//!   uses.
//!
//! Kinds: `vcs`, `ssh`, `registry`, `env` and `file` ([`CredentialKind`]; where a `file`
//! goes: [`FilePath`], in `file_path`). Scopes: one repo, or every
//! repo whose name starts with a prefix. A credential's types and [`validate_credential`]
//! live in `credential`; an `ssh` credential's [`KnownHosts`] in `known_hosts`.
//! [`BuildCredentials`] picks what a build uses; the git module, which owns the git login
//! type, adds `BuildCredentials::git_auth`.

pub mod cipher;
mod credential;
mod error;
mod file_path;
mod known_hosts;
pub mod mask;
pub mod notify_credential;
pub mod select;
pub mod vault;
pub mod webhook;

pub use credential::{
    Credential, CredentialDetails, CredentialInfo, CredentialKind, Scope, SecretValue,
    normalize_host, validate_credential,
};
pub use error::SecretError;
pub use file_path::{FilePath, FilePathError, MAX_FILE_CREDENTIAL_BYTES, relative_inside};
pub use known_hosts::{KnownHosts, KnownHostsError};

use crate::store::{Store, StoreError, StoredCredential};
use cipher::{MasterKey, Sealed};
use std::time::SystemTime;

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

    /// Without the secrets a build's own code could read (env values, files and registry
    /// logins): what a pull request from a fork gets unless its repo opts in.
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

    /// This build's credentials of one kind, most specific scope first.
    pub(crate) fn of_kind(&self, kind: CredentialKind) -> impl Iterator<Item = &Credential> {
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

    /// Every `file` credential with where it goes (the most specific one per path), or the
    /// first whose stored path is not valid any more.
    pub fn files(&self) -> Result<Vec<(FilePath, &Credential)>, SecretError> {
        let mut seen = std::collections::HashSet::new();
        let mut files = Vec::new();
        for credential in self.of_kind(CredentialKind::File) {
            let path = FilePath::parse(credential.info.details.path.as_deref().unwrap_or(""))
                .map_err(|error| {
                    SecretError::Invalid(format!(
                        "file credential `{}` ({}): {error}",
                        credential.info.name, credential.info.scope
                    ))
                })?;
            if seen.insert(path.clone()) {
                files.push((path, credential));
            }
        }
        Ok(files)
    }

    /// What a build's log must never show: every value, and each line of a `file`
    /// credential trimmed (the masker skips those shorter than its minimum).
    pub fn masked_texts(&self) -> Vec<&str> {
        let mut texts: Vec<&str> = self.all.iter().map(|c| c.value.expose()).collect();
        for file in self.of_kind(CredentialKind::File) {
            texts.extend(file.value.expose().lines().map(str::trim));
        }
        texts
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
                    value: SecretValue::new(String::from_utf8_lossy(&plain).into_owned()),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credential(
        name: &str,
        kind: CredentialKind,
        scope: Scope,
        path: Option<&str>,
        value: &str,
    ) -> Credential {
        Credential {
            info: CredentialInfo {
                name: name.into(),
                kind,
                scope,
                details: CredentialDetails {
                    path: path.map(str::to_string),
                    ..Default::default()
                },
                created_at: SystemTime::UNIX_EPOCH,
                updated_at: SystemTime::UNIX_EPOCH,
            },
            value: SecretValue::new(value.into()),
        }
    }

    #[test]
    fn files_are_one_per_path_masked_by_line_and_withheld_from_forks() {
        let credentials = BuildCredentials::new(vec![
            credential(
                "team-kube",
                CredentialKind::File,
                Scope::Prefix("team/".into()),
                Some("~/.kube/./config"),
                "team-wide\n",
            ),
            credential(
                "kube",
                CredentialKind::File,
                Scope::Repo("team/app".into()),
                Some("~/.kube/config"),
                "apiVersion: v1\n  token: abc123456\n}\n",
            ),
            credential(
                "settings",
                CredentialKind::File,
                Scope::Repo("team/app".into()),
                Some("settings.xml"),
                "<settings/>",
            ),
            credential(
                "TOKEN",
                CredentialKind::Env,
                Scope::Repo("team/app".into()),
                None,
                "env-value-1",
            ),
        ]);
        let files: Vec<(String, &str)> = credentials
            .files()
            .unwrap()
            .into_iter()
            .map(|(path, c)| (path.to_string(), c.info.name.as_str()))
            .collect();
        assert_eq!(
            files,
            vec![
                ("~/.kube/config".to_string(), "kube"),
                ("settings.xml".to_string(), "settings"),
            ]
        );
        let masked = credentials.masked_texts();
        for text in [
            "apiVersion: v1",
            "token: abc123456",
            "}",
            "<settings/>",
            "env-value-1",
            "team-wide",
        ] {
            assert!(masked.contains(&text), "{text} in {masked:?}");
        }
        let masker = mask::Masker::new(masked);
        assert_eq!(masker.mask_line("said token: abc123456"), "said ***");
        assert_eq!(masker.mask_line("}"), "}");
        let withheld = credentials.without_build_secrets();
        assert!(withheld.files().unwrap().is_empty());
        assert!(withheld.env().is_empty());
        let broken = BuildCredentials::new(vec![credential(
            "old",
            CredentialKind::File,
            Scope::Repo("a".into()),
            None,
            "value",
        )]);
        let error = broken.files().unwrap_err().to_string();
        assert!(error.contains("file credential `old` (repo a)"), "{error}");
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
}
