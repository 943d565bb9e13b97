//! Webhook secrets sealed like credentials: XChaCha20-Poly1305 under the master key, bound
//! to the repo's name (a sealed secret copied onto another repo does not open). The admin
//! seals a repo's secret when it adds the repo; the hookhandler opens it to verify a
//! delivery. Plain-text secrets an earlier release stored keep working and are sealed by
//! [`seal_plain_secrets`], which the admin and the hookhandler run at start-up when they hold
//! the master key.

use super::SecretError;
use super::cipher::{MasterKey, Sealed};
use crate::store::{SealedWebhookSecret, Store, StoredWebhookSecret};

/// What binds a sealed webhook secret to its repo.
fn binding(repo: &str) -> String {
    format!("webhook:{repo}")
}

/// `secret` sealed for `repo` under `key`.
pub fn seal(key: &MasterKey, repo: &str, secret: &str) -> Result<SealedWebhookSecret, SecretError> {
    let sealed = key.seal(secret.as_bytes(), &binding(repo))?;
    Ok(SealedWebhookSecret {
        key_id: key.id(),
        nonce: sealed.nonce,
        ciphertext: sealed.ciphertext,
    })
}

/// The secret of `repo` as stored: a plain one as it is, a sealed one opened with `key`.
pub fn open(
    key: Option<&MasterKey>,
    repo: &str,
    stored: &StoredWebhookSecret,
) -> Result<String, SecretError> {
    let sealed = match stored {
        StoredWebhookSecret::Plain(secret) => return Ok(secret.clone()),
        StoredWebhookSecret::Sealed(sealed) => sealed,
    };
    let key = key.ok_or(SecretError::NoMasterKey)?;
    if sealed.key_id != key.id() {
        return Err(SecretError::WrongMasterKey {
            configured: key.id(),
            stored: sealed.key_id.clone(),
        });
    }
    let plain = key.open(
        &Sealed {
            nonce: sealed.nonce.clone(),
            ciphertext: sealed.ciphertext.clone(),
        },
        &binding(repo),
    )?;
    String::from_utf8(plain).map_err(|_| SecretError::Cipher(super::cipher::CipherError::Decrypt))
}

/// Checks that `key` is the key the stored webhook secrets were sealed with, then seals every
/// plain-text one (left by a release before sealing) and returns how many it sealed. Safe to
/// run from several services at once: a secret sealed by another in the meantime is left as
/// it is.
pub async fn seal_plain_secrets(store: &Store, key: &MasterKey) -> Result<usize, SecretError> {
    let configured = key.id();
    if let Some((_, other)) = store
        .sealed_webhook_secrets()
        .await?
        .into_iter()
        .find(|(_, sealed)| sealed.key_id != configured)
    {
        return Err(SecretError::WrongMasterKey {
            configured,
            stored: other.key_id,
        });
    }
    let mut updates = Vec::new();
    for (repo, plain) in store.plain_webhook_secrets().await? {
        let sealed = seal(key, &repo, &plain)?;
        updates.push((repo, StoredWebhookSecret::Plain(plain), sealed));
    }
    if updates.is_empty() {
        return Ok(0);
    }
    let sealed = store.replace_webhook_secrets(&updates).await?;
    tracing::info!(
        sealed,
        "webhook secrets stored in plain text by an earlier release are now sealed under the master key"
    );
    Ok(sealed)
}

/// Re-seals every webhook secret sealed under `old` (and seals any plain one) under `new`;
/// secrets already under `new` are left alone, so a rotation that stopped half-way can be run
/// again. Returns how many it re-sealed.
pub async fn reseal(store: &Store, old: &MasterKey, new: &MasterKey) -> Result<usize, SecretError> {
    let mut updates = Vec::new();
    for (repo, sealed) in store.sealed_webhook_secrets().await? {
        if sealed.key_id == new.id() {
            continue;
        }
        let stored = StoredWebhookSecret::Sealed(sealed);
        let plain = open(Some(old), &repo, &stored)?;
        updates.push((repo.clone(), stored, seal(new, &repo, &plain)?));
    }
    for (repo, plain) in store.plain_webhook_secrets().await? {
        let sealed = seal(new, &repo, &plain)?;
        updates.push((repo, StoredWebhookSecret::Plain(plain), sealed));
    }
    let count = updates.len();
    let replaced = store.replace_webhook_secrets(&updates).await?;
    if replaced != count {
        return Err(SecretError::Store(crate::store::StoreError::Conflict(
            "a webhook secret changed during the rotation: run it again".to_string(),
        )));
    }
    Ok(replaced)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> MasterKey {
        MasterKey::from_hex(&MasterKey::generate_hex().unwrap()).unwrap()
    }

    #[test]
    fn sealed_secrets_open_only_for_their_repo_and_key() {
        let (key, other) = (key(), key());
        let sealed = seal(&key, "team/app", "hook-secret-0123456789").unwrap();
        assert!(!sealed.ciphertext.windows(10).any(|w| w == b"0123456789"));
        let stored = StoredWebhookSecret::Sealed(sealed);
        assert_eq!(
            open(Some(&key), "team/app", &stored).unwrap(),
            "hook-secret-0123456789"
        );
        assert!(open(Some(&key), "team/other", &stored).is_err());
        assert!(matches!(
            open(Some(&other), "team/app", &stored),
            Err(SecretError::WrongMasterKey { .. })
        ));
        assert!(matches!(
            open(None, "team/app", &stored),
            Err(SecretError::NoMasterKey)
        ));
        let plain = StoredWebhookSecret::Plain("legacy-secret-0123".into());
        assert_eq!(open(None, "x", &plain).unwrap(), "legacy-secret-0123");
        assert_eq!(format!("{plain:?}"), "Plain(..)");
    }
}
