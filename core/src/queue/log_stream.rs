//! The log bus's stream, `OCELOT_LOGS`: bounded by age and by bytes. The bus only carries
//! logs to live watchers, Postgres keeps them: when the stream is full the oldest events go
//! (discard old, so a publishing worker is never refused), and a watcher that wanted them
//! gets them from Postgres (the admin fills the gap, page by page). One flooding build can
//! thus push other builds' events off the bus early, never out of their logs.
//!
//! A stream created by an earlier release (no byte limit) gets [`LOGS_MAX_BYTES`] when the
//! admin starts, updated in place (its events stay; a worker may not update streams and
//! only warns). A byte limit an operator set
//! (`nats stream edit OCELOT_LOGS --max-bytes ...`) is kept.

use super::{LOGS_STREAM, QueueError};
use async_nats::jetstream::{self, stream};
use std::time::Duration;

/// How long the bus keeps an event.
pub const LOGS_MAX_AGE: Duration = Duration::from_secs(14 * 24 * 3600);
/// How many bytes of events the bus keeps, all builds together: 4 GiB.
pub const LOGS_MAX_BYTES: i64 = 4 * 1024 * 1024 * 1024;

fn config() -> stream::Config {
    stream::Config {
        name: LOGS_STREAM.to_string(),
        subjects: vec!["logs.>".to_string()],
        retention: stream::RetentionPolicy::Limits,
        storage: stream::StorageType::File,
        max_age: LOGS_MAX_AGE,
        max_bytes: LOGS_MAX_BYTES,
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    }
}

/// The byte limit for a stream that now has `max_bytes`: `None` when it keeps its own.
fn bounded(max_bytes: i64) -> Option<i64> {
    // the server says -1 (or 0 on old servers) for "no limit"
    (max_bytes <= 0).then_some(LOGS_MAX_BYTES)
}

/// Creates the stream when missing; bounds one that has no byte limit.
pub(super) async fn set_up(jetstream: &jetstream::Context) -> Result<(), QueueError> {
    let error = |e: &dyn std::fmt::Display| QueueError::Setup(format!("stream {LOGS_STREAM}: {e}"));
    let stream = jetstream
        .get_or_create_stream(config())
        .await
        .map_err(|e| error(&e))?;
    let current = &stream.cached_info().config;
    if let Some(max_bytes) = bounded(current.max_bytes) {
        let mut updated = current.clone();
        updated.max_bytes = max_bytes;
        updated.discard = stream::DiscardPolicy::Old;
        // only the admin may update the stream: a worker leaves it to the admin
        match jetstream.update_stream(&updated).await {
            Ok(_) => tracing::info!(
                stream = LOGS_STREAM,
                max_bytes,
                "the log bus had no byte limit: bounded (its events stay)"
            ),
            Err(e) => tracing::warn!(
                stream = LOGS_STREAM,
                error = %e,
                "the log bus has no byte limit and could not be bounded (the admin bounds it on start-up)"
            ),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unbounded_stream_gets_the_default_limit() {
        assert_eq!(bounded(-1), Some(LOGS_MAX_BYTES));
        assert_eq!(bounded(0), Some(LOGS_MAX_BYTES));
        assert_eq!(bounded(1 << 20), None, "an operator's limit is kept");
        assert_eq!(config().max_bytes, LOGS_MAX_BYTES);
        assert_eq!(config().discard, stream::DiscardPolicy::Old);
    }
}
