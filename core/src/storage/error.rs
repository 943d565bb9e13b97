//! Errors of the object store, in the storage's terms.

/// What went wrong reading or writing stored objects.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// `--storage` and its companions do not describe a store.
    #[error("storage configuration: {0}")]
    Config(String),
    /// The object does not exist (or no longer does).
    #[error("object `{0}` not found in the storage")]
    NotFound(String),
    /// The store refused or failed the call.
    #[error("storage ({location}): {message}")]
    Backend { location: String, message: String },
}

impl StorageError {
    pub(crate) fn backend(location: &str, error: &object_store::Error) -> Self {
        match error {
            object_store::Error::NotFound { path, .. } => StorageError::NotFound(path.clone()),
            other => StorageError::Backend {
                location: location.to_string(),
                message: crate::error_chain::error_chain(other),
            },
        }
    }
}
