//! The `credentials` table: sealed values, never read back by a listing.

use super::{Store, StoreError};
use std::time::SystemTime;
use tokio_postgres::Row;

/// A credential row; `nonce` and `ciphertext` are the sealed value.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredCredential {
    pub name: String,
    pub kind: String,
    pub scope_kind: String,
    pub scope: String,
    /// The non-secret details (user name, registry, known_hosts), as JSON.
    pub details: serde_json::Value,
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
    pub created_at: SystemTime,
    pub updated_at: SystemTime,
}

impl std::fmt::Debug for StoredCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCredential")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("scope_kind", &self.scope_kind)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

const COLUMNS: &str =
    "name, kind, scope_kind, scope, details, key_id, nonce, ciphertext, created_at, updated_at";

fn credential_from_row(row: &Row) -> StoredCredential {
    StoredCredential {
        name: row.get("name"),
        kind: row.get("kind"),
        scope_kind: row.get("scope_kind"),
        scope: row.get("scope"),
        details: row.get("details"),
        key_id: row.get("key_id"),
        nonce: row.get("nonce"),
        ciphertext: row.get("ciphertext"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
    }
}

impl Store {
    /// Adds a credential, or replaces the value of the one with the same kind, scope and name.
    pub async fn put_credential(&self, credential: &StoredCredential) -> Result<(), StoreError> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO credentials (name, kind, scope_kind, scope, key_id, nonce, ciphertext, details)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (kind, scope_kind, scope, name) DO UPDATE
                     SET key_id = $5, nonce = $6, ciphertext = $7, details = $8, updated_at = now()",
                &[
                    &credential.name,
                    &credential.kind,
                    &credential.scope_kind,
                    &credential.scope,
                    &credential.key_id,
                    &credential.nonce,
                    &credential.ciphertext,
                    &credential.details,
                ],
            )
            .await?;
        Ok(())
    }

    pub async fn list_credentials(&self) -> Result<Vec<StoredCredential>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM credentials ORDER BY scope_kind, scope, kind, name"
                ),
                &[],
            )
            .await?;
        Ok(rows.iter().map(credential_from_row).collect())
    }

    /// Credentials whose scope covers the repo named `repo` (its own, or a prefix of its name).
    pub async fn credentials_for_repo(
        &self,
        repo: &str,
    ) -> Result<Vec<StoredCredential>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM credentials
                     WHERE (scope_kind = 'repo' AND scope = $1)
                        OR (scope_kind = 'prefix' AND starts_with($1, scope))
                     ORDER BY scope_kind DESC, length(scope), name"
                ),
                &[&repo],
            )
            .await?;
        Ok(rows.iter().map(credential_from_row).collect())
    }

    pub async fn remove_credential(
        &self,
        kind: &str,
        scope_kind: &str,
        scope: &str,
        name: &str,
    ) -> Result<(), StoreError> {
        let client = self.client().await?;
        let removed = client
            .execute(
                "DELETE FROM credentials WHERE kind = $1 AND scope_kind = $2 AND scope = $3 AND name = $4",
                &[&kind, &scope_kind, &scope, &name],
            )
            .await?;
        if removed == 0 {
            return Err(StoreError::NotFound(format!(
                "credential {kind} `{name}` ({scope_kind} {scope})"
            )));
        }
        Ok(())
    }

    /// The ids of the master keys the stored credentials were sealed with.
    pub async fn credential_key_ids(&self) -> Result<Vec<String>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query("SELECT DISTINCT key_id FROM credentials", &[])
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    /// Replaces the sealed values of credentials in one transaction: each update applies
    /// only if the row still has the key id it was read with; any mismatch aborts them all.
    pub async fn reseal_credentials(
        &self,
        updates: &[(StoredCredential, StoredCredential)],
    ) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        for (old, new) in updates {
            let updated = transaction
                .execute(
                    "UPDATE credentials SET key_id = $5, nonce = $6, ciphertext = $7, updated_at = now()
                     WHERE kind = $1 AND scope_kind = $2 AND scope = $3 AND name = $4 AND key_id = $8",
                    &[
                        &old.kind,
                        &old.scope_kind,
                        &old.scope,
                        &old.name,
                        &new.key_id,
                        &new.nonce,
                        &new.ciphertext,
                        &old.key_id,
                    ],
                )
                .await?;
            if updated != 1 {
                return Err(StoreError::Conflict(format!(
                    "credential `{}` changed during the rotation; nothing was re-encrypted, run it again",
                    old.name
                )));
            }
        }
        transaction.commit().await?;
        Ok(updates.len())
    }
}
