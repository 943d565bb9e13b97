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
    /// A write the store refused before any SQL: it would break the build lifecycle or
    /// the shape of the log. Says which build and why.
    #[error("{0}")]
    Refused(String),
}

/// A stored attempt or seq out of its type's range: the row is corrupt (never read as 0).
impl From<crate::ids::OutOfRange> for StoreError {
    fn from(error: crate::ids::OutOfRange) -> Self {
        StoreError::Corrupt(error.to_string())
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        match error {
            // the server answered the connection attempt: a wrong password or a missing
            // database is not an outage
            deadpool_postgres::PoolError::Backend(error) => StoreError::from(error),
            other => {
                crate::metrics::database_error(crate::metrics::DatabaseError::Unavailable);
                StoreError::Unavailable(other.to_string())
            }
        }
    }
}

impl StoreError {
    /// Whether the same call may succeed later: the server or the connection was away.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

/// SQLSTATEs that pass: class 08 (connection exception), the shutdowns and restarts of
/// class 57 (57P01 admin, 57P02 crash, 57P03 "the database system is starting up"), 53300
/// too many connections (right after a restart), 40001 and 40P01 (serialization failure,
/// deadlock: the transaction may simply be run again).
fn is_outage(state: &tokio_postgres::error::SqlState) -> bool {
    let code = state.code();
    code.starts_with("08")
        || matches!(
            code,
            "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01"
        )
}

/// Every driver error becomes a store error here, once: counted by kind
/// (`ocelot_database_errors_total`).
impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        let mapped = map_driver_error(&error);
        use crate::metrics::{DatabaseError, database_error};
        database_error(match &mapped {
            StoreError::Unavailable(_) => DatabaseError::Unavailable,
            StoreError::Conflict(_) => DatabaseError::Conflict,
            _ => DatabaseError::Query,
        });
        mapped
    }
}

fn map_driver_error(error: &tokio_postgres::Error) -> StoreError {
    let io_failure = std::error::Error::source(error)
        .is_some_and(|source| source.downcast_ref::<std::io::Error>().is_some());
    if error.is_closed() || io_failure {
        // with its causes: a refused TLS certificate says why
        return StoreError::Unavailable(crate::error_chain::error_chain(error));
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

/// How long one call may take before it counts as an outage (a half-open connection never
/// answers).
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(20);

/// Runs a store call again while Postgres is away (a restart, a dropped connection), with
/// growing delays, until `budget` has passed (calls included); other errors and the last
/// outage error are returned. A call that takes over [`CALL_TIMEOUT`] counts as an outage.
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
    let deadline = tokio::time::Instant::now() + budget;
    let delays = backon::ExponentialBuilder::default()
        .with_min_delay(std::time::Duration::from_millis(100))
        .with_max_delay(std::time::Duration::from_secs(2))
        .with_jitter()
        .without_max_times();
    let mut call = call;
    let timed = || {
        let attempt = call();
        async move {
            match tokio::time::timeout(CALL_TIMEOUT, attempt).await {
                Ok(answer) => answer,
                Err(_) => Err(StoreError::Unavailable(format!(
                    "no answer within {} s",
                    CALL_TIMEOUT.as_secs()
                ))),
            }
        }
    };
    timed
        .retry(delays)
        .sleep(tokio::time::sleep)
        .when(|error: &StoreError| error.is_transient() && tokio::time::Instant::now() < deadline)
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
