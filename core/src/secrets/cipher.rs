//! Encryption at rest of secret values: XChaCha20-Poly1305 (RustCrypto) under a 32-byte
//! master key, a random 24-byte nonce per value, and associated data that binds a ciphertext
//! to its credential (a ciphertext copied onto another credential does not decrypt).

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use std::path::Path;

/// What went wrong with the master key or a ciphertext.
#[derive(Debug, thiserror::Error)]
pub enum CipherError {
    #[error("the master key must be 64 hexadecimal characters (32 bytes); {0}")]
    BadKey(String),
    #[error("cannot read the master key file {path}: {message}")]
    KeyFile { path: String, message: String },
    #[error("the master key file {0} is readable by other users: chmod 600 it")]
    KeyFileOpen(String),
    #[error("no random numbers from the operating system: {0}")]
    Random(String),
    #[error("a secret could not be decrypted: wrong master key, or the stored value was altered")]
    Decrypt,
    #[error("a secret could not be encrypted")]
    Encrypt,
}

/// The master key. Its `Debug` shows only its id.
#[derive(Clone)]
pub struct MasterKey {
    key: [u8; 32],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id()).finish()
    }
}

/// A sealed value: nonce and ciphertext (with its tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl MasterKey {
    /// Reads a key written as 64 hex characters (surrounding white space ignored).
    pub fn from_hex(text: &str) -> Result<MasterKey, CipherError> {
        let text = text.trim();
        if text.len() != 64 || !text.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(CipherError::BadKey(format!(
                "got {} characters",
                text.len()
            )));
        }
        let mut key = [0u8; 32];
        for (index, byte) in key.iter_mut().enumerate() {
            let pair = text.get(index * 2..index * 2 + 2).unwrap_or("00");
            *byte = u8::from_str_radix(pair, 16).map_err(|e| CipherError::BadKey(e.to_string()))?;
        }
        Ok(MasterKey { key })
    }

    /// Reads the key from a file that only its owner may read.
    pub fn from_file(path: &Path) -> Result<MasterKey, CipherError> {
        use std::os::unix::fs::PermissionsExt;
        let shown = path.display().to_string();
        let metadata = std::fs::metadata(path).map_err(|e| CipherError::KeyFile {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        if metadata.permissions().mode() & 0o077 != 0 {
            return Err(CipherError::KeyFileOpen(shown));
        }
        let text = std::fs::read_to_string(path).map_err(|e| CipherError::KeyFile {
            path: shown,
            message: e.to_string(),
        })?;
        MasterKey::from_hex(&text)
    }

    /// A new random key, as 64 hex characters.
    pub fn generate_hex() -> Result<String, CipherError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| CipherError::Random(e.to_string()))?;
        Ok(key.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// A public fingerprint of the key (16 hex characters of its SHA-256), stored with
    /// every ciphertext so that a wrong key is recognised at once.
    pub fn id(&self) -> String {
        Sha256::digest(self.key)
            .iter()
            .take(8)
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    pub fn seal(&self, plaintext: &[u8], associated: &str) -> Result<Sealed, CipherError> {
        let mut nonce = [0u8; 24];
        getrandom::fill(&mut nonce).map_err(|e| CipherError::Random(e.to_string()))?;
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&self.key));
        let ciphertext = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: associated.as_bytes(),
                },
            )
            .map_err(|_| CipherError::Encrypt)?;
        Ok(Sealed {
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    pub fn open(&self, sealed: &Sealed, associated: &str) -> Result<Vec<u8>, CipherError> {
        if sealed.nonce.len() != 24 {
            return Err(CipherError::Decrypt);
        }
        let cipher = XChaCha20Poly1305::new(Key::from_slice(&self.key));
        cipher
            .decrypt(
                XNonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: associated.as_bytes(),
                },
            )
            .map_err(|_| CipherError::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_key_and_binding() {
        let key = MasterKey::from_hex(&MasterKey::generate_hex().unwrap()).unwrap();
        let other = MasterKey::from_hex(&MasterKey::generate_hex().unwrap()).unwrap();
        let sealed = key.seal(b"s3cret-value", "env:repo:api:TOKEN").unwrap();
        assert_ne!(sealed.ciphertext, b"s3cret-value".to_vec());
        assert_eq!(
            key.open(&sealed, "env:repo:api:TOKEN").unwrap(),
            b"s3cret-value"
        );
        assert!(matches!(
            other.open(&sealed, "env:repo:api:TOKEN"),
            Err(CipherError::Decrypt)
        ));
        assert!(matches!(
            key.open(&sealed, "env:repo:web:TOKEN"),
            Err(CipherError::Decrypt)
        ));
        let mut tampered = sealed.clone();
        tampered.ciphertext[0] ^= 1;
        assert!(key.open(&tampered, "env:repo:api:TOKEN").is_err());
        assert_ne!(key.id(), other.id());
        assert!(format!("{key:?}").contains(&key.id()));
    }

    #[test]
    fn keys_are_64_hex_characters() {
        assert!(MasterKey::from_hex("abc").is_err());
        assert!(MasterKey::from_hex(&"g".repeat(64)).is_err());
        assert!(MasterKey::from_hex(&format!("{}\n", "0f".repeat(32))).is_ok());
    }

    #[test]
    fn key_files_readable_by_others_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        std::fs::write(&path, "0f".repeat(32)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            MasterKey::from_file(&path),
            Err(CipherError::KeyFileOpen(_))
        ));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(MasterKey::from_file(&path).is_ok());
    }
}
