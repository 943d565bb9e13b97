//! Credentials in the KV engine: listing the prefix, reading one credential (checked against
//! its key), and [`SecretStore`] on top (write, list, remove, read for a build).

use super::VaultSecrets;
use super::error::is_not_found;
use super::keys::{KeyParts, StoredSecret, credential_key, describe, parse_key, parse_time};
use super::login::Session;
use crate::secrets::{
    Credential, CredentialDetails, CredentialInfo, CredentialKind, Scope, SecretError, SecretStore,
    SecretValue, validate_credential,
};
use crate::store::StoreError;
use vaultrs::api::kv2::requests::ReadSecretRequest;

impl VaultSecrets {
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
