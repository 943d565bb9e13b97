//! The webhook secrets of the `repos` table, as stored: sealed under the master key (the
//! sealing is `secrets::webhook`'s), or plain text as an earlier release left them until a
//! service holding the master key seals them.

use super::{Store, StoreError};
use tokio_postgres::Row;

/// The columns [`stored_from_row`] reads.
pub(super) const SECRET_COLUMNS: &str =
    "webhook_secret, webhook_key_id, webhook_nonce, webhook_ciphertext";

/// A repo's webhook secret as stored. Its `Debug` never shows a value.
#[derive(Clone, PartialEq, Eq)]
pub enum StoredWebhookSecret {
    Sealed(SealedWebhookSecret),
    /// Written by a release before sealing (migration V11); sealed at the next start of an
    /// admin or hookhandler that holds the master key.
    Plain(String),
}

impl std::fmt::Debug for StoredWebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoredWebhookSecret::Sealed(sealed) => f
                .debug_tuple("Sealed")
                .field(&sealed.key_id)
                .finish_non_exhaustive(),
            StoredWebhookSecret::Plain(_) => f.write_str("Plain(..)"),
        }
    }
}

/// A webhook secret sealed under the master key whose id is `key_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedWebhookSecret {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

/// The secret of a row read with [`SECRET_COLUMNS`]; the sealed form wins.
pub(super) fn stored_from_row(row: &Row) -> Option<StoredWebhookSecret> {
    let key_id: Option<String> = row.get("webhook_key_id");
    let nonce: Option<Vec<u8>> = row.get("webhook_nonce");
    let ciphertext: Option<Vec<u8>> = row.get("webhook_ciphertext");
    match (key_id, nonce, ciphertext) {
        (Some(key_id), Some(nonce), Some(ciphertext)) => {
            Some(StoredWebhookSecret::Sealed(SealedWebhookSecret {
                key_id,
                nonce,
                ciphertext,
            }))
        }
        _ => row
            .get::<_, Option<String>>("webhook_secret")
            .map(StoredWebhookSecret::Plain),
    }
}

impl Store {
    /// `(repo name, secret)` of every webhook secret still stored in plain text.
    pub async fn plain_webhook_secrets(&self) -> Result<Vec<(String, String)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT name, webhook_secret FROM repos
                 WHERE webhook_secret IS NOT NULL AND webhook_ciphertext IS NULL ORDER BY id",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    /// The webhook secret of the repo named `name` as stored; `None`: it has none.
    pub async fn webhook_secret(
        &self,
        name: &str,
    ) -> Result<Option<StoredWebhookSecret>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT {SECRET_COLUMNS} FROM repos WHERE name = $1"),
                &[&name],
            )
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("repo `{name}`")))?;
        Ok(stored_from_row(&row))
    }

    /// `(repo name, sealed secret)` of every sealed webhook secret.
    pub async fn sealed_webhook_secrets(
        &self,
    ) -> Result<Vec<(String, SealedWebhookSecret)>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT name, webhook_key_id, webhook_nonce, webhook_ciphertext FROM repos
                 WHERE webhook_ciphertext IS NOT NULL ORDER BY id",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| {
                (
                    row.get(0),
                    SealedWebhookSecret {
                        key_id: row.get(1),
                        nonce: row.get(2),
                        ciphertext: row.get(3),
                    },
                )
            })
            .collect())
    }

    /// Replaces the stored secret of each `(repo name, what it was read as, sealed)` in one
    /// transaction, clearing any plain text; an update applies only while the row still holds
    /// what it was read as (another service sealing or rotating at the same time wins, and
    /// this call changes nothing). Returns how many were replaced.
    pub async fn replace_webhook_secrets(
        &self,
        updates: &[(String, StoredWebhookSecret, SealedWebhookSecret)],
    ) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await?;
        let mut replaced = 0;
        for (name, old, new) in updates {
            let (plain, old_ciphertext) = match old {
                StoredWebhookSecret::Plain(plain) => (Some(plain.as_str()), None),
                StoredWebhookSecret::Sealed(sealed) => (None, Some(&sealed.ciphertext)),
            };
            replaced += transaction
                .execute(
                    "UPDATE repos SET webhook_secret = NULL, webhook_key_id = $2,
                            webhook_nonce = $3, webhook_ciphertext = $4
                     WHERE name = $1
                       AND webhook_secret IS NOT DISTINCT FROM $5
                       AND webhook_ciphertext IS NOT DISTINCT FROM $6",
                    &[
                        name,
                        &new.key_id,
                        &new.nonce,
                        &new.ciphertext,
                        &plain,
                        &old_ciphertext,
                    ],
                )
                .await?;
        }
        transaction.commit().await?;
        Ok(usize::try_from(replaced).unwrap_or(usize::MAX))
    }
}
