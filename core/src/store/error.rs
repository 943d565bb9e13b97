//! Errors of the store, in the store's terms.

/// What went wrong talking to Postgres.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database configuration: {0}")]
    Config(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Says what exists already.
    #[error("{0}")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("database query failed: {0}")]
    Query(String),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        StoreError::Unavailable(error.to_string())
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        if let Some(db_error) = error.as_db_error() {
            if db_error.code() == &tokio_postgres::error::SqlState::UNIQUE_VIOLATION {
                return StoreError::Conflict(
                    db_error.detail().unwrap_or(db_error.message()).to_string(),
                );
            }
            return StoreError::Query(format!(
                "{}: {}",
                db_error.code().code(),
                db_error.message()
            ));
        }
        if error.is_closed() {
            return StoreError::Unavailable(error.to_string());
        }
        StoreError::Query(format!("{error:#}"))
    }
}
