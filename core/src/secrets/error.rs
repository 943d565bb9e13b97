//! What can go wrong with credentials, in one error.

use super::cipher::CipherError;
use crate::store::StoreError;

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
