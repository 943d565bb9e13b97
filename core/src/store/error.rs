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

impl StoreError {
    /// Whether the same call may succeed later: the server or the connection was away.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// SQLSTATE classes of a server going away: 08 connection exception, 57 operator
/// intervention (shutdown, restart, "the database system is starting up").
fn is_outage(state: &tokio_postgres::error::SqlState) -> bool {
    let code = state.code();
    code.starts_with("08") || code.starts_with("57")
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        let io_failure = std::error::Error::source(&error)
            .is_some_and(|source| source.downcast_ref::<std::io::Error>().is_some());
        if error.is_closed() || io_failure {
            return StoreError::Unavailable(error.to_string());
        }
        if let Some(db_error) = error.as_db_error() {
            if is_outage(db_error.code()) {
                return StoreError::Unavailable(format!(
                    "{}: {}",
                    db_error.code().code(),
                    db_error.message()
                ));
            }
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
        StoreError::Query(format!("{error:#}"))
    }
}

/// Runs a store call again while Postgres is away (a restart, a dropped connection), with
/// growing delays, for up to `budget`; other errors and the last outage error are returned.
pub async fn retrying<T, F, Fut>(
    what: &str,
    budget: std::time::Duration,
    call: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    use backon::Retryable;
    let delays = backon::ExponentialBuilder::default()
        .with_min_delay(std::time::Duration::from_millis(100))
        .with_max_delay(std::time::Duration::from_secs(2))
        .with_jitter()
        .with_total_delay(Some(budget))
        .without_max_times();
    call.retry(delays)
        .sleep(tokio::time::sleep)
        .when(StoreError::is_transient)
        .notify(|error, delay| {
            tracing::warn!(%error, ?delay, "{what}: Postgres unavailable, retrying");
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::{StoreError, retrying};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn outages_are_retried_and_other_errors_are_not() {
        let calls = AtomicUsize::new(0);
        let answer = retrying("test", Duration::from_secs(10), || async {
            if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                Err(StoreError::Unavailable("restarting".into()))
            } else {
                Ok(7)
            }
        })
        .await;
        assert_eq!(answer.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let calls = AtomicUsize::new(0);
        let answer: Result<(), _> = retrying("test", Duration::from_secs(10), || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(StoreError::Query("42P01: no such table".into()))
        })
        .await;
        assert!(matches!(answer, Err(StoreError::Query(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_outage_longer_than_the_budget_gives_up() {
        // returns (the test would hang otherwise) with the outage's error
        let answer: Result<(), _> = retrying("test", Duration::from_millis(300), || async {
            Err(StoreError::Unavailable("down".into()))
        })
        .await;
        assert!(matches!(answer, Err(StoreError::Unavailable(_))));
    }
}
